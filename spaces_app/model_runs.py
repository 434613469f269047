"""Evaluate a Hub model id from the Space ("Try it"), with ``speat evaluate``'s own machinery.

Jobs are queued by Gradio one at a time (see `app.py`); each checks its inputs before loading anything, and its
records join the Space's records (in memory, until the Space restarts). The feature is off unless the Space has
the resources and says so (``SPEAT_SPACE_EVALUATE_MODELS=1`` or ``speat space --evaluate-models``).
"""

from __future__ import annotations

from collections.abc import Sequence

from speat_metric.errors import ModelLoadError
from speat_metric.model_spec import ModelSpec
from speat_metric.repo_ids import REPO_ID
from speat_metric.results import EvaluationRecord
from speat_metric.space import about

STIMULI_CHOICES = (("demo (synthetic, offline: a pipeline check)", "demo"),
                   ("the study's stimuli (downloaded once)", "speat"))
MAX_PERMUTATIONS = 1_000_000



class ModelEvaluationDisabled(ValueError):
    """Raised when a model evaluation is asked of a Space that has it turned off."""


def check_request(model: str, stimuli: str, tests: Sequence[str], num_permutations: int) -> str:
    """The cleaned model string; a ValueError naming the bad value otherwise (checked before anything loads)."""
    model = (model or "").strip()
    try:
        spec = ModelSpec.parse(model)
    except ModelLoadError:
        spec = None
    # A visitor may name a built-in or a Hub model, never a path or a checkpoint file of the Space's machine.
    if spec is None or spec.kind not in ("feature", "random") and not (spec.kind == "transformers"
                                                                         and REPO_ID.match(model)):
        raise ValueError(f"model {model!r} is not a Hub model id (owner/name), random:melhubert-small|slim|base or "
                         f"a classical feature (stft, spectrogram, mel_spectrogram, mfcc)")
    if stimuli not in dict((value, label) for label, value in STIMULI_CHOICES):
        raise ValueError(f"stimuli must be demo or speat, got {stimuli!r}")
    if not tests:
        raise ValueError("choose at least one test")
    if not 1 <= int(num_permutations) <= MAX_PERMUTATIONS:
        raise ValueError(f"permutations must be between 1 and {MAX_PERMUTATIONS:,}, got {num_permutations}")
    return model


def evaluate_model(model: str, *, stimuli: str, tests: Sequence[str], num_permutations: int, seed: int = 0,
                   enabled: bool) -> list[EvaluationRecord]:
    """Evaluate one model string on the chosen tests; progress goes to tqdm bars (which Gradio shows).

    Raises:
        ModelEvaluationDisabled: the Space has model evaluation turned off.
        ValueError: a bad model string, test, stimulus source or option (before anything is loaded).
    """
    if not enabled:
        raise ModelEvaluationDisabled(about.MODEL_EVALUATION_DISABLED)
    from speat_metric.evaluation import EvaluationSettings, evaluate_models

    model = check_request(model, stimuli, tests, num_permutations)
    settings = EvaluationSettings(tests=tuple(tests), stimuli=stimuli, num_permutations=int(num_permutations),
                                  seed=int(seed), progress=True)
    return evaluate_models([model], settings)
