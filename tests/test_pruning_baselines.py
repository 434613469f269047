"""Baselines of bias-aware pruning: random and magnitude selections, property neurons (found when planted), LEACE
erasure (equal group means, checked apart from the package; a planted bias falls)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from tiny_models import PRUNABLE_KINDS, PRUNABLE_SMALL, save_prunable_model, write_tone_test

from speat_metric.adapters import load_encoder
from speat_metric.adapters.pruned import prunable
from speat_metric.pruning.attribution import Component
from speat_metric.pruning.baselines import (
    erased_speat,
    leace_erasure,
    magnitude_rows,
    property_neurons,
    property_scores,
    random_components,
)
from speat_metric.pruning.structured import prune_rows
from speat_metric.stimuli import load_custom_test, load_speat_test


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """A tiny random wav2vec2: 2 layers of 4 heads and 64 FFN rows."""
    model_class, config_class, overrides = PRUNABLE_KINDS["wav2vec2"]
    torch.manual_seed(0)
    return model_class(config_class(**{**PRUNABLE_SMALL, **overrides})).eval()


@pytest.fixture(scope="module")
def tone_test(tmp_path_factory: pytest.TempPathFactory):
    """The 4 + 4 target tone test (X 300 Hz, Y 520 Hz, A and B higher), as a StimulusSet."""
    return load_speat_test(load_custom_test(write_tone_test(tmp_path_factory.mktemp("tones"))), progress=False)


def test_random_components_are_seeded_drawn_from_every_layer_and_never_empty_one(model):
    drawn = random_components(model, 5, "row", seed=3)
    assert drawn == random_components(model, 5, "row", seed=3) != random_components(model, 5, "row", seed=4)
    assert len(set(drawn)) == 5 and all(c.kind == "row" and 0 <= c.index < 64 for c in drawn)
    per_layer = [sum(c.layer == layer for c in random_components(model, 5, "row", seed=seed))
                 for seed in range(20) for layer in (0, 1)]
    assert len(set(per_layer)) > 2  # not a fixed number per layer: the draw is over the whole model
    every_head_but_one = random_components(model, 6, "head", seed=0)  # 2 layers x 4 heads: 3 from each
    assert [sum(c.layer == layer for c in every_head_but_one) for layer in (0, 1)] == [3, 3]


def test_random_components_reject_a_count_that_empties_a_layer_or_an_unknown_kind(model):
    with pytest.raises(ValueError, match=r"count must be an integer from 0 to 6 \(the heads"):
        random_components(model, 7, "head", seed=0)
    with pytest.raises(ValueError, match="kind must be one of head, row, got 'neuron'"):
        random_components(model, 1, "neuron", seed=0)


def test_magnitude_rows_are_the_lowest_l1_rows_of_each_layer_as_prune_rows_removes_them(model):
    chosen = magnitude_rows(model, 10)
    pruned = copy.deepcopy(model)
    prune_rows(pruned, 5)
    for number, (layer, after) in enumerate(zip(prunable(model).layers(), prunable(pruned).layers())):
        removed = [c.index for c in chosen if c.layer == number]
        assert len(removed) == 5
        kept = [row for row in range(64) if row not in removed]
        assert torch.equal(layer.intermediate.weight[kept], after.intermediate.weight)
        # an independent L1 norm, row by row: nothing kept scores lower than what was removed
        fc1, bias, fc2 = (tensor.detach().tolist() for tensor in (layer.intermediate.weight, layer.intermediate.bias,
                                                                   layer.output.weight))
        norm = [sum(abs(v) for v in fc1[row]) + abs(bias[row]) + sum(abs(fc2[out][row]) for out in range(len(fc2)))
                for row in range(64)]
        assert max(norm[row] for row in removed) <= min(norm[row] for row in kept) + 1e-5


def test_magnitude_rows_give_a_remainder_to_the_layers_with_the_lowest_next_rows(model):
    base, extra = magnitude_rows(model, 4), magnitude_rows(model, 5)
    assert set(base) < set(extra)
    (added,) = set(extra) - set(base)
    layers = prunable(model).layers()
    with torch.no_grad():
        scores = {c: float(layers[c.layer].intermediate.weight[c.index].abs().sum()
                           + layers[c.layer].intermediate.bias[c.index].abs()
                           + layers[c.layer].output.weight[:, c.index].abs().sum())
                  for c in (Component("row", layer, index) for layer in (0, 1) for index in range(64))}
    candidates = [min((c for c in scores if c.layer == layer and c not in base), key=scores.get) for layer in (0, 1)]
    assert added == min(candidates, key=scores.get)


def test_property_scores_match_a_frame_by_frame_count():
    rng = np.random.default_rng(5)
    x = [[rng.normal(size=(frames, 150))] for frames in (3, 4, 6)]
    y = [[rng.normal(size=(frames, 150)) + (np.arange(150) == 7) * 3] for frames in (5, 2)]
    frequency, mean = property_scores(x, y)

    def group_probability(clips):
        probability = np.zeros(150)
        for (clip,) in clips:
            counts = np.zeros(150)
            for frame in clip:
                ranked = sorted(range(150), key=lambda unit: -abs(frame[unit]))
                for unit in ranked[:2]:  # tau = round(0.01 * 150) = 2
                    counts[unit] += 1
            probability += counts / len(clip) / len(clips)
        return probability

    assert frequency[0] == pytest.approx(np.abs(group_probability(x) - group_probability(y)))
    x_means = [clip.mean(axis=0)[7] for (clip,) in x]
    y_means = [clip.mean(axis=0)[7] for (clip,) in y]
    pooled = (sum((v - np.mean(x_means)) ** 2 for v in x_means) + sum((v - np.mean(y_means)) ** 2 for v in y_means)) / 3
    assert mean[0][7] == pytest.approx(abs(np.mean(x_means) - np.mean(y_means)) / np.sqrt(pooled))
    assert int(np.argmax(frequency[0])) == 7


def plant_separating_row(adapter, test, layer: int, row: int, scale: float = 40.0) -> None:
    """Make FFN row `row` of `layer` fire on X frames and stay silent on Y frames: its weights point along the
    difference between the groups' mean FFN inputs, its bias puts the threshold half-way."""
    target = prunable(adapter.model).layers()[layer]
    inputs: dict[str, list[torch.Tensor]] = {"X": [], "Y": []}
    role = []
    handle = target.intermediate.register_forward_pre_hook(lambda module, args: inputs[role[-1]].append(
        args[0].detach().reshape(-1, args[0].shape[-1]).mean(dim=0)))
    try:
        for group in ("X", "Y"):
            for stimulus in test.of_role(group):
                role.append(group)
                from speat_metric.audio import load_audio

                adapter.encode([load_audio(stimulus.path)])
    finally:
        handle.remove()
    x_mean, y_mean = (torch.stack(inputs[group]).mean(dim=0) for group in ("X", "Y"))
    direction = (x_mean - y_mean) / (x_mean - y_mean).norm()
    with torch.no_grad():
        target.intermediate.weight[row] = scale * direction
        target.intermediate.bias[row] = -scale * float(direction @ (x_mean + y_mean) / 2)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tone_test):
    """A tiny wav2vec2 adapter whose FFN row 17 of layer 1 fires strongly on the tone test's X and not on its Y."""
    adapter = load_encoder(str(save_prunable_model("wav2vec2", tmp_path_factory.mktemp("model"))))
    plant_separating_row(adapter, tone_test, layer=1, row=17)
    return adapter


