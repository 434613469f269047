"""`speat distill TEACHER` (also `python -m speat_metric.distill`, and `accelerate launch -m speat_metric.distill` for
several processes or GPUs): DistilHuBERT-style distillation of speech encoders, with SpEAT measured at every student
checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from speat_metric.extras import require_extra
from speat_metric.training.cli import (
    add_model_and_data_options,
    add_run_options,
    add_tracking_options,
    add_training_options,
    common_overrides,
    number_list,
    resumed_config,
    saved_run_config,
    slug,
    start_run,
)

_RESUMABLE_CHANGES = frozenset({"training.num_workers"})
"""A resumed distillation keeps its length too: the learning-rate schedule follows --max-steps."""

_DESCRIPTION = (
    "Distil TEACHER into students of 2, 4 or 6 transformer layers as DistilHuBERT does (S3PRL's distiller): each "
    "student starts from the teacher's front end and first layers and learns to predict the teacher's hidden states "
    "of the --targets layers (L1 + -log sigmoid(cosine)); several students train together, each batch through the "
    "teacher once (--no-joint: one after the other). SpEAT is measured for the teacher ('base') and at every "
    "student checkpoint, with each student's distillation loss on held-out recordings it never trains on; the run "
    "ends with distill.png and a table like Lin et al. (2024), Figure 3 (--seeds 0,1,2: one run per seed, and "
    "their mean and min-max range). Every "
    "hyperparameter is a default in distill/configs/common.yaml; --config FILE (or --config study, the study's 4th "
    "and 12th-layer targets with 2, 4 and 6-layer students) replaces any of them, the options below the common ones. "
    "Several processes or GPUs: accelerate launch -m speat_metric.distill TEACHER ...")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `distill` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    parser = commands.add_parser(
        "distill", help="DistilHuBERT-style distillation of speech encoders, with SpEAT at every checkpoint",
        description=_DESCRIPTION)
    add_model_and_data_options(parser, dest="teacher", metavar="TEACHER",
                               out_help="run directory: students, results, chart, resumable states (default "
                               "runs/distill-<teacher name>)")
    parser.add_argument("--config", default=None,
                        help="a YAML file replacing settings of distill/configs/common.yaml (only those it names), "
                        "or 'study' (Lin et al. 2024: targets 4,12, students of 2, 4 and 6 layers)")
    students = parser.add_argument_group("students")
    students.add_argument("--layers", default=None, metavar="L[,L...]",
                          help="transformer layers of the student; several (2,4,6) train one student each "
                          "(default 2)")
    students.add_argument("--joint", action=argparse.BooleanOptionalAction, default=None,
                          help="train the students at once, each batch through the teacher once (default); "
                          "--no-joint: one after the other, when the students and their optimiser states do not fit "
                          "in memory together. Each student trains the same either way")
    students.add_argument("--targets", default=None, metavar="T[,T...]",
                          help="teacher layers each student predicts, one head each (default 4,8,12 as "
                          "DistilHuBERT; the study: 4,12)")
    students.add_argument("--noise", default=None, metavar="DIR|synthetic",
                          help="denoising distillation: the student hears each crop mixed with noise from DIR (a "
                          "folder of recordings) or synthetic white noise; the teacher hears it clean")
    students.add_argument("--mix-ratio", type=float, default=None, metavar="ALPHA",
                          help="with --noise: student input = (1 - ALPHA) x speech + ALPHA x noise, the noise scaled "
                          "to the speech's RMS (default 0.2, M2D-S's ratio: a 12.04 dB SNR here)")
    students.add_argument("--snr-db", type=float, default=None, metavar="DB",
                          help="with --noise: the mix's signal-to-noise ratio in dB, instead of --mix-ratio (ALPHA = "
                          "1 / (1 + 10^(DB/20)); M2D-S's log-Mel mix at 0.2 is about 6 dB)")
    students.add_argument("--checkpoint-every", type=int, default=None,
                          help="steps between student checkpoints, each with its SpEAT (default 50000); the last "
                          "step always has one")
    add_training_options(parser, lr_help="AdamW's peak learning rate (default 2e-4; 7%% linear warm-up, then linear "
                         "decay to 0 at --max-steps)",
                         batch_help="recordings per step and process (default 24)",
                         crop_help="random crop of each recording (default 15.625 s)",
                         max_steps_help="the run's length in optimiser steps per student (default 200000, "
                         "DistilHuBERT); the learning-rate schedule follows it")
    add_tracking_options(parser)
    add_run_options(parser)
    parser.set_defaults(handler=_distill)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the command line gives explicitly, as dotted configuration keys."""
    return {key: value for key, value in {
        "layers": number_list(args.layers, "--layers", "layer"),
        "joint": args.joint,
        "targets": number_list(args.targets, "--targets", "layer"),
        "noise.source": args.noise,
        "noise.mix_ratio": args.mix_ratio,
        "noise.snr_db": args.snr_db,
        "checkpoint_every": args.checkpoint_every,
    }.items() if value is not None} | common_overrides(args)


def run_config(args: argparse.Namespace):
    """The configuration of the run: from the defaults, --config and the options; or, with --resume, the run's own
    (RUN_DIR/config.yaml), which the options may not contradict."""
    from speat_metric.distill.config import load_config, read_run_config
    from speat_metric.training.checkpoints import RUN_CONFIG

    out = args.out or Path("runs") / f"distill-{slug(Path(args.teacher).name or args.teacher)}"
    requested = load_config(teacher=args.teacher, out=out, data=args.data, path=args.config,
                            overrides=_overrides(args), revision=args.revision, mean_std=args.mean_std)
    for option, value in (("--mix-ratio", args.mix_ratio), ("--snr-db", args.snr_db)):
        if value is not None and requested.noise.source is None:
            raise ValueError(f"{option} applies to denoising distillation: give --noise DIR|synthetic too")
    if args.data is None and not args.resume:
        raise ValueError("--data is required: a folder of audio files or a datasets dataset to distil on")
    if not args.resume:
        return requested
    saved_path = saved_run_config(out, RUN_CONFIG)
    saved = read_run_config(saved_path)
    given = {"teacher": args.teacher, **({"data.path": args.data} if args.data else {}), **_overrides(args)}
    if "joint" not in given:  # a run resumes in its own mode: a run saved before joint existed trained sequentially
        requested = requested.replace(joint=saved.joint)
    return resumed_config(saved, requested, given, saved_path=saved_path, config_given=args.config is not None,
                          resumable=_RESUMABLE_CHANGES)


def _distill(args: argparse.Namespace) -> int:
    require_extra("train", "distill")
    from speat_metric.distill.train import distill
    from speat_metric.distributed import is_main_process

    config, report_to = start_run(args, run_config)
    summary = distill(config, resume=args.resume, report_to=report_to, progress=not args.no_progress)
    if is_main_process():
        print(summary.report["markdown"].read_text())  # the Figure-3 table (across the seeds with --seeds)
        for layers, checkpoints in sorted(summary.checkpoints.items()):
            print(f"{layers}-layer student: {len(checkpoints)} checkpoints, the last {checkpoints[-1]}")
        print(f"chart: {summary.report.get('png')}")
        if summary.checkpoints:
            series = summary.checkpoints[min(summary.checkpoints)][-1].rsplit("/", 1)[0]
            print(f"evaluate a student's checkpoints again (other stimuli or tests): speat evaluate {series} "
                  "--stimuli speat")
    return 0
