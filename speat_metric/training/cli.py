"""The command-line options every compression recipe has (``speat prune``, ``speat distill``), and resuming a run.

A recipe's parser adds its own options, then `add_training_options`, `add_tracking_options` and `add_run_options`;
`common_overrides` turns what the user gave into dotted configuration keys, and `resumed_config` checks a
``--resume`` against the run's saved ``config.yaml``: the run keeps its settings, and only `RESUMABLE_CHANGES` may be
given anew (a longer ``--max-steps``, other dataloader workers).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from speat_metric.defaults import NUM_PERMUTATIONS, PROFILE, STUDY_TESTS

RESUMABLE_CHANGES = frozenset({"training.max_steps", "training.num_workers"})
"""Settings a resumed run may change; anything else must stay as the run began (RUN_DIR/config.yaml)."""


def add_model_and_data_options(parser: argparse.ArgumentParser, *, dest: str, metavar: str, out_help: str) -> None:
    """The model to train (positional `dest`), ``--data`` and ``--out``."""
    parser.add_argument(dest, metavar=metavar,
                        help="a wav2vec2, HuBERT, WavLM or data2vec-audio model (Hub id or save_pretrained directory), "
                        "melhubert:CHECKPOINT or random:melhubert-small|slim|base[@SEED]")
    parser.add_argument("--data", default=None,
                        help="training audio: a folder of WAV/FLAC/MP3 files (any rate, searched recursively), a "
                        "datasets folder (save_to_disk) or a Hub dataset id (with --data-config, --data-split)")
    parser.add_argument("--out", type=Path, default=None, help=out_help)


def add_training_options(parser: argparse.ArgumentParser, *, lr_help: str, batch_help: str, crop_help: str,
                         max_steps_help: str = "stop at this step (default: the schedule's end)") -> None:
    """The ``training`` options: steps, learning rate, batches, crops, precision, seed, the data's columns."""
    training = parser.add_argument_group("training")
    training.add_argument("--max-steps", type=int, default=None, help=max_steps_help)
    training.add_argument("--lr", type=float, default=None, help=lr_help)
    training.add_argument("--batch-size", type=int, default=None, help=batch_help)
    training.add_argument("--gradient-accumulation-steps", type=int, default=None, help="micro-batches per step")
    training.add_argument("--crop-seconds", type=float, default=None, help=crop_help)
    training.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default=None,
                          help="auto (default): bf16 or fp16 on a CUDA GPU that has it, none otherwise")
    training.add_argument("--seed", type=int, default=None,
                          help="seed of the data order, crops and masks, and of the SpEAT permutations (default 0)")
    training.add_argument("--seeds", default=None, metavar="SEEDS",
                          help="replicates: comma-separated seeds (e.g. 0,1,2), one run each in OUT/seed-<s>/, one "
                          "after the other; the curve in OUT shows the mean and min-max range over the seeds")
    training.add_argument("--audio-column", default=None, help="the audio column of a datasets dataset")
    training.add_argument("--data-config", default=None, help="the configuration of a Hub dataset (LibriSpeech: all)")
    training.add_argument("--data-split", default=None,
                          help="the split(s) of a Hub dataset, joined by + (default train)")
    training.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the model")
    training.add_argument("--mean-std", default=None, help="MelHuBERT: the authors' mean/std .npy")


def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    """The ``bias tracking`` options, as ``speat evaluate`` takes them."""
    from speat_metric.profiles import PROFILE_NAMES

    tracking = parser.add_argument_group("bias tracking (as speat evaluate)")
    tracking.add_argument("--stimuli", default=None,
                          help="demo (embedded, synthetic: the default), speat (download the study's stimuli), a "
                          "local directory, or a Hub dataset owner/name[@revision]")
    tracking.add_argument("--tests", default=None,
                          help="comma-separated tests: gender, age, native, or custom test JSON files "
                          f"(default {','.join(STUDY_TESTS)})")
    tracking.add_argument("--permutations", type=int, default=None,
                          help=f"permutation budget of each SpEAT (default {NUM_PERMUTATIONS})")
    tracking.add_argument("--allow-missing", action="store_true", default=None,
                          help="go on without missing or unreadable (empty, truncated) stimuli: they are dropped "
                          "and recorded in every result")
    tracking.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                          help=f"extraction profile (default {PROFILE}; s3prl is our reading of Lin et al. 2024; see "
                          "docs/reproducibility.md)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The ``run`` options: resume, trackers, progress bars."""
    run = parser.add_argument_group("run")
    run.add_argument("--resume", nargs="?", const=True, default=False, metavar="STATE",
                     help="continue the run in --out from its latest saved state (or from STATE, a state/step-N "
                     "directory), at the same position")
    run.add_argument("--report-to", default="none",
                     help="accelerate trackers: none (default), all, or a comma-separated list (tensorboard, wandb, "
                     "mlflow, ...)")
    run.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(interrupted_hint="run the same command with --resume to continue from the last saved state")


