"""Resumable training states: accelerate's ``save_state`` plus the recipe's position, and which state to resume.

A state is ``RUN_DIR/state/step-<N>/``: what ``accelerator.save_state`` writes and ``trainer_state.json`` (a
`TrainerState`, written last and atomically: a directory without it is never resumed from). docs/pruning.md
("Resumable states") describes the order of resuming. A replicated run (``--seeds``, `run_replicates`) is one
ordinary run per seed, in ``RUN_DIR/seed-<s>/``.

Example:
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> resolve_resume(run, resume=False) is None      # a new run
    True
    >>> resolve_resume(run, resume=True)
    Traceback (most recent call last):
    ...
    ValueError: --resume: ... has no saved training state to resume from; run without --resume to start
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from speat_metric.adapters import replicate_directories, seed_directory  # noqa: F401 (the recipes import them here)
from speat_metric.files import atomic_write_text, check_writable_directory

STATE_DIRECTORY = "state"
TRAINER_STATE = "trainer_state.json"
RUN_CONFIG = "config.yaml"
"""The settings of a run, written when it starts (``--resume`` keeps them)."""
_STEP_DIRECTORY = re.compile(r"^step-(\d+)$")
REPLICATE_DONE = "replicate.json"
"""Written into a seed's directory when its run has finished (a resumed replicated run skips that seed)."""


