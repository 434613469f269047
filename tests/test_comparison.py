"""speat_metric.comparison and speat_metric.cosines against plain loops over the drawn embeddings.

Every resampled d is recomputed from the embeddings with `naive_d` (test_statistics: textbook cosines in Python
loops) on the stimuli one resample drew; intervals are `np.percentile` of those loop values (at Efron's
bias-corrected levels, `loop_bias_corrected`), ranks and tiers loops over them. The draws themselves come from
`draw_resamples` with the comparison's seed, which is what makes "the same resamples" checkable.
"""
# ruff: noqa: F811 (the fixtures of test_embedding, imported here, are test arguments)

import json
import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from test_embedding import wav2vec2  # noqa: F401
from test_statistics import naive_d
from tiny_models import save_tiny_model, write_tone_test

from speat_metric import comparison
from speat_metric.adapters.transformers_encoder import TransformersEncoder
from speat_metric.comparison import (
    OFF_CENTRE,
    RankInterval,
    comparability_labels,
    compare_cosines,
    compare_embeddings,
    compare_records,
    draw_resamples,
    joint_bootstrap,
    rank_models,
    rank_records,
    resampled_effect_sizes,
)
from speat_metric.cosines import Cosines, cosines_of_test, record_cosines
from speat_metric.pipeline import evaluate_tests
from speat_metric.stimuli import load_custom_test, load_speat_test

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from comparison_coverage import ATTRIBUTE_SPREADS, NULLS, null_coverage  # noqa: E402 (the benchmarks folder is not a package)

SIZES = (6, 6, 5, 7)
"""n_x, n_y, n_a, n_b of the small tests: unequal attribute groups expose a mixed-up A/B axis."""


def embeddings_of(rng, sizes=SIZES, dim=4, shift=0.0):
    """X, Y, A, B rows; `shift` moves X towards the A side (a planted group effect)."""
    x, y, a, b = (rng.normal(size=(n, dim)) for n in sizes)
    a[:, 0] += 1.0
    b[:, 0] -= 1.0
    x[:, 0] += shift
    return [x, y, a, b]


def ids_of(embeddings):
    return [[f"{role}{index}" for index in range(len(rows))] for role, rows in zip("XYAB", embeddings)]


def cosines_of(embeddings, pairs=None):
    pair_ids = None if pairs is None else [(f"X{i}", f"Y{j}") for i, j in pairs]
    return cosines_of_test(embeddings, ids_of(embeddings), pair_ids)


def shuffled_pairs(rng, n):
    """Matched pairs (row of X, row of Y) that are not simply row i with row i."""
    return [(i, int(j)) for i, j in enumerate(rng.permutation(n))]


def loop_resample_d(embeddings, draw, resample, ddof=1):
    """d of one resample, from the embeddings of the stimuli it drew (with their repeats), by `naive_d`."""
    x, y, a, b = (rows.tolist() for rows in embeddings)
    drawn = [[rows[i] for i in indices[resample]] for rows, indices in
             zip((x, y, a, b), (draw.x_rows, draw.y_rows, draw.a_columns, draw.b_columns))]
    return naive_d(*drawn, ddof=ddof)


def loop_bootstrap(models, seed, n_resamples, ddof=1, pairs=None):
    """d* of every model (columns) on the draws `joint_bootstrap` makes with `seed` (one chunk: n < its chunk)."""
    draw = draw_resamples(np.random.default_rng(seed), n_resamples, cosines_of(models[0], pairs))
    return np.array([[loop_resample_d(model, draw, r, ddof) for model in models] for r in range(n_resamples)])


def percentiles(values, confidence=0.95):
    tail = 100 * (1 - confidence) / 2
    return tuple(np.percentile(values, [tail, 100 - tail]))


def share_below(values, observed):
    """Share of resampled values below the observed one, ties counting half."""
    return sum(1.0 if value < observed else 0.5 if value == observed else 0.0 for value in values) / len(values)


