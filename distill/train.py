"""The distillation run, top to bottom: teacher, data, tracker, then for each student depth: student, heads,
``accelerator.prepare``, resume, the loop, checkpoints with their SpEAT; at the end the Figure-3 chart.

The teacher's SpEAT ("base") is measured once, before the first student. Every ``checkpoint_every`` steps and at
the last step the student (without its heads) is saved and its SpEAT recorded, then a resumable state follows; a
killed run resumed with ``--resume`` continues the student it was training at the step of its latest state, and
skips the students already finished.

Run directory (``--out``)::

    config.yaml                          the resolved settings
    results/*.json                       the teacher's records, and one per student checkpoint and test
    student-<L>-layers/checkpoint-<step>/       a transformers student (speat evaluate RUN_DIR/student-2-layers), or
    student-<L>-layers/checkpoint-<step>.ckpt   a MelHuBERT student (speat evaluate melhubert:RUN_DIR/student-...)
    student-<L>-layers/state/step-<N>/   resumable accelerate states (the latest ``keep_states``)
    distill.png, distill.csv, distill.md d per test: the teacher ("base") and each student (Lin et al. 2024, Fig. 3)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from accelerate.utils.constants import MODEL_NAME, SAFE_MODEL_NAME
from safetensors import safe_open
from torch import nn

from speat_metric.adapters.base import count_parameters
from speat_metric.distill.config import DistillationConfig
from speat_metric.distill.noise import NoiseSource, noise_mix_ratio, snr_db
from speat_metric.distill.objective import DistillationBatches, distillation_loss
from speat_metric.distill.report import write_report
from speat_metric.distill.student import DistillationModel, build_student, check_layers, check_saved_heads, width
from speat_metric.files import atomic_write_text
from speat_metric.results import EvaluationRecord
from speat_metric.training.bias_tracking import RESULTS_DIRECTORY, BiasTracker
from speat_metric.training.checkpoints import (
    RUN_CONFIG,
    STATE_DIRECTORY,
    TrainerState,
    check_new_run,
    load_training_state,
    resolve_resume,
    resume_batches,
    save_training_state,
    state_directories,
)
from speat_metric.training.data import RandomCrops, make_dataloader
from speat_metric.training.loop import StepProgress, TrainingSteps, flat_settings, open_run
from speat_metric.training.models import TrainableEncoder, load_trainable_encoder

logger = logging.getLogger(__name__)

METHOD = "distill"


@dataclass
class DistillationSummary:
    """What a run made: its directory, each student's checkpoints (model strings), the records and the chart."""

    run_dir: Path
    checkpoints: dict[int, list[str]] = field(default_factory=dict)
    records: list[EvaluationRecord] = field(default_factory=list)
    report: dict[str, Path] = field(default_factory=dict)


def student_directory(run_dir: str | Path, layers: int) -> Path:
    return Path(run_dir) / f"student-{layers}-layers"


def learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate of optimiser step `step` (0-based): linear warm-up from 0, then linear decay to 0 at
    `total_steps` (transformers' ``get_linear_schedule_with_warmup``, which S3PRL's ``AdamW_with_schedule`` uses).
    A function of the step alone, so a resumed run needs no scheduler state."""
    if step < warmup_steps:
        return peak * step / max(1, warmup_steps)
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")
"""S3PRL's ``get_grouped_parameters`` (s3prl/s3prl, ``s3prl/optimizers.py``): parameters whose name contains one of
these are not decayed. transformers and MelHuBERT name their norms ``layer_norm``, as fairseq does, so only biases
match, there as here."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The optimiser's parameter groups as S3PRL's ``AdamW_with_schedule`` builds them: `weight_decay` for every
    trainable parameter but the biases, none for those."""
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    return [{"params": [parameter for name, parameter in named if not any(part in name for part in NO_DECAY)],
             "weight_decay": weight_decay},
            {"params": [parameter for name, parameter in named if any(part in name for part in NO_DECAY)],
             "weight_decay": 0.0}]


def _saved_model_names(state: Path) -> list[str] | None:
    """The state-dict keys of the model an accelerate state holds (None: no model file, accelerate will say)."""
    safetensors_file = state / f"{SAFE_MODEL_NAME}.safetensors"
    if safetensors_file.is_file():
        with safe_open(safetensors_file, framework="pt") as weights:
            return list(weights.keys())
    pickled = state / f"{MODEL_NAME}.bin"
    return list(torch.load(pickled, map_location="cpu", weights_only=True)) if pickled.is_file() else None


def distill(config: DistillationConfig, *, resume: bool | str | None = False, report_to: Any = None,
            progress: bool = True) -> DistillationSummary:
    """Distil the teacher into each student depth of the config, with bias tracking (what ``speat distill`` runs).

    Args:
        config: the resolved settings (`speat_metric.distill.config.load_config`).
        resume: continue the run in ``config.out`` (True: each student from its latest state; a path: that state
            of its student), or start (False).
        report_to: accelerate trackers (`speat_metric.training.loop.parse_report_to`).
        progress: show progress bars.

    Raises:
        ValueError: bad data, noise, teacher, layers, stimuli or settings, all found before training starts.
    """
    run_dir = Path(config.out)
    starts = _resume_points(run_dir, config, resume)

    # The cheap checks first: the data and noise can be read, the tests and their stimuli exist.
    training = config.training
    accelerator, audio, tracker = open_run(run_dir, data=config.data, training=training, tracking=config.tracking,
                                           mean_std=config.mean_std, report_to=report_to, progress=progress)
    noise = NoiseSource.from_setting(config.noise.source, progress=progress and accelerator.is_main_process)

    # A state of an older head layout: one line now, not a load_state_dict traceback after the teacher is loaded.
    for layers, start in starts.items():
        saved = None if start is None or _finished(tracker, layers, config.max_steps) else _saved_model_names(start)
        if saved is not None:
            check_saved_heads(saved, state=start)

    # The teacher, frozen; students must fit in it.
    teacher = load_trainable_encoder(config.teacher, revision=config.revision, mean_std=config.mean_std,
                                     command="speat distill")
    check_layers(teacher, layers=config.layers, targets=config.targets)
    teacher_module = teacher.frozen_copy().to(accelerator.device)

    # Training crops (a folder is checked file by file here), the teacher's and the student's inputs.
    audio = audio.check_files(min_seconds=training.min_seconds, progress=progress and accelerator.is_main_process)
    crops = RandomCrops(audio, crop_seconds=training.crop_seconds, min_seconds=training.min_seconds,
                        seed=training.seed)
    dataloader = make_dataloader(crops, batch_size=training.batch_size, num_workers=training.num_workers,
                                 prepare=DistillationBatches(teacher.inputs, noise, noise_mix_ratio(config.noise)),
                                 num_processes=accelerator.num_processes)
    if accelerator.is_main_process and not any(starts.values()):
        atomic_write_text(run_dir / RUN_CONFIG, config.to_yaml())
    if report_to:
        accelerator.init_trackers("speat-distill", config=flat_settings(config.to_dict()))

    teacher_name = _teacher_records(tracker, config.teacher)[0].model.name
    summary = DistillationSummary(run_dir)
    for layers in config.layers:
        if _finished(tracker, layers, config.max_steps):
            logger.info("the %d-layer student is finished; skipping it", layers)
            continue
        _train_student(config, layers, teacher=teacher, teacher_module=teacher_module, teacher_name=teacher_name,
                       dataloader=dataloader, accelerator=accelerator, tracker=tracker,
                       resume_from=starts.get(layers), progress=progress)

    accelerator.wait_for_everyone()
    summary.records = [record for record in tracker.records() if _belongs(record, config)]
    steps: dict[int, set[int]] = {}
    for record in summary.records:
        if record.compression and record.checkpoint:
            steps.setdefault(record.compression["layers"], set()).add(record.checkpoint["step"])
    summary.checkpoints = {
        layers: [teacher.checkpoint_spec(teacher.checkpoint_path(student_directory(run_dir, layers), step))
                 for step in sorted(student_steps)]
        for layers, student_steps in steps.items()}
    if accelerator.is_main_process:
        summary.report = write_report(summary.records, run_dir, teacher=teacher_name,
                                      title=f"Distilling {Path(config.teacher).name or config.teacher}")
    accelerator.end_training()
    return summary


def _train_student(config: DistillationConfig, layers: int, *, teacher: TrainableEncoder, teacher_module,
                   teacher_name: str, dataloader, accelerator, tracker: BiasTracker, resume_from: Path | None,
                   progress: bool) -> None:
    """Train one student from its start (or its saved state) to the last step, checkpointing and tracking."""
    training, optimizer_settings = config.training, config.optimizer
    student_dir = student_directory(config.out, layers)

    # The student (the teacher's front end and first layers) and its heads, seeded: the heads start at random.
    set_seed(training.seed, device_specific=True)
    student = build_student(teacher, layers, init_from_teacher=config.student.init_from_teacher)
    model = DistillationModel(student, teacher_width=width(teacher.encoder), num_targets=len(config.targets))
    optimizer = torch.optim.AdamW(parameter_groups(model, optimizer_settings.weight_decay), lr=optimizer_settings.lr,
                                  betas=tuple(optimizer_settings.betas), eps=optimizer_settings.eps)
    accelerator.free_memory()  # the previous student's model and optimiser leave accelerate's lists
    model, optimizer, batches = accelerator.prepare(model, optimizer, dataloader)
    state = TrainerState()
    if resume_from is not None:
        state = load_training_state(accelerator, resume_from)
        logger.info("resumed the %d-layer student from %s at step %d", layers, resume_from, state.step)

    def compression(step: int) -> dict[str, Any]:
        parameters = count_parameters(student.encoder)
        return {"method": METHOD, "teacher": teacher_name, "teacher_model": config.teacher, "layers": layers,
                "targets": list(config.targets), "step": step, "noise": config.noise.source,
                "mix_ratio": noise_mix_ratio(config.noise) if config.noise.source else None,
                "snr_db": snr_db(noise_mix_ratio(config.noise)) if config.noise.source else None,
                "parameters": parameters,
                "base_parameters": teacher.base_parameters, "parameters_removed": teacher.base_parameters - parameters,
                "config": config.to_dict()}

    checkpoint_steps = set(config.checkpoint_steps())
    bar = StepProgress(config.max_steps, initial=state.step, desc=f"distilling a {layers}-layer student",
                       enabled=progress and accelerator.is_main_process)

    def loss(batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            hidden_states = teacher.hidden_states(teacher_module, batch["teacher"])
        value, per_target = distillation_loss(
            model(batch["student"]), [hidden_states[target] for target in config.targets],
            l1_weight=config.loss.l1_weight, cosine_weight=config.loss.cosine_weight)
        return value, {f"loss_layer_{target}": layer for target, layer in zip(config.targets, per_target)}

    def schedule_learning_rate() -> dict[str, float]:
        lr = learning_rate(state.step, peak=optimizer_settings.lr, warmup_steps=config.warmup_steps,
                           total_steps=config.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return {"lr": lr}

    train_step = TrainingSteps(accelerator, bar, optimizer_settings.gradient_clipping, log_prefix=f"student-{layers}/")
    model.train()
    while state.step < config.max_steps:
        for batch in resume_batches(batches, state):
            if train_step(model, optimizer, state, lambda: loss(batch), schedule_learning_rate) is None:
                continue
            if state.step in checkpoint_steps:  # the student without its heads, and its SpEAT
                tracker.checkpoint(student, student_dir, state.step, accelerator=accelerator,
                                   compression=compression(state.step), log_prefix=f"student-{layers}/")
            if state.step >= config.max_steps:
                break
            if state.step in checkpoint_steps or (training.save_state_every
                                                  and state.step % training.save_state_every == 0):
                save_training_state(accelerator, student_dir, state, keep=training.keep_states)
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
    bar.close()


def _resume_points(run_dir: Path, config: DistillationConfig, resume: bool | str | None) -> dict[int, Path | None]:
    """The state each student resumes from (None: from its start).

    Raises:
        ValueError: a new run where a student already has states, ``--resume`` of a run with none, or a state path
            that belongs to none of the students.
    """
    directories = {layers: student_directory(run_dir, layers) for layers in config.layers}
    if not resume:
        check_new_run(run_dir)  # a run's directory holds its config.yaml from its start, its students' states later
        return {layers: None for layers in config.layers}
    if resume is True or resume == "latest":
        starts = {layers: (state_directories(directory) or [None])[-1] for layers, directory in directories.items()}
        if not any(starts.values()) and not (run_dir / RESULTS_DIRECTORY).is_dir():
            raise ValueError(f"--resume: {run_dir} has no saved training state to resume from; run without --resume "
                             "to start")
        return starts
    path = resolve_resume(run_dir, resume=resume)
    for layers, directory in directories.items():
        if path.resolve().parent == (directory / STATE_DIRECTORY).resolve():
            return {other: (path if other == layers else (state_directories(directories[other]) or [None])[-1])
                    for other in config.layers}
    students = ", ".join(str(directory) for directory in directories.values())
    raise ValueError(f"--resume {path}: not a state of this run's students ({students})")


def _teacher_records(tracker: BiasTracker, teacher: str) -> list[EvaluationRecord]:
    """The teacher's SpEAT ("base"): measured once per run, read back when resuming."""
    done = [record for record in tracker.records() if not record.compression and record.checkpoint is None]
    return done or tracker.evaluate(teacher, compression=None)


def _finished(tracker: BiasTracker, layers: int, max_steps: int) -> bool:
    return any(record.compression and record.compression.get("method") == METHOD
               and record.compression.get("layers") == layers and record.compression.get("step") == max_steps
               for record in tracker.records())


def _belongs(record: EvaluationRecord, config: DistillationConfig) -> bool:
    """The teacher's records and those of this run's students."""
    compression = record.compression
    if not compression:
        return record.checkpoint is None
    return compression.get("method") == METHOD and compression.get("layers") in config.layers
