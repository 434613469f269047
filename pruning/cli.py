"""`speat prune` (also `python -m pruning`, and `accelerate launch -m pruning` for several processes or GPUs):
head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

_METHODS = {
    "heads": "remove the attention heads with the smallest L1 norm of their q/k/v weights, the same number in every "
             "layer (study: 1 per layer every 25k steps until 72 heads remain, then every 40k until 12; lr 5e-5)",
    "rows": "remove the FFN dimensions with the smallest L1 norm of their two layers' weights, the same number in "
            "every layer (study: 128 every 25k steps until 512 remain; lr 1e-5)",
    "weights": "global magnitude pruning of the transformer layers' linear weights and biases when the loss has "
               "settled (study: sparsity 20%%, 30%% ... 80%%; lr 1e-5)",
}

_RESUMABLE_CHANGES = {"training.max_steps", "training.num_workers"}
"""Settings a resumed run may change; anything else must stay as the run began (RUN_DIR/config.yaml)."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `prune` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    prune = commands.add_parser(
        "prune", help="head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step",
        description="Prune a speech encoder as Lin et al. (2024) did, fine-tuning between pruning steps, and measure "
        "SpEAT after every pruning step. Every hyperparameter of the study is a default in pruning/configs/*.yaml; "
        "--config FILE replaces any of them, the options below replace the common ones. Several processes or GPUs: "
        "accelerate launch -m pruning METHOD MODEL ...")
    methods = prune.add_subparsers(dest="method", title="methods", metavar="{heads,rows,weights}", required=True)
    for method, help_text in _METHODS.items():
        parser = methods.add_parser(method, help=help_text, description=(help_text[0].upper() + help_text[1:] + ".")
                                    .replace("%%", "%"))
        _add_options(parser, method)
        parser.set_defaults(handler=_prune)


