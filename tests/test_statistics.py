"""speat_metric.statistics against independent, deliberately naive computations."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from speat_metric.results import SpeatResult
from speat_metric.statistics import effect_size, holm_adjust, speat_test


def naive_s(w, a, b):
    """s(w) with explicit loops over rows and a textbook cosine."""
    def cos(u, v):
        return sum(ui * vi for ui, vi in zip(u, v)) / math.sqrt(sum(ui * ui for ui in u) * sum(vi * vi for vi in v))

    return sum(cos(w, row) for row in a) / len(a) - sum(cos(w, row) for row in b) / len(b)


def naive_d(x, y, a, b, ddof=1):
    s_x = [naive_s(w, a, b) for w in x]
    s_y = [naive_s(w, a, b) for w in y]
    everything = s_x + s_y
    mean = sum(everything) / len(everything)
    std = math.sqrt(sum((v - mean) ** 2 for v in everything) / (len(everything) - ddof))
    return (sum(s_x) / len(s_x) - sum(s_y) / len(s_y)) / std


def brute_force_p(x, y, a, b, alternative):
    """Exact p-value by listing every split of X u Y with itertools, recomputing the statistic from scratch."""
    s = [naive_s(w, a, b) for w in list(x) + list(y)]
    observed = sum(s[: len(x)]) - sum(s[len(x):])
    greater = less = total = 0
    for chosen in itertools.combinations(range(len(s)), len(x)):
        rest = [i for i in range(len(s)) if i not in chosen]
        statistic = sum(s[i] for i in chosen) - sum(s[i] for i in rest)
        greater += statistic >= observed - 1e-12
        less += statistic <= observed + 1e-12
        total += 1
    p = {"greater": greater / total, "less": less / total}
    p["two-sided"] = min(1.0, 2 * min(p["greater"], p["less"]))
    return p[alternative], total


def random_sets(rng, n_x, n_y, n_a, n_b, dim, shift=0.0):
    return (rng.normal(shift, 1, (n_x, dim)), rng.normal(0, 1, (n_y, dim)),
            rng.normal(0, 1, (n_a, dim)) + 0.5, rng.normal(0, 1, (n_b, dim)) - 0.5)


@pytest.mark.parametrize("sizes", [(5, 5, 6, 7, 4), (9, 4, 3, 8, 16), (12, 15, 10, 10, 32)])
@pytest.mark.parametrize("ddof", [1, 0])
def test_effect_size_matches_loops(sizes, ddof):
    x, y, a, b = random_sets(np.random.default_rng(sum(sizes) + ddof), *sizes, shift=0.3)
    result = speat_test(x, y, a, b, num_permutations=10, n_bootstrap=0, seed=0, ddof=ddof)
    assert result.effect_size == pytest.approx(naive_d(x.tolist(), y.tolist(), a.tolist(), b.tolist(), ddof), abs=1e-10)
    s_x = [naive_s(w, a.tolist(), b.tolist()) for w in x.tolist()]
    s_y = [naive_s(w, a.tolist(), b.tolist()) for w in y.tolist()]
    assert result.test_statistic == pytest.approx(sum(s_x) - sum(s_y), abs=1e-10)
    assert (result.n_x, result.n_y, result.n_a, result.n_b) == sizes[:4]


@pytest.mark.parametrize("n_x,n_y", [(5, 5), (4, 6), (6, 3)])
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_exact_p_value_matches_brute_force(n_x, n_y, alternative):
    x, y, a, b = random_sets(np.random.default_rng(n_x * 10 + n_y), n_x, n_y, 5, 6, 8, shift=0.2)
    expected, partitions = brute_force_p(x.tolist(), y.tolist(), a.tolist(), b.tolist(), alternative)
    result = speat_test(x, y, a, b, alternative=alternative, n_bootstrap=0, seed=1)
    assert result.exact and result.num_permutations == partitions == math.comb(n_x + n_y, n_x)
    assert result.p_value == pytest.approx(expected, abs=1e-12)


def test_exact_p_value_counts_ties():
    """Duplicated targets create exactly tied partitions; each tie must count as at least as extreme."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(1, 1, (4, 3)), rng.normal(-1, 1, (4, 3))
    row = rng.normal(0, 1, (1, 3))
    x = np.vstack([row, row * 2.0, rng.normal(0, 1, (2, 3))])  # the first two rows have the same s
    y = np.vstack([row * 3.0, rng.normal(0, 1, (3, 3))])
    expected, _ = brute_force_p(x.tolist(), y.tolist(), a.tolist(), b.tolist(), "greater")
    assert speat_test(x, y, a, b, n_bootstrap=0, seed=0).p_value == pytest.approx(expected, abs=1e-12)


