"""The distillation run, top to bottom: teacher, data, tracker, then the students: student, heads,
``accelerator.prepare``, resume, the loop, checkpoints with their SpEAT; at the end the Figure-3 chart.

The teacher's SpEAT ("base") is measured once, before the first student. By default (``joint``) every student of
``--layers`` trains at once: each batch goes through the teacher once (no gradient), then through each student's
forward, loss and backward, and one optimiser step updates them all (`DistillationSteps`). With ``joint: false``
(``--no-joint``) the students train one after the other, each a run of its own through the same steps. Either way a
student's training is the one it would have alone: its heads are drawn after ``set_seed(seed)`` as in a run of that
student alone, its dropout from its own stream (`student_random_stream`), and AdamW and the gradient clipping act
on each student's parameters alone; the tests check that a joint run's students equal separate runs' ones.

Every ``checkpoint_every`` steps and at the last step each student (without its heads) is saved and its SpEAT
recorded, with its distillation loss on held-out recordings that are never trained on (``compression
["held_out_loss"]``, `HeldOutLoss`; the teacher's records have none), then a resumable state follows; a killed run
resumed with ``--resume`` continues from its latest state: every student of a joint run, or the student a sequential
run was training (the finished ones are skipped). With ``training.seeds`` (``--seeds``) the run is replicated: one
run per seed in ``seed-<s>/``, then the across-seed chart at the top (`distill_replicates`).

Run directory (``--out``)::

    config.yaml                          the resolved settings
    results/*.json                       the teacher's records, and one per student checkpoint and test
    student-<L>-layers/checkpoint-<step>/       a transformers student (speat evaluate RUN_DIR/student-2-layers), or
    student-<L>-layers/checkpoint-<step>.ckpt   a MelHuBERT student (speat evaluate melhubert:RUN_DIR/student-...)
    state/step-<N>/                      a joint run's resumable accelerate states, every student in each (the
                                         latest ``keep_states``)
    student-<L>-layers/state/step-<N>/   a sequential run's (``--no-joint``), one student each
    distill.png, distill.csv, distill.md d per test: the teacher ("base") and each student (Lin et al. 2024, Fig. 3),
                                         and each student's held-out loss
    held_out.json                        the held-out recordings (never trained on) and how they were chosen

A replicated run (``--seeds 0,1,2``)::

    config.yaml                          the settings, with the seeds
    seed-<s>/                            one run as above per seed (training.seed s), replicate.json once finished
    distill.png, distill.csv, distill.md mean and min-max range over the seeds of d and of the held-out loss
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from accelerate.utils.constants import MODEL_NAME, SAFE_MODEL_NAME
from safetensors import safe_open
from torch import nn

from speat_metric.adapters.base import count_parameters
from speat_metric.distill.config import DistillationConfig, OptimizerConfig
from speat_metric.distill.noise import NoiseSource, noise_mix_ratio, snr_db
from speat_metric.distill.objective import DistillationBatches, distillation_loss
from speat_metric.distill.report import report_title, write_replicate_report, write_report
from speat_metric.distill.student import DistillationModel, build_student, check_layers, check_saved_heads, width
from speat_metric.files import atomic_write_text
from speat_metric.results import EvaluationRecord
from speat_metric.training.bias_tracking import RESULTS_DIRECTORY, BiasTracker, HeldOutLoss
from speat_metric.training.checkpoints import (
    RUN_CONFIG,
    STATE_DIRECTORY,
    TrainerState,
    check_new_run,
    load_training_state,
    read_trainer_state,
    resolve_resume,
    resume_batches,
    run_replicates,
    save_training_state,
    seed_directory,
    state_directories,
)
from speat_metric.training.data import RandomCrops, make_dataloader, run_held_out_split
from speat_metric.training.loop import StepProgress, flat_settings, open_run
from speat_metric.training.models import TrainableEncoder, load_trainable_encoder
from speat_metric.training.plots import run_records

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
    """The state-dict keys of the (first) model an accelerate state holds (None: no model file, accelerate will
    say). A joint state holds one model per student, all saved at once: the first stands for them."""
    safetensors_file = state / f"{SAFE_MODEL_NAME}.safetensors"
    if safetensors_file.is_file():
        with safe_open(safetensors_file, framework="pt") as weights:
            return list(weights.keys())
    pickled = state / f"{MODEL_NAME}.bin"
    return list(torch.load(pickled, map_location="cpu", weights_only=True)) if pickled.is_file() else None


@dataclass
class Student:
    """One student in training: its depth, the encoder its checkpoints save, the model with heads that is trained
    (accelerate's prepared one once `DistillationSteps` runs) and the directory of its checkpoints."""

    layers: int
    encoder: TrainableEncoder
    model: nn.Module
    directory: Path


def build_students(teacher: TrainableEncoder, config: DistillationConfig,
                   layers: Sequence[int] | None = None) -> list[Student]:
    """The students of `layers` (default: every depth of the config), each with its heads.

    Each student is built right after ``set_seed(seed)``, so its heads (and a random student's weights) are those a
    run of that student alone draws, whichever students train beside it.
    """
    students = []
    for depth in config.layers if layers is None else layers:
        set_seed(config.training.seed, device_specific=True)
        encoder = build_student(teacher, depth, init_from_teacher=config.student.init_from_teacher)
        model = DistillationModel(encoder, teacher_width=width(teacher.encoder), num_targets=len(config.targets))
        students.append(Student(depth, encoder, model, student_directory(config.out, depth)))
    return students


def make_optimizer(students: Sequence[Student], settings: OptimizerConfig) -> torch.optim.AdamW:
    """One AdamW over every student's parameter groups. AdamW updates each parameter from its own gradient and
    moments (and counts its own steps), so a student's update is the one it would get from an optimiser of its
    own; one optimiser keeps fp16's single gradient scaler to one unscale and one update per step."""
    groups = [group for student in students for group in parameter_groups(student.model, settings.weight_decay)]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=tuple(settings.betas), eps=settings.eps)


