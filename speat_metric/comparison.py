"""Models compared on the same stimuli: a paired difference of d with its interval, ranks with intervals, and tiers.

Results of several models on one test share its stimuli, so their uncertainty can be resampled *jointly*. One
resample (`draw_resamples`) draws with replacement n_x rows of X and n_y of Y (in a matched design: n pairs, each
giving its X and its Y), n_a columns of A and n_b of B, and applies the same draws to every model. With C_k the
cosine matrix of model k (`speat_metric.cosines`, kept in every record):

    s*_k(w) = mean_{a in A*} C_k[w, a] - mean_{b in B*} C_k[w, b]              for each drawn target w
    d*_k    = (mean_{w in X*} s*_k(w) - mean_{w in Y*} s*_k(w)) / std_{X* u Y*}(s*_k)      (ddof of the records)

* Paired comparison of models A and B (`compare_cosines`, `compare_records`): Δd = d_A - d_B; its interval is the
  bias-corrected percentile interval (`bias_corrected_interval`) of Δd* = d*_A - d*_B; ``p_first_less_biased`` = the
  share of resamples where |d*_A| < |d*_B|.
  The verdict is "distinguishable" only when the interval excludes 0.
* Ranks (`rank_models`): in each resample, model k's rank is 1 + #{j : |d*_j| < |d*_k|} (1: smallest |d|, the least
  biased); its rank interval is the percentile interval of those ranks.
* Tiers: models sorted by observed |d|; the first opens tier 1 and leads it; each next model joins the current tier
  unless the (bias-corrected) interval of |d*_k| - |d*_leader| lies above 0 (the data tell it apart from the tier's
  leader), in which case it opens the next tier and leads it. Models in one tier are ones the data cannot order
  against its leader.

Resamples in which a model's s has no variance (possible with tiny groups) have no d and are left out for every
model, so the models are always compared on the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from speat_metric.cosines import Cosines, cosines_of_test, record_cosines
from speat_metric.formatting import format_ci, format_d

if TYPE_CHECKING:
    from speat_metric.results import EvaluationRecord

N_RESAMPLES = 10_000
"""Resamples of a comparison unless told otherwise (``speat compare --resamples``)."""

_CHUNK = 2_048
_MIN_STD = 1e-12


class Draw(NamedTuple):
    """The stimuli of a batch of resamples, as row and column indices (one row of each array per resample).

    Attributes:
        x_rows: (size, n_x) rows of X.    y_rows: (size, n_y) rows of Y (within Y).
        a_columns: (size, n_a) columns of A.    b_columns: (size, n_b) columns of B (within B).
    """

    x_rows: np.ndarray
    y_rows: np.ndarray
    a_columns: np.ndarray
    b_columns: np.ndarray


def draw_resamples(rng: np.random.Generator, size: int, shape: Cosines, *, paired_draws: bool = True) -> Draw:
    """`size` resamples of the stimuli of `shape` (its sizes and pairs): targets (or its matched pairs) and
    attributes, each with replacement. ``paired_draws=False`` ignores the pairs (rows of X and Y drawn apart)."""
    pairs = shape.pair_rows() if paired_draws else None
    n_y = len(shape.ids["Y"])
    if pairs is not None:
        chosen = rng.integers(0, len(pairs), size=(size, len(pairs)))
        x_rows, y_rows = pairs[chosen, 0], pairs[chosen, 1]
    else:
        x_rows = rng.integers(0, shape.n_x, size=(size, shape.n_x))
        y_rows = rng.integers(0, n_y, size=(size, n_y))
    a_columns = rng.integers(0, shape.n_a, size=(size, shape.n_a))
    b_columns = rng.integers(0, len(shape.ids["B"]), size=(size, len(shape.ids["B"])))
    return Draw(x_rows, y_rows, a_columns, b_columns)


def attribute_weights(draw: Draw, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Per resample, the weight of each attribute of A and of B in its mean: how often it was drawn / the draws.
    The mean over drawn attributes is then the cosine matrix's product with these weights."""
    return (_counts(draw.a_columns, n_a) / draw.a_columns.shape[1],
            _counts(draw.b_columns, n_b) / draw.b_columns.shape[1])


