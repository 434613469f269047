"""`speat prune` (also `python -m speat_metric.pruning`, and `accelerate launch -m speat_metric.pruning` for several
processes or GPUs): head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step."""

from __future__ import annotations

import argparse
from pathlib import Path

from speat_metric.extras import require_extra
from speat_metric.model_spec import ModelSpec
from speat_metric.training.cli import (
    add_model_and_data_options,
    add_run_options,
    add_tracking_options,
    add_training_options,
    common_overrides,
    lookup,
    number_list,
    resumed_config,
    saved_run_config,
    slug,
    start_run,
)

_METHODS = {
    "heads": "remove the attention heads with the smallest L1 norm of their q/k/v weights, the same number in every "
             "layer (study: 1 per layer every 25k steps until 72 heads remain, then every 40k until 12; lr 5e-5)",
    "rows": "remove the FFN dimensions with the smallest L1 norm of their two layers' weights, the same number in "
            "every layer (study: 128 every 25k steps until 512 remain; lr 1e-5)",
    "weights": "global magnitude pruning of the transformer layers' linear weights and biases when the loss has "
               "settled (study: sparsity 20%%, 30%% ... 80%%; lr 1e-5)",
}

def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `prune` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    prune = commands.add_parser(
        "prune", help="head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step",
        description="Prune a speech encoder as Lin et al. (2024) did, fine-tuning between pruning steps, and measure "
        "SpEAT after every pruning step. Every hyperparameter of the study is a default in pruning/configs/*.yaml; "
        "--config FILE replaces any of them, the options below replace the common ones. Several processes or GPUs: "
        "accelerate launch -m speat_metric.pruning METHOD MODEL ...")
    methods = prune.add_subparsers(dest="method", title="methods", metavar="{heads,rows,weights,debias}",
                                   required=True)
    for method, help_text in _METHODS.items():
        parser = methods.add_parser(method, help=help_text, description=(help_text[0].upper() + help_text[1:] + ".")
                                    .replace("%%", "%"))
        _add_options(parser, method)
        parser.set_defaults(handler=_prune)
    _add_debias_parser(methods)


