"""speat_metric.diagnostics against loops: mean cosines, group effects, leave-one-speaker-out, layer profiles."""
# ruff: noqa: F811 (the fixtures of test_embedding, imported here, are test arguments)

import math
import random

import numpy as np
import pytest
from test_comparison import cosines_of, embeddings_of, loop_bias_corrected
from test_embedding import wav2vec2  # noqa: F401
from test_statistics import naive_d, naive_s
from tiny_models import write_tone_test

from speat_metric.comparison import draw_resamples
from speat_metric.cosines import record_cosines
from speat_metric.diagnostics import (
    ConceptAssociations,
    LayerPoint,
    concept_associations,
    layer_profile,
    layer_sentence,
    leave_one_out,
    record_concept_associations,
    record_leave_one_out,
)
from speat_metric.pipeline import evaluate_tests
from speat_metric.pooling import LayerPooling
from speat_metric.statistics import effect_size
from speat_metric.stimuli import load_custom_test, load_speat_test


def textbook_cosine(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def loop_group_effects(x, y, a, b, ddof=1):
    """g_X and g_Y: each group's mean s over the std of s over X u Y, with loops."""
    s_x, s_y = [naive_s(w, a, b) for w in x], [naive_s(w, a, b) for w in y]
    everything = s_x + s_y
    mean = sum(everything) / len(everything)
    std = math.sqrt(sum((value - mean) ** 2 for value in everything) / (len(everything) - ddof))
    return sum(s_x) / len(s_x) / std, sum(s_y) / len(s_y) / std


@pytest.mark.parametrize("ddof", [1, 0])
def test_concept_associations_match_loops(ddof):
    rng = np.random.default_rng(ddof)
    embeddings = embeddings_of(rng, (7, 6, 5, 8), dim=5, shift=0.8)
    x, y, a, b = (rows.tolist() for rows in embeddings)
    result = concept_associations(cosines_of(embeddings), ddof=ddof, n_resamples=200, seed=2)
    for name, (targets, attributes) in {"XA": (x, a), "XB": (x, b), "YA": (y, a), "YB": (y, b)}.items():
        expected = sum(textbook_cosine(w, v) for w in targets for v in attributes) / (len(targets) * len(attributes))
        assert result.mean_cosines[name] == pytest.approx(expected, abs=1e-12)
    g_x, g_y = loop_group_effects(x, y, a, b, ddof)
    assert (result.group_effects["X"], result.group_effects["Y"]) == pytest.approx((g_x, g_y), abs=1e-12)
    assert result.group_effects["X"] - result.group_effects["Y"] == pytest.approx(naive_d(x, y, a, b, ddof), abs=1e-12)
    # The intervals: the same draws as a comparison with this seed, g* by loops over the drawn embeddings.
    draw = draw_resamples(np.random.default_rng(2), 200, cosines_of(embeddings))
    drawn = [[[rows[i] for i in indices[r]] for rows, indices in
              zip((x, y, a, b), (draw.x_rows, draw.y_rows, draw.a_columns, draw.b_columns))] for r in range(200)]
    resampled = np.array([loop_group_effects(*sets, ddof) for sets in drawn])
    for column, role in enumerate("XY"):
        expected = loop_bias_corrected(resampled[:, column], result.group_effects[role])
        assert result.intervals[role] == pytest.approx(expected, abs=1e-9)
        low, high = result.intervals[role]
        assert low < result.group_effects[role] < high
    assert result.confidence == 0.95


def test_concept_sentence_names_the_group_that_carries_the_effect():
    """X planted far towards A and Y towards B: each interval excludes 0 on its side."""
    rng = np.random.default_rng(3)
    embeddings = embeddings_of(rng, (20, 20, 20, 20), dim=6)
    embeddings[0][:, 0] += 3.0
    embeddings[1][:, 0] -= 3.0
    result = concept_associations(cosines_of(embeddings), n_resamples=500)
    groups = {"X": "low", "Y": "high", "A": "pleasant", "B": "unpleasant"}
    sentence = result.sentence(groups)
    assert sentence.startswith("low speech is nearer pleasant (g = +")
    assert "; high speech is nearer unpleasant (g = -" in sentence and sentence.endswith(".")
    neither = ConceptAssociations(result.mean_cosines, result.group_effects, {"X": (-0.2, 0.4), "Y": (-0.5, 0.0)},
                                  0.9)  # an interval reaching 0 says neither
    g_x, g_y = result.group_effects["X"], result.group_effects["Y"]
    assert neither.sentence(groups) == (
        f"low speech is no nearer pleasant than unpleasant (g = {g_x:+.2f}, 90% CI [-0.20, +0.40]); "
        f"high speech is no nearer pleasant than unpleasant (g = {g_y:+.2f}, 90% CI [-0.50, +0.00]).")


def scores_of(rng, n_x, n_y):
    return ({f"x{i}": float(value) for i, value in enumerate(rng.normal(0.1, 0.05, n_x))},
            {f"y{i}": float(value) for i, value in enumerate(rng.normal(0.0, 0.05, n_y))})


@pytest.mark.parametrize("ddof", [1, 0])
def test_leave_one_out_matches_effect_size_on_each_subset(ddof):
    scores_x, scores_y = scores_of(np.random.default_rng(4), 6, 5)
    result = leave_one_out(scores_x, scores_y, ddof=ddof)
    d = effect_size(np.array(list(scores_x.values())), np.array(list(scores_y.values())), ddof=ddof)
    assert result.effect_size == pytest.approx(d, abs=1e-12)
    expected = {}
    for left_out in [*scores_x, *scores_y]:
        kept_x = np.array([value for key, value in scores_x.items() if key != left_out])
        kept_y = np.array([value for key, value in scores_y.items() if key != left_out])
        expected[left_out] = effect_size(kept_x, kept_y, ddof=ddof)
    assert list(result.without) == list(expected)
    assert list(result.without.values()) == pytest.approx(list(expected.values()), abs=1e-12)
    most = max(expected, key=lambda key: abs(expected[key] - d))
    assert (result.most_influential, result.largest_change) == (most, pytest.approx(expected[most] - d, abs=1e-12))
    assert result.sign_flips == tuple(key for key, value in expected.items() if (value > 0) != (d > 0))


def test_a_single_outlier_speaker_decides_the_sign():
    """X sits slightly below Y except for one speaker far above: d > 0 only because of that speaker."""
    rng = np.random.default_rng(5)
    scores_x = {f"x{i}": float(value) for i, value in enumerate(rng.normal(-0.05, 0.02, 8))}
    scores_y = {f"y{i}": float(value) for i, value in enumerate(rng.normal(0.0, 0.02, 8))}
    scores_x["x3"] = 1.0
    result = leave_one_out(scores_x, scores_y)
    assert result.effect_size > 0 and result.without["x3"] < 0
    assert result.most_influential == "x3" and result.sign_flips == ("x3",)
    assert result.largest_change == pytest.approx(result.without["x3"] - result.effect_size)
    assert "(without x3); removing 1 single speaker(s) flips its sign (x3)." in result.sentence()
    steady = leave_one_out(*scores_of(np.random.default_rng(6), 30, 30))
    assert steady.sign_flips == () and steady.sentence().endswith("; no single speaker flips its sign.")


def test_leave_one_out_needs_three_targets_a_group():
    with pytest.raises(ValueError, match=r"leave-one-speaker-out needs at least 3 targets in X and in Y"):
        leave_one_out({"x0": 0.1, "x1": 0.2, "x2": 0.3}, {"y0": 0.0, "y1": 0.1})


# --- from records -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def per_layer_records(tmp_path_factory, wav2vec2):
    """A tiny random model's ``--pooling per-layer`` records (layers 0-2) of a custom test of noisy tones."""
    with pytest.MonkeyPatch.context() as patch:  # module scope: the autouse cache isolation is not active yet
        patch.setenv("SPEAT_CACHE", str(tmp_path_factory.mktemp("speat-cache")))
        test = load_speat_test(load_custom_test(write_tone_test(tmp_path_factory.mktemp("tones"))), progress=False)
        return evaluate_tests(wav2vec2, {"tone": test}, layer_pooling=LayerPooling("per-layer"), num_permutations=100,
                              progress=False)


def test_record_diagnostics_agree_with_the_record(per_layer_records):
    record = per_layer_records[1]
    associations = record_concept_associations(record, n_resamples=200)
    difference = associations.group_effects["X"] - associations.group_effects["Y"]
    assert difference == pytest.approx(record.speat.effect_size, rel=1e-4)  # cosines kept in float32
    assert associations.group_effects == concept_associations(record_cosines(record), n_resamples=200).group_effects
    scores = {role: {entry["id"]: entry["s"] for entry in record.association_scores[role]} for role in "XY"}
    assert record_leave_one_out(record) == leave_one_out(scores["X"], scores["Y"])
    assert record_leave_one_out(record).effect_size == pytest.approx(record.speat.effect_size, rel=1e-12)
    with pytest.raises(ValueError, match=r"keeps no per-stimulus scores .*re-run speat evaluate"):
        record_leave_one_out(record.replace(association_scores=None))
    with pytest.raises(ValueError, match=r"keeps no cosine matrix"):
        record_concept_associations(record.replace(cosines=None))


def test_layer_profile_orders_the_per_layer_records_by_layer(per_layer_records):
    shuffled = list(per_layer_records)
    random.Random(0).shuffle(shuffled)
    averaged = per_layer_records[0].replace(pooling={"frame_pooling": "mean", "layer_pooling": "mean", "layer": None})
    points = layer_profile([averaged, *shuffled])  # the layer-averaged record is not a layer: ignored
    assert points == [LayerPoint(layer, record.speat.effect_size, record.speat.ci_low, record.speat.ci_high)
                      for layer, record in enumerate(per_layer_records)]
    assert layer_profile([averaged]) == []


@pytest.mark.parametrize("change", [{"test": "other"}, {"checkpoint": {"name": "checkpoint-5", "step": 5}}])
def test_layer_profile_refuses_mixed_models_or_tests(per_layer_records, change):
    with pytest.raises(ValueError, match=r"a layer profile is of one model on one test, got \[\("):
        layer_profile([*per_layer_records, per_layer_records[0].replace(**change)])


def test_layer_sentence_names_the_layers_of_smallest_and_largest_size():
    points = [LayerPoint(0, 0.5, None, None), LayerPoint(1, -0.1, -0.5, 0.3), LayerPoint(2, -1.2, -1.6, -0.8),
              LayerPoint(3, 0.8, 0.2, 1.4)]  # the largest |d| is negative: size, not sign
    assert layer_sentence("gender", points) == (
        "On gender, |d| is smallest at layer 1 (d = -0.10) and largest at layer 2 (d = -1.20), of layers 0-3.")
    with pytest.raises(ValueError, match=r"gender: no per-layer results \(evaluate with --pooling per-layer\)"):
        layer_sentence("gender", [])