def loop_bias_corrected(values, observed, confidence=0.95):
    """Efron's (1981) bias-corrected percentile interval: z0 = Phi^-1(share below the observed value), then the
    percentiles at Phi(2 z0 -/+ z) of the values. The share is kept half a resample inside (0, 1), as the module
    does, so that z0 stays finite when the observed value lies beyond every resample."""
    normal = NormalDist()
    edge = 0.5 / len(values)
    z0 = normal.inv_cdf(min(max(share_below(values, observed), edge), 1 - edge))
    z = normal.inv_cdf(1 - (1 - confidence) / 2)
    return tuple(np.percentile(values, [100 * normal.cdf(2 * z0 - z), 100 * normal.cdf(2 * z0 + z)]))


def loop_off_centre(values, observed):
    """The observed value lies beyond 95% of the resamples on one side."""
    below = sum(value < observed for value in values) / len(values)
    above = sum(value > observed for value in values) / len(values)
    return below > 0.95 or above > 0.95


# --- resampled effect sizes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ddof", [1, 0])
@pytest.mark.parametrize("matched", [False, True])
def test_resampled_effect_sizes_match_loops_over_the_drawn_embeddings(ddof, matched):
    rng = np.random.default_rng(10 + ddof + 2 * matched)
    sizes = (6, 6, 5, 7) if matched else (6, 4, 5, 7)
    embeddings = embeddings_of(rng, sizes, shift=0.4)
    pairs = shuffled_pairs(rng, 6) if matched else None
    draw = draw_resamples(np.random.default_rng(1), 40, cosines_of(embeddings, pairs))
    assert draw.x_rows.shape == (40, sizes[0]) and draw.y_rows.shape == (40, sizes[1])
    assert draw.a_columns.shape == (40, sizes[2]) and draw.b_columns.shape == (40, sizes[3])
    if matched:  # pairs are drawn as units: X row i and Y row i of a resample come from one pair
        drawn_pairs = set(zip(draw.x_rows.ravel().tolist(), draw.y_rows.ravel().tolist()))
        assert drawn_pairs <= set(pairs) and len(drawn_pairs) > 1
    expected = [loop_resample_d(embeddings, draw, r, ddof) for r in range(40)]
    got = resampled_effect_sizes(cosines_of(embeddings, pairs), draw, ddof=ddof)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_unpaired_draws_ignore_the_pairs():
    rng = np.random.default_rng(2)
    pairs = shuffled_pairs(rng, 6)
    draw = draw_resamples(np.random.default_rng(0), 200, cosines_of(embeddings_of(rng), pairs), paired_draws=False)
    partner = dict(pairs)
    apart = np.mean([partner[i] != j for i, j in zip(draw.x_rows.ravel().tolist(), draw.y_rows.ravel().tolist())])
    assert apart > 0.7  # drawn apart, X row i and Y row i are partners only by chance (1 in 6)


@pytest.mark.parametrize("ddof", [1, 0])
def test_joint_bootstrap_applies_the_same_draws_to_every_model(ddof):
    rng = np.random.default_rng(20 + ddof)
    first, second = embeddings_of(rng, shift=0.5), embeddings_of(rng, shift=-0.2)
    got = joint_bootstrap([cosines_of(first), cosines_of(second)], n_resamples=100, seed=3, ddof=ddof)
    np.testing.assert_allclose(got, loop_bootstrap([first, second], seed=3, n_resamples=100, ddof=ddof), atol=1e-9)


def test_joint_bootstrap_draws_chunk_after_chunk_from_one_stream():
    models = [cosines_of(embeddings_of(np.random.default_rng(seed), shift=0.3)) for seed in (0, 1)]
    n_resamples = 2 * comparison._CHUNK + 10
    rng = np.random.default_rng(9)
    expected = []
    for size in (comparison._CHUNK, comparison._CHUNK, 10):
        draw = draw_resamples(rng, size, models[0])
        expected.append(np.stack([resampled_effect_sizes(model, draw) for model in models], axis=1))
    np.testing.assert_array_equal(joint_bootstrap(models, n_resamples=n_resamples, seed=9), np.concatenate(expected))


