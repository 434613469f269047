"""The SpEAT statistics: effect size, permutation p-value and bootstrap confidence interval.

For target sets X, Y and attribute sets A, B of embeddings (rows = stimuli):

    s(w)  = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    d     = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std_{w in X u Y} s(w)          (ddof=1 by default)
    T     = sum_{x in X} s(x) - sum_{y in Y} s(y)
    p     = P(T_i >= T) over re-partitions i of X u Y into groups of sizes |X|, |Y|     (alternative="greater")

s is computed once (cosines as one matrix-vector product); everything after works on the vector s. Because
``T = 2 * sum_X s - sum_{X u Y} s``, a partition's statistic is fixed by the sum of s over its X part, so the
permutation test only ever draws subsets.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from speat_metric.defaults import NUM_PERMUTATIONS
from speat_metric.results import SpeatResult
from speat_metric.version import __version__

ALTERNATIVES = ("greater", "less", "two-sided")

# Fixed chunk sizes: chunk i of a run always draws from child seed i, so results are bit-for-bit reproducible no
# matter how many threads run the chunks. Memory stays at a few MB whatever `num_permutations` is.
_PERMUTATION_CHUNK = 65_536
_ENUMERATION_CHUNK = 65_536
_BOOTSTRAP_CHUNK = 4_096

# Relative tolerance for "numerically distinct but theoretically equal" statistics: summing the same values in a
# different order can differ in the last bits, and the observed partition must count as a tie with itself.
_TIE_TOLERANCE = 64 * np.finfo(np.float64).eps

# Below this standard deviation of s (s lies in [-2, 2], so the scale is absolute) d is undefined.
_MIN_STD = 1e-12


def speat_test(
    x: ArrayLike,
    y: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    *,
    num_permutations: int = NUM_PERMUTATIONS,
    seed: int | None = None,
    alternative: str = "greater",
    confidence: float = 0.95,
    n_bootstrap: int = 10_000,
    pairs: ArrayLike | None = None,
    ddof: int = 1,
    n_threads: int | None = None,
) -> SpeatResult:
    """Run a Speech Embedding Association Test on four sets of embeddings.

    Args:
        x: target set X, shape (n_x, dim), e.g. embeddings of female speakers.
        y: target set Y, shape (n_y, dim), e.g. male speakers. n_x and n_y may differ.
        a: attribute set A, shape (n_a, dim), e.g. pleasant speech.
        b: attribute set B, shape (n_b, dim), e.g. unpleasant speech.
        num_permutations: budget of partitions. When all C(n_x + n_y, n_x) partitions fit in it they are all
            enumerated and the p-value is exact; otherwise this many are drawn at random and
            p = (1 + #(T_i >= T)) / (1 + num_permutations).
        seed: makes the permutations and the bootstrap reproducible bit for bit. None draws a fresh seed, which is
            recorded in the result so the run can still be repeated.
        alternative: ``"greater"`` (X closer to A than Y is), ``"less"`` or ``"two-sided"``.
        confidence: coverage of the percentile bootstrap interval for d.
        n_bootstrap: bootstrap resamples of the targets; 0 skips the interval (``ci_low = ci_high = None``).
        pairs: for matched designs, an (n, 2) array of (row in x, row in y) pairs covering every row of x and y
            exactly once; the bootstrap then resamples pairs instead of rows.
        ddof: 1 for the sample standard deviation (SpEAT, Caliskan et al.), 0 for the population one (WEFE).
        n_threads: threads for the permutation chunks (default: all CPUs, at most 8). Does not change results.

    Returns:
        A `SpeatResult` with the effect size, p-value, interval and the evidence behind them.

    Raises:
        ValueError: when an input is not a finite 2-D array with at least 2 rows, dimensions disagree, a row is
            all zeros, s has no variance, or an option is out of range. The message names the argument.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(1, 1, (8, 5)), rng.normal(-1, 1, (9, 5))
        >>> x, y = rng.normal(0.5, 1, (6, 5)), rng.normal(-0.5, 1, (7, 5))
        >>> result = speat_test(x, y, a, b, seed=1)
        >>> result.exact, result.num_permutations, result.effect_size > 0.8
        (True, 1716, True)
    """
    x, y, a, b = (_as_embeddings(value, name) for value, name in ((x, "x"), (y, "y"), (a, "a"), (b, "b")))
    _check_same_dimension(x=x, y=y, a=a, b=b)
    _check_options(num_permutations, alternative, confidence, n_bootstrap, ddof)
    n_x, n_y = len(x), len(y)
    pair_index = None if pairs is None else _as_pairs(pairs, n_x, n_y)
    if seed is None:
        seed = secrets.randbits(32)
    elif not _is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    seed = int(seed)

    s = association_scores(np.concatenate([x, y]), a, b)
    d = effect_size(s[:n_x], s[n_x:], ddof=ddof)
    permutation_seed, bootstrap_seed = np.random.SeedSequence(seed).spawn(2)
    p_value, used, exact = permutation_p_value(
        s, n_x, num_permutations=num_permutations, alternative=alternative, seed=permutation_seed,
        n_threads=n_threads,
    )
    ci_low, ci_high = bootstrap_interval(
        s[:n_x], s[n_x:], confidence=confidence, n_bootstrap=n_bootstrap, pairs=pair_index, ddof=ddof,
        seed=bootstrap_seed,
    )
    return SpeatResult(
        effect_size=d,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        n_x=n_x,
        n_y=n_y,
        n_a=len(a),
        n_b=len(b),
        num_permutations=used,
        exact=exact,
        seed=seed,
        alternative=alternative,
        test_statistic=float(s[:n_x].sum() - s[n_x:].sum()),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        paired=pair_index is not None,
        ddof=ddof,
        speat_version=__version__,
        scores=s,
    )


def association_scores(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w) = mean_a cos(w, a) - mean_b cos(w, b) for every row w, as one matrix-vector product.

    The mean of cosines with the rows of A equals the dot product of the unit vector of w with the mean unit
    vector of A, so each target costs one dot product, whatever the size of A and B. Computed in float64 whatever
    the input dtype, so scores recorded beside a result are the ones its d was computed from.
    """
    w, a, b = (np.asarray(array, dtype=np.float64) for array in (w, a, b))
    direction = _unit_rows(a).mean(axis=0) - _unit_rows(b).mean(axis=0)
    return _unit_rows(w) @ direction


def effect_size(s_x: np.ndarray, s_y: np.ndarray, *, ddof: int = 1) -> float:
    """d = (mean s_x - mean s_y) / std(s_x u s_y); raises ValueError when that std is zero."""
    std = float(np.std(np.concatenate([s_x, s_y]), ddof=ddof))
    if not std > _MIN_STD:
        raise ValueError(
            "the association scores s(w) of X and Y have zero variance, so the effect size d is undefined; "
            "the target embeddings relate identically to A and B (are some targets duplicates or constant?)"
        )
    return float((s_x.mean() - s_y.mean()) / std)


def partitions_tested(n_x: int, n_y: int, num_permutations: int) -> tuple[int, bool]:
    """How many partitions of X∪Y a permutation test of this size goes through, and whether that is all of them
    (exact: there are at most `num_permutations`) rather than a random sample of `num_permutations`.

    Example:
        >>> partitions_tested(4, 3, 1_000_000), partitions_tested(12, 12, 1000)
        ((35, True), (1000, False))
    """
    every = math.comb(n_x + n_y, n_x)
    return (every, True) if every <= num_permutations else (num_permutations, False)


def permutation_p_value(
    s: np.ndarray,
    n_x: int,
    *,
    num_permutations: int,
    alternative: str = "greater",
    seed: np.random.SeedSequence | int | None = None,
    n_threads: int | None = None,
) -> tuple[float, int, bool]:
    """P-value of T = sum_X s - sum_Y s, where X is the first ``n_x`` entries of ``s``.

    Returns ``(p_value, partitions_used, exact)``. Partitions are enumerated when there are at most
    ``num_permutations`` of them, sampled uniformly otherwise.
    """
    n = len(s)
    observed = float(s[:n_x].sum())
    tolerance = _TIE_TOLERANCE * n * float(np.abs(s).max())
    n_partitions, enumerate_all = partitions_tested(n_x, n - n_x, num_permutations)
    seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    if enumerate_all:
        counts = [_count_extremes(sums, observed, tolerance) for sums in _enumerate_subset_sums(s, n_x)]
        at_least, at_most = np.sum(counts, axis=0)
        p_greater, p_less = at_least / n_partitions, at_most / n_partitions
        used, exact = n_partitions, True
    else:
        chunks = [min(_PERMUTATION_CHUNK, num_permutations - start)
                  for start in range(0, num_permutations, _PERMUTATION_CHUNK)]

        def count_chunk(job: tuple[int, np.random.SeedSequence]) -> tuple[int, int]:
            size, chunk_seed = job
            return _count_extremes(_random_subset_sums(s, n_x, size, chunk_seed), observed, tolerance)

        workers = n_threads or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            counts = list(pool.map(count_chunk, zip(chunks, seed.spawn(len(chunks)))))
        at_least, at_most = np.sum(counts, axis=0)
        # The +1 counts the observed partition, which keeps a sampled p-value valid (never 0).
        p_greater = (1 + at_least) / (1 + num_permutations)
        p_less = (1 + at_most) / (1 + num_permutations)
        used, exact = num_permutations, False
    if alternative == "greater":
        p_value = p_greater
    elif alternative == "less":
        p_value = p_less
    else:
        p_value = min(1.0, 2 * min(p_greater, p_less))
    return float(p_value), used, exact


class HolmStep(NamedTuple):
    """One test's Holm-adjusted p-value, and which raw p-value set it (to tell whether it inherits a bound).

    Attributes:
        p_value: the adjusted p-value.
        source: index (in the input) of the raw p-value whose multiple ``multiplier * p`` is the adjusted value; the
            test itself unless a smaller p earlier in the step-down set it (monotonicity).
        multiplier: ``m - j + 1`` of that raw p-value (``j``: its 1-based rank from the smallest).
    """

    p_value: float
    source: int
    multiplier: int


def holm_step_down(p_values: Sequence[float]) -> list[HolmStep]:
    """Holm-Bonferroni adjusted p-values, in input order, each with the raw p-value that set it.

    With the m raw p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted p-value of the test of rank i is

        p~_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))

    (Holm 1979, as in statsmodels' ``multipletests(method="holm")``): monotone in the raw p-values, at least the raw
    p, capped at 1. Rejecting where ``p~ <= alpha`` controls the family-wise error rate at alpha under any
    dependence. Tied raw p-values get the same adjusted value whatever order the sort leaves them in. An adjusted p
    is a bound when the raw p that set it (`HolmStep.source`) is one: ``multiplier`` times the bound.

    Raises:
        ValueError: a p-value that is not a number in [0, 1].

    Example:
        >>> [round(step.p_value, 6) for step in holm_step_down([0.04, 0.01, 0.03])]
        [0.06, 0.03, 0.06]
        >>> holm_step_down([0.04, 0.01, 0.03])[0]
        HolmStep(p_value=0.06, source=2, multiplier=2)
    """
    values = [float(p) for p in p_values]
    for index, p in enumerate(values):
        if not 0.0 <= p <= 1.0:  # also catches NaN
            raise ValueError(f"p_values[{index}] must be a p-value in [0, 1], got {p!r}")
    count = len(values)
    steps: list[HolmStep] = [HolmStep(math.nan, -1, 0)] * count
    running = HolmStep(0.0, -1, 0)
    for rank, index in enumerate(sorted(range(count), key=values.__getitem__)):
        multiplier = count - rank
        scaled = multiplier * values[index]
        if scaled > running.p_value or running.source < 0:  # strictly larger: a tie keeps the earlier source
            running = HolmStep(scaled, index, multiplier)
        steps[index] = running._replace(p_value=min(1.0, running.p_value))
    return steps


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order: ``min(1, max_{j <= i} (m - j + 1) * p_(j))`` for the test
    of rank i among the m raw p-values sorted ascending (`holm_step_down` has the details).

    Example:
        >>> [round(p, 6) for p in holm_adjust([0.04, 0.01, 0.03])], holm_adjust([0.2]), holm_adjust([0.6, 0.7])
        ([0.06, 0.03, 0.06], [0.2], [1.0, 1.0])
    """
    return [step.p_value for step in holm_step_down(p_values)]


def bootstrap_interval(
    s_x: np.ndarray,
    s_y: np.ndarray,
    *,
    confidence: float,
    n_bootstrap: int,
    pairs: np.ndarray | None = None,
    ddof: int = 1,
    seed: np.random.SeedSequence | int | None = None,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval for d, resampling the targets (or matched pairs) with replacement.

    s(w) depends only on w, A and B, so resampling targets means resampling entries of s. Resamples whose s has
    no variance (possible with tiny groups) have no d and are left out.
    """
    if n_bootstrap == 0:
        return None, None
    rng = np.random.default_rng(seed)
    estimates = []
    for start in range(0, n_bootstrap, _BOOTSTRAP_CHUNK):
        size = min(_BOOTSTRAP_CHUNK, n_bootstrap - start)
        if pairs is None:
            x_rows = rng.integers(0, len(s_x), size=(size, len(s_x)))
            y_rows = rng.integers(0, len(s_y), size=(size, len(s_y)))
        else:
            chosen = rng.integers(0, len(pairs), size=(size, len(pairs)))
            x_rows, y_rows = pairs[chosen, 0], pairs[chosen, 1]
        x_sample, y_sample = s_x[x_rows], s_y[y_rows]
        std = np.concatenate([x_sample, y_sample], axis=1).std(axis=1, ddof=ddof)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (x_sample.mean(axis=1) - y_sample.mean(axis=1)) / std
        estimates.append(d[std > _MIN_STD])
    estimates = np.concatenate(estimates)
    if len(estimates) == 0:
        return None, None
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _count_extremes(sums: np.ndarray, observed: float, tolerance: float) -> tuple[int, int]:
    """How many subset sums are >= and <= the observed one, ties within `tolerance` counting on both sides."""
    return int(np.count_nonzero(sums >= observed - tolerance)), int(np.count_nonzero(sums <= observed + tolerance))


def _enumerate_subset_sums(s: np.ndarray, k: int) -> Iterator[np.ndarray]:
    """Sums of s over every k-subset of its indices, in chunks of bounded size."""
    combinations = itertools.combinations(range(len(s)), k)
    row = np.dtype((np.intp, k))
    while True:
        subsets = np.fromiter(itertools.islice(combinations, _ENUMERATION_CHUNK), dtype=row)
        if len(subsets) == 0:
            return
        yield s[subsets.reshape(len(subsets), k)].sum(axis=1)


def _random_subset_sums(s: np.ndarray, k: int, size: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Sums of s over `size` independent, uniformly random k-subsets (Knuth's selection sampling, Algorithm S).

    Element i joins the subset with probability needed/remaining, drawn as an exact bounded integer. One pass
    over the elements handles every subset of the chunk at once, with no sorting, gathering or scattering.
    """
    rng = np.random.default_rng(seed)
    n = len(s)
    index_type = np.int16 if n <= np.iinfo(np.int16).max else np.int64
    still_needed = np.full(size, k, dtype=index_type)
    sums = np.zeros(size)
    for i in range(n):
        taken = rng.integers(0, n - i, size=size, dtype=index_type) < still_needed
        still_needed -= taken
        sums += taken * s[i]
    return sums


def _as_embeddings(value: ArrayLike, name: str) -> np.ndarray:
    """Validate one set of embeddings: a finite 2-D float array with >= 2 rows and no all-zero row."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a 2-D array of floats (rows = stimuli): {error}") from None
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows = stimuli, columns = dimensions), got shape {array.shape}")
    if len(array) < 2:
        raise ValueError(f"{name} needs at least 2 rows (stimuli), got {len(array)}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has rows of dimension 0")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if len(bad):
        raise ValueError(f"{name} contains NaN or infinite values in row(s) {_list_rows(bad)}")
    zero = np.flatnonzero(~array.any(axis=1))
    if len(zero):
        raise ValueError(
            f"{name} has all-zero row(s) {_list_rows(zero)}: the cosine similarity of a zero vector is undefined"
        )
    return array


def _check_same_dimension(**sets: np.ndarray) -> None:
    dimensions = {name: array.shape[1] for name, array in sets.items()}
    if len(set(dimensions.values())) > 1:
        described = ", ".join(f"{name}: {dim}" for name, dim in dimensions.items())
        raise ValueError(f"x, y, a and b must have the same embedding dimension, got {described}")


def _check_options(num_permutations: int, alternative: str, confidence: float, n_bootstrap: int, ddof: int) -> None:
    if not _is_integer(num_permutations) or num_permutations < 1:
        raise ValueError(f"num_permutations must be an integer >= 1, got {num_permutations!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(map(repr, ALTERNATIVES))}, got {alternative!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, e.g. 0.95, got {confidence!r}")
    if not _is_integer(n_bootstrap) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0 (0 skips the interval), got {n_bootstrap!r}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 1 (sample std, SpEAT) or 0 (population std, WEFE), got {ddof!r}")


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_pairs(pairs: ArrayLike, n_x: int, n_y: int) -> np.ndarray:
    """Validate matched pairs: (row in x, row in y), each row of x and of y in exactly one pair."""
    index = np.asarray(pairs)
    if index.ndim != 2 or index.shape[1] != 2 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"pairs must be an (n, 2) array of integer row indices (row in x, row in y), got {index!r}")
    if n_x != n_y or len(index) != n_x:
        raise ValueError(
            f"pairs must match every row of x and y once: x has {n_x} rows, y has {n_y}, pairs has {len(index)}"
        )
    for column, name in ((0, "x"), (1, "y")):
        rows = index[:, column]
        if rows.min() < 0 or rows.max() >= n_x or len(np.unique(rows)) != n_x:
            raise ValueError(f"pairs column {column} must use every row of {name} (0..{n_x - 1}) exactly once")
    return index


def _list_rows(rows: Sequence[int] | np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(row)) for row in rows[:limit])
    return shown + (f" ... ({len(rows)} in all)" if len(rows) > limit else "")
