"""Every error speat raises on purpose, importable from one place: ``from speat_metric.errors import ...``.

Each is a ValueError (or, for a missing extra, an ImportError) whose message says what to fix. `ModelLoadError` is
defined here; the others are defined beside the code that raises them and re-exported on first use, so importing
this module loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any


class ModelLoadError(ValueError):
    """A model could not be loaded as a speech encoder; the message says which model and what to do."""


_DEFINED_IN = {
    "AudioDecodeError": "speat_metric.audio",
    "ConfigError": "speat_metric.training.config",
    "DownloadError": "speat_metric.stimuli.errors",
    "FeatureError": "speat_metric.features",
    "MissingExtraError": "speat_metric.extras",
    "MissingStimuliError": "speat_metric.stimuli.errors",
    "NoFramesError": "speat_metric.pooling",
    "RemoteFileMissingError": "speat_metric.stimuli.errors",
    "StimulusError": "speat_metric.stimuli.errors",
    "TrainingDataError": "speat_metric.training.data",
    "UnreadableStimulusError": "speat_metric.stimuli.errors",
}

__all__ = ["ModelLoadError", *_DEFINED_IN]


def __getattr__(name: str) -> Any:
    if name not in _DEFINED_IN:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_DEFINED_IN[name]), name)