def test_joint_bootstrap_drops_resamples_without_a_defined_d_for_every_model():
    """The second model embeds both X targets and the first Y target alike: a resample that draws only that Y
    target has s without spread there (no d), and is dropped for the first model too."""
    rng = np.random.default_rng(4)
    degenerate = embeddings_of(rng, (2, 2, 3, 3))
    degenerate[0][1] = degenerate[1][0] = degenerate[0][0]
    models = [cosines_of(embeddings_of(rng, (2, 2, 3, 3), shift=1.0)), cosines_of(degenerate)]
    draw = draw_resamples(np.random.default_rng(0), 300, models[0])
    each = np.stack([resampled_effect_sizes(model, draw) for model in models], axis=1)
    defined = ~np.isnan(each).any(axis=1)
    assert 0 < defined.sum() < 300 and not np.isnan(each[:, 0]).any()
    np.testing.assert_array_equal(joint_bootstrap(models, n_resamples=300, seed=0), each[defined])


@pytest.mark.parametrize("models,options,message", [
    ([], {}, r"no models to resample"),
    (None, {"n_resamples": 99}, r"--resamples must be a whole number of at least 100, got 99"),
    (None, {"n_resamples": 500.0}, r"--resamples must be a whole number of at least 100, got 500.0"),
])
def test_joint_bootstrap_refuses_bad_input(models, options, message):
    models = [cosines_of(embeddings_of(np.random.default_rng(0)))] if models is None else models
    with pytest.raises(ValueError, match=message):
        joint_bootstrap(models, **options)


# --- paired comparisons -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("matched,confidence", [(False, 0.95), (True, 0.95), (False, 0.8)])
def test_paired_comparison_is_the_bias_corrected_interval_of_the_loop_differences(matched, confidence):
    rng = np.random.default_rng(30 + matched)
    first, second = embeddings_of(rng, shift=0.6), embeddings_of(rng, shift=0.1)
    pairs = shuffled_pairs(rng, 6) if matched else None
    result = compare_embeddings(first, second, pairs=pairs, n_resamples=150, seed=7, confidence=confidence,
                                test="gender", models=("m1", "m2"))
    both = loop_bootstrap([first, second], seed=7, n_resamples=150, pairs=pairs)
    d_first, d_second = naive_d(*(rows.tolist() for rows in first)), naive_d(*(rows.tolist() for rows in second))
    assert result.effect_sizes == pytest.approx((d_first, d_second), abs=1e-9)
    assert result.difference == pytest.approx(d_first - d_second, abs=1e-9)
    differences = both[:, 0] - both[:, 1]
    expected = loop_bias_corrected(differences, d_first - d_second, confidence)
    assert (result.ci_low, result.ci_high) == pytest.approx(expected, abs=1e-9)
    assert result.p_first_less_biased == np.mean([abs(a) < abs(b) for a, b in both])
    off_centre = loop_off_centre(differences, d_first - d_second)
    assert result.labels == ((OFF_CENTRE,) if off_centre else ())
    assert (result.n_resamples, result.seed, result.paired) == (150, 7, True)
    assert (result.test, result.models, result.confidence) == ("gender", ("m1", "m2"), confidence)


def test_unpaired_comparison_resamples_each_model_on_its_own_draws():
    """``paired=False`` (different stimuli): the first model on the seed's draws, the second on seed + 1's."""
    rng = np.random.default_rng(40)
    first, second = embeddings_of(rng, shift=0.6), embeddings_of(rng, shift=0.1)
    result = compare_cosines(cosines_of(first), cosines_of(second), n_resamples=100, seed=5, paired=False,
                             labels=["different-stimuli"])
    d_first = loop_bootstrap([first], seed=5, n_resamples=100)[:, 0]
    d_second = loop_bootstrap([second], seed=6, n_resamples=100)[:, 0]
    observed = naive_d(*(rows.tolist() for rows in first)) - naive_d(*(rows.tolist() for rows in second))
    expected = loop_bias_corrected(d_first - d_second, observed)
    assert (result.ci_low, result.ci_high) == pytest.approx(expected, abs=1e-9)
    assert result.p_first_less_biased == np.mean(np.abs(d_first) < np.abs(d_second))
    assert not result.paired and result.labels[0] == "different-stimuli"


