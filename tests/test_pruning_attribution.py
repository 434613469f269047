"""Bias attribution (pruning/attribution.py): gates against physical pruning, folds' properties, the differentiable d
against the pipeline's, the gradient against finite differences, and the planted bias found and removed."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from planted_bias import TEST, make_planted_bias
from tiny_models import save_prunable_model

from speat_metric.adapters import load_encoder
from speat_metric.pipeline import evaluate_tests
from speat_metric.pruning.attribution import (
    Attribution,
    Component,
    ablation_check,
    attach_gates,
    attribute,
    attribution_figure,
    encode_with_grad,
    gated_effect_sizes,
    prunable_layers,
    speaker_folds,
    speaker_of,
)
from speat_metric.stimuli import Stimulus, StimulusSet
from speat_metric.stimuli.loaders import StimulusProvenance
from speat_metric.training.slicing import keep_ffn_dims, keep_heads

WAVEFORMS = [np.random.default_rng(seed).normal(0, 0.1, length).astype(np.float32)
             for seed, length in ((0, 8000), (1, 6400))]


@pytest.fixture(scope="module")
def tiny_adapter_pair(tmp_path_factory: pytest.TempPathFactory):
    """Two adapters of the same tiny random wav2vec2 (one to gate, one to slice physically)."""
    path = save_prunable_model("wav2vec2", tmp_path_factory.mktemp("tiny") / "model", seed=3)
    return load_encoder(str(path)), load_encoder(str(path))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return make_planted_bias(tmp_path_factory.mktemp("planted"))


def hidden_states(adapter) -> list[torch.Tensor]:
    with torch.no_grad():
        return encode_with_grad(adapter, WAVEFORMS).hidden_states


def test_gates_at_one_leave_every_hidden_state_bit_identical(tiny_adapter_pair):
    adapter, _ = tiny_adapter_pair
    before = hidden_states(adapter)
    gates = attach_gates(adapter)
    try:
        gated = hidden_states(adapter)
        assert gates.calls == {"head": 2, "row": 2}  # both layers' hooks ran
    finally:
        gates.remove()
    assert all(torch.equal(one, other) for one, other in zip(before, gated))


@pytest.mark.parametrize("kind", ["head", "row"])
def test_a_closed_gate_computes_what_physical_removal_computes(tiny_adapter_pair, kind):
    adapter, reference = tiny_adapter_pair
    sliced = copy.deepcopy(reference)
    layer = prunable_layers(sliced)[1]
    if kind == "head":
        keep_heads(layer, [0, 1, 3])
    else:
        keep_ffn_dims(layer, [row for row in range(layer.ffn_dim) if row not in (5, 40)])
    gates = attach_gates(adapter)
    try:
        gates.close([Component("head", 1, 2)] if kind == "head" else [Component("row", 1, 5), Component("row", 1, 40)])
        closed = hidden_states(adapter)
        assert set(gates.closed()) == ({Component("head", 1, 2)} if kind == "head" else
                                       {Component("row", 1, 5), Component("row", 1, 40)})
        gates.reset()
        assert gates.closed() == []
    finally:
        gates.remove()
    removed = hidden_states(sliced)
    assert not torch.allclose(closed[-1], hidden_states(reference)[-1], atol=1e-4)  # closing changed something
    for one, other in zip(closed, removed):
        torch.testing.assert_close(one, other, atol=1e-5, rtol=1e-5)


def test_closing_a_component_the_model_does_not_have_is_an_error(tiny_adapter_pair):
    gates = attach_gates(tiny_adapter_pair[0])
    try:
        with pytest.raises(ValueError, match=r"head 1\.4 is not a gated component: .* layer 1 has 4 heads"):
            gates.close([Component("head", 1, 4)])
        with pytest.raises(ValueError, match="kind must be one of head, row"):
            Component("neuron", 0, 0)
    finally:
        gates.remove()


# Folds ---------------------------------------------------------------------------------------------------------------


def stimulus(stimulus_id: str, role: str, *, speaker: str | None = None, pair_id: int | None = None) -> Stimulus:
    return Stimulus(stimulus_id, "test", stimulus_id, f"{stimulus_id}.wav", stimulus_id * 4, 1, "t", role, role,
                    pair_id, {"speaker_id": speaker} if speaker else {})


def folds_test() -> StimulusSet:
    """X: 7 speakers (one with 3 clips), Y: 8 speakers, 4 X-Y matched pairs, unknown speakers, attributes."""
    stimuli = [stimulus(f"x{index}", "X", speaker=f"sx{min(index, 6)}", pair_id=index if index < 4 else None)
               for index in range(9)]
    stimuli += [stimulus(f"y{index}", "Y", speaker=f"sy{index}" if index < 6 else None,
                         pair_id=index if index < 4 else None) for index in range(8)]
    stimuli += [stimulus(f"{role.lower()}{index}", role) for role in "AB" for index in range(3)]
    provenance = StimulusProvenance(test="t", config="t", synthetic=False, source={}, selection_versions={},
                                    requested=len(stimuli), loaded=len(stimuli), group_sizes={}, dropped_ids=[],
                                    dropped_reasons={}, unpaired_ids=[])
    return StimulusSet("t", tuple(stimuli), provenance)


def test_speaker_folds_are_disjoint_covering_keep_pairs_and_are_balanced():
    test = folds_test()
    folds = speaker_folds(test, folds=3, seed=4)
    targets = {s.stimulus_id for s in test if s.role in "XY"}
    held_out = [{s.stimulus_id for s in fold.held_out if s.role in "XY"} for fold in folds]
    assert set().union(*held_out) == targets and sum(map(len, held_out)) == len(targets)  # a partition
    for fold, part in zip(folds, held_out):
        selection = {s.stimulus_id for s in fold.selection if s.role in "XY"}
        assert selection == targets - part
        assert not {speaker_of(s) for s in fold.selection if s.role in "XY"} & {
            speaker_of(s) for s in fold.held_out if s.role in "XY"}
        for side in (fold.selection, fold.held_out):
            assert [s.stimulus_id for s in side if s.role in "AB"] == [s.stimulus_id for s in test if s.role in "AB"]
            assert side.provenance.group_sizes["X"] == len(side.of_role("X"))
    by_id = {s.stimulus_id: s for s in test}
    for pair in range(4):
        assert sum({f"x{pair}", f"y{pair}"} <= part for part in held_out) == 1  # a pair stays on one side
    for role in "XY":  # the largest unit holds 3 X clips (one speaker), so parts differ by at most 3
        counts = [sum(by_id[i].role == role for i in part) for part in held_out]
        assert max(counts) - min(counts) <= 3 and min(counts) >= 2
    again = speaker_folds(test, folds=3, seed=4)
    assert [fold.held_out.stimuli for fold in again] == [fold.held_out.stimuli for fold in folds]
    assert any(speaker_folds(test, folds=3, seed=seed)[0].held_out.stimuli != folds[0].held_out.stimuli
               for seed in range(5, 10))


def test_speaker_folds_refuse_sides_with_fewer_than_two_targets_per_group():
    with pytest.raises(ValueError, match=r"test 't': fold \d of 6 has \d X and \d Y targets on its held-out side"):
        speaker_folds(folds_test(), folds=6)
    with pytest.raises(ValueError, match="at least 2 folds"):
        speaker_folds(folds_test(), folds=1)


# Effect sizes and attribution -----------------------------------------------------------------------------------------


def test_gated_d_is_the_pipelines_d(planted):
    gates = attach_gates(planted.encoder)
    try:
        with torch.no_grad():
            gated = gated_effect_sizes(planted.encoder, gates, planted.tests)
        shuffled = gated_effect_sizes(planted.encoder, gates, planted.tests, labels_shuffled_seed=1)
        again = gated_effect_sizes(planted.encoder, gates, planted.tests, labels_shuffled_seed=1)
    finally:
        gates.remove()
    record, = evaluate_tests(planted.encoder, planted.tests, num_permutations=10, progress=False)
    assert float(gated[TEST]) == pytest.approx(record.speat.effect_size, abs=1e-4)
    assert shuffled[TEST].requires_grad and float(shuffled[TEST].detach()) == float(again[TEST].detach())
    assert abs(float(shuffled[TEST].detach())) < abs(float(gated[TEST]))


def sum_abs_d(planted, gates, tests) -> float:
    with torch.no_grad():
        return sum(abs(float(d)) for d in gated_effect_sizes(planted.encoder, gates, tests).values())


def test_scores_are_the_finite_difference_slopes_and_predict_closing(planted):
    gates = attach_gates(planted.encoder)
    try:
        attribution = attribute(planted.encoder, gates, planted.tests)
        unpruned = sum_abs_d(planted, gates, planted.tests)
        assert sum(abs(d) for d in attribution.effect_sizes.values()) == pytest.approx(unpruned, abs=1e-9)
        step = 1e-2
        for component in attribution.ranked()[:3]:
            tensor = gates.head if component.kind == "head" else gates.row
            with torch.no_grad():
                tensor[component.layer, component.index] = 1 - step
            slope = (sum_abs_d(planted, gates, planted.tests) - unpruned) / step  # ~ -dL/dg = the score
            gates.reset()
            assert slope == pytest.approx(attribution.scores[component], rel=0.1, abs=1e-3)
        top = attribution.ranked()[0]
        gates.close([top])
        closed_change = sum_abs_d(planted, gates, planted.tests) - unpruned
        assert closed_change < 0 and attribution.scores[top] < 0
        # the planted row saturates d (its output dwarfs the hidden states): closing it removes more than the slope
        # at gate 1 predicts, which is why `attribute` can verify the shortlist by exact effects
        assert top == planted.component and closed_change < attribution.scores[top]
    finally:
        gates.remove()


def test_the_planted_row_is_ranked_first_and_closing_it_lowers_held_out_d(planted):
    fold = speaker_folds(planted.tests[TEST], folds=3, seed=0)[0]
    gates = attach_gates(planted.encoder)
    try:
        # the plant sits in the first layer, where d has levelled off: its slope alone need not rank it first, its
        # exact effect (verify) does
        attribution = attribute(planted.encoder, gates, {TEST: fold.selection}, verify=16)
        assert attribution.ranked()[0] == planted.component
        assert attribution.ranked("row")[0] == planted.component
        held_out = {TEST: fold.held_out}
        before = sum_abs_d(planted, gates, held_out)
        gates.close([planted.component])
        after = sum_abs_d(planted, gates, held_out)
        assert after < 0.6 * before
        gates.reset()
        check = ablation_check(planted.encoder, gates, held_out, [planted.component], random_draws=10, seed=0)
        assert gates.closed() == []  # left as they were
    finally:
        gates.remove()
    assert check.beats_random and check.top_change == pytest.approx(after - before, abs=1e-9)
    assert len(check.random_changes) == 10 and check.interval[0] <= check.interval[1]
    assert "more than random removal does" in check.sentence()
    assert f"row {planted.component.layer}" not in check.sentence() and "1 rows" in check.sentence()


def test_table_map_and_figure_show_the_scores():
    scores = {Component("head", 0, 0): -0.5, Component("head", 1, 1): 0.25, Component("row", 0, 3): -1.0,
              Component("row", 1, 2): 0.125, Component("row", 1, 0): -0.0625}
    attribution = Attribution(scores, {"t": 1.5})
    assert attribution.ranked() == [Component("row", 0, 3), Component("head", 0, 0), Component("row", 1, 0),
                                    Component("row", 1, 2), Component("head", 1, 1)]
    table = attribution.table(top=2)
    assert table.splitlines()[2:4] == ["| 1 | row | 0 | 3 | -1.0000 |", "| 2 | head | 0 | 0 | -0.5000 |"]
    assert table.splitlines()[4:] == ["", "sum abs(d) with every component: 1.500"]
    maps = attribution.layer_map()
    np.testing.assert_array_equal(maps["head"], [[-0.5, np.nan], [np.nan, 0.25]])
    np.testing.assert_array_equal(maps["row"], [-1.0, 0.0625])
    figure = attribution_figure(attribution)
    assert len(figure.axes) == 3  # heatmap, its colour bar, the bars
    with pytest.raises(ValueError, match="kind must be one of head, row or None"):
        attribution.ranked("heads")


def test_ablation_check_validates_its_options(planted, tmp_path: Path):
    with pytest.raises(ValueError, match="at least one component"):
        ablation_check(planted.encoder, None, planted.tests, [])
    with pytest.raises(ValueError, match="random_draws must be at least 2, got 1"):
        ablation_check(planted.encoder, None, planted.tests, [planted.component], random_draws=1)
