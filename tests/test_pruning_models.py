"""Pruned models: slicing zeroed heads and FFN dimensions out changes nothing, and pruned models save and reload;
the protocol through which pruning sees both model families."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from tiny_models import (
    MELHUBERT,
    PRUNABLE_KINDS,
    PRUNABLE_SMALL,
    save_prunable_model,
)
from torch import nn

from speat_metric.adapters import load_encoder
from speat_metric.adapters.base import ModelLoadError
from speat_metric.adapters.melhubert import MelHuBERTModel
from speat_metric.adapters.pruned import load_pruned_model, prunable, pruned_wavlm_attention_class, save_pruned_model
from speat_metric.pruning.structured import prune_heads, prune_rows
from speat_metric.training.slicing import PrunableEncoder, PrunedLayout, keep_heads, layout_of


def transformer_layers(model: nn.Module) -> list:
    return prunable(model).layers()


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
        model = transformers.AutoModel.from_pretrained(save_prunable_model(kind, tmp_path / kind)).eval()
        inputs = torch.randn(2, 8000)
    randomise_norms(model)
    return model, inputs


def largest_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    assert len(first) == len(second)
    return max(float((a - b).abs().max()) for a, b in zip(first, second))


ALL_KINDS = [*PRUNABLE_KINDS, "melhubert"]


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
            layer.out.weight[:, rows] = 0
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
            layer.intermediate.weight[rows] = 0
            layer.intermediate.bias[rows] = 0  # gelu(0) = 0, so the dimension is silent
            layer.output.weight[:, rows] = 0
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

    assert layout_of(prunable(documented)) == layout_of(prunable(model))
    assert layout_of(prunable(documented)).heads_per_layer == [1, 1]
    assert layout_of(prunable(documented)).ffn_dims == (56, 56)
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


def test_the_slicing_module_is_a_leaf_that_imports_no_adapter():
    module = "speat_metric.training.slicing"
    code = (f"import sys, {module}; "
            "print([m for m in sys.modules if m.startswith('speat_metric.adapters') or m.startswith('transformers')])")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]"


@pytest.mark.parametrize("kind", ["wav2vec2", "wavlm", "melhubert"])
def test_both_families_show_their_layers_and_sizes_through_one_protocol(kind, tmp_path):
    model, _ = build(kind, tmp_path)
    encoder = prunable(model)
    assert isinstance(encoder, PrunableEncoder) and (encoder is model) == (kind == "melhubert")
    layers = encoder.layers()
    depth = MELHUBERT.encoder_layers if kind == "melhubert" else PRUNABLE_SMALL["num_hidden_layers"]
    assert len(layers) == depth == 2
    assert encoder.original_sizes() == (4, 64)
    for layer in layers:
        assert (layer.num_heads, layer.head_dim, layer.ffn_dim, layer.kept_heads) == (4, 8, 64, [0, 1, 2, 3])
        assert [tuple(linear.weight.shape) for linear in layer.linears] == [(32, 32)] * 4 + [(64, 32), (32, 64)]
    prune_heads(model, 1)
    prune_rows(model, 8)
    assert encoder.original_sizes() == (4, 64) and [layer.ffn_dim for layer in encoder.layers()] == [56, 56]


def test_a_model_of_another_kind_cannot_be_pruned():
    with pytest.raises(ValueError, match="cannot prune a 'Linear' model"):
        prunable(nn.Linear(2, 2))