def _add_options(parser: argparse.ArgumentParser, method: str) -> None:
    from speat_metric.profiles import PROFILE_NAMES

    parser.add_argument("model", metavar="MODEL",
                        help="a wav2vec2, HuBERT, WavLM or data2vec-audio model (Hub id or save_pretrained directory), "
                        "melhubert:CHECKPOINT or random:melhubert-small|slim|base[@SEED]")
    parser.add_argument("--data", default=None,
                        help="training audio: a folder of WAV/FLAC/MP3 files (any rate, searched recursively), a "
                        "datasets folder (save_to_disk) or a Hub dataset id (with --data-config, --data-split)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory: checkpoints, results, curve, resumable states (default runs/"
                        f"{method}-<model name>)")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"YAML file replacing settings of pruning/configs/{method}.yaml (only those it names)")
    parser.add_argument("--objective", choices=("auto", "native", "teacher"), default=None,
                        help="fine-tuning loss: native (wav2vec2's contrastive loss, MelHuBERT's masked k-means "
                        "prediction) or teacher (match the unpruned model's hidden states); auto: native for wav2vec2 "
                        "and MelHuBERT, teacher otherwise")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--steps-per-prune", type=int, default=None,
                          help="steps between pruning steps (every phase)" if method != "weights" else
                          "steps between plateau checks (the study: 25000)")
    schedule.add_argument("--warmup-steps", type=int, default=None, help="fine-tuning steps before the first pruning "
                          f"step (default {'25000' if method == 'weights' else '1000'})")
    if method == "heads":
        schedule.add_argument("--heads-per-step", type=int, default=None,
                              help="heads removed from every layer at each pruning step (default 1)")
        schedule.add_argument("--min-heads", type=int, default=None,
                              help="stop when this many heads remain in the whole model (default 12)")
    if method == "weights":
        schedule.add_argument("--prune-at", default=None, metavar="STEPS",
                              help="comma-separated steps to prune at instead of waiting for plateaus (e.g. another "
                              "run's compression.pruned_at)")
    if method == "rows":
        schedule.add_argument("--rows-per-step", type=int, default=None,
                              help="FFN dimensions removed from every layer at each pruning step (default 128)")
        schedule.add_argument("--min-rows", type=int, default=None,
                              help="stop when this many FFN dimensions remain per layer (default 512)")
    training = parser.add_argument_group("training")
    training.add_argument("--max-steps", type=int, default=None, help="stop at this step (default: the schedule's end)")
    training.add_argument("--lr", type=float, default=None, help="Adam's learning rate")
    training.add_argument("--batch-size", type=int, default=None,
                          help="recordings per step and process (default 4 for MelHuBERT, 12 otherwise)")
    training.add_argument("--gradient-accumulation-steps", type=int, default=None, help="micro-batches per step")
    training.add_argument("--crop-seconds", type=float, default=None,
                          help="random crop of each recording (default 7.5 s MelHuBERT, 15.625 s otherwise)")
    training.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default=None,
                          help="auto (default): bf16 or fp16 on a CUDA GPU that has it, none otherwise")
    training.add_argument("--seed", type=int, default=None,
                          help="seed of the data order, crops and masks, and of the SpEAT permutations (default 0)")
    training.add_argument("--audio-column", default=None, help="the audio column of a datasets dataset")
    training.add_argument("--data-config", default=None, help="the configuration of a Hub dataset (LibriSpeech: all)")
    training.add_argument("--data-split", default=None,
                          help="the split(s) of a Hub dataset, joined by + (default train)")
    training.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of MODEL")
    training.add_argument("--mean-std", default=None, help="MelHuBERT: the authors' mean/std .npy")
    tracking = parser.add_argument_group("bias tracking (as speat evaluate)")
    tracking.add_argument("--stimuli", default=None,
                          help="demo (embedded, synthetic: the default), speat (download the study's stimuli), a "
                          "local directory, or a Hub dataset owner/name[@revision]")
    tracking.add_argument("--tests", default=None,
                          help="comma-separated tests: gender, age, native, or custom test JSON files "
                          "(default gender,age,native)")
    tracking.add_argument("--permutations", type=int, default=None,
                          help="permutation budget of each SpEAT (default 1000000)")
    tracking.add_argument("--allow-missing", action="store_true", default=None,
                          help="go on without missing stimuli (they are recorded in every result)")
    tracking.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                          help="extraction profile (default hf; s3prl is our reading of Lin et al. 2024; see "
                          "docs/reproducibility.md)")
    run = parser.add_argument_group("run")
    run.add_argument("--resume", nargs="?", const=True, default=False, metavar="STATE",
                     help="continue the run in --out from its latest saved state (or from STATE, a state/step-N "
                     "directory), at the same schedule position")
    run.add_argument("--report-to", default="none",
                     help="accelerate trackers: none (default), all, or a comma-separated list (tensorboard, wandb, "
                     "mlflow, ...)")
    run.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the command line gives explicitly, as dotted configuration keys."""
    return {key: value for key, value in {
        "objective.name": args.objective,
        "schedule.every": args.steps_per_prune,
        "schedule.warmup_steps": args.warmup_steps,
        "schedule.heads_per_step": getattr(args, "heads_per_step", None),
        "schedule.rows_per_step": getattr(args, "rows_per_step", None),
        "schedule.until": getattr(args, "min_heads", None) or getattr(args, "min_rows", None),
        "schedule.prune_at": _steps(getattr(args, "prune_at", None)),
        "training.max_steps": args.max_steps,
        "optimizer.lr": args.lr,
        "training.batch_size": args.batch_size,
        "training.gradient_accumulation_steps": args.gradient_accumulation_steps,
        "training.crop_seconds": args.crop_seconds,
        "training.mixed_precision": args.mixed_precision,
        "training.seed": args.seed,
        "data.audio_column": args.audio_column,
        "data.config": args.data_config,
        "data.split": args.data_split,
        "tracking.stimuli": args.stimuli,
        "tracking.tests": args.tests,
        "tracking.permutations": args.permutations,
        "tracking.allow_missing": args.allow_missing,
        "tracking.profile": args.profile,
    }.items() if value is not None}


def run_config(args: argparse.Namespace):
    """The configuration of the run: from the defaults, --config and the options; or, with --resume, the run's own
    (RUN_DIR/config.yaml), which the options may not contradict."""
    from pruning.config import load_config, read_run_config
    from pruning.train import CONFIG_FILE

    out = args.out or Path("runs") / f"{args.method}-{_slug(Path(args.model).name or args.model)}"
    requested = load_config(args.method, model=args.model, out=out, data=args.data, path=args.config,
                            overrides=_overrides(args), revision=args.revision, mean_std=args.mean_std)
    if args.data is None and not args.resume:
        raise ValueError("--data is required: a folder of audio files or a datasets dataset to fine-tune on")
    if not args.resume:
        return requested
    saved_path = Path(out) / CONFIG_FILE
    if not saved_path.is_file():
        raise ValueError(f"--resume: {out} has no {CONFIG_FILE}, so it holds no run to resume; run without --resume")
    saved = read_run_config(saved_path)
    given = {"method": args.method, "model": args.model, **({"data.path": args.data} if args.data else {}),
             **({"config": None} if args.config else {}), **_overrides(args)}
    conflicts = []
    for key in given:
        if key in _RESUMABLE_CHANGES or key == "config":
            continue
        old, new = _lookup(saved.to_dict(), key), _lookup(requested.to_dict(), key)
        if old != new:
            conflicts.append(f"{key}: {old!r} in the run, {new!r} now")
    if args.config is not None:
        conflicts += [f"--config: {change}" for change in _differences(saved.to_dict(), requested.to_dict())]
    if conflicts:
        raise ValueError(f"--resume keeps the run's settings ({saved_path}); these differ: {'; '.join(conflicts)}")
    allowed = {key: _lookup(requested.to_dict(), key) for key in _RESUMABLE_CHANGES if key in given}
    if allowed:
        saved = saved.replace(training=dataclasses.replace(
            saved.training, **{key.split(".")[1]: value for key, value in allowed.items()}))
    return saved


def _steps(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--prune-at must be comma-separated step numbers, got {text!r}") from None


def _lookup(data: dict, key: str) -> object:
    if key == "schedule.every":
        phases = data["schedule"]["phases"]
        return [phase["every"] for phase in phases] if phases else data["schedule"]["check_every"]
    if key == "schedule.until":
        return [phase["until"] for phase in data["schedule"]["phases"]]
    for part in key.split("."):
        data = data[part]
    return data


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            changes += _differences(old[key], new[key], f"{name}.")
        elif old.get(key) != new.get(key) and name not in _RESUMABLE_CHANGES and name not in ("out", "data.path"):
            changes.append(f"{name}: {old.get(key)!r} in the run, {new.get(key)!r} now")
    return changes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _prune(args: argparse.Namespace) -> int:
    from pruning.train import prune
    from speat_metric.pipeline import is_main_process
    from speat_metric.training.loop import parse_report_to
    from speat_metric.training.plots import curve_markdown, curve_rows

    report_to = parse_report_to(args.report_to)
    config = run_config(args)
    if args.no_progress:
        import transformers
        from huggingface_hub.utils import disable_progress_bars

        transformers.utils.logging.disable_progress_bar()
        disable_progress_bars()
    summary = prune(config, resume=args.resume, report_to=report_to, progress=not args.no_progress)
    if is_main_process():
        print(curve_markdown(curve_rows(summary.records), title=f"{config.method} pruning of {config.model}"))
        print(f"{len(summary.checkpoints)} checkpoints in {summary.run_dir}/ after {summary.steps} steps; curve: "
              f"{summary.curve.get('png')}")
        again = f"melhubert:{summary.run_dir}" if summary.checkpoints and summary.checkpoints[0].startswith(
            "melhubert:") else str(summary.run_dir)
        print(f"evaluate the checkpoints again (other stimuli or tests): speat evaluate {again} --stimuli speat")
    return 0
