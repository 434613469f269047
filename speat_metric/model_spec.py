"""The model strings users type, parsed in one place (`ModelSpec.parse`); everything else asks the spec.

| string | kind |
|---|---|
| ``stft``, ``spectrogram``, ``mel_spectrogram``, ``mfcc`` | ``feature``: a classical feature (one "layer") |
| ``random:melhubert-small`` (``-slim``, ``-base``; optional ``@SEED``) | ``random``: random-init MelHuBERT ("step 0") |
| ``melhubert:PATH``, ``m2d:PATH`` | ``melhubert``, ``m2d``: checkpoints (a file or a folder) in the authors' format |
| anything else | ``transformers``: a Hub id (``facebook/hubert-base-ls960``) or a local directory |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from speat_metric.errors import ModelLoadError

FEATURES = ("stft", "spectrogram", "mel_spectrogram", "mfcc")
RANDOM_SIZES = ("small", "slim", "base")
RANDOM_MODELS = tuple(f"random:melhubert-{size}" for size in RANDOM_SIZES)
"""The randomly initialised models (each also as ``NAME@SEED``)."""
CHECKPOINT_KINDS = ("melhubert", "m2d")

_RANDOM = re.compile(rf"^random:melhubert-(?P<size>{'|'.join(RANDOM_SIZES)})(?:@(?P<seed>\d+))?$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string.

    Attributes:
        text: the string as given (what tables and reproduce commands show).
        kind: ``feature``, ``random``, ``melhubert``, ``m2d`` or ``transformers``.
        target: the feature name, the random model's size, the checkpoint path, or the Hub id or directory.
        seed: the random model's seed (0 when not given).

    Example:
        >>> ModelSpec.parse("random:melhubert-small@3")
        ModelSpec(text='random:melhubert-small@3', kind='random', target='small', seed=3)
        >>> ModelSpec.parse("melhubert:runs/x.ckpt").target, ModelSpec.parse("facebook/hubert-base-ls960").kind
        ('runs/x.ckpt', 'transformers')
    """

    text: str
    kind: str
    target: str
    seed: int = 0

    @classmethod
    def parse(cls, text: str | ModelSpec) -> ModelSpec:
        """The spec of a model string; a ``random:`` string that names no random model is a ModelLoadError."""
        if isinstance(text, ModelSpec):
            return text
        text = str(text)
        if text in FEATURES:
            return cls(text, "feature", text)
        if text.startswith("random:"):
            match = _RANDOM.match(text)
            if not match:
                raise ModelLoadError(f"unknown random model {text!r}; use random:melhubert-small, -slim or -base "
                                     "(optionally @SEED)")
            return cls(text, "random", match["size"], int(match["seed"] or 0))
        kind, separator, path = text.partition(":")
        if separator and kind in CHECKPOINT_KINDS:
            return cls(text, kind, path)
        return cls(text, "transformers", text)

    def member(self, path: Path) -> str:
        """The model string of one checkpoint of a directory this spec names (the same kind)."""
        return f"{self.kind}:{path}" if self.kind in CHECKPOINT_KINDS else str(path)

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels every result of this model carries."""
        return {"feature": ("classical-feature",), "random": ("random-init",)}.get(self.kind, ())

    @property
    def description(self) -> str:
        """A short plain-language label for tables: what kind of model the string names."""
        return {"feature": "classical feature", "random": "random init (step 0)"}.get(self.kind, "model")

    def __str__(self) -> str:
        return self.text