def test_property_neurons_by_activating_frequency_find_a_planted_row_that_fires_on_x_only(planted, tone_test):
    assert property_neurons(planted, {"tone": tone_test}, 1, measure="frequency") == [Component("row", 1, 17)]


@pytest.mark.slow  # builds the shared planted-bias model (tests/planted_bias.py): about 5 s
def test_property_neurons_find_the_planted_bias_row_among_the_first_few(tmp_path):
    # The plant picks the row whose pre-activation separates X from Y best and amplifies its output column. Activations
    # do not see output weights, and the amplified row makes the next layer's rows separate X from Y as well: the
    # planted row is among the first few property neurons, not necessarily the first (attribution sees the weights).
    from planted_bias import make_planted_bias

    planted_bias = make_planted_bias(tmp_path)
    assert planted_bias.component in property_neurons(planted_bias.encoder, planted_bias.tests, 5)


def test_property_neurons_need_two_targets_of_each_group(planted, tone_test):
    one_x = dataclasses.replace(tone_test, stimuli=tuple(s for s in tone_test if s.role != "X")
                                + tuple(tone_test.of_role("X")[:1]))
    with pytest.raises(ValueError, match="test 'tone': property neurons need at least 2 X and 2 Y targets on the "
                                         "selection fold, got 1 and 4"):
        property_neurons(planted, {"tone": one_x}, 1)
    with pytest.raises(ValueError, match=r"count must be an integer from 0 to 126 \(the rows"):
        property_neurons(planted, {"tone": tone_test}, 127)
    with pytest.raises(ValueError, match="measure must be one of mean, frequency, got 'max'"):
        property_neurons(planted, {"tone": tone_test}, 1, measure="max")