@contextlib.contextmanager
def student_random_stream(seed: int, process: int, layers: int, position: tuple[int, int],
                          device: torch.device) -> Iterator[None]:
    """Run a student's forward (its dropout) on torch's generators seeded from ``(seed, process, layers, epoch,
    micro-batch)``, restoring them afterwards. Each student then draws what it would draw alone, whether other
    students train beside it or not, and a resumed run draws what the uninterrupted one did (the position is in
    the saved `TrainerState`); the data loader and everything else see the global generators untouched."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(np.random.SeedSequence([seed, process, layers, *position]).generate_state(1)[0]))
        yield


class DistillationSteps:
    """The micro-batches of a run's students (one or several): each micro-batch goes through the teacher once,
    without gradients, then through each student's forward, loss and backward (one at a time, so only one
    student's activations are held); at the last micro-batch of an optimiser step the learning rate is set, each
    student's gradient norm is clipped on its own, and the optimiser steps. Each student's loss (averaged over the
    step's micro-batches and processes), learning rate and per-target losses are logged under ``student-<L>/train/``
    as `speat_metric.training.loop.TrainingSteps` logs one model's (which cannot share a teacher forward between
    models: accelerate counts micro-batches per ``accumulate``).

    Args:
        accelerator: the run's accelerator; the students' models and `optimizer` are prepared.
        students: the students trained together (their ``model`` prepared).
        optimizer: `make_optimizer` of them, prepared.
        teacher, teacher_module: the teacher and its frozen module (on the device).
        config: the run's settings (targets, loss weights, schedule, clipping, seed).
        bar: the progress bar over optimiser steps.
    """

    def __init__(self, accelerator: Any, students: Sequence[Student], optimizer: torch.optim.Optimizer, *,
                 teacher: TrainableEncoder, teacher_module: nn.Module, config: DistillationConfig,
                 bar: StepProgress) -> None:
        self.accelerator, self.students, self.optimizer = accelerator, list(students), optimizer
        self.teacher, self.teacher_module, self.config, self.bar = teacher, teacher_module, config, bar
        self._losses: dict[int, list[torch.Tensor]] = {student.layers: [] for student in self.students}

    def teacher_targets(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """The teacher's hidden states of the target layers for a batch (under the run's autocast)."""
        with self.accelerator.autocast(), torch.no_grad():
            hidden_states = self.teacher.hidden_states(self.teacher_module, batch["teacher"])
        return [hidden_states[target] for target in self.config.targets]

    def student_loss(self, model: nn.Module, batch: dict[str, Any],
                     targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A student's loss on a batch (its model with heads, on the student's inputs) against the teacher's
        `targets`, and each target's share."""
        return distillation_loss(model(batch["student"]), targets, l1_weight=self.config.loss.l1_weight,
                                 cosine_weight=self.config.loss.cosine_weight)

    def held_out_loss(self, student: Student, held_out: HeldOutLoss, step: int) -> dict[str, Any]:
        """The student's loss on the held-out crops as it is now, for its record's ``compression`` (every process
        at the same point; `HeldOutLoss.measure`): the training loss, on the inputs the training prepares (with
        ``--noise``, the student hears each held-out crop mixed with noise drawn from the crop's seed, the same at
        every checkpoint and seed)."""
        module = self.accelerator.unwrap_model(student.model)
        return held_out.measure(module, lambda batch: self.student_loss(module, batch, self.teacher_targets(batch))[0],
                                accelerator=self.accelerator, step=step, log_prefix=f"student-{student.layers}/")

    def __call__(self, batch: dict[str, Any], state: TrainerState) -> dict[int, float] | None:
        """Run one micro-batch (moving `state` on); when it completed an optimiser step, each student's loss of
        that step by depth, else None."""
        accelerator, config = self.accelerator, self.config
        position = (state.epoch, state.batches_in_epoch)
        metrics: dict[int, dict[str, Any]] = {}
        with accelerator.accumulate(*(student.model for student in self.students)):
            targets = self.teacher_targets(batch)
            for student in self.students:
                with student_random_stream(config.training.seed, accelerator.process_index, student.layers,
                                           position, accelerator.device):
                    with accelerator.autocast():
                        loss, per_target = self.student_loss(student.model, batch, targets)
                    accelerator.backward(loss)
                self._losses[student.layers].append(loss.detach())
                metrics[student.layers] = {f"loss_layer_{target}": layer
                                           for target, layer in zip(config.targets, per_target)}
            if accelerator.sync_gradients:
                lr = learning_rate(state.step, peak=config.optimizer.lr, warmup_steps=config.warmup_steps,
                                   total_steps=config.max_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if clipping := config.optimizer.gradient_clipping:
                    accelerator.unscale_gradients()  # once: fp16's scaler refuses a second unscale before the step
                    for student in self.students:  # each student's norm, as a run of it alone clips
                        torch.nn.utils.clip_grad_norm_(student.model.parameters(), clipping)
            self.optimizer.step()
            self.optimizer.zero_grad()
        state.batches_in_epoch += 1
        if not accelerator.sync_gradients:
            return None
        state.step += 1
        losses = {layers: accelerator.reduce(torch.stack(values).mean(), reduction="mean").item()
                  for layers, values in self._losses.items()}
        for values in self._losses.values():
            values.clear()
        self.bar.update(postfix={f"loss {layers}L": f"{loss:.4f}" for layers, loss in losses.items()})
        accelerator.log({f"student-{layers}/train/{name}": float(value)
                         for layers, loss in losses.items()
                         for name, value in {"loss": loss, "lr": lr, **metrics[layers]}.items()}, step=state.step)
        return losses


def distill(config: DistillationConfig, *, resume: bool | str | None = False, report_to: Any = None,
            progress: bool = True) -> DistillationSummary:
    """Distil the teacher into each student depth of the config, with bias tracking (what ``speat distill`` runs).

    Args:
        config: the resolved settings (`speat_metric.distill.config.load_config`); with ``training.seeds``, one run
            per seed (`distill_replicates`).
        resume: continue the run in ``config.out`` (True: from its latest state, each student's in a sequential
            run; a path: that state), or start (False).
        report_to: accelerate trackers (`speat_metric.training.loop.parse_report_to`).
        progress: show progress bars.

    Raises:
        ValueError: bad data, noise, teacher, layers, stimuli or settings, all found before training starts.
    """
    if config.training.seeds:
        return distill_replicates(config, resume=resume, report_to=report_to, progress=progress)
    run_dir = Path(config.out)
    starts = _resume_points(run_dir, config, resume)
    resumed = next((read_trainer_state(start).recipe for start in starts.values() if start is not None), None)

    # The cheap checks first: the data and noise can be read, the tests and their stimuli exist.
    training = config.training
    accelerator, audio, tracker = open_run(run_dir, data=config.data, training=training, tracking=config.tracking,
                                           mean_std=config.mean_std, report_to=report_to, progress=progress)
    noise = NoiseSource.from_setting(config.noise.source, progress=progress and accelerator.is_main_process)

    # A state of an older head layout: one line now, not a load_state_dict traceback after the teacher is loaded.
    for group, start in starts.items():
        finished = all(_finished(tracker, layers, config.max_steps) for layers in group)
        saved = None if start is None or finished else _saved_model_names(start)
        if saved is not None:
            check_saved_heads(saved, state=start)

    # The teacher, frozen; students must fit in it.
    teacher = load_trainable_encoder(config.teacher, revision=config.revision, mean_std=config.mean_std,
                                     command="speat distill")
    check_layers(teacher, layers=config.layers, targets=config.targets)
    teacher_module = teacher.frozen_copy().to(accelerator.device)

    # Training crops (a folder is checked file by file here), the teacher's and the student's inputs. The held-out
    # recordings are split off first: they are never trained on; their crops are prepared as the training's.
    audio = audio.check_files(min_seconds=training.min_seconds, progress=progress and accelerator.is_main_process)
    split = run_held_out_split(audio, config.data.held_out, resumed_recipe=resumed)
    prepare = DistillationBatches(teacher.inputs, noise, noise_mix_ratio(config.noise))
    crops = RandomCrops(split.train if split else audio, crop_seconds=training.crop_seconds,
                        min_seconds=training.min_seconds, seed=training.seed)
    dataloader = make_dataloader(crops, batch_size=training.batch_size, num_workers=training.num_workers,
                                 prepare=prepare, num_processes=accelerator.num_processes)
    held_out = HeldOutLoss(split, crop_seconds=training.crop_seconds, min_seconds=training.min_seconds,
                           batch_size=training.batch_size, prepare=prepare) if split else None
    if accelerator.is_main_process and not any(starts.values()):
        atomic_write_text(run_dir / RUN_CONFIG, config.to_yaml())
        if held_out:
            held_out.write_list(run_dir)
    if report_to:
        accelerator.init_trackers("speat-distill", config=flat_settings(config.to_dict()))

    teacher_name = _teacher_records(tracker, config.teacher)[0].model.name
    summary = DistillationSummary(run_dir)
    for group, state_root in _training_groups(config):
        if all(_finished(tracker, layers, config.max_steps) for layers in group):
            logger.info("the %s-layer student%s finished; skipping", ", ".join(map(str, group)),
                        " is" if len(group) == 1 else "s are")
            continue
        _train_students(config, group, state_root, teacher=teacher, teacher_module=teacher_module,
                        teacher_name=teacher_name, dataloader=dataloader, accelerator=accelerator, tracker=tracker,
                        held_out=held_out, resume_from=starts.get(group), progress=progress)

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
        summary.report = write_report(summary.records, run_dir, title=report_title(config.teacher))
    accelerator.end_training()
    return summary


def _training_groups(config: DistillationConfig) -> list[tuple[tuple[int, ...], Path]]:
    """The students trained together and where their resumable states go: every student at once in the run
    directory (joint), or one student at a time in its own directory (sequential)."""
    if config.joint:
        return [(tuple(config.layers), Path(config.out))]
    return [((layers,), student_directory(config.out, layers)) for layers in config.layers]


def distill_replicates(config: DistillationConfig, *, resume: bool | str | None = False, report_to: Any = None,
                       progress: bool = True) -> DistillationSummary:
    """`distill` once per seed of ``config.training.seeds`` (`run_replicates`: ``RUN_DIR/seed-<s>/``, each an
    ordinary run), then the across-seed chart in ``RUN_DIR`` (`write_replicate_report`, from every seed's records);
    the summary holds every seed's records and, per student depth, every seed's checkpoints, seed by seed."""
    from speat_metric.adapters import checkpoint_series
    from speat_metric.distributed import is_main_process

    def state_roots(directory: Path) -> list[Path]:  # a --no-joint seed keeps its states in its students' folders
        return [root for _, root in _training_groups(config.replace(out=str(directory)))]

    run_dir = Path(config.out)
    runs = run_replicates(config, lambda seed_config, started: distill(seed_config, resume=started,
                                                                       report_to=report_to, progress=progress),
                          resume=resume, state_roots=state_roots)
    by_seed = run_records(run_dir)
    summary = DistillationSummary(run_dir)
    for records in by_seed.values():
        summary.records += [record for record in records if _belongs(record, config)]
    for seed, run in runs.items():  # a seed that had finished before: its checkpoints read from its directory
        for layers in config.layers:
            summary.checkpoints.setdefault(layers, []).extend(run.checkpoints.get(layers, []) if run else [
                spec for spec, _ in checkpoint_series(str(student_directory(seed_directory(run_dir, seed), layers)))
                or []])
    if is_main_process():
        summary.report = write_replicate_report(by_seed, run_dir, title=report_title(config.teacher, len(runs)))
    return summary


def _train_students(config: DistillationConfig, group: tuple[int, ...], state_root: Path, *,
                    teacher: TrainableEncoder, teacher_module: nn.Module, teacher_name: str, dataloader: Any,
                    accelerator: Any, tracker: BiasTracker, held_out: HeldOutLoss | None, resume_from: Path | None,
                    progress: bool) -> None:
    """Train the students of `group` together from their start (or their saved state) to the last step,
    checkpointing and tracking each (with its `held_out` loss, unless the run has no held-out split); their
    resumable states go under `state_root`, with the split (a resumed run keeps it)."""
    training = config.training
    students = build_students(teacher, config, group)
    optimizer = make_optimizer(students, config.optimizer)
    accelerator.free_memory()  # the previous group's models and optimiser leave accelerate's lists
    *models, optimizer, batches = accelerator.prepare(*(student.model for student in students), optimizer,
                                                      dataloader)
    for student, model in zip(students, models):
        student.model = model
    recipe = {"students": list(group), "held_out": held_out.split.description() if held_out else None}
    state = TrainerState(recipe=recipe)
    if resume_from is not None:
        state = load_training_state(accelerator, resume_from)
        logger.info("resumed the %s-layer student%s from %s at step %d", ", ".join(map(str, group)),
                    "" if len(group) == 1 else "s", resume_from, state.step)
        state.recipe = recipe

    def compression(student: Student, step: int) -> dict[str, Any]:
        parameters = count_parameters(student.encoder.encoder)
        return {"method": METHOD, "teacher": teacher_name, "teacher_model": config.teacher, "layers": student.layers,
                "targets": list(config.targets), "step": step, "noise": config.noise.source,
                "mix_ratio": noise_mix_ratio(config.noise) if config.noise.source else None,
                "snr_db": snr_db(noise_mix_ratio(config.noise)) if config.noise.source else None,
                "parameters": parameters,
                "base_parameters": teacher.base_parameters, "parameters_removed": teacher.base_parameters - parameters,
                "config": config.to_dict()}

    checkpoint_steps = set(config.checkpoint_steps())
    depths = ", ".join(map(str, group))
    bar = StepProgress(config.max_steps, initial=state.step, enabled=progress and accelerator.is_main_process,
                       desc=f"distilling a {depths}-layer student" if len(group) == 1 else
                       f"distilling {depths}-layer students")
    train_step = DistillationSteps(accelerator, students, optimizer, teacher=teacher, teacher_module=teacher_module,
                                   config=config, bar=bar)
    for model in models:
        model.train()
    while state.step < config.max_steps:
        for batch in resume_batches(batches, state):
            if train_step(batch, state) is None:
                continue
            if state.step in checkpoint_steps:  # each student without its heads, its held-out loss and SpEAT
                for student in students:
                    quality = train_step.held_out_loss(student, held_out, state.step) if held_out else {}
                    tracker.checkpoint(student.encoder, student.directory, state.step, accelerator=accelerator,
                                       compression=compression(student, state.step) | quality,
                                       log_prefix=f"student-{student.layers}/")
            if state.step >= config.max_steps:
                break
            if state.step in checkpoint_steps or (training.save_state_every
                                                  and state.step % training.save_state_every == 0):
                save_training_state(accelerator, state_root, state, keep=training.keep_states)
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
    bar.close()


def _resume_points(run_dir: Path, config: DistillationConfig,
                   resume: bool | str | None) -> dict[tuple[int, ...], Path | None]:
    """The state each group of students (`_training_groups`) resumes from (None: from its start).

    Raises:
        ValueError: a new run where states already are, ``--resume`` of a run with none, a state path that
            belongs to none of the run's groups, or a joint state of other students.
    """
    roots = dict(_training_groups(config))
    if not resume:
        check_new_run(run_dir)  # a run's directory holds its config.yaml from its start, its students' states later
        return {group: None for group in roots}
    if resume is True or resume == "latest":
        starts = {group: (state_directories(root) or [None])[-1] for group, root in roots.items()}
        if not any(starts.values()) and not (run_dir / RESULTS_DIRECTORY).is_dir():
            raise ValueError(f"--resume: {run_dir} has no saved training state to resume from; run without --resume "
                             "to start")
    else:
        path = resolve_resume(run_dir, resume=resume)
        chosen = [group for group, root in roots.items()
                  if path.resolve().parent == (root / STATE_DIRECTORY).resolve()]
        if not chosen:
            places = ", ".join(str(root / STATE_DIRECTORY) for root in roots.values())
            raise ValueError(f"--resume {path}: not a state of this run's students (their states are in {places})")
        starts = {group: path if group == chosen[0] else (state_directories(root) or [None])[-1]
                  for group, root in roots.items()}
    for group, start in starts.items():
        saved = read_trainer_state(start).recipe.get("students") if start is not None else None
        if saved is not None and tuple(saved) != group:
            raise ValueError(f"--resume {start}: the state holds students of {', '.join(map(str, saved))} layers, "
                             f"this run trains {', '.join(map(str, group))} together")
    return starts


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
