"""Typed, versioned result records, serialised to JSON.

Every consumer (the ``evaluate`` module, the CLI, model cards, the Space, compression sweeps) reads these records
rather than re-deriving anything. A record carries the evidence behind its numbers: sizes, how many permutations,
whether the p-value is exact, the seed that reproduces it, and the package version that made it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
"""Version of the JSON layout of `SpeatResult`; bumped whenever a field changes meaning or is removed."""

# Cohen's conventions, as used by Caliskan et al. (2017) and Lin et al. (2024): |d| >= 0.2 small, 0.5 medium, 0.8 large.
_EFFECT_SIZE_THRESHOLDS = ((0.8, "large"), (0.5, "medium"), (0.2, "small"))


def effect_size_label(effect_size: float) -> str:
    """Name the magnitude of an effect size d after Cohen: ``negligible``, ``small``, ``medium`` or ``large``.

    The label describes |d| only; the sign says the direction (negative d: the association runs from Y, not X,
    towards A).

    Example:
        >>> effect_size_label(-0.93), effect_size_label(0.5), effect_size_label(0.19)
        ('large', 'medium', 'negligible')
    """
    if math.isnan(effect_size):
        raise ValueError("effect_size is NaN; a SpEAT effect size is always a number")
    for threshold, label in _EFFECT_SIZE_THRESHOLDS:
        if abs(effect_size) >= threshold:
            return label
    return "negligible"


@dataclass(frozen=True)
class SpeatResult:
    """The outcome of one SpEAT: effect size, p-value, confidence interval and how they were computed.

    Attributes:
        effect_size: d = (mean_X s - mean_Y s) / std_{X u Y}(s).
        p_value: permutation p-value of the statistic ``sum_X s - sum_Y s`` under re-partitions of X u Y.
        ci_low: lower end of the bootstrap confidence interval for d (None when no bootstrap was run).
        ci_high: upper end of that interval.
        n_x: number of target stimuli in X (likewise ``n_y``, ``n_a``, ``n_b``).
        num_permutations: partitions actually evaluated (all of them when ``exact``).
        exact: True when every partition of X u Y was enumerated, so ``p_value`` is exact.
        seed: the seed that reproduces the permutations and the bootstrap bit for bit.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"``.
        test_statistic: the observed ``sum_X s - sum_Y s``.
        confidence: coverage of the confidence interval, e.g. 0.95.
        n_bootstrap: bootstrap resamples drawn for the interval.
        paired: True when matched X/Y pairs were resampled together.
        ddof: delta degrees of freedom of the standard deviation in d (1: sample std, SpEAT; 0: WEFE).
        speat_version: version of the package that computed the result.
        schema_version: version of this record's JSON layout.
    """

    effect_size: float
    p_value: float
    ci_low: float | None
    ci_high: float | None
    n_x: int
    n_y: int
    n_a: int
    n_b: int
    num_permutations: int
    exact: bool
    seed: int
    alternative: str
    test_statistic: float
    confidence: float
    n_bootstrap: int
    paired: bool
    ddof: int
    speat_version: str
    schema_version: int = SCHEMA_VERSION

    @property
    def effect_size_label(self) -> str:
        """Cohen's name for |d|: negligible, small, medium or large."""
        return effect_size_label(self.effect_size)

    def to_dict(self) -> dict[str, Any]:
        """All fields plus the derived ``effect_size_label``, as plain JSON-ready values."""
        return {**dataclasses.asdict(self), "effect_size_label": self.effect_size_label}

    def to_json(self, **json_kwargs: Any) -> str:
        """Serialise to strict JSON (no NaN or Infinity literals)."""
        return json.dumps(self.to_dict(), allow_nan=False, **json_kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeatResult:
        """Rebuild a result from `to_dict` output; derived keys are ignored, unknown or missing keys are errors."""
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"SpeatResult schema_version {version!r} is not supported by this speat (reads version "
                f"{SCHEMA_VERSION}); upgrade speat to read newer results"
            )
        field_names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - field_names - {"effect_size_label"}
        missing = {name for name in field_names if name != "schema_version"} - set(data)
        if unknown or missing:
            raise ValueError(
                f"not a SpeatResult record: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        return cls(**{name: value for name, value in data.items() if name in field_names})

    @classmethod
    def from_json(cls, text: str) -> SpeatResult:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))
