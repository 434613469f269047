"""The pieces of an accelerate training loop that every compression recipe uses.

`make_accelerator` builds the ``Accelerator`` (gradient accumulation, mixed precision where the hardware has it, the
CPU when there is no GPU, the ``--report-to`` trackers); `TrainingSteps` runs a recipe's micro-batches;
`StepProgress` is the bar over optimiser steps; `numpy_seed` runs legacy ``np.random`` code reproducibly.

Example:
    >>> parse_report_to("none"), parse_report_to("all")
    (None, 'all')
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")

_TRACKERS = ("tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab", "trackio")
"""The trackers accelerate knows, each the name of its package too."""


def resolve_mixed_precision(requested: str) -> str:
    """accelerate's ``mixed_precision`` for ``auto`` (bf16 on a CUDA GPU that has it, else fp16 on CUDA, else no),
    ``no``, ``fp16`` or ``bf16`` on this machine (ValueError when it lacks the one asked for)."""
    if requested not in MIXED_PRECISION:
        raise ValueError(f"mixed precision must be one of {', '.join(MIXED_PRECISION)}, got {requested!r}")
    cuda = torch.cuda.is_available()
    if requested == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "no"
    if requested != "no" and not cuda:
        raise ValueError(f"--mixed-precision {requested} needs a CUDA GPU; this machine has none (use auto or no)")
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("--mixed-precision bf16: this GPU does not support bfloat16; use fp16 or auto")
    return requested


def parse_report_to(value: str | None) -> str | list[str] | None:
    """accelerate's ``log_with`` for ``--report-to``: ``none`` (default), ``all``, or comma-separated tracker names
    (ValueError for an unknown tracker, or one whose package is not installed)."""
    import importlib.util

    if value is None or value.strip() in ("", "none"):
        return None
    if value.strip() == "all":
        return "all"
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in _TRACKERS:
            raise ValueError(f"--report-to {name!r} is not a tracker accelerate knows; use none, all, or some of "
                             f"{', '.join(_TRACKERS)}")
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"--report-to {name}: the {name} package is not installed (pip install {name}), or use "
                             "--report-to none")
    return names


def make_accelerator(*, project_dir: Path, gradient_accumulation_steps: int = 1, mixed_precision: str = "auto",
                     report_to: str | list[str] | Any | None = None):
    """The ``Accelerator`` of a compression run, its trackers' logs under `project_dir` (the run directory).

    `mixed_precision` is read by `resolve_mixed_precision`; `report_to` is accelerate's ``log_with`` (see
    `parse_report_to`; tracker objects are accepted too).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    if gradient_accumulation_steps < 1:
        raise ValueError(f"gradient accumulation steps must be at least 1, got {gradient_accumulation_steps}")
    return Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(mixed_precision),
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(project_dir), logging_dir=str(project_dir / "logs")),
        # Objectives leave some parameters out (a pre-training head, the masked-frame embedding): DDP must allow it.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        cpu=not torch.cuda.is_available(),
    )


def open_run(run_dir: Path, *, data: Any, training: Any, tracking: Any, mean_std: str | None, report_to: Any,
             progress: bool) -> tuple[Any, Any, Any]:
    """``(accelerator, audio, tracker)``: the parts every recipe opens first, cheapest checks first: the accelerator,
    the training audio (``--data`` opened, not yet checked file by file) and the bias tracker (tests and stimuli
    loaded and checked), from the recipe's `speat_metric.training.config` sections.
    """
    from speat_metric.training.bias_tracking import RESULTS_DIRECTORY, BiasTracker
    from speat_metric.training.data import open_training_audio

    if not data.path:
        raise ValueError("no training data: give --data (a folder of audio files or a datasets dataset)")
    if training.seeds:  # pruning and distillation run each seed alone (`run_replicates`): a guard for a new recipe
        raise ValueError(f"--seeds {','.join(map(str, training.seeds))}: a run opens one seed; run the replicates "
                         "through speat_metric.training.checkpoints.run_replicates, one run per seed")
    accelerator = make_accelerator(project_dir=run_dir, mixed_precision=training.mixed_precision, report_to=report_to,
                                   gradient_accumulation_steps=training.gradient_accumulation_steps)
    audio = open_training_audio(data.path, audio_column=data.audio_column, config=data.config, split=data.split,
                                revision=data.revision, speaker_column=data.speaker_column)
    tracker = BiasTracker(tracking.settings(seed=training.seed, mean_std=mean_std, progress=progress),
                          Path(run_dir) / RESULTS_DIRECTORY)
    return accelerator, audio, tracker


