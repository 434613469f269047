"""Loading the authors' pruned MelHuBERT checkpoints (GitHub nervjack2/Speech-SSL-Compression): head-, row- and
weight-pruned files written here the way their runners save them, compared with the unpruned model whose pruned
parts are zeroed."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_adapters_melhubert import released_upstream_config
from tiny_models import randomise_layer_norms

from speat_metric.adapters.base import ModelLoadError, count_parameters
from speat_metric.adapters.melhubert import (
    MelHuBERTConfig,
    MelHuBERTEncoder,
    MelHuBERTModel,
    load_melhubert_checkpoint,
    save_melhubert_checkpoint,
)
from speat_metric.results import load_records
from speat_metric.training.slicing import layout_of

CONFIG = MelHuBERTConfig(encoder_layers=2, encoder_embed_dim=24, encoder_ffn_embed_dim=40, encoder_attention_heads=4,
                         conv_pos=6, conv_pos_groups=3)
HEAD_DIM = 6
PRUNED_HEADS = [{0: [1], 1: [0]}, {1: [1], 0: [2]}]
"""Two pruning steps, each head a position among the heads the layer still had: layer 0 loses head 1, then position
2 of (0, 2, 3), i.e. head 3; layer 1 loses head 0, then position 1 of (1, 2, 3), i.e. head 2."""
HEADS_KEPT = ((0, 2), (1, 3))
FFN_ROWS_REMOVED = [[set(range(0, 40, 5)), set(range(1, 40, 5))],  # per pruning step, per layer (original indices)
                    [set(range(2, 40, 5)), set(range(3, 40, 5))]]


def unpruned(seed: int) -> MelHuBERTModel:
    torch.manual_seed(seed)
    return randomise_layer_norms(MelHuBERTModel(CONFIG).eval())


def authors_checkpoint(path, state: dict, *, mode: str, prune: dict, step: int, ffn_dim: int = 40, **extra) -> None:
    """What their runners save (``save_model`` of head_pruning/hp_utils.py and row_pruning/rp_utils.py, ``_save`` of
    weight_pruning/wp_utils.py): training state, then ``add_state_to_save`` of melhubert/pretrain_expert.py adds the
    model and the model yaml (whose FFN width row pruning rewrites)."""
    states = {
        "Optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]},
        "Step": step,
        "Args": argparse.Namespace(mode=mode, expdir="exp", initial_weight="melhubert.ckpt", device="cuda"),
        "Runner": {"runner": {"total_steps": 366_000}, "prune": prune},
        **extra,
        "model": state,
        "Upstream_Config": {"melhubert": {**released_upstream_config(CONFIG), "encoder_ffn_embed_dim": ffn_dim}},
    }
    torch.save(states, path)


def head_pruned_state(model: MelHuBERTModel, pruned_heads: list[dict]) -> dict:
    """The authors' ``prune_layer_heads`` replayed on a state dict: keep the q/k/v rows and out_proj columns of the
    heads not named, step by step."""
    state = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    heads_left = [CONFIG.encoder_attention_heads] * CONFIG.encoder_layers
    for step in pruned_heads:
        for layer, removed in step.items():
            kept = [head for head in range(heads_left[layer]) if head not in removed]
            rows = torch.cat([torch.arange(head * HEAD_DIM, (head + 1) * HEAD_DIM) for head in kept])
            prefix = f"encoder.layers.{layer}.self_attn."
            for name in ("q_proj", "k_proj", "v_proj"):
                state[f"{prefix}{name}.weight"] = state[f"{prefix}{name}.weight"][rows]
                state[f"{prefix}{name}.bias"] = state[f"{prefix}{name}.bias"][rows]
            state[f"{prefix}out_proj.weight"] = state[f"{prefix}out_proj.weight"][:, rows]
            heads_left[layer] = len(kept)
    return state


def hidden_states(model: MelHuBERTModel) -> list[torch.Tensor]:
    torch.manual_seed(11)
    frames, valid = torch.randn(2, 17, 80), torch.tensor([[True] * 17, [True] * 12 + [False] * 5])
    with torch.no_grad():
        return model(frames, valid)


def assert_same_outputs(expected: MelHuBERTModel, actual: MelHuBERTModel) -> None:
    for number, (wanted, found) in enumerate(zip(hidden_states(expected), hidden_states(actual), strict=True)):
        assert torch.allclose(wanted, found, atol=1e-5), f"hidden state {number} differs"


def test_head_pruned_checkpoint_equals_the_model_with_those_heads_zeroed(tmp_path):
    source = unpruned(seed=1)
    path = tmp_path / "states_prune_12.ckpt"
    authors_checkpoint(path, head_pruned_state(source, PRUNED_HEADS), mode="head-pruning", step=26_000,
                       prune={"target": "by_layer", "metric": "l1", "total_steps": 3, "interval": [0, 25_000],
                              "warm_up": 1000}, Pruned_heads=PRUNED_HEADS)
    loaded = load_melhubert_checkpoint(path)
    assert [layer.num_heads for layer in loaded.layers()] == [2, 2]
    assert layout_of(loaded).heads == HEADS_KEPT

    zeroed = unpruned(seed=1)  # removing a head = dropping its columns of out_proj's input
    with torch.no_grad():
        for layer, kept in zip(zeroed.encoder.layers, HEADS_KEPT):
            for head in set(range(4)) - set(kept):
                layer.self_attn.out_proj.weight[:, head * HEAD_DIM:(head + 1) * HEAD_DIM] = 0.0
    assert_same_outputs(zeroed, loaded)

    description = MelHuBERTEncoder(loaded, name=str(path)).description
    per_head = 3 * (HEAD_DIM * 24 + HEAD_DIM) + 24 * HEAD_DIM  # q, k, v rows with biases, out_proj columns
    assert description.num_parameters == count_parameters(source) - 4 * per_head
    assert description.settings["pruning"] == {
        "recorded_in": ["Pruned_heads"],
        "layout": {"heads": [[0, 2], [1, 3]], "ffn_dims": [40, 40], "original_heads": 4, "original_ffn_dim": 40}}
    assert description.settings["architecture"] == CONFIG.to_dict()  # the original sizes, as speat's own


def test_first_checkpoint_of_a_head_pruning_run_is_the_unpruned_model(tmp_path):
    source = unpruned(seed=2)
    path = tmp_path / "states_prune_8.ckpt"
    authors_checkpoint(path, source.state_dict(), mode="head-pruning", step=1000, prune={}, Pruned_heads=[])
    loaded = load_melhubert_checkpoint(path)
    assert_same_outputs(source, loaded)
    assert "pruning" not in MelHuBERTEncoder(loaded, name="x").description.settings


@pytest.mark.parametrize("interval", [[0, 10, 20], 10])
def test_row_pruned_checkpoint_equals_the_model_with_those_rows_zeroed(tmp_path, interval):
    source = unpruned(seed=3)
    state = {key: tensor.clone() for key, tensor in source.state_dict().items()}
    rows_left = [list(range(40)) for _ in range(CONFIG.encoder_layers)]  # original index of each row left
    for step in FFN_ROWS_REMOVED:  # the authors' prune_layer_ffn: fc1 rows (and bias), fc2 columns
        for layer, removed in enumerate(step):
            prefix = f"encoder.layers.{layer}."
            kept = [row for row, original in enumerate(rows_left[layer]) if original not in removed]
            rows_left[layer] = [rows_left[layer][row] for row in kept]
            state[f"{prefix}fc1.weight"] = state[f"{prefix}fc1.weight"][kept]
            state[f"{prefix}fc1.bias"] = state[f"{prefix}fc1.bias"][kept]
            state[f"{prefix}fc2.weight"] = state[f"{prefix}fc2.weight"][:, kept]
    path = tmp_path / "states_prune_24.ckpt"
    # Pruning steps at warm_up + interval: 5, 15, 25; the file of step 25 is saved before its pruning, after two.
    prune = {"total_steps": 3, "num_rows_each_step": 8, "interval": interval, "warm_up": 5}
    authors_checkpoint(path, state, mode="row-pruning", step=25, prune=prune, ffn_dim=24)
    loaded = load_melhubert_checkpoint(path)
    assert [layer.ffn_dim for layer in loaded.layers()] == [24, 24]

    zeroed = unpruned(seed=3)
    with torch.no_grad():
        for layer, *removed in zip(zeroed.encoder.layers, *FFN_ROWS_REMOVED):
            rows = sorted(set().union(*removed))
            layer.fc1.weight[rows] = 0.0
            layer.fc1.bias[rows] = 0.0
            layer.fc2.weight[:, rows] = 0.0
    assert_same_outputs(zeroed, loaded)
    settings = MelHuBERTEncoder(loaded, name=str(path)).description.settings
    assert settings["pruning"] == {
        "recorded_in": ["Runner"],
        "layout": {"heads": [[0, 1, 2, 3]] * 2, "ffn_dims": [24, 24], "original_heads": 4, "original_ffn_dim": 40}}
    assert settings["architecture"]["encoder_ffn_embed_dim"] == 40

    # and speat's own format says the same after a round trip
    save_melhubert_checkpoint(loaded, tmp_path / "resaved.ckpt")
    assert layout_of(load_melhubert_checkpoint(tmp_path / "resaved.ckpt")) == layout_of(loaded)


def test_weight_pruned_checkpoint_applies_its_masks(tmp_path):
    source = unpruned(seed=4)
    generator = torch.Generator().manual_seed(5)
    state, masked = {}, {}
    for key, tensor in source.state_dict().items():
        if ".self_attn." in key and "_proj." in key or ".fc1." in key or ".fc2." in key:
            mask = torch.rand(tensor.shape, generator=generator) > 0.6
            state[f"{key}_orig"], state[f"{key}_mask"] = tensor, mask  # their prune.py reparametrisation
            masked[key] = tensor * mask
        else:
            state[key] = tensor
    path = tmp_path / "mask-before-pruning-states-50000.ckpt"
    random_state = {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    authors_checkpoint(path, state, mode="weight-pruning", step=50_000, prune={"strategy": "L1Unstructured"},
                       Pruning={"smooth_loss": 3.2, "tgt_smooth_loss": -float("inf"), "pruning_times": 2},
                       RandomState=random_state)  # ("torch.cuda" too on a GPU)
    loaded = load_melhubert_checkpoint(path)  # NumPy's random state is arrays: safe to read without trusting
    assert np.array_equal(torch.load(path, weights_only=False)["RandomState"]["numpy"][1], random_state["numpy"][1])

    expected = unpruned(seed=0)
    expected.load_state_dict({**source.state_dict(), **masked})
    assert_same_outputs(expected, loaded)
    masks = [tensor for key, tensor in state.items() if key.endswith("_mask")]
    zero_fraction = 1 - sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks)
    pruning = MelHuBERTEncoder(loaded, name="x").description.settings["pruning"]
    assert pruning == {"recorded_in": ["Pruning"], "sparsity": pytest.approx(zero_fraction)}
    assert 0.55 < pruning["sparsity"] < 0.65


@pytest.mark.parametrize(("entry", "message"), [
    ({0: [1]}, r"'Pruned_heads' entry is a dict, not a list"),
    ([[0, 1]], r"'Pruned_heads' entry has a list at step 0, not a dict"),
    ([{2: [0]}], r"'Pruned_heads' entry names layer 2 at step 0; the model has layers 0\.\.1"),
    ([{0: [4]}], r"'Pruned_heads' entry removes \[4\] from layer 0 at step 0, not distinct heads among the 4 it had"),
    ([{0: [1, 1]}], r"'Pruned_heads' entry removes \[1, 1\] from layer 0"),
    ([{0: ["1"]}], r"'Pruned_heads' entry removes \['1'\] from layer 0"),
    ([{0: [0]}, {0: [0, 1, 2]}], r"'Pruned_heads' entry removes every head of layer 0 at step 1"),
    ([{0: [0]}], r"'Pruned_heads' entry says\)"),  # valid, but the weights still have every head
])
def test_malformed_pruned_heads_is_one_line_naming_the_file_and_key(tmp_path, entry, message):
    path = tmp_path / "bad-heads.ckpt"
    authors_checkpoint(path, unpruned(seed=0).state_dict(), mode="head-pruning", step=1, prune={},
                       Pruned_heads=entry)
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_melhubert_checkpoint(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("entry", "drop", "message"), [
    ([2], None, r"'Pruning' entry is a list, not a dict"),
    ({"pruning_times": 1}, "encoder.layers.1.fc2.weight_mask",
     r"'Pruning' entry is there but the weight 'encoder\.layers\.1\.fc2\.weight' has no NAME_mask"),
    ({"pruning_times": 1}, "all", r"'Pruning' entry is there but no weight has a NAME_orig/NAME_mask pair"),
])
def test_malformed_pruning_is_one_line_naming_the_file_and_key(tmp_path, entry, drop, message):
    state = unpruned(seed=0).state_dict()
    if drop != "all":
        state = {**state, "encoder.layers.1.fc2.weight_orig": state.pop("encoder.layers.1.fc2.weight"),
                 "encoder.layers.1.fc2.weight_mask": torch.ones(24, 40, dtype=torch.bool)}
        state.pop(drop, None)
    path = tmp_path / "bad-weights.ckpt"
    authors_checkpoint(path, state, mode="weight-pruning", step=1, prune={}, Pruning=entry)
    with pytest.raises(ModelLoadError, match=message) as caught:
        load_melhubert_checkpoint(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_row_pruning_runner_section_is_named(tmp_path):
    path = tmp_path / "bad-rows.ckpt"
    authors_checkpoint(path, unpruned(seed=0).state_dict(), mode="row-pruning", step=25,
                       prune={"num_rows_each_step": 8, "interval": "often", "warm_up": 5, "total_steps": 3})
    with pytest.raises(ModelLoadError, match=r"whose 'Runner' prune section or 'Step' cannot be read") as caught:
        load_melhubert_checkpoint(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_speat_evaluate_records_that_an_authors_head_pruned_model_is_pruned(tmp_path):
    source = unpruned(seed=6)
    path = tmp_path / "states_prune_4.ckpt"
    authors_checkpoint(path, head_pruned_state(source, PRUNED_HEADS), mode="head-pruning", step=26_000, prune={},
                       Pruned_heads=PRUNED_HEADS)
    np.save(tmp_path / "mean-std.npy", np.stack([np.zeros(40), np.ones(40)]))
    speat = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"
    completed = subprocess.run(
        [speat, "evaluate", f"melhubert:{path}", "--mean-std", str(tmp_path / "mean-std.npy"), "--tests", "gender",
         "--permutations", "200", "--no-progress", "--out", str(tmp_path / "results")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "SPEAT_CACHE": str(tmp_path / "c")})
    assert completed.returncode == 0, completed.stderr
    (record,) = load_records(tmp_path / "results")
    assert record.model.settings["pruning"]["layout"]["heads"] == [[0, 2], [1, 3]]
    assert record.model.settings["pruning"]["recorded_in"] == ["Pruned_heads"]
    assert record.model.num_parameters == count_parameters(load_melhubert_checkpoint(path))
