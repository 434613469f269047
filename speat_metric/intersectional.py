"""Intersectional SpEAT: the interaction of two cells, e.g. the accent test among women minus among men.

``speat tests build --by gender=female,male`` makes one test per cell (X and Y restricted to the cell's value) with
the SAME attributes. For one model, with d_1 and d_2 the cells' effect sizes, the interaction is

    I = d_1 - d_2

(0: the target groups differ alike in both cells). Its interval resamples what is random in each part: each cell's
targets independently (its own X and Y rows, or its own matched pairs) and the shared attributes jointly (one draw of
A and B columns used by both cells), with `speat_metric.comparison.draw_resamples` and `resampled_effect_sizes`:

    I* = d*_1(X*_1, Y*_1, A*, B*) - d*_2(X*_2, Y*_2, A*, B*)

and the interval is the bias-corrected percentile interval of I* (`comparison.bias_corrected_interval`).
`comparison.joint_bootstrap` does not fit: it applies one draw of *every* role to models of the same stimuli, while
the cells share only their attributes. Resamples where either cell's d* is undefined are left out of both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from speat_metric.comparison import (
    N_RESAMPLES,
    OFF_CENTRE,
    bias_corrected_interval,
    draw_resamples,
    observed_effect_size,  # d of a matrix; one definition, shared with the model comparisons
    off_centre,
    resampled_effect_sizes,
)
from speat_metric.cosines import Cosines, record_cosines
from speat_metric.formatting import format_ci, format_d

if TYPE_CHECKING:
    from speat_metric.results import EvaluationRecord

_CHUNK = 2_048


@dataclass(frozen=True)
class Interaction:
    """Two cells' d for one model, and their difference with its interval.

    Attributes:
        model: the model's name.    tests: the two cells' test names (first, second).
        effect_sizes: d of each cell.    difference: the interaction d_first - d_second.
        ci_low, ci_high: its bias-corrected bootstrap interval.    confidence, n_resamples, seed: as used.
        labels: e.g. ``off-centre`` (`speat_metric.comparison.OFF_CENTRE_NOTE`).
    """

    model: str
    tests: tuple[str, str]
    effect_sizes: tuple[float, float]
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    seed: int
    labels: tuple[str, ...] = ()

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes 0: the cells' biases differ."""
        return self.ci_low > 0 or self.ci_high < 0

    def sentence(self) -> str:
        """The interaction in one plain sentence."""
        first, second = self.tests
        head = (f"{self.model}: d = {format_d(self.effect_sizes[0])} on {first} and {format_d(self.effect_sizes[1])} "
                f"on {second}; interaction {format_d(self.difference)} ({self.confidence:.0%} CI "
                f"{format_ci(self.ci_low, self.ci_high)})")
        if self.distinguishable:
            return head + "; the bias differs between the two cells."
        return head + "; the stimuli cannot tell the two cells' biases apart."

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tests": list(self.tests), "effect_sizes": list(self.effect_sizes),
                "labels": list(self.labels)}


def cell_bootstrap(first: Cosines, second: Cosines, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                   ddof: int = 1) -> np.ndarray:
    """(d*_first, d*_second) per kept resample, shape (kept, 2): targets drawn apart, attributes jointly (module
    docstring). A ValueError when the cells' attributes are not the same stimuli."""
    if not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"--resamples must be a whole number of at least 100, got {n_resamples!r}")
    for role in "AB":
        if sorted(first.ids[role]) != sorted(second.ids[role]):
            raise ValueError(f"the two cells' {role} attributes differ; an interaction needs cells built with the same "
                             "attributes (speat tests build --by)")
    # The second cell's columns in the first's order, so that one draw of columns means the same attributes.
    second = second.aligned_to({"X": second.ids["X"], "Y": second.ids["Y"], "A": first.ids["A"], "B": first.ids["B"]})
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        first_draw = draw_resamples(rng, size, first)
        second_draw = draw_resamples(rng, size, second)._replace(a_columns=first_draw.a_columns,
                                                                 b_columns=first_draw.b_columns)
        chunks.append(np.stack([resampled_effect_sizes(first, first_draw, ddof=ddof),
                                resampled_effect_sizes(second, second_draw, ddof=ddof)], axis=1))
    effect_sizes = np.concatenate(chunks)
    return effect_sizes[~np.isnan(effect_sizes).any(axis=1)]


def cell_interaction(first: Cosines, second: Cosines, *, effect_sizes: tuple[float, float] | None = None,
                     model: str = "model", tests: tuple[str, str] = ("first", "second"), confidence: float = 0.95,
                     n_resamples: int = N_RESAMPLES, seed: int = 0, ddof: int = 1) -> Interaction:
    """The interaction d_first - d_second of two cells' cosine matrices with its interval (module docstring);
    `effect_sizes` are the observed d (None: computed from the matrices).

    Example:
        >>> from speat_metric.cosines import cosines_of_test
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(8, 6)) + 1, rng.normal(size=(9, 6)) - 1
        >>> ids = lambda cell: [[f"{cell}x{i}" for i in range(7)], [f"{cell}y{i}" for i in range(6)],
        ...                     [f"a{i}" for i in range(8)], [f"b{i}" for i in range(9)]]
        >>> cells = [cosines_of_test([rng.normal(size=(7, 6)) + shift, rng.normal(size=(6, 6)), a, b], ids(cell))
        ...          for cell, shift in (("f", 1.0), ("m", 0.0))]
        >>> result = cell_interaction(*cells, n_resamples=500)
        >>> result.difference == result.effect_sizes[0] - result.effect_sizes[1], result.ci_low < result.ci_high
        (True, True)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, e.g. 0.95, got {confidence!r}")
    resampled = cell_bootstrap(first, second, n_resamples=n_resamples, seed=seed, ddof=ddof)
    if len(resampled) == 0:
        raise ValueError(f"{tests[0]} vs {tests[1]}: no resample gave a defined d (are the groups tiny or constant?)")
    observed = effect_sizes or (observed_effect_size(first, ddof), observed_effect_size(second, ddof))
    difference = float(observed[0] - observed[1])
    values = resampled[:, 0] - resampled[:, 1]
    low, high = bias_corrected_interval(values, difference, confidence)
    return Interaction(model=model, tests=tuple(tests), effect_sizes=(float(observed[0]), float(observed[1])),
                       difference=difference, ci_low=low, ci_high=high, confidence=confidence,
                       n_resamples=len(resampled), seed=seed,
                       labels=(OFF_CENTRE,) if off_centre(values, difference) else ())


def record_interaction(first: EvaluationRecord, second: EvaluationRecord, **options: Any) -> Interaction:
    """`cell_interaction` of one model's records of two cells; a ValueError (one line) when they are not one
    model measured alike (model, profile, pooling, ddof)."""
    for what, left, right in (("models", first.model_label, second.model_label),
                              ("profiles", first.profile, second.profile),
                              ("poolings", first.pooling, second.pooling),
                              ("ddof", first.speat.ddof, second.speat.ddof)):
        if left != right:
            raise ValueError(f"{first.test} and {second.test}: different {what} ({left} vs {right}); an interaction "
                             "compares one model's two cells measured alike")
    return cell_interaction(record_cosines(first), record_cosines(second),
                            effect_sizes=(first.speat.effect_size, second.speat.effect_size),
                            model=first.model_label, tests=(first.test, second.test), ddof=first.speat.ddof,
                            **options)
