"""What drives one result's d, and where in the model it lives, read from records.

* Single-concept associations (`concept_associations`): the four mean cosines of a test, X with A, X with B, Y with
  A and Y with B, and each group's share of d in d's own units,

      g_X = mean_{x in X} s(x) / std_{X u Y}(s),    g_Y = mean_{y in Y} s(y) / std_{X u Y}(s),    d = g_X - g_Y,

  with bias-corrected percentile bootstrap intervals over the same resamples of targets and attributes as a comparison
  (`speat_metric.comparison`). g_X > 0: X sits nearer A than B; a d carried by one group shows one g far from 0.
* Leave-one-speaker-out (`leave_one_out`): d recomputed without each target in turn (each target of the study's
  tests is one speaker), from the record's s(w); the largest change, and the speakers whose removal flips d's sign.
* Where bias lives (`layer_profile`, `layer_sentence`): d per layer with its interval, from the records of
  ``--pooling per-layer``, and a sentence naming the layers of smallest and largest |d|.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from speat_metric.comparison import (
    N_RESAMPLES,
    bias_corrected_interval,
    draw_resamples,
    resampled_scores,
    standardised,
)
from speat_metric.cosines import Cosines, record_cosines
from speat_metric.formatting import format_ci, format_d

if TYPE_CHECKING:
    from speat_metric.results import EvaluationRecord

_CHUNK = 2_048


@dataclass(frozen=True)
class ConceptAssociations:
    """The single-concept associations of one test (module docstring).

    Attributes:
        mean_cosines: ``{"XA": mean cos(X, A), "XB": ..., "YA": ..., "YB": ...}``.
        group_effects: ``{"X": g_X, "Y": g_Y}``; their difference is d.
        intervals: ``{"X": (low, high), "Y": (low, high)}``, bias-corrected bootstrap intervals of g_X and g_Y.
        confidence: coverage of the intervals.
    """

    mean_cosines: dict[str, float]
    group_effects: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confidence: float

    def sentence(self, groups: dict[str, str]) -> str:
        """Which group carries the effect, in words (`groups`: a record's group names by role)."""
        parts = []
        for role in "XY":
            low, high = self.intervals[role]
            towards = (f"nearer {groups['A']}" if low > 0 else f"nearer {groups['B']}" if high < 0
                       else f"no nearer {groups['A']} than {groups['B']}")
            parts.append(f"{groups[role]} speech is {towards} (g = {format_d(self.group_effects[role])}, "
                         f"{self.confidence:.0%} CI {format_ci(low, high)})")
        return "; ".join(parts) + "."


def concept_associations(cosines: Cosines, *, ddof: int = 1, confidence: float = 0.95,
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> ConceptAssociations:
    """The four mean cosines and the two group effects of a test, with bootstrap intervals (module docstring)."""
    values, n_x, n_a = cosines.values, cosines.n_x, cosines.n_a
    blocks = {"XA": values[:n_x, :n_a], "XB": values[:n_x, n_a:], "YA": values[n_x:, :n_a], "YB": values[n_x:, n_a:]}
    s = cosines.scores()
    std = s.std(ddof=ddof)
    effects = {"X": float(s[:n_x].mean() / std), "Y": float(s[n_x:].mean() / std)}
    rng = np.random.default_rng(seed)
    resampled = {"X": [], "Y": []}
    for start in range(0, n_resamples, _CHUNK):
        s_x, s_y = resampled_scores(cosines, draw_resamples(rng, min(_CHUNK, n_resamples - start), cosines))
        resampled["X"].append(standardised(s_x.mean(axis=1), s_x, s_y, ddof))
        resampled["Y"].append(standardised(s_y.mean(axis=1), s_x, s_y, ddof))
    intervals = {}
    for role, chunks in resampled.items():
        drawn = np.concatenate(chunks)
        intervals[role] = bias_corrected_interval(drawn[~np.isnan(drawn)], effects[role], confidence)
    return ConceptAssociations({name: float(block.mean()) for name, block in blocks.items()}, effects, intervals,
                               confidence)


def record_concept_associations(record: EvaluationRecord, **options) -> ConceptAssociations:
    """`concept_associations` of a record's cosine matrix, with the record's ddof."""
    return concept_associations(record_cosines(record), ddof=record.speat.ddof, **options)


@dataclass(frozen=True)
class LeaveOneOut:
    """How much one target speaker moves d (module docstring).

    Attributes:
        effect_size: d with every target.
        without: d without each target, by stimulus id (X then Y).
        most_influential: the target whose removal changes d the most.
        largest_change: d without it minus d.
        sign_flips: the targets whose removal flips the sign of d (empty: no single speaker decides the direction).
    """

    effect_size: float
    without: dict[str, float]
    most_influential: str
    largest_change: float
    sign_flips: tuple[str, ...]

    def sentence(self) -> str:
        flips = (f"removing {len(self.sign_flips)} single speaker(s) flips its sign ({', '.join(self.sign_flips[:3])})"
                 if self.sign_flips else "no single speaker flips its sign")
        return (f"Leaving one speaker out moves d by at most {format_d(self.largest_change)} (without "
                f"{self.most_influential}); {flips}.")


def leave_one_out(scores_x: dict[str, float], scores_y: dict[str, float], *, ddof: int = 1) -> LeaveOneOut:
    """d without each target, from the targets' s(w) by stimulus id; each group must keep 2 targets."""
    if min(len(scores_x), len(scores_y)) < 3:
        raise ValueError("leave-one-speaker-out needs at least 3 targets in X and in Y")
    ids = [*scores_x, *scores_y]
    s = np.array([*scores_x.values(), *scores_y.values()], dtype=np.float64)
    n_x = len(scores_x)

    def effect_size(keep: np.ndarray) -> float:
        kept_x, kept_y = s[:n_x][keep[:n_x]], s[n_x:][keep[n_x:]]
        return float((kept_x.mean() - kept_y.mean()) / np.concatenate([kept_x, kept_y]).std(ddof=ddof))

    d = effect_size(np.ones(len(s), dtype=bool))
    without = {}
    for index, stimulus_id in enumerate(ids):
        keep = np.ones(len(s), dtype=bool)
        keep[index] = False
        without[stimulus_id] = effect_size(keep)
    most = max(without, key=lambda stimulus_id: abs(without[stimulus_id] - d))
    flips = tuple(stimulus_id for stimulus_id, value in without.items() if np.sign(value) != np.sign(d))
    return LeaveOneOut(d, without, most, without[most] - d, flips)


def record_leave_one_out(record: EvaluationRecord) -> LeaveOneOut:
    """`leave_one_out` from a record's per-stimulus scores; a ValueError when the record keeps none."""
    if not record.association_scores:
        raise ValueError(f"the record of {record.model_label} on {record.test} keeps no per-stimulus scores "
                         "(made before speat recorded them); re-run speat evaluate")
    by_role = {role: {entry["id"]: entry["s"] for entry in record.association_scores[role]} for role in "XY"}
    return leave_one_out(by_role["X"], by_role["Y"], ddof=record.speat.ddof)


@dataclass(frozen=True)
class LayerPoint:
    """d of one layer (0: the input embedding layer), with its confidence interval (None when not bootstrapped)."""

    layer: int
    effect_size: float
    ci_low: float | None
    ci_high: float | None


def layer_profile(records: Sequence[EvaluationRecord]) -> list[LayerPoint]:
    """d per layer of one model on one test, by layer, from its per-layer records (the others are ignored); a
    ValueError when they mix models or tests."""
    per_layer = [record for record in records if record.pooling.get("layer_pooling") == "per-layer"]
    kinds = {(record.model_label, record.test) for record in per_layer}
    if len(kinds) > 1:
        raise ValueError(f"a layer profile is of one model on one test, got {sorted(kinds)}")
    return sorted((LayerPoint(int(record.pooling["layer"]), record.speat.effect_size, record.speat.ci_low,
                              record.speat.ci_high) for record in per_layer), key=lambda point: point.layer)


def layer_sentence(test: str, points: Sequence[LayerPoint]) -> str:
    """One sentence naming the layers with the smallest and the largest |d|."""
    if not points:
        raise ValueError(f"{test}: no per-layer results (evaluate with --pooling per-layer)")
    smallest = min(points, key=lambda point: abs(point.effect_size))
    largest = max(points, key=lambda point: abs(point.effect_size))
    return (f"On {test}, |d| is smallest at layer {smallest.layer} (d = {format_d(smallest.effect_size)}) and "
            f"largest at layer {largest.layer} (d = {format_d(largest.effect_size)}), of layers {points[0].layer}-"
            f"{points[-1].layer}.")