def planted_embeddings(rng: np.random.Generator, n: int, sign: float, layers: int = 3, dim: int = 6) -> np.ndarray:
    """(n, layers, dim) embeddings: noise around a common offset, moved by `sign` along the first axis."""
    offset = np.array([0.0, 2.0, 1.0, -1.0, 0.5, 1.5])[:dim]
    shift = sign * np.eye(dim)[0]
    return offset + shift + 0.3 * rng.normal(size=(n, layers, dim))


def test_leace_makes_the_group_means_equal_on_the_fitting_data():
    rng = np.random.default_rng(0)
    x, y = planted_embeddings(rng, 7, 1.0)[:, 1], planted_embeddings(rng, 9, -1.0)[:, 1]
    x[:, 3] *= 4  # an anisotropic covariance: LEACE's map is oblique, not the orthogonal projection
    erase = leace_erasure({1: np.concatenate([x, y])}, np.array([1] * 7 + [0] * 9))
    erased_x, erased_y = erase(1, x), erase(1, y)
    # independent check: the class-conditional means, with plain numpy sums
    assert np.abs(erased_x.sum(axis=0) / 7 - erased_y.sum(axis=0) / 9).max() < 1e-8
    assert np.abs(x.mean(axis=0) - y.mean(axis=0)).max() > 1.0  # they were far apart
    # linearly unseparable in the least-squares sense: no direction correlates with the label
    centred = np.concatenate([erased_x, erased_y]) - np.concatenate([erased_x, erased_y]).mean(axis=0)
    label = np.array([1.0] * 7 + [0.0] * 9) - 7 / 16
    assert np.abs(centred.T @ label).max() < 1e-8


def test_leace_rejects_labels_that_are_not_two_groups():
    with pytest.raises(ValueError, match=r"two groups with at least 2 stimuli each, got groups \{0: 3, 1: 1\}"):
        leace_erasure({0: np.zeros((4, 3))}, np.array([0, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"layer 2: embeddings must be \(4, dim\) like the labels"):
        leace_erasure({2: np.zeros((5, 3))}, np.array([0, 0, 1, 1]))


def copies(test, role: str, count: int) -> list:
    """`count` distinct stimuli of `role` (the test's first one under new ids and hashes: their embeddings are made
    up, not computed)."""
    first = test.of_role(role)[0]
    return [dataclasses.replace(first, stimulus_id=f"{first.stimulus_id}-{i}", sha256=f"{role}{i:063d}")
            for i in range(count)]


def test_leace_lowers_held_out_d_of_a_planted_bias(tone_test):
    # X is moved towards A along one axis in every layer: a large d, which erasing the X/Y direction (fitted on 30 + 30
    # selection targets) takes away on 10 + 10 held-out targets; over 8 draws, since a 10 + 10 d is noisy
    x, y = copies(tone_test, "X", 40), copies(tone_test, "Y", 40)
    a, b = copies(tone_test, "A", 8), copies(tone_test, "B", 8)
    selection = dataclasses.replace(tone_test, stimuli=tuple(x[:30] + y[:30] + a + b))
    held_out = dataclasses.replace(tone_test, stimuli=tuple(x[30:] + y[30:] + a + b))
    sign = {"X": 1.0, "A": 1.0, "Y": -1.0, "B": -1.0}
    before, after = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        embeddings = {s.sha256: planted_embeddings(rng, 1, sign[s.role])[0] for s in x + y + a + b}
        result = erased_speat(embeddings, selection, held_out, num_permutations=100, n_bootstrap=0)
        before.append(result[0].effect_size)
        after.append(result[1].effect_size)
    assert min(before) > 1.8
    assert np.mean(np.abs(after)) < 0.7


def test_erased_speat_names_stimuli_without_embeddings(tone_test):
    with pytest.raises(ValueError, match=r"selection stimuli \['custom/x/0', "):
        erased_speat({}, tone_test, tone_test)

