"""Tiny random speech encoders, audio and SpEAT tests, for tests (nothing is downloaded).

`save_tiny_model` saves transformers encoders of `KINDS`; the compression tests use `save_prunable_model` (models of
`PRUNABLE_KINDS`, whose CNN downsamples like the real ones, 320x), `MELHUBERT`, `save_melhubert`, an audio folder
(`write_audio_folder`) and a small custom SpEAT test (`write_tone_test`).
"""

import json
from pathlib import Path

import numpy as np
import soundfile
import torch
import transformers
from torch import nn

from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel, save_melhubert_checkpoint

_CNN = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8))
_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **_CNN)

# model type -> (model class, config class, config overrides, feature extractor takes an attention mask)
KINDS = {
    "wav2vec2": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config,
                 dict(_SMALL, feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
                      num_conv_pos_embedding_groups=2), True),
    "hubert": (transformers.HubertModel, transformers.HubertConfig,
               dict(_SMALL, feat_extract_norm="group", num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2),
               False),
    "wavlm": (transformers.WavLMModel, transformers.WavLMConfig,
              dict(_SMALL, feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
                   num_conv_pos_embedding_groups=2), True),
    "data2vec-audio": (transformers.Data2VecAudioModel, transformers.Data2VecAudioConfig,
                       dict(_SMALL, num_conv_pos_embeddings=2, conv_pos_kernel_size=4), True),
}


def save_tiny_model(kind: str, directory: Path, *, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model of `kind` (a key of KINDS or "whisper") with its feature extractor."""
    torch.manual_seed(seed)
    directory = Path(directory)
    if kind == "whisper":
        config = transformers.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                            decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=40)
        transformers.WhisperModel(config).save_pretrained(directory)
        transformers.WhisperFeatureExtractor().save_pretrained(directory)
        return directory
    model_class, config_class, overrides, attention_mask = KINDS[kind]
    model_class(config_class(**overrides)).save_pretrained(directory)
    extractor = transformers.Wav2Vec2FeatureExtractor(return_attention_mask=attention_mask, do_normalize=True)
    extractor.save_pretrained(directory)
    return directory


def randomise_layer_norms(model: nn.Module) -> nn.Module:
    """Trained LayerNorms are not the identity: randomise them so that a skipped or swapped norm shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    return model


def tone_in_noise(seconds: float, frequency: float, seed: int) -> np.ndarray:
    """A 16 kHz float32 test clip: a tone at `frequency` Hz plus seeded white noise."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * 16_000)
    tone = np.sin(2 * np.pi * frequency * np.arange(samples) / 16_000)
    return (0.3 * tone + 0.05 * rng.standard_normal(samples)).astype(np.float32)


_CNN_320X = dict(conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8))
PRUNABLE_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **_CNN_320X)
# model type -> (model class, config class, config overrides of PRUNABLE_SMALL)
PRUNABLE_KINDS = {
    "wav2vec2": (transformers.Wav2Vec2Model, transformers.Wav2Vec2Config,
                 dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "hubert": (transformers.HubertModel, transformers.HubertConfig, dict(feat_extract_norm="group")),
    "wavlm": (transformers.WavLMModel, transformers.WavLMConfig,
              dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "data2vec-audio": (transformers.Data2VecAudioModel, transformers.Data2VecAudioConfig,
                       dict(num_conv_pos_embeddings=2, conv_pos_kernel_size=4)),
}
MELHUBERT = MelHuBERTConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                            conv_pos=8, conv_pos_groups=4, num_cluster=16)


def save_prunable_model(kind: str, directory: Path, *, seed: int = 0) -> Path:
    """A random tiny transformers model (50 frames per second, like the real ones) with its feature extractor."""
    model_class, config_class, overrides = PRUNABLE_KINDS[kind]
    torch.manual_seed(seed)
    model_class(config_class(**{**PRUNABLE_SMALL, **overrides})).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True,
                                          return_attention_mask=overrides.get("feat_extract_norm") != "group"
                                          ).save_pretrained(directory)
    return directory


def save_melhubert(path: Path, *, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_melhubert_checkpoint(MelHuBERTModel(MELHUBERT), path)
    return path


def write_audio_folder(directory: Path, *, count: int = 6, seconds: float = 0.8) -> Path:
    """Noisy tones at mixed rates and formats, as a training folder."""
    rng = np.random.default_rng(0)
    for index in range(count):
        rate = (16_000, 22_050, 8_000)[index % 3]
        time = np.arange(int((seconds + 0.05 * index) * rate)) / rate
        wave = 0.3 * np.sin(2 * np.pi * (180 + 40 * index) * time) + 0.05 * rng.standard_normal(len(time))
        soundfile.write(directory / f"clip{index}.{('wav', 'flac')[index % 2]}", wave.astype(np.float32), rate)
    return directory


def write_tone_test(directory: Path) -> Path:
    """A custom SpEAT test of 4 + 4 targets and 4 + 4 attributes (0.4 s noisy tones), as a JSON file."""
    groups = {}
    for role, base in (("x", 300), ("y", 520), ("a", 740), ("b", 960)):
        groups[role] = []
        for index in range(4):
            time = np.arange(6400) / 16_000
            noise = 0.05 * np.random.default_rng(base + index).standard_normal(len(time))
            path = directory / role / f"{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * (base + 37 * index) * time) + noise).astype(np.float32),
                            16_000)
            groups[role].append(f"{role}/{index}.wav")
    test = directory / "tone.json"
    test.write_text(json.dumps({"name": "tone", **groups, "group_names": ["low", "high", "pleasant", "unpleasant"]}))
    return test