@dataclass
class TrainerState:
    """Where a run is: optimiser steps done, the epoch in progress, the micro-batches of that epoch this process has
    consumed (skipped on resume), and the recipe's own JSON-ready state (schedule position, architecture, ...)."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    recipe: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        return cls(step=int(data["step"]), epoch=int(data["epoch"]), batches_in_epoch=int(data["batches_in_epoch"]),
                   recipe=dict(data.get("recipe") or {}))


def state_directories(run_dir: str | Path) -> list[Path]:
    """The complete saved states of a run (with ``trainer_state.json``), oldest first."""
    root = Path(run_dir) / STATE_DIRECTORY
    if not root.is_dir():
        return []
    found = [(int(match[1]), path) for path in root.iterdir()
             if (match := _STEP_DIRECTORY.match(path.name)) and (path / TRAINER_STATE).is_file()]
    return [path for _, path in sorted(found)]


def check_new_run(run_dir: str | Path) -> None:
    """Raise a ValueError unless `run_dir` is new or empty: a new run (no ``--resume``) never starts over another
    run, whose checkpoints and results would mix with the new run's, nor among other files (the training audio, say).
    """
    from speat_metric.distributed import is_main_process

    run_dir = Path(run_dir)
    check_writable_directory(run_dir, "--out", "the run")
    if states := state_directories(run_dir):
        raise ValueError(f"--out {run_dir} already holds a run (saved states up to {states[-1].name}); pass "
                         "--resume to continue it, or choose another --out")
    if not is_main_process() or not run_dir.is_dir():  # another process may already be making the run's files
        return
    if (run_dir / RUN_CONFIG).is_file():
        raise ValueError(f"--out {run_dir} already holds a run (its {RUN_CONFIG}); pass --resume to continue it, or "
                         "choose another --out")
    if entries := sorted(path.name for path in run_dir.iterdir()):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(f"--out {run_dir} is not empty ({shown}) and holds no run: give a new or empty directory "
                         "for the run")


def resolve_resume(run_dir: str | Path, *, resume: bool | str | Path | None) -> Path | None:
    """The state to resume from, or None to start a new run.

    `resume` False/None: a new run (`check_new_run`: nothing is overwritten); True or ``"latest"``: the run's latest
    complete state; a path: that state directory. ValueError when there is no such state.
    """
    run_dir = Path(run_dir)
    states = state_directories(run_dir)
    if not resume:
        check_new_run(run_dir)
        return None
    if resume is True or resume == "latest":
        if not states:
            raise ValueError(f"--resume: {run_dir} has no saved training state to resume from; run without "
                             "--resume to start")
        return states[-1]
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ValueError(f"--resume {path}: not a complete saved state (no {TRAINER_STATE}); give a directory "
                         f"{STATE_DIRECTORY}/step-N of a run, or --resume alone for the latest")
    return path


def read_trainer_state(path: str | Path) -> TrainerState:
    """The `TrainerState` of a saved state directory (read before ``prepare``, to rebuild shapes)."""
    path = Path(path) / TRAINER_STATE
    try:
        return TrainerState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a readable trainer state ({error!r})") from None


def save_training_state(accelerator, run_dir: str | Path, state: TrainerState, *, keep: int = 2) -> Path:
    """Save a resumable state of the run (call it on every process), keep the `keep` latest complete states, and
    return its directory."""
    directory = Path(run_dir) / STATE_DIRECTORY / f"step-{state.step:09d}"
    accelerator.save_state(str(directory))
    if accelerator.is_main_process:
        atomic_write_text(directory / TRAINER_STATE, json.dumps(state.to_dict(), indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        complete = state_directories(run_dir)
        for old in complete[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        for partial in (Path(run_dir) / STATE_DIRECTORY).iterdir():  # cut short by an earlier kill
            if partial not in complete and partial.is_dir() and partial != directory:
                shutil.rmtree(partial, ignore_errors=True)
    return directory


def load_training_state(accelerator, path: str | Path) -> TrainerState:
    """``accelerator.load_state`` of a saved state (after ``prepare``), and its `TrainerState`."""
    accelerator.load_state(str(path))
    return read_trainer_state(path)


def resume_batches(dataloader, state: TrainerState):
    """The dataloader of the epoch in progress, without the batches this process already consumed."""
    from accelerate import skip_first_batches

    dataloader.set_epoch(state.epoch)
    if state.batches_in_epoch == 0:
        return dataloader
    skipped = skip_first_batches(dataloader, state.batches_in_epoch)
    if hasattr(skipped, "set_epoch"):
        skipped.set_epoch(state.epoch)
    return skipped


Result = TypeVar("Result")


def run_replicates(config: Any, run: Callable[[Any, bool], Result], *, resume: bool | str | Path | None,
                   state_roots: Callable[[Path], Sequence[Path]] | None = None) -> dict[int, Result | None]:
    """Run a recipe's `config` once per seed of ``config.training.seeds``, one after the other, each an ordinary run
    in ``RUN_DIR/seed-<s>/`` (``training.seed`` s, no seeds); return each seed's result (None for a seed that had
    finished before).

    `run(seed_config, resume)` is the recipe's run of one seed. A new replicated run must start in a new or empty
    ``RUN_DIR`` (`check_new_run`), whose ``config.yaml`` lists the seeds. With `resume`, a seed that finished
    (``replicate.json``) is skipped, a seed with a saved state resumes from its latest, an untouched seed starts; a
    seed started but killed before its first saved state is an error naming its directory. `state_roots` gives the
    directories whose ``state/`` hold a seed's saved states (default: the seed's directory; a distillation of one
    student after the other keeps them per student). Every process of ``accelerate launch`` runs the seeds in the
    same order; only the main process writes.
    """
    from speat_metric.distributed import is_main_process

    run_dir = Path(config.out)
    seeds = list(config.training.seeds)
    if resume not in (None, False, True, "latest"):
        raise ValueError(f"--resume {resume}: a replicated run (--seeds) resumes each seed from its latest state; "
                         "give --resume alone")
    if not resume:
        check_new_run(run_dir)
        if is_main_process():
            atomic_write_text(run_dir / RUN_CONFIG, config.to_yaml())
    results: dict[int, Result | None] = {}
    for seed in seeds:
        directory = seed_directory(run_dir, seed)
        seed_config = config.replace(out=str(directory), training=dataclasses.replace(config.training, seed=seed,
                                                                                      seeds=()))
        if (directory / REPLICATE_DONE).is_file():
            results[seed] = None
            continue
        started = directory.is_dir() and any(directory.iterdir())
        roots = state_roots(directory) if state_roots else [directory]
        if started and not any(state_directories(root) for root in roots):
            raise ValueError(f"--resume: {directory} was started but holds no saved state yet; delete it to run "
                             f"seed {seed} from the start")
        results[seed] = run(seed_config, started)
        if is_main_process():
            atomic_write_text(directory / REPLICATE_DONE, json.dumps({"seed": seed, "finished": True}) + "\n")
    return results