Metrics = Mapping[str, Any]
"""Extra values to log with a step's loss, by name (under ``<log_prefix>train/``)."""


@dataclass
class TrainingSteps:
    """Runs a recipe's micro-batches: each one's loss is computed under ``accelerator.accumulate`` and autocast and
    back-propagated; at the last micro-batch of an optimiser step the gradients are prepared (`before_update`, then
    clipped to `gradient_clipping` unless it is None or 0) and the step is counted, its loss averaged over its
    micro-batches and processes, shown on `bar` and logged (after `log_prefix`, e.g. ``student-2/train/loss``).
    """

    accelerator: Any
    bar: StepProgress
    gradient_clipping: float | None = None
    log_prefix: str = ""
    _losses: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: Any,
                 loss: Callable[[], tuple[torch.Tensor, Metrics]],
                 before_update: Callable[[], Metrics | None] | None = None) -> float | None:
        """Run one micro-batch (moving the `TrainerState` `state` on); return the optimiser step's loss when it
        completed a step, else None. `loss` gives the micro-batch's loss and metrics to log; `before_update` runs
        before the optimiser step that ends an accumulation (e.g. masks gradients, sets the learning rate) and may
        return metrics too."""
        accelerator = self.accelerator
        metrics: dict[str, Any] = {}
        with accelerator.accumulate(model):
            with accelerator.autocast():  # a frozen teacher too, not only the prepared model
                micro_loss, loss_metrics = loss()
            accelerator.backward(micro_loss)
            if accelerator.sync_gradients:
                metrics.update((before_update() if before_update else None) or {})
                if self.gradient_clipping:
                    accelerator.clip_grad_norm_(model.parameters(), self.gradient_clipping)
            optimizer.step()
            optimizer.zero_grad()
        state.batches_in_epoch += 1
        self._losses.append(micro_loss.detach())
        if not accelerator.sync_gradients:
            return None
        state.step += 1
        step_loss = accelerator.reduce(torch.stack(self._losses).mean(), reduction="mean").item()
        self._losses.clear()
        self.bar.update(postfix={"loss": f"{step_loss:.4f}"})
        metrics = {"loss": step_loss, **metrics, **loss_metrics}
        accelerator.log({f"{self.log_prefix}train/{name}": float(value) for name, value in metrics.items()},
                        step=state.step)
        return step_loss


class StepProgress:
    """A progress bar over optimiser steps, shown on the main process only (`total` None: unknown; `initial`: steps
    already done by a resumed run); the total can grow (a schedule that waits for the loss to settle does not know
    its length in advance)."""

    def __init__(self, total: int | None, *, initial: int = 0, desc: str, enabled: bool = True) -> None:
        self._bar = tqdm(total=total, initial=initial, unit="step", desc=desc, disable=not enabled,
                         dynamic_ncols=True)

    def update(self, *, postfix: Mapping[str, Any] | None = None) -> None:
        """Count one optimiser step; `postfix` shows e.g. the loss."""
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update()

    def set_total(self, total: int) -> None:
        self._bar.total = total
        self._bar.refresh()

    def write(self, message: str) -> None:
        """Print a line above the bar, on stderr with the bar (on the main process, when enabled)."""
        if not self._bar.disable:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def flat_settings(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as ``a/b`` keys with scalar values (what trackers accept).

    Example:
        >>> flat_settings({"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}})
        {'optimizer/lr': 0.1, 'optimizer/betas': '[0.9, 0.99]'}
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_settings(value, f"{name}/"))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


@contextlib.contextmanager
def numpy_seed(seed: int | Any) -> Iterator[None]:
    """Run code that draws from numpy's legacy global generator (e.g. transformers' ``_compute_mask_indices``)
    with a fixed seed, restoring the global state afterwards.

    Example:
        >>> with numpy_seed(3):
        ...     first = np.random.rand()
        >>> with numpy_seed(3):
        ...     first == np.random.rand()
        True
    """
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)