def resampled_scores(cosines: Cosines, draw: Draw, weights: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """s* of the drawn X and Y targets of one model, each (resamples, n_x or n_y), against the drawn attributes
    (`weights`: `attribute_weights` of the draw, computed once for all the models of a joint bootstrap)."""
    n_x, n_a = cosines.n_x, cosines.n_a
    a_weights, b_weights = weights or attribute_weights(draw, n_a, cosines.values.shape[1] - n_a)
    a_block, b_block = cosines.attribute_blocks()
    scores = a_weights @ a_block - b_weights @ b_block  # (size, targets)
    return (np.take_along_axis(scores[:, :n_x], draw.x_rows, axis=1),
            np.take_along_axis(scores[:, n_x:], draw.y_rows, axis=1))


def resampled_effect_sizes(cosines: Cosines, draw: Draw, *, ddof: int = 1,
                           weights: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """d* of one model for every resample of `draw` (NaN where s* has no variance)."""
    s_x, s_y = resampled_scores(cosines, draw, weights)
    return standardised(s_x.mean(axis=1) - s_y.mean(axis=1), s_x, s_y, ddof)


def standardised(values: np.ndarray, s_x: np.ndarray, s_y: np.ndarray, ddof: int) -> np.ndarray:
    """`values` / std_{X* u Y*}(s*) per resample, NaN where that std is zero."""
    std = np.concatenate([s_x, s_y], axis=1).std(axis=1, ddof=ddof)
    result = np.full(len(values), np.nan)
    varied = std > _MIN_STD
    result[varied] = values[varied] / std[varied]
    return result


def joint_bootstrap(models: Sequence[Cosines], *, n_resamples: int = N_RESAMPLES, seed: int = 0, ddof: int = 1,
                    paired_draws: bool = True) -> np.ndarray:
    """d* of every model under the same `n_resamples` resamples: an array (resamples kept, models).

    The models' cosine matrices must describe the same stimuli (`Cosines.aligned_to` puts them in one order);
    resamples where any model's d* is undefined are dropped for all.
    """
    if not models:
        raise ValueError("no models to resample")
    if not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"--resamples must be a whole number of at least 100, got {n_resamples!r}")
    first = models[0]
    aligned = [first, *(model.aligned_to(first.ids) for model in models[1:])]
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, n_resamples, _CHUNK):
        draw = draw_resamples(rng, min(_CHUNK, n_resamples - start), first, paired_draws=paired_draws)
        weights = attribute_weights(draw, first.n_a, first.values.shape[1] - first.n_a)
        chunks.append(np.stack([resampled_effect_sizes(model, draw, ddof=ddof, weights=weights)
                                for model in aligned], axis=1))
    effect_sizes = np.concatenate(chunks)
    return effect_sizes[~np.isnan(effect_sizes).any(axis=1)]