def test_sampled_p_values_are_uniform_without_association():
    p_values = []
    for seed in range(300):
        x, y, a, b = random_sets(np.random.default_rng(seed), 8, 8, 6, 6, 10)
        result = speat_test(x, y, a, b, num_permutations=999, n_bootstrap=0, seed=seed)
        assert not result.exact and result.num_permutations == 999
        p_values.append(result.p_value)
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert 0.4 < np.mean(p_values) < 0.6


def test_sampled_p_value_is_minimal_for_separated_data():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 0.1, (10, 4)) + [5, 0, 0, 0], rng.normal(0, 0.1, (10, 4)) + [0, 5, 0, 0]
    x, y = rng.normal(0, 0.1, (20, 4)) + [3, 1, 0, 0], rng.normal(0, 0.1, (20, 4)) + [1, 3, 0, 0]
    for alternative, minimum in (("greater", 1 / 5001), ("two-sided", 2 / 5001)):
        assert speat_test(x, y, a, b, num_permutations=5000, alternative=alternative, seed=1).p_value == minimum
    assert speat_test(x, y, a, b, num_permutations=5000, alternative="less", seed=1).p_value == 1.0


def test_sampled_p_value_agrees_with_exact():
    x, y, a, b = random_sets(np.random.default_rng(11), 7, 7, 6, 6, 5, shift=0.15)
    exact = speat_test(x, y, a, b, n_bootstrap=0, seed=0)
    sampled = speat_test(x, y, a, b, num_permutations=3000, n_bootstrap=0, seed=0)  # C(14, 7) = 3432 > 3000
    assert exact.exact and not sampled.exact
    standard_error = math.sqrt(exact.p_value * (1 - exact.p_value) / 3000)
    assert abs(sampled.p_value - exact.p_value) < 5 * standard_error + 1 / 3001


def test_seeded_runs_are_reproducible_whatever_the_threads():
    x, y, a, b = random_sets(np.random.default_rng(0), 30, 25, 20, 20, 16, shift=0.05)
    first = speat_test(x, y, a, b, num_permutations=200_000, seed=42, n_threads=1)
    second = speat_test(x, y, a, b, num_permutations=200_000, seed=42, n_threads=3)
    other = speat_test(x, y, a, b, num_permutations=200_000, seed=43)
    assert first == second
    assert (other.p_value, other.ci_low) != (first.p_value, first.ci_low)


def test_unseeded_run_records_a_seed_that_reproduces_it():
    x, y, a, b = random_sets(np.random.default_rng(5), 10, 10, 5, 5, 6)
    result = speat_test(x, y, a, b, num_permutations=5000, n_bootstrap=500)
    assert speat_test(x, y, a, b, num_permutations=5000, n_bootstrap=500, seed=result.seed) == result


def test_bootstrap_interval_covers_d_with_the_expected_width():
    """Large normal samples: the interval width matches the textbook standard error of Cohen's d."""
    x, y, a, b = random_sets(np.random.default_rng(8), 150, 120, 20, 20, 12, shift=0.1)
    result = speat_test(x, y, a, b, num_permutations=100, n_bootstrap=4000, seed=2)
    d, n_x, n_y = result.effect_size, result.n_x, result.n_y
    standard_error = math.sqrt((n_x + n_y) / (n_x * n_y) + d * d / (2 * (n_x + n_y)))
    assert result.ci_low < d < result.ci_high
    assert (result.ci_high - result.ci_low) / (2 * 1.96 * standard_error) == pytest.approx(1, abs=0.2)
    wider = speat_test(x, y, a, b, num_permutations=100, n_bootstrap=4000, seed=2, confidence=0.99)
    assert wider.ci_low < result.ci_low and wider.ci_high > result.ci_high


