"""Pruned models: slicing zeroed heads and FFN dimensions out changes nothing, and pruned models save and reload.

Also the helpers the other pruning tests import: tiny models whose CNN downsamples like the real ones (320x), an
audio folder and a small custom SpEAT test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import transformers
from torch import nn

from speat_metric.adapters import load_encoder
from speat_metric.adapters.base import ModelLoadError
from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel, save_melhubert_checkpoint
from speat_metric.adapters.pruned import (
    PrunedLayout,
    keep_heads,
    layout_of,
    load_pruned_model,
    pruned_wavlm_attention_class,
    save_pruned_model,
    transformer_layers,
)
from speat_metric.pruning.structured import prune_heads, prune_rows

_CNN = dict(conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8))
_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **_CNN)
KINDS = {
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


def save_model(kind: str, directory: Path, *, seed: int = 0) -> Path:
    """A random tiny transformers model (50 frames per second, like the real ones) with its feature extractor."""
    model_class, config_class, overrides = KINDS[kind]
    torch.manual_seed(seed)
    model_class(config_class(**{**_SMALL, **overrides})).save_pretrained(directory)
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


def randomise_norms(model: nn.Module) -> None:
    """Trained norms are not the identity: randomise the affine ones so that a skipped layer would show."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)) and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)


def hidden_states(model: nn.Module, kind: str, inputs: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        if kind == "melhubert":
            return model(inputs, torch.ones(inputs.shape[:2], dtype=torch.bool))
        return list(model(inputs, output_hidden_states=True).hidden_states)


def build(kind: str, tmp_path: Path) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(1)
    if kind == "melhubert":
        model = MelHuBERTModel(MELHUBERT).eval()
        inputs = torch.randn(2, 30, MELHUBERT.feat_emb_dim)
    else:
        model = transformers.AutoModel.from_pretrained(save_model(kind, tmp_path / kind)).eval()
        inputs = torch.randn(2, 8000)
    randomise_norms(model)
    return model, inputs


def largest_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    assert len(first) == len(second)
    return max(float((a - b).abs().max()) for a, b in zip(first, second))


ALL_KINDS = [*KINDS, "melhubert"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_zeroed_heads_are_the_ones_pruned_and_slicing_them_changes_nothing(kind, tmp_path):
    model, inputs = build(kind, tmp_path)
    layers = transformer_layers(model)
    zeroed = [2, 0]  # per layer: the head whose weights are zeroed, so it contributes nothing and scores lowest
    with torch.no_grad():
        for layer, head in zip(layers, zeroed):
            rows = slice(head * layer.head_dim, (head + 1) * layer.head_dim)
            for linear in (layer.query, layer.key, layer.value):
                linear.weight[rows] = 0
                linear.bias[rows] = 0
            layer.output.weight[:, rows] = 0
    before, count = hidden_states(model, kind, inputs), sum(p.numel() for p in model.parameters())

    removed = prune_heads(model, 1)

    hidden, head_dim, width = 32, 8, 32
    per_head = 3 * (head_dim * width + head_dim) + width * head_dim + (1 if kind == "wavlm" else 0)
    assert removed == [[2], [0]]
    assert count - sum(p.numel() for p in model.parameters()) == 2 * per_head
    assert [layer.num_heads for layer in transformer_layers(model)] == [3, 3]
    assert largest_difference(before, hidden_states(model, kind, inputs)) < 1e-5 * hidden


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_zeroed_ffn_dimensions_are_the_ones_pruned_and_slicing_them_changes_nothing(kind, tmp_path):
    model, inputs = build(kind, tmp_path)
    zeroed = [[1, 5, 9, 60], [0, 2, 33, 63]]
    with torch.no_grad():
        for layer, rows in zip(transformer_layers(model), zeroed):
            layer.fc1.weight[rows] = 0
            layer.fc1.bias[rows] = 0  # gelu(0) = 0, so the dimension is silent
            layer.fc2.weight[:, rows] = 0
    before, count = hidden_states(model, kind, inputs), sum(p.numel() for p in model.parameters())

    widths = prune_rows(model, 4)

    assert widths == [60, 60]
    assert count - sum(p.numel() for p in model.parameters()) == 2 * 4 * (32 + 1 + 32)
    assert largest_difference(before, hidden_states(model, kind, inputs)) < 1e-5 * 32


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_pruned_model_saves_and_reloads_through_speat_evaluate_and_the_documented_call(kind, tmp_path):
    model, inputs = build(kind, tmp_path)
    prune_heads(model, 1)
    prune_heads(model, 2)
    prune_rows(model, 8)
    layers = transformer_layers(model)
    keep_heads(layers[1], [0])  # uneven: layer 0 keeps 1 head, layer 1 keeps 1 of its remaining heads
    expected = hidden_states(model, kind, inputs)
    path = tmp_path / ("pruned.ckpt" if kind == "melhubert" else "pruned")

    save_pruned_model(model, path)
    documented = load_pruned_model(path)
    adapter = load_encoder(f"melhubert:{path}" if kind == "melhubert" else str(path))

    assert layout_of(documented) == layout_of(model)
    assert layout_of(documented).heads_per_layer == [1, 1] and layout_of(documented).ffn_dims == (56, 56)
    assert largest_difference(expected, hidden_states(documented, kind, inputs)) < 1e-6
    assert largest_difference(expected, hidden_states(adapter.model, kind, inputs)) < 1e-6
    assert adapter.description.num_parameters == sum(p.numel() for p in model.parameters())


def test_the_pruned_wavlm_attention_with_every_head_computes_what_wavlm_computes(tmp_path):
    model, inputs = build("wavlm", tmp_path)
    attention_mask = torch.ones(2, 8000, dtype=torch.long)
    attention_mask[1, 5000:] = 0  # a padded clip: the key padding mask must still apply
    with torch.no_grad():
        expected = model(inputs, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        for layer in transformer_layers(model):
            keep_heads(layer, range(layer.num_heads))  # turns the attention into the pruned class, all heads kept
        assert all(type(layer.attention) is pruned_wavlm_attention_class() for layer in transformer_layers(model))
        again = model(inputs, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    valid = model._get_feat_extract_output_lengths(torch.tensor(5000))
    assert largest_difference([e[0] for e in expected], [a[0] for a in again]) < 1e-5
    assert largest_difference([e[1, :valid] for e in expected], [a[1, :valid] for a in again]) < 1e-5


def test_a_row_pruned_model_is_also_an_ordinary_from_pretrained_model(tmp_path):
    model, inputs = build("wav2vec2", tmp_path)
    prune_rows(model, 16)
    save_pruned_model(model, tmp_path / "rows")
    config = json.loads((tmp_path / "rows" / "config.json").read_text())
    plain = transformers.AutoModel.from_pretrained(tmp_path / "rows").eval()
    assert config["intermediate_size"] == 48 and config["speat_pruning"]["ffn_dims"] == [48, 48]
    assert largest_difference(hidden_states(model, "wav2vec2", inputs), hidden_states(plain, "wav2vec2", inputs)) < 1e-6
    assert model.config.intermediate_size == 64, "saving must leave the live model's configuration alone"


def test_an_unpruned_model_saves_without_a_layout(tmp_path):
    model, _ = build("hubert", tmp_path)
    save_pruned_model(model, tmp_path / "plain")
    assert "speat_pruning" not in json.loads((tmp_path / "plain" / "config.json").read_text())


def test_a_layout_that_does_not_fit_is_a_clear_error(tmp_path):
    model, _ = build("wav2vec2", tmp_path)
    prune_heads(model, 1)
    save_pruned_model(model, tmp_path / "pruned")
    config_path = tmp_path / "pruned" / "config.json"
    config = json.loads(config_path.read_text())
    config["speat_pruning"]["heads"] = [[0, 1], [0, 1]]  # the weights hold 3 heads per layer
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"tensor 'encoder\.layers\.0\.attention\.[qkv]_proj\.weight' has shape "
                                             r"\(24, 32\) but the recorded pruned layout implies \(16, 32\)"):
        load_pruned_model(tmp_path / "pruned")
    with pytest.raises(ModelLoadError, match="neither a checkpoint directory"):
        load_pruned_model(tmp_path)


def test_layouts_check_their_values():
    with pytest.raises(ValueError, match=r"layer 1: kept heads \[\] must be 1 to 4"):
        PrunedLayout(heads=((0,), ()), ffn_dims=(8, 8), original_heads=4, original_ffn_dim=8)
    with pytest.raises(ValueError, match="layer 0: FFN width 9 must be 1 to 8"):
        PrunedLayout(heads=((0,), (1,)), ffn_dims=(9, 8), original_heads=4, original_ffn_dim=8)
    with pytest.raises(ValueError, match="not a pruned-model layout"):
        PrunedLayout.from_dict({"heads": [[0]]})


def test_keeping_no_head_is_refused(tmp_path):
    model, _ = build("hubert", tmp_path)
    with pytest.raises(ValueError, match=r"keep must name 1 to 4 of the layer's heads"):
        keep_heads(transformer_layers(model)[0], [])
    with pytest.raises(ValueError, match="layer 0 has 4 heads: removing 4 would leave none"):
        prune_heads(model, 4)