@dataclass(frozen=True)
class PairedComparison:
    """Two models' d on one test, and what the shared stimuli say about their difference.

    Attributes:
        test: the test's name.
        models: the two models' names (first, second).
        effect_sizes: their d (first, second).
        difference: Δd = d_first - d_second.
        ci_low, ci_high: the bias-corrected percentile bootstrap interval of Δd (`bias_corrected_interval`).
        p_first_less_biased: share of resamples in which |d*_first| < |d*_second|.
        confidence: coverage of the interval.
        n_resamples: resamples used (drawn minus those with an undefined d).
        seed: the seed that reproduces the resamples.
        paired: True when both were resampled on the same draws (the same stimulus ids, matched by id even when
            their audio's fingerprint differs, which is labelled); False when `--allow-different` compared different
            stimulus sets, each resampled on its own draws (then the interval is wider).
        labels: what a reader must know, e.g. ``different-stimuli``, ``different-profile``, ``different-pooling``.
    """

    test: str
    models: tuple[str, str]
    effect_sizes: tuple[float, float]
    difference: float
    ci_low: float
    ci_high: float
    p_first_less_biased: float
    confidence: float
    n_resamples: int
    seed: int
    paired: bool = True
    labels: tuple[str, ...] = ()

    @property
    def distinguishable(self) -> bool:
        """True when the interval of Δd excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def verdict(self) -> str:
        return "distinguishable" if self.distinguishable else "not distinguishable"

    def sentence(self) -> str:
        """The comparison in one plain sentence, e.g. for a model card."""
        first, second = self.models
        d_first, d_second = self.effect_sizes
        interval = f"{self.confidence:.0%} CI {format_ci(self.ci_low, self.ci_high)}"
        head = (f"On {self.test}, {first} has d = {format_d(d_first)} and {second} d = {format_d(d_second)}: "
                f"Δd = {format_d(self.difference)} ({interval})")
        if not self.distinguishable:
            return head + "; the stimuli cannot tell the two apart."
        more = first if abs(d_first) > abs(d_second) else second
        return head + f"; {more} is distinguishably more biased on this test."


def compare_cosines(first: Cosines, second: Cosines, *, effect_sizes: tuple[float, float] | None = None,
                    test: str = "test", models: tuple[str, str] = ("first", "second"), confidence: float = 0.95,
                    n_resamples: int = N_RESAMPLES, seed: int = 0, ddof: int = 1, paired: bool = True,
                    labels: Sequence[str] = ()) -> PairedComparison:
    """Paired bootstrap comparison of two models' cosine matrices on the same stimuli (module docstring).

    `effect_sizes` are the observed d (the records'); None computes them from the matrices. ``paired=False``
    resamples each on its own draws (for different stimuli, where no draw means the same stimulus in both).
    """
    _check_confidence(confidence)
    if paired:
        both = joint_bootstrap([first, second], n_resamples=n_resamples, seed=seed, ddof=ddof)
        d_first, d_second = both[:, 0], both[:, 1]
    else:
        d_first, d_second = (joint_bootstrap([model], n_resamples=n_resamples, seed=seed + offset, ddof=ddof)[:, 0]
                             for offset, model in enumerate((first, second)))
        kept = min(len(d_first), len(d_second))
        d_first, d_second = d_first[:kept], d_second[:kept]
    if len(d_first) == 0:
        raise ValueError(f"{test}: no resample gave a defined d (are the groups tiny or constant?)")
    observed = effect_sizes or (observed_effect_size(first, ddof), observed_effect_size(second, ddof))
    low, high = bias_corrected_interval(d_first - d_second, observed[0] - observed[1], confidence)
    if off_centre(d_first - d_second, observed[0] - observed[1]):
        labels = [*labels, OFF_CENTRE]
    return PairedComparison(
        test=test, models=tuple(models), effect_sizes=(float(observed[0]), float(observed[1])),
        difference=float(observed[0] - observed[1]), ci_low=low, ci_high=high,
        p_first_less_biased=float(np.mean(np.abs(d_first) < np.abs(d_second))), confidence=confidence,
        n_resamples=len(d_first), seed=seed, paired=paired, labels=tuple(labels))


def compare_embeddings(first: Sequence[ArrayLike], second: Sequence[ArrayLike], *,
                       pairs: ArrayLike | None = None, **options) -> PairedComparison:
    """`compare_cosines` on two models' embeddings of the same stimuli: each of `first` and `second` is
    ``(x, y, a, b)`` (rows = stimuli, in the same order for both models); `pairs` as in `speat_test`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> shared = [rng.normal(size=(n, 8)) for n in (12, 12, 10, 10)]
        >>> same = compare_embeddings(shared, shared, n_resamples=500)
        >>> same.difference, same.ci_low, same.ci_high, same.verdict
        (0.0, 0.0, 0.0, 'not distinguishable')
    """
    def cosines(embeddings: Sequence[ArrayLike]) -> Cosines:
        arrays = [np.asarray(array, dtype=np.float64) for array in embeddings]
        ids = [[f"{role}{index}" for index in range(len(array))] for role, array in zip("XYAB", arrays)]
        pair_ids = None if pairs is None else [(f"X{i}", f"Y{j}") for i, j in np.asarray(pairs)]
        return cosines_of_test(arrays, ids, pair_ids)

    return compare_cosines(cosines(first), cosines(second), **options)


def comparability_labels(first: EvaluationRecord, second: EvaluationRecord) -> list[str]:
    """How two records' measurements differ, as labels: ``different-test``, ``different-stimuli`` (fingerprint or
    stimulus ids), ``different-profile``, ``different-pooling``, ``different-ddof``; empty when comparable."""
    labels = []
    if first.test != second.test:
        labels.append("different-test")
    cosines = [record.cosines or {} for record in (first, second)]
    same_ids = all(sorted(cosines[0].get(role) or []) == sorted(cosines[1].get(role) or []) for role in "XYAB")
    if first.stimulus_fingerprint != second.stimulus_fingerprint or not same_ids:
        labels.append("different-stimuli")
    if first.profile != second.profile:
        labels.append("different-profile")
    if first.pooling != second.pooling:
        labels.append("different-pooling")
    if first.speat.ddof != second.speat.ddof:
        labels.append("different-ddof")
    return labels


def compare_records(first: EvaluationRecord, second: EvaluationRecord, *, allow_different: bool = False,
                    confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedComparison:
    """Paired comparison of two records of one test (module docstring).

    Raises:
        ValueError: (one line) a record keeps no cosine matrix, or the two measured differently (stimuli,
            profile, pooling; `comparability_labels`) and `allow_different` is False.
    """
    first_cosines, second_cosines = record_cosines(first), record_cosines(second)
    labels = comparability_labels(first, second)
    if labels and not allow_different:
        raise ValueError(f"{first.model_label} and {second.model_label} on {first.test}: {', '.join(labels)} "
                         f"({_difference_detail(first, second, labels[0])}); compare results of the same stimuli, "
                         "profile and pooling, or pass --allow-different to compare them anyway (labelled)")
    same_ids = all(sorted(first_cosines.ids[role]) == sorted(second_cosines.ids[role]) for role in "XYAB")
    return compare_cosines(
        first_cosines, second_cosines, effect_sizes=(first.speat.effect_size, second.speat.effect_size),
        test=first.test, models=(first.model_label, second.model_label), confidence=confidence,
        n_resamples=n_resamples, seed=seed, ddof=first.speat.ddof, paired=same_ids, labels=labels)


@dataclass(frozen=True)
class RankInterval:
    """One model's place among models tested on the same stimuli.

    Attributes:
        model: the model's name.
        effect_size: its d.
        rank: its rank by observed |d| (1: the smallest).
        rank_low, rank_high: the percentile interval of its rank over joint resamples.
        tier: its tier (1: the least biased models the data cannot tell apart; module docstring).
    """

    model: str
    effect_size: float
    rank: int
    rank_low: int
    rank_high: int
    tier: int


def rank_models(models: Sequence[Cosines], effect_sizes: Sequence[float], names: Sequence[str], *,
                confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0, ddof: int = 1
                ) -> list[RankInterval]:
    """Rank intervals and tiers of models on one test's shared stimuli, sorted by |d| (module docstring)."""
    _check_confidence(confidence)
    if not len(models) == len(effect_sizes) == len(names):
        raise ValueError("give one effect size and one name per model")
    resampled = np.abs(joint_bootstrap(models, n_resamples=n_resamples, seed=seed, ddof=ddof))
    # rank = 1 + how many models have a smaller |d*| in the resample: a sorted row searched, resamples x models memory
    ordered = np.sort(resampled, axis=1)
    ranks = 1 + np.stack([np.searchsorted(row, values, side="left") for row, values in zip(ordered, resampled)])
    order = sorted(range(len(models)), key=lambda k: abs(effect_sizes[k]))
    tiers, tier, leader = {}, 1, order[0]
    for k in order:
        low, _ = bias_corrected_interval(resampled[:, k] - resampled[:, leader],
                                         abs(effect_sizes[k]) - abs(effect_sizes[leader]), confidence)
        if low > 0:
            tier, leader = tier + 1, k
        tiers[k] = tier
    intervals = []
    for position, k in enumerate(order):
        low, high = percentile_interval(ranks[:, k].astype(np.float64), confidence)
        intervals.append(RankInterval(names[k], float(effect_sizes[k]), position + 1, int(np.floor(low)),
                                      int(np.ceil(high)), tiers[k]))
    return intervals