def test_paired_bootstrap_keeps_matched_pairs_together():
    """Each Y target is its X partner rotated slightly towards B: pairs differ by a constant, groups vary widely."""
    rng = np.random.default_rng(4)
    a, b = np.tile([1.0, 0.0], (5, 1)), np.tile([0.0, 1.0], (5, 1))
    angles = rng.uniform(0.2, 1.3, 20)
    x = np.column_stack([np.cos(angles), np.sin(angles)])
    y = np.column_stack([np.cos(angles + 0.05), np.sin(angles + 0.05)])
    order = rng.permutation(20)  # shuffle Y so that the pairs are not simply row i with row i
    pairs = np.column_stack([np.arange(20), np.argsort(order)])
    paired = speat_test(x, y[order], a, b, pairs=pairs, num_permutations=100, n_bootstrap=2000, seed=0)
    unpaired = speat_test(x, y[order], a, b, num_permutations=100, n_bootstrap=2000, seed=0)
    assert paired.paired and not unpaired.paired
    assert paired.effect_size == unpaired.effect_size
    assert paired.ci_high - paired.ci_low < 0.5 * (unpaired.ci_high - unpaired.ci_low)


def test_no_bootstrap_gives_no_interval():
    x, y, a, b = random_sets(np.random.default_rng(1), 4, 4, 3, 3, 4)
    result = speat_test(x, y, a, b, n_bootstrap=0, seed=0)
    assert result.ci_low is None and result.ci_high is None