def _add_options(parser: argparse.ArgumentParser, method: str) -> None:

    add_model_and_data_options(parser, dest="model", metavar="MODEL",
                               out_help="run directory: checkpoints, results, curve, resumable states (default "
                               f"runs/{method}-<model name>)")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"YAML file replacing settings of pruning/configs/{method}.yaml (only those it names)")
    parser.add_argument("--objective", choices=("auto", "native", "teacher"), default=None,
                        help="fine-tuning loss: native (wav2vec2's contrastive loss, MelHuBERT's masked k-means "
                        "prediction) or teacher (match the unpruned model's hidden states); auto: native for wav2vec2 "
                        "and MelHuBERT, teacher otherwise")
    parser.add_argument("--labels", default=None, metavar="PATH",
                        help="MelHuBERT native objective: the authors' cluster labels (their CSV file_path,label_path,"
                        "length, a folder of KEY.npy files, or a fairseq .km beside its .tsv), matched to the "
                        "training recordings by file name; default: k-means labels fitted on the training audio")
    parser.add_argument("--kmeans-features", choices=("log-mel", "layer"), default=None,
                        help="without --labels, what the k-means labels cluster: the log-Mel filter banks (default, "
                        "the authors' stage-1 recipe) or the unpruned model's hidden states of --kmeans-layer")
    parser.add_argument("--kmeans-layer", type=int, default=None, metavar="N",
                        help="with --kmeans-features layer: the layer (0: input projection; default the middle one)")
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
    add_training_options(
        parser, lr_help="Adam's learning rate",
        batch_help="recordings per step and process (default 4 for MelHuBERT, 12 otherwise)",
        crop_help="random crop of each recording (default 15 s MelHuBERT, 15.625 s otherwise)")
    add_tracking_options(parser)
    add_run_options(parser)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the command line gives explicitly, as dotted configuration keys."""
    return {key: value for key, value in {
        "objective.name": args.objective,
        "objective.melhubert.labels": args.labels,
        "objective.melhubert.kmeans_features": args.kmeans_features,
        "objective.melhubert.kmeans_layer": args.kmeans_layer,
        "schedule.every": args.steps_per_prune,
        "schedule.warmup_steps": args.warmup_steps,
        "schedule.heads_per_step": getattr(args, "heads_per_step", None),
        "schedule.rows_per_step": getattr(args, "rows_per_step", None),
        "schedule.until": getattr(args, "min_heads", None) or getattr(args, "min_rows", None),
        "schedule.prune_at": number_list(getattr(args, "prune_at", None), "--prune-at", "step"),
    }.items() if value is not None} | common_overrides(args)


def run_config(args: argparse.Namespace):
    """The configuration of the run: from the defaults, --config and the options; or, with --resume, the run's own
    (RUN_DIR/config.yaml), which the options may not contradict."""
    from speat_metric.pruning.config import load_config, read_run_config
    from speat_metric.training.checkpoints import RUN_CONFIG

    out = args.out or Path("runs") / f"{args.method}-{slug(Path(args.model).name or args.model)}"
    requested = load_config(args.method, model=args.model, out=out, data=args.data, path=args.config,
                            overrides=_overrides(args), revision=args.revision, mean_std=args.mean_std)
    if args.data is None and not args.resume:
        raise ValueError("--data is required: a folder of audio files or a datasets dataset to fine-tune on")
    if not args.resume:
        return requested
    saved_path = saved_run_config(out, RUN_CONFIG)
    given = {"method": args.method, "model": args.model, **({"data.path": args.data} if args.data else {}),
             **_overrides(args)}
    return resumed_config(read_run_config(saved_path), requested, given, saved_path=saved_path,
                          config_given=args.config is not None, read=_lookup)


def _lookup(data: dict, key: str) -> object:
    if key == "schedule.every":
        phases = data["schedule"]["phases"]
        return [phase["every"] for phase in phases] if phases else data["schedule"]["check_every"]
    if key == "schedule.until":
        return [phase["until"] for phase in data["schedule"]["phases"]]
    return lookup(data, key)


_DEBIAS_HELP = ("remove the heads and FFN rows that carry a bias (gradient attribution on a selection fold of "
                "speakers), under a quality budget, with a short fine-tune after each step; every d is measured on "
                "held-out speakers, against controls (shuffled labels, random, magnitude rows, property neurons, "
                "LEACE); docs/debiasing.md")


def _add_debias_parser(methods: argparse._SubParsersAction) -> None:
    """``speat prune debias``: its own options (counts, not lists, for --seeds and --max-steps)."""
    parser = methods.add_parser("debias", help=_DEBIAS_HELP, description=_DEBIAS_HELP[0].upper() + _DEBIAS_HELP[1:])
    add_model_and_data_options(parser, dest="model", metavar="MODEL",
                               out_help="run directory: records, final/ model, pareto.png, report.md (default "
                               "runs/debias-<model name>)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file replacing settings of pruning/configs/common.yaml (training, data.held_out, "
                        "objective, tracking) or of the debias run (budget, step, folds, ...)")
    parser.add_argument("--tests", default=None, help="comma-separated tests whose |d| to reduce: gender, age, native "
                        "or custom test JSON files (default gender,age)")
    parser.add_argument("--track", default=None, help="comma-separated tests only measured (default native when "
                        "--tests is not given, else none)")
    parser.add_argument("--folds", type=int, default=None, help="speaker folds, each held out once (default 3)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per fold: 0 .. N-1 (default 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="quality tolerance on held-out audio: the teacher objective's loss (0 unpruned) or the "
                        "native objective's relative increase must stay at or below it (default 0.05)")
    parser.add_argument("--step", type=int, default=None, help="components removed per step (default 4)")
    parser.add_argument("--max-steps", type=int, default=None, help="debias steps at most (default 10)")
    parser.add_argument("--verify", type=int, default=None,
                        help="components of largest first-order score whose exact effect on |d| is measured before "
                        "ranking, one forward pass of the selection fold each (default 16; 0: gradients only)")
    parser.add_argument("--fine-tune-steps", type=int, default=None,
                        help="optimiser steps of fine-tuning after each removal (default 100)")
    parser.add_argument("--kinds", default=None, help="heads, rows or heads,rows (default)")
    parser.add_argument("--objective", choices=("native", "teacher"), default=None,
                        help="quality and fine-tuning loss: teacher (default: match the unpruned model's hidden "
                        "states) or native (wav2vec2's and MelHuBERT's own)")
    parser.add_argument("--no-controls", action="store_true", help="skip the controls (the report then compares "
                        "nothing)")
    training = parser.add_argument_group("training")
    training.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default 1e-5)")
    training.add_argument("--batch-size", type=int, default=None, help="recordings per fine-tuning step")
    training.add_argument("--crop-seconds", type=float, default=None, help="random crop of each recording")
    training.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of the model")
    training.add_argument("--mean-std", default=None, help="MelHuBERT: the authors' mean/std .npy")
    tracking = parser.add_argument_group("bias measurement (as speat evaluate)")
    tracking.add_argument("--stimuli", default=None, help="demo (embedded, synthetic: the default), speat, a local "
                          "directory, or a Hub dataset owner/name[@revision]")
    tracking.add_argument("--permutations", type=int, default=None, help="permutation budget of each SpEAT")
    tracking.add_argument("--profile", default=None, help="extraction profile (default hf)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.set_defaults(handler=_debias)


def debias_config(args: argparse.Namespace):
    """The configuration of a debias run from the defaults, --config and the options (one-line errors)."""
    from speat_metric.pruning.debias import load_debias_config

    if args.data is None:
        raise ValueError("--data is required: a folder of audio files or a datasets dataset to fine-tune on")
    out = args.out or Path("runs") / f"debias-{slug(Path(args.model).name or args.model)}"
    track = args.track if args.track is not None else (None if args.tests is not None else "native")
    overrides = {key: value for key, value in {
        "tests": args.tests, "track": track, "folds": args.folds, "seeds": args.seeds, "budget": args.budget,
        "step": args.step, "max_steps": args.max_steps, "verify": args.verify, "fine_tune_steps": args.fine_tune_steps,
        "kinds": args.kinds.split(",") if args.kinds else None, "controls": False if args.no_controls else None,
        "objective.name": args.objective, "optimizer.lr": args.lr, "training.batch_size": args.batch_size,
        "training.crop_seconds": args.crop_seconds, "tracking.stimuli": args.stimuli,
        "tracking.permutations": args.permutations, "tracking.profile": args.profile,
    }.items() if value is not None}
    return load_debias_config(model=args.model, out=out, data=args.data, path=args.config, overrides=overrides,
                              revision=args.revision, mean_std=args.mean_std)


def _debias(args: argparse.Namespace) -> int:
    require_extra("train", "prune debias")
    from speat_metric.distributed import is_main_process
    from speat_metric.progress import silence_library_progress_bars
    from speat_metric.pruning.debias import debias

    config = debias_config(args)
    silence_library_progress_bars(downloads=not args.no_progress)
    summary = debias(config, progress=not args.no_progress)
    if is_main_process():
        print(summary.report.read_text() if summary.report else "")
        print(f"report: {summary.report}; figure: {summary.figure}; final model: "
              f"{summary.final or 'none (no step within the budget)'}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    require_extra("train", "prune")
    from speat_metric.distributed import is_main_process
    from speat_metric.pruning.train import prune
    from speat_metric.training.plots import curve_markdown, curve_rows

    config, report_to = start_run(args, run_config)
    summary = prune(config, resume=args.resume, report_to=report_to, progress=not args.no_progress)
    if is_main_process():
        print(curve_markdown(curve_rows(summary.records), title=f"{config.method} pruning of {config.model}"))
        print(f"{len(summary.checkpoints)} checkpoints in {summary.run_dir}/ after {summary.steps} steps; curve: "
              f"{summary.curve.get('png')}")
        again = (ModelSpec.parse(summary.checkpoints[0]).member(summary.run_dir) if summary.checkpoints
                 else str(summary.run_dir))
        print(f"evaluate the checkpoints again (other stimuli or tests): speat evaluate {again} --stimuli speat")
    return 0