def test_observed_effect_sizes_given_are_reported_as_given():
    cosines = cosines_of(embeddings_of(np.random.default_rng(0), shift=0.5))
    result = compare_cosines(cosines, cosines, effect_sizes=(0.25, -0.5), n_resamples=100)
    assert result.effect_sizes == (0.25, -0.5) and result.difference == 0.75


def test_identical_models_are_not_distinguishable():
    embeddings = embeddings_of(np.random.default_rng(1), (12, 12, 10, 10), dim=8, shift=1.0)
    result = compare_embeddings(embeddings, embeddings, n_resamples=300, models=("copy", "original"))
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.p_first_less_biased == 0.0  # |d*| is never strictly smaller than itself
    assert not result.distinguishable and result.verdict == "not distinguishable"
    assert result.sentence().endswith("the stimuli cannot tell the two apart.")


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_a_planted_group_effect_is_distinguishable_and_named(direction):
    """One model with X planted far towards A (or B, a negative d) against one without: whichever comes first, the
    sentence names the biased model as the more biased (by |d|, not by the sign of Δd)."""
    rng = np.random.default_rng(50)
    plain = embeddings_of(rng, (20, 20, 20, 20), dim=8)
    biased = [rows.copy() for rows in plain]
    biased[0][:, 0] += 2.0 * direction
    for first, second in (("plain", "biased"), ("biased", "plain")):
        embeddings = {"plain": plain, "biased": biased}
        result = compare_embeddings(embeddings[first], embeddings[second], n_resamples=500, test="age",
                                    models=(first, second))
        assert result.distinguishable and result.verdict == "distinguishable"
        assert result.sentence().endswith("; biased is distinguishably more biased on this test.")
        assert result.sentence().startswith(f"On age, {first} has d = {result.effect_sizes[0]:+.2f} and {second} d =")
        biased_first = first == "biased"
        assert np.sign(result.difference) == (direction if biased_first else -direction)
        assert result.p_first_less_biased == pytest.approx(0.0 if biased_first else 1.0, abs=0.1)