finite = st.floats(min_value=-10, max_value=10, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


@st.composite
def embedding_sets(draw):
    dim = draw(st.integers(2, 5))
    sizes = [draw(st.integers(2, 5)) for _ in range(4)]
    rows = [np.array(draw(st.lists(st.lists(finite, min_size=dim, max_size=dim), min_size=n, max_size=n)))
            for n in sizes]
    return rows


def _spread(x, y, a, b):
    """True when s varies enough over X u Y for d to be defined."""
    def unit(rows):
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    direction = unit(a).mean(0) - unit(b).mean(0)
    return np.std(unit(np.concatenate([x, y])) @ direction) > 1e-6


@settings(max_examples=60, deadline=None)
@given(embedding_sets(), st.floats(0.01, 100), st.randoms(use_true_random=False))
def test_effect_size_symmetries(sets, scale, random):
    x, y, a, b = sets
    if not _spread(x, y, a, b):
        return
    options = dict(num_permutations=1000, n_bootstrap=0, seed=0)  # always exact here: C(10, 5) = 252
    d = speat_test(x, y, a, b, **options).effect_size
    assert speat_test(y, x, a, b, **options).effect_size == pytest.approx(-d, abs=1e-9)
    assert speat_test(x, y, b, a, **options).effect_size == pytest.approx(-d, abs=1e-9)
    scales = [np.array([random.uniform(0.01, 100) for _ in range(len(group))])[:, None] for group in sets]
    scaled = [group * factor * scale for group, factor in zip(sets, scales)]
    assert speat_test(*scaled, **options).effect_size == pytest.approx(d, abs=1e-9)
    shuffled = [group[np.array(random.sample(range(len(group)), len(group)))] for group in sets]
    result = speat_test(*shuffled, **options)
    assert result.effect_size == pytest.approx(d, abs=1e-9)
    assert result.p_value == pytest.approx(speat_test(x, y, a, b, **options).p_value, abs=1e-12)


GOOD = np.random.default_rng(0).normal(size=(3, 4))
VALID = (GOOD, GOOD * 2 + 1, GOOD + 1, -GOOD)  # a valid test: only the options below are wrong


@pytest.mark.parametrize(
    "arguments,options,message",
    [
        ((GOOD[0], GOOD, GOOD, GOOD), {}, r"x must be a 2-D array .* got shape \(4,\)"),
        ((GOOD, GOOD[:, :3], GOOD, GOOD), {}, r"same embedding dimension, got x: 4, y: 3, a: 4, b: 4"),
        ((GOOD, GOOD, np.vstack([GOOD, [np.nan] * 4]), GOOD), {}, r"a contains NaN or infinite values in row\(s\) 3"),
        ((GOOD, GOOD, GOOD, np.vstack([GOOD, [np.inf] * 4])), {}, r"b contains NaN or infinite"),
        ((GOOD, np.vstack([GOOD, np.zeros(4)]), GOOD, GOOD), {}, r"y has all-zero row\(s\) 3: the cosine"),
        ((GOOD[:1], GOOD, GOOD, GOOD), {}, r"x needs at least 2 rows \(stimuli\), got 1"),
        ((GOOD, GOOD, GOOD, GOOD[:1]), {}, r"b needs at least 2 rows"),
        ((GOOD, GOOD, GOOD, GOOD), {}, r"zero variance, so the effect size d is undefined"),
        (VALID, {"num_permutations": 0}, r"num_permutations must be an integer >= 1, got 0"),
        (VALID, {"alternative": "bigger"}, r"alternative must be one of .*'bigger'"),
        (VALID, {"confidence": 95}, r"confidence must lie strictly between 0 and 1"),
        (VALID, {"n_bootstrap": -1}, r"n_bootstrap must be an integer >= 0"),
        (VALID, {"ddof": 2}, r"ddof must be 1 \(sample std, SpEAT\) or 0"),
        (VALID, {"seed": -5}, r"seed must be a non-negative integer or None, got -5"),
        (VALID, {"pairs": [[0, 0], [1, 1]]}, r"pairs must match every row of x and y once"),
        (VALID, {"pairs": [[0, 0], [1, 1], [1, 2]]}, r"pairs column 0 must use every row of x"),
        (VALID, {"pairs": [0, 1, 2]}, r"pairs must be an \(n, 2\) array"),
        (([[1, "a"]], GOOD, GOOD, GOOD), {}, r"x must be a 2-D array of floats"),
    ],
)
def test_bad_input_is_named(arguments, options, message):
    with pytest.raises(ValueError, match=message):
        speat_test(*arguments, **options)


def test_the_base_of_the_bad_option_cases_is_valid():
    assert np.isfinite(speat_test(*VALID, n_bootstrap=0, seed=0).effect_size)


def test_the_result_carries_the_association_scores_it_was_computed_from():
    """s(w) of every target, X then Y, recomputed with plain loops; they give d and are never serialised."""
    rng = np.random.default_rng(4)
    x, y, a, b = (rng.normal(size=(n, 5)) for n in (6, 5, 4, 7))

    def cosine(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    expected = [np.mean([cosine(w, v) for v in a]) - np.mean([cosine(w, v) for v in b]) for w in [*x, *y]]
    result = speat_test(x, y, a, b, num_permutations=100, seed=0, n_bootstrap=0)
    np.testing.assert_allclose(result.scores, expected, rtol=1e-12)
    assert result.effect_size == pytest.approx(effect_size(result.scores[:6], result.scores[6:]))
    assert "scores" not in result.to_dict() and SpeatResult.from_dict(result.to_dict()) == result


def naive_holm(p_values):
    """Holm by the book: step through the sorted p-values, scale each by the tests left, never step down."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [0.0] * len(p_values)
    largest_so_far = 0.0
    for rank, index in enumerate(order, start=1):
        largest_so_far = max(largest_so_far, (len(p_values) - rank + 1) * p_values[index])
        adjusted[index] = min(1.0, largest_so_far)
    return adjusted


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=12))
@settings(max_examples=200, deadline=None)
def test_holm_matches_a_loop_over_the_sorted_p_values(p_values):
    adjusted = holm_adjust(p_values)
    assert adjusted == pytest.approx(naive_holm(p_values), rel=1e-12, abs=0)
    assert all(raw <= holm <= 1.0 for raw, holm in zip(p_values, adjusted))


@pytest.mark.parametrize("p_values,expected", [
    ([0.03], [0.03]),  # one test: nothing to adjust
    ([0.01, 0.01, 0.04], [0.03, 0.03, 0.04]),  # ties get one value
    ([1.0, 0.2], [1.0, 0.4]),  # p = 1 stays 1
    ([0.4, 0.3, 0.001], [0.6, 0.6, 0.003]),  # monotone: 0.4 * 1 is raised to 0.3 * 2
    ([0.5, 0.6], [1.0, 1.0]),  # capped at 1
    ([], []),
])
def test_holm_by_hand(p_values, expected):
    assert holm_adjust(p_values) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_holm_refuses_what_is_not_a_p_value(bad):
    with pytest.raises(ValueError, match=r"p_values\[1\] must be a p-value in \[0, 1\], got"):
        holm_adjust([0.2, bad])
