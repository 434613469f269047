"""speat: measure social bias in self-supervised speech models with the Speech Embedding Association Test.

The library is a one-way pipeline; each module has one job:

- ``statistics``: the SpEAT effect size, permutation p-value and bootstrap confidence interval (`speat_test`).
- ``results``: the typed, versioned records every consumer reads (`SpeatResult`).
- ``cosines``, ``comparison``, ``diagnostics``: models compared on the same stimuli (`compare_embeddings`,
  `compare_records`: Δd with a paired interval; rank intervals and tiers) and what drives one d.
- ``speat/speat.py``: the Hugging Face ``evaluate`` measurement (``evaluate.load("speat")``).
- ``evaluate_registration``: makes ``evaluate.load("speat")`` resolve offline from any directory.
- ``cli``: the ``speat`` command.
"""

from speat_metric.comparison import compare_embeddings, compare_records
from speat_metric.results import SpeatResult, effect_size_label
from speat_metric.statistics import speat_test
from speat_metric.version import __version__

__all__ = ["SpeatResult", "__version__", "compare_embeddings", "compare_records", "effect_size_label", "speat_test"]