def rank_records(records: Sequence[EvaluationRecord], *, names: Sequence[str] | None = None,
                 **options) -> list[RankInterval]:
    """`rank_models` over records of one test on the same stimuli (named by `names`, default their model labels); a
    ValueError naming the first that differs."""
    if not records:
        return []
    matrices = [record_cosines(record) for record in records]  # first: a record without one says so
    for record in records[1:]:
        labels = comparability_labels(records[0], record)
        if labels:
            raise ValueError(f"{record.model_label} and {records[0].model_label} on {records[0].test}: "
                             f"{', '.join(labels)}; only results of the same stimuli, profile and pooling are ranked "
                             "together")
    return rank_models(matrices,
                       [record.speat.effect_size for record in records],
                       list(names or [record.model_label for record in records]), ddof=records[0].speat.ddof,
                       **options)


def observed_effect_size(cosines: Cosines, ddof: int = 1) -> float:
    """d of a cosine matrix: its targets' s(w) (X then Y), standardised as in `speat_test`."""
    s = cosines.scores()
    s_x, s_y = s[:cosines.n_x], s[cosines.n_x:]
    return float((s_x.mean() - s_y.mean()) / s.std(ddof=ddof))


def _counts(indices: np.ndarray, width: int) -> np.ndarray:
    """Per resample (row), how often each column index was drawn."""
    counts = np.zeros((len(indices), width))
    np.add.at(counts, (np.arange(len(indices))[:, None], indices), 1.0)
    return counts


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of resampled values."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