def common_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training, data and tracking settings the command line gives explicitly, as dotted configuration keys
    (ValueError for bad ``--seeds``, or ``--seeds`` with ``--seed``)."""
    seeds = seed_list(args.seeds)
    if seeds is not None and args.seed is not None:
        raise ValueError(f"--seed {args.seed} and --seeds {args.seeds}: give one (--seeds runs one run per seed)")
    return {key: value for key, value in {
        "training.max_steps": args.max_steps,
        "optimizer.lr": args.lr,
        "training.batch_size": args.batch_size,
        "training.gradient_accumulation_steps": args.gradient_accumulation_steps,
        "training.crop_seconds": args.crop_seconds,
        "training.mixed_precision": args.mixed_precision,
        "training.seed": args.seed,
        "training.seeds": seeds,
        "data.audio_column": args.audio_column,
        "data.config": args.data_config,
        "data.split": args.data_split,
        "tracking.stimuli": args.stimuli,
        "tracking.tests": args.tests,
        "tracking.permutations": args.permutations,
        "tracking.allow_missing": args.allow_missing,
        "tracking.profile": args.profile,
    }.items() if value is not None}


def number_list(text: str | None, option: str, noun: str) -> list[int] | None:
    """A comma-separated option (``--layers 2,4,6``) as whole numbers; None when the option was not given."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated {noun} numbers, got {text!r}") from None


def seed_list(text: str | None) -> list[int] | None:
    """``--seeds`` as a list (None when not given); ValueError, naming the value, unless it is two or more distinct
    whole numbers >= 0.

    Example:
        >>> seed_list("0,1,2")
        [0, 1, 2]
        >>> seed_list("0,0")
        Traceback (most recent call last):
        ...
        speat_metric.training.config.ConfigError: --seeds lists a seed twice ([0, 0]); give each replicate its own seed
    """
    from speat_metric.training.config import check_seeds

    seeds = number_list(text, "--seeds", "seed")
    if seeds is not None:
        check_seeds(seeds or [text], "--seeds")
    return seeds


def lookup(data: Mapping[str, Any], key: str) -> Any:
    """The value of a dotted key in nested settings."""
    for part in key.split("."):
        data = data[part]
    return data


def resumed_config(saved: Any, requested: Any, given: Mapping[str, Any], *, saved_path: Path, config_given: bool,
                   read: Callable[[Mapping[str, Any], str], Any] = lookup,
                   resumable: frozenset[str] = RESUMABLE_CHANGES) -> Any:
    """The configuration of a resumed run: the `saved` one (``RUN_DIR/config.yaml``), with the `resumable`
    ``training.*`` settings the user gave anew, in the run directory it is in now (a moved or copied run continues
    where it is, not where it started).

    Every other dotted key in `given` (what the command line gave explicitly) and, when `config_given`, every key a
    ``--config`` changes must agree with the run's (a ValueError names each difference). `read` reads a dotted key
    (a recipe may map one option onto several settings).
    """
    from speat_metric.training.config import differences

    old_settings, new_settings = saved.to_dict(), requested.to_dict()
    conflicts = [f"{key}: {read(old_settings, key)!r} in the run, {read(new_settings, key)!r} now"
                 for key in given if key not in resumable and read(old_settings, key) != read(new_settings, key)]
    if config_given:
        conflicts += [f"--config: {change}" for change in differences(
            old_settings, new_settings, ignore={*resumable, "out", "data.path"})]
    if conflicts:
        raise ValueError(f"--resume keeps the run's settings ({saved_path}); these differ: {'; '.join(conflicts)}")
    if allowed := {key.split(".")[1]: lookup(new_settings, key) for key in resumable if key in given}:
        saved = saved.replace(training=dataclasses.replace(saved.training, **allowed))
    return saved.replace(out=requested.out)


def saved_run_config(out: Path, config_file: str) -> Path:
    """The saved configuration of the run in `out` that ``--resume`` continues (ValueError when there is none)."""
    path = Path(out) / config_file
    if not path.is_file():
        raise ValueError(f"--resume: {out} has no {config_file}, so it holds no run to resume; run without --resume")
    return path


def slug(text: str) -> str:
    """A file-name-safe form of a model string (for default run directories)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def start_run(args: argparse.Namespace, run_config: Callable[[argparse.Namespace], Any]) -> tuple[Any, Any]:
    """``(config, report_to)``: what a recipe command does before its run: check ``--report-to`` (it fails fast),
    resolve the configuration with the recipe's `run_config`, and silence the libraries' progress bars (all but
    downloads' unless ``--no-progress``)."""
    from speat_metric.progress import silence_library_progress_bars
    from speat_metric.training.loop import parse_report_to

    report_to = parse_report_to(args.report_to)
    config = run_config(args)
    silence_library_progress_bars(downloads=not args.no_progress)
    return config, report_to

