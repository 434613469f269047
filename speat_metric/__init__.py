"""speat: measure social bias in self-supervised speech models with the Speech Embedding Association Test.

The library is a one-way pipeline; each module has one job:

- ``statistics``: the SpEAT effect size, permutation p-value and bootstrap confidence interval (`speat_test`).
- ``results``: the typed, versioned records every consumer reads (`SpeatResult`).
- ``speat/speat.py``: the Hugging Face ``evaluate`` measurement (``evaluate.load("speat")``).
- ``evaluate_registration``: makes ``evaluate.load("speat")`` resolve offline from any directory.
- ``cli``: the ``speat`` command.
"""

from speat_metric.results import SpeatResult, effect_size_label
from speat_metric.statistics import speat_test
from speat_metric.version import __version__

__all__ = ["SpeatResult", "__version__", "effect_size_label", "speat_test"]