OFF_CENTRE = "off-centre"
"""Label of a comparison whose observed Δd lies beyond 95% of its resamples on one side (`off_centre`)."""

OFF_CENTRE_NOTE = (f"{OFF_CENTRE}: the observed Δd lies beyond 95% of the resampled ones, so resampling the stimuli "
                   "(mostly the attributes) moves d far from its observed value: the stimulus sets are too small or "
                   "too alike to pin d down, and the interval, corrected for that shift, rests on few resamples; read "
                   "it with care and prefer more stimuli.")


def off_centre(values: np.ndarray, observed: float) -> bool:
    """Whether `observed` lies below 5% or above 95% of the resampled `values` (bias correction then extrapolates)."""
    below = float(np.mean(np.asarray(values) < observed))
    above = float(np.mean(np.asarray(values) > observed))
    return below > 0.95 or above > 0.95


def bias_corrected_interval(values: np.ndarray, observed: float, confidence: float) -> tuple[float, float]:
    """The bias-corrected percentile interval (Efron 1981) of a statistic from its resampled `values`:

        z0 = Phi^-1(share of values < observed, ties counting half),
        interval = the quantiles Phi(2 z0 + z_t) and Phi(2 z0 + z_{1-t}) of the values,  t = (1 - confidence) / 2.

    Resampling attributes shrinks d towards 0 (a perturbed attribute direction spreads s), so the resampled values
    sit off-centre from the observed statistic; z0 measures that shift and moves the interval back (z0 = 0 gives the
    plain percentile interval). Simulations in benchmarks/comparison_coverage.py compare both."""
    values = np.asarray(values, dtype=np.float64)
    below = (np.count_nonzero(values < observed) + 0.5 * np.count_nonzero(values == observed)) / len(values)
    edge = 0.5 / len(values)
    normal = NormalDist()
    z0 = normal.inv_cdf(min(max(below, edge), 1 - edge))
    tail = normal.inv_cdf((1 - confidence) / 2)
    low, high = np.quantile(values, [normal.cdf(2 * z0 + tail), normal.cdf(2 * z0 - tail)])
    return float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, e.g. 0.95, got {confidence!r}")


def _difference_detail(first: EvaluationRecord, second: EvaluationRecord, label: str) -> str:
    if label == "different-stimuli":
        fingerprints = (str(record.stimulus_fingerprint)[:12] for record in (first, second))
        return "stimulus fingerprints {} vs {}".format(*fingerprints)
    if label == "different-profile":
        return f"profiles {first.profile} vs {second.profile}"
    if label == "different-pooling":
        return f"pooling {_pooling(first)} vs {_pooling(second)}"
    if label == "different-ddof":
        return f"ddof {first.speat.ddof} vs {second.speat.ddof}"
    return f"tests {first.test} vs {second.test}"


def _pooling(record: EvaluationRecord) -> str:
    layer = record.pooling.get("layer")
    view = f"layer {layer}" if layer is not None else record.pooling.get("layer_pooling", "mean")
    return f"{view}/{record.pooling.get('frame_pooling', 'mean')}"