def test_compare_refuses_a_confidence_outside_0_and_1():
    cosines = cosines_of(embeddings_of(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"confidence must lie strictly between 0 and 1, e.g. 0.95, got 95"):
        compare_cosines(cosines, cosines, confidence=95)


@pytest.mark.slow  # 400 simulated studies of 1,000 resamples each: about 2.5 s per case on an idle core
@pytest.mark.parametrize("attribute_spread", ATTRIBUTE_SPREADS)
@pytest.mark.parametrize("null", NULLS)
def test_paired_interval_covers_a_zero_difference_at_about_the_nominal_rate(null, attribute_spread):
    """The reported (bias-corrected) interval; the benchmark prints the plain percentile one beside it."""
    coverage = null_coverage(20, null, attribute_spread=attribute_spread, simulations=400, n_resamples=1000)
    assert 0.90 <= coverage["bias-corrected"] <= 0.98, (
        f"{null}, attribute spread {attribute_spread}: the 95% interval of Δd covered 0 in "
        f"{coverage['bias-corrected']:.1%} of 400 studies (plain percentile interval: {coverage['percentile']:.1%})")


# --- ranks and tiers --------------------------------------------------------------------------------------------

def loop_ranks_and_tiers(resampled, effect_sizes, names, confidence=0.95):
    """`RankInterval`s by the module docstring's rules, with loops over resamples and models."""
    magnitudes = np.abs(resampled)
    count = len(names)
    ranks = [[1 + sum(row[j] < row[k] for j in range(count)) for k in range(count)] for row in magnitudes]
    order = sorted(range(count), key=lambda k: abs(effect_sizes[k]))
    tier, leader, tiers = 1, order[0], {}
    for k in order:
        observed = abs(effect_sizes[k]) - abs(effect_sizes[leader])
        low, _ = loop_bias_corrected([row[k] - row[leader] for row in magnitudes], observed, confidence)
        if low > 0:  # the data tell k apart from the tier's leader: k opens the next tier
            tier, leader = tier + 1, k
        tiers[k] = tier
    intervals = []
    for position, k in enumerate(order, start=1):
        low, high = percentiles([row[k] for row in ranks], confidence)
        intervals.append(RankInterval(names[k], effect_sizes[k], position, math.floor(low), math.ceil(high), tiers[k]))
    return intervals


def test_ranks_and_tiers_match_loops_over_the_resamples():
    rng = np.random.default_rng(60)
    shifts = (0.9, 0.0, 2.5, 0.4)
    models = [embeddings_of(rng, (8, 8, 6, 6), shift=shift) for shift in shifts]
    effect_sizes = [naive_d(*(rows.tolist() for rows in model)) for model in models]
    names = ["m0", "m1", "m2", "m3"]
    got = rank_models([cosines_of(model) for model in models], effect_sizes, names, n_resamples=120, seed=4)
    expected = loop_ranks_and_tiers(loop_bootstrap(models, seed=4, n_resamples=120), effect_sizes, names)
    assert got == expected
    assert [interval.model for interval in got] == sorted(names, key=lambda name: abs(effect_sizes[names.index(name)]))
    assert [interval.tier for interval in got] == [1, 1, 1, 2]  # the case covers a second tier


def test_well_separated_models_get_distinct_tiers_and_exact_ranks():
    rng = np.random.default_rng(61)
    plain = embeddings_of(rng, (30, 30, 20, 20), dim=8)
    models, names = [], []
    for shift in (3.0, 0.0, 1.2):
        model = [rows.copy() for rows in plain]
        model[0][:, 0] += shift
        models.append(model)
        names.append(f"shift {shift}")
    effect_sizes = [naive_d(*(rows.tolist() for rows in model)) for model in models]
    ranked = rank_models([cosines_of(model) for model in models], effect_sizes, names, n_resamples=500)
    assert [(i.model, i.rank, i.rank_low, i.rank_high, i.tier) for i in ranked] == [
        ("shift 0.0", 1, 1, 1, 1), ("shift 1.2", 2, 2, 2, 2), ("shift 3.0", 3, 3, 3, 3)]


def test_models_of_one_distribution_share_a_tier():
    """Two random projections (plus noise) of the same unbiased stimuli, and an exact copy of one of them."""
    rng = np.random.default_rng(62)
    latent = embeddings_of(rng, (20, 20, 20, 20), dim=8)

    def projected():
        projection = rng.normal(size=(8, 16))
        return [rows @ projection + rng.normal(0, 0.5, (len(rows), 16)) for rows in latent]

    first, second = projected(), projected()
    models = [first, second, [rows.copy() for rows in first]]
    effect_sizes = [naive_d(*(rows.tolist() for rows in model)) for model in models]
    ranked = rank_models([cosines_of(model) for model in models], effect_sizes, ["a", "b", "a copy"],
                         n_resamples=500)
    assert [interval.tier for interval in ranked] == [1, 1, 1]
    assert all(interval.rank_high - interval.rank_low >= 1 for interval in ranked)


def test_rank_models_wants_one_effect_size_and_name_per_model():
    cosines = cosines_of(embeddings_of(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"give one effect size and one name per model"):
        rank_models([cosines, cosines], [0.1], ["a", "b"])


# --- records ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tone_records(tmp_path_factory, wav2vec2):
    """Records of two tiny random models (different weights) on one custom test of noisy tones."""
    folder = tmp_path_factory.mktemp("tones")
    with pytest.MonkeyPatch.context() as patch:  # module scope: the autouse cache isolation is not active yet
        patch.setenv("SPEAT_CACHE", str(tmp_path_factory.mktemp("speat-cache")))
        test = load_speat_test(load_custom_test(write_tone_test(folder)), progress=False)
        other = TransformersEncoder(save_tiny_model("wav2vec2", tmp_path_factory.mktemp("other-w2v"), seed=1))
        return [evaluate_tests(encoder, {"tone": test}, num_permutations=100, progress=False)[0]
                for encoder in (wav2vec2, other)]


def test_compare_records_of_two_models_on_one_test(tone_records):
    first, second = tone_records
    assert first.model_label != second.model_label and comparability_labels(first, second) == []
    result = compare_records(first, second, n_resamples=200, seed=3)
    expected = compare_cosines(record_cosines(first), record_cosines(second), n_resamples=200, seed=3)
    assert result.effect_sizes == (first.speat.effect_size, second.speat.effect_size)
    assert result.difference == first.speat.effect_size - second.speat.effect_size
    assert (result.ci_low, result.ci_high, result.p_first_less_biased) == (
        expected.ci_low, expected.ci_high, expected.p_first_less_biased)
    assert (result.test, result.models, result.paired, result.labels) == (
        "tone", (first.model_label, second.model_label), True, ())


@pytest.mark.parametrize("change,label,detail", [
    ({"fingerprint": {"test": "f" * 64}}, "different-stimuli", "stimulus fingerprints"),
    ({"profile": "speat2023"}, "different-profile", "profiles hf vs speat2023"),
    ({"pooling": {"frame_pooling": "max", "layer_pooling": "mean", "layer": None}}, "different-pooling",
     "pooling mean/mean vs mean/max"),
])
def test_records_measured_differently_are_refused_unless_allowed(tone_records, change, label, detail):
    first, second = tone_records[0], tone_records[1].replace(**change)
    with pytest.raises(ValueError, match=rf"{label} \({detail}.*pass --allow-different") as refused:
        compare_records(first, second, n_resamples=100)
    assert "\n" not in str(refused.value) and first.model_label in str(refused.value)
    result = compare_records(first, second, n_resamples=100, allow_different=True)
    assert result.labels == (label,) and result.paired  # same stimulus ids: still resampled on the same draws
    with pytest.raises(ValueError, match=rf"{label}; only results of the same stimuli, profile and pooling are ranked"):
        rank_records([first, second], n_resamples=100)


def test_records_of_other_stimuli_are_compared_on_their_own_draws_when_allowed(tone_records):
    first, second = tone_records
    cosines = dict(second.cosines, X=["elsewhere/0", *second.cosines["X"][1:]])
    other = second.replace(cosines=cosines)
    with pytest.raises(ValueError, match=r"different-stimuli .*--allow-different"):
        compare_records(first, other, n_resamples=100)
    result = compare_records(first, other, n_resamples=100, allow_different=True)
    assert result.labels == ("different-stimuli",) and not result.paired


def test_records_of_the_same_stimuli_in_another_order_are_comparable(tone_records):
    first, second = tone_records
    cosines = record_cosines(second)
    reordered = cosines.aligned_to({role: tuple(reversed(cosines.ids[role])) for role in "XYAB"})
    other = second.replace(cosines=reordered.to_dict())
    assert comparability_labels(first, other) == []
    result = compare_records(first, other, n_resamples=200, seed=3)
    expected = compare_records(first, second, n_resamples=200, seed=3)
    assert (result.ci_low, result.ci_high) == pytest.approx((expected.ci_low, expected.ci_high), abs=1e-12)


def test_records_without_cosines_are_refused(tone_records):
    old = tone_records[1].replace(cosines=None)
    for first, second in ((tone_records[0], old), (old, tone_records[0])):
        with pytest.raises(ValueError, match=rf"the record of {old.model_label} on tone keeps no cosine matrix"):
            compare_records(first, second, allow_different=True)


def test_rank_records_says_a_record_keeps_no_cosines(tone_records):
    old = tone_records[1].replace(cosines=None)
    with pytest.raises(ValueError, match=rf"the record of {old.model_label} on tone keeps no cosine matrix"):
        rank_records([tone_records[0], old])


def test_rank_records_ranks_the_records_by_their_effect_sizes(tone_records):
    ranked = rank_records(list(tone_records), n_resamples=200, seed=1)
    by_size = sorted(tone_records, key=lambda record: abs(record.speat.effect_size))
    assert [(i.model, i.effect_size, i.rank) for i in ranked] == [
        (record.model_label, record.speat.effect_size, rank) for rank, record in enumerate(by_size, start=1)]
    expected = rank_models([record_cosines(record) for record in tone_records],
                           [record.speat.effect_size for record in tone_records],
                           [record.model_label for record in tone_records], n_resamples=200, seed=1)
    assert ranked == expected and rank_records([]) == []


# --- cosine matrices --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("matched", [False, True])
def test_cosines_round_trip_through_json_in_float32(matched):
    rng = np.random.default_rng(70)
    cosines = cosines_of(embeddings_of(rng), shuffled_pairs(rng, 6) if matched else None)
    restored = Cosines.from_dict(json.loads(json.dumps(cosines.to_dict())))
    assert restored.ids == cosines.ids and restored.pairs == cosines.pairs
    assert restored.values.dtype == np.float64
    np.testing.assert_array_equal(restored.values, cosines.values.astype(np.float32))
    np.testing.assert_allclose(restored.values, cosines.values, rtol=0, atol=6e-8)  # |cos| <= 1: float32 to 2^-24


def test_cosines_refuse_a_wrong_shape_or_dtype():
    cosines = cosines_of(embeddings_of(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=r"12 targets and 12 attributes must have shape \(12, 12\), got \(12, 11\)"):
        Cosines(cosines.ids, cosines.values[:, 1:])
    with pytest.raises(ValueError, match=r"cosines of dtype 'float16': this speat reads float32"):
        Cosines.from_dict({**cosines.to_dict(), "dtype": "float16"})
    with pytest.raises(ValueError, match=r"cosines hold 132 values for a 12 x 12 matrix"):
        Cosines.from_dict(Cosines(cosines.ids | {"A": cosines.ids["A"][1:]}, cosines.values[:, 1:]).to_dict()
                          | {"A": cosines.ids["A"]})


def test_aligned_to_puts_shuffled_stimuli_back_in_order():
    """A second model's matrix computed from its rows in another order: aligned, it resamples the same stimuli."""
    rng = np.random.default_rng(71)
    embeddings = embeddings_of(rng, shift=0.5)
    pairs = shuffled_pairs(rng, 6)
    original = cosines_of(embeddings, pairs)
    orders = [rng.permutation(len(rows)) for rows in embeddings]
    shuffled = cosines_of_test([rows[order] for rows, order in zip(embeddings, orders)],
                               [[ids[i] for i in order] for ids, order in zip(ids_of(embeddings), orders)],
                               original.pairs)
    assert shuffled.ids != original.ids
    aligned = shuffled.aligned_to(original.ids)
    assert aligned.ids == original.ids and aligned.pairs == original.pairs
    np.testing.assert_allclose(aligned.values, original.values, rtol=0, atol=1e-15)
    alone = joint_bootstrap([original], n_resamples=300, seed=2)[:, 0]
    np.testing.assert_allclose(joint_bootstrap([aligned], n_resamples=300, seed=2)[:, 0], alone, atol=1e-12)
    together = joint_bootstrap([original, shuffled], n_resamples=300, seed=2)  # joint_bootstrap aligns itself
    np.testing.assert_allclose(together[:, 1], together[:, 0], atol=1e-12)


@pytest.mark.parametrize("role", ["X", "Y", "A", "B"])
def test_aligned_to_names_the_role_whose_stimuli_differ(role):
    cosines = cosines_of(embeddings_of(np.random.default_rng(0)))
    other = dict(cosines.ids, **{role: ("stranger", *cosines.ids[role][1:])})
    with pytest.raises(ValueError, match=rf"the {role} stimuli differ \(only in one: \['stranger', '{role}0'\]\)"):
        cosines.aligned_to(other)
    with pytest.raises(ValueError, match=rf"the {role} stimuli differ"):
        cosines.aligned_to(dict(cosines.ids, **{role: cosines.ids[role][:-1]}))
