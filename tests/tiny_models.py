"""Tiny random transformers speech encoders saved with save_pretrained, for tests (nothing is downloaded)."""

from pathlib import Path

import numpy as np
import torch
import transformers
from torch import nn

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
