"""The pruning run, top to bottom: model, objective, method, data, tracker, accelerator, resume, loop, curve.

At each pruning step the model fine-tuned since the previous one is saved as a checkpoint and its SpEAT recorded,
then pruned; a resumable state follows, so a killed run resumed with ``--resume`` continues from the pruned model.
The unpruned model's SpEAT (step 0) comes first; the run ends with the last fine-tuned model's checkpoint and SpEAT
and ``curve.png``, ``curve.csv`` and ``curve.md``. Beside each SpEAT, the objective's loss on held-out recordings
that are never trained on (``compression["held_out_loss"]``, `HeldOutLoss`). With ``training.seeds`` (``--seeds``)
the run is replicated: one run per seed in ``seed-<s>/``, then the across-seed curve at the top.

Run directory (``--out``)::

    config.yaml                  the resolved settings
    checkpoint-<step>/           a pruned transformers model (speat evaluate RUN_DIR), or
    checkpoint-<step>.ckpt       a pruned MelHuBERT (speat evaluate melhubert:RUN_DIR)
    results/*.json               one EvaluationRecord per checkpoint and test (compression filled)
    curve.png, curve.csv, curve.md
    state/step-<N>/              resumable accelerate states (the latest ``keep_states``)
    kmeans.npz                   MelHuBERT native objective: the k-means of the labels
    held_out.json                the held-out recordings (never trained on) and how they were chosen

A replicated run (``--seeds 0,1,2``)::

    config.yaml                  the settings, with the seeds
    seed-<s>/                    one run as above per seed (training.seed s), replicate.json when it has finished
    curve.png, curve.csv, curve.md   mean and min-max range over the seeds of d and of the held-out loss
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from speat_metric.files import atomic_write_text
from speat_metric.pruning.config import PruningConfig
from speat_metric.pruning.methods import build_method, sizes
from speat_metric.pruning.objectives import build_objective
from speat_metric.pruning.weights import check_starting_sparsity, prunable_parameters
from speat_metric.results import EvaluationRecord
from speat_metric.training.bias_tracking import HeldOutLoss
from speat_metric.training.checkpoints import (
    RUN_CONFIG,
    TrainerState,
    load_training_state,
    read_trainer_state,
    resolve_resume,
    resume_batches,
    run_replicates,
    save_training_state,
    seed_directory,
)
from speat_metric.training.data import HeldOutSplit, RandomCrops, make_dataloader, run_held_out_split
from speat_metric.training.loop import StepProgress, TrainingSteps, flat_settings, open_run
from speat_metric.training.models import TrainableEncoder, load_trainable_encoder
from speat_metric.training.plots import run_records, write_curve, write_replicate_curve
from speat_metric.training.slicing import PrunedLayout, apply_layout, layout_of

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run made: its directory, checkpoints (model strings for ``speat evaluate``), records and curve."""

    run_dir: Path
    checkpoints: list[str] = field(default_factory=list)
    records: list[EvaluationRecord] = field(default_factory=list)
    curve: dict[str, Path] = field(default_factory=dict)
    steps: int = 0


def prune(config: PruningConfig, *, resume: bool | str | None = False, report_to: Any = None,
          progress: bool = True) -> RunSummary:
    """Prune a model with bias tracking (what ``speat prune`` runs).

    Args:
        config: the resolved settings (`speat_metric.pruning.config.load_config`); with ``training.seeds``, one run
            per seed (`prune_replicates`).
        resume: continue the run in ``config.out`` from its latest state (True), from a given state, or start (False).
        report_to: accelerate trackers (`speat_metric.training.loop.parse_report_to`).
        progress: show progress bars.

    Raises:
        ValueError: bad data, model, stimuli or settings, all found before training starts.
    """
    if config.training.seeds:
        return prune_replicates(config, resume=resume, report_to=report_to, progress=progress)
    run_dir = Path(config.out)
    resume_from = resolve_resume(run_dir, resume=resume)
    resumed = read_trainer_state(resume_from) if resume_from is not None else None

    # The cheap checks first: the data can be read, the tests and their stimuli exist.
    training = config.training
    accelerator, audio, tracker = open_run(run_dir, data=config.data, training=training, tracking=config.tracking,
                                           mean_std=config.mean_std, report_to=report_to, progress=progress)

    # The model, what it is pruned with, and how much there is before pruning. Seeded first: a quantizer or
    # anything else not in the checkpoint is initialised at random, and dropout follows the same generators.
    set_seed(training.seed, device_specific=True)
    target = load_trainable_encoder(config.model, revision=config.revision, mean_std=config.mean_std)
    base_prunable = sum(parameter.numel() for _, parameter in prunable_parameters(target.encoder))
    if config.method == "weights":  # a model weight-pruned before keeps its zeros masked: the schedule must go on
        check_starting_sparsity(target.encoder, config.schedule.sparsity, model=config.model)
    method = build_method(config.method, config.schedule, target.encoder)
    objective = build_objective(config.objective.name, target, config.objective, seed=training.seed,
                                revision=config.revision)

    # Training crops, from the files whose headers read (a folder is checked file by file here).
    # The held-out recordings are split off first: they are never trained on.
    audio = audio.check_files(min_seconds=training.min_seconds, progress=progress)
    split = run_held_out_split(audio, config.data.held_out, resumed_recipe=resumed.recipe if resumed else None)
    crop_seconds = training.for_family("crop_seconds", target.family)
    batch_size = training.for_family("batch_size", target.family)
    crops = RandomCrops(split.train if split else audio, crop_seconds=crop_seconds, min_seconds=training.min_seconds,
                        seed=training.seed)
    dataloader = make_dataloader(crops, batch_size=batch_size, prepare=objective.batch_preparer(),
                                 num_workers=training.num_workers, num_processes=accelerator.num_processes)
    held_out = HeldOutLoss(split, crop_seconds=crop_seconds, min_seconds=training.min_seconds, batch_size=batch_size,
                           prepare=objective.batch_preparer()) if split else None
    if held_out:  # --labels: the held-out crops get theirs too (checked now, before training)
        held_out.collate = objective.with_labels(held_out.collate, held_out.crops)
    if accelerator.is_main_process and resume_from is None:
        atomic_write_text(run_dir / RUN_CONFIG, config.to_yaml())
        if held_out:
            held_out.write_list(run_dir)

    # Resume: rebuild the pruned shapes before prepare, so that the saved weights and optimiser state fit.
    state = TrainerState()
    if resumed is not None:
        state = resumed
        method.load_state_dict(state.recipe["method"])
        apply_layout(target, PrunedLayout.from_dict(state.recipe["layout"]))
    if not method.structural:
        accelerator.register_for_checkpointing(method.masks)
    objective.prepare_run(dataloader, run_dir, accelerator, fit=resume_from is None)

    model, optimizer, dataloader = accelerator.prepare(objective.trainable, optimizer_for(objective.trainable, config),
                                                       dataloader)
    objective.to(accelerator.device)
    if resume_from is not None:
        load_training_state(accelerator, resume_from)
        logger.info("resumed from %s at step %d", resume_from, state.step)
    if report_to:
        accelerator.init_trackers("speat-prune", config=flat_settings(config.to_dict()))

    summary = RunSummary(run_dir)

    def compression(step: int) -> dict[str, Any]:
        return {"method": config.method, "step": step, "prune_steps": method.prunes_done,
                "pruned_at": list(method.pruned_at), "objective": objective.name, **objective.record_fields(),
                "base_model": config.model,
                **sizes(target.encoder, method, base_parameters=target.base_parameters, base_prunable=base_prunable),
                "config": config.to_dict()}

    def quality(step: int) -> dict[str, Any]:
        """The objective's loss on the held-out recordings with the model as it is now (every process)."""
        if not held_out:
            return {}
        module = accelerator.unwrap_model(model)
        return held_out.measure(module, lambda batch: objective.loss(module, batch), accelerator=accelerator,
                                step=step)

    def checkpoint_and_track(step: int) -> None:
        """Save the model as it is now and record its SpEAT and held-out loss."""
        tracker.checkpoint(target, run_dir, step, accelerator=accelerator,
                           compression=compression(step) | quality(step))

    if not any(record.compression and record.compression.get("step") == 0 for record in tracker.records()):
        # the unpruned model: the dashed lines
        tracker.evaluate(config.model, compression=compression(0) | quality(0))

    max_steps = training.max_steps
    bar = StepProgress(min(method.planned_steps, max_steps or method.planned_steps), initial=state.step,
                       desc=f"{config.method} pruning", enabled=progress and accelerator.is_main_process)
    train_step = TrainingSteps(accelerator, bar, config.optimizer.gradient_clipping)
    model.train()
    done = False
    while not done:
        for batch in resume_batches(dataloader, state):
            step_loss = train_step(model, optimizer, state, lambda: (objective.loss(model, batch), {}),
                                   method.before_optimizer_step)
            if step_loss is None:
                continue
            method.after_optimizer_step(state.step, step_loss)

            decision = method.decide(state.step)
            stop = decision == "end" or (max_steps is not None and state.step >= max_steps)
            if decision == "prune" and not stop:
                if method.prunes_done > 0:
                    checkpoint_and_track(state.step)
                message = method.prune(target.encoder, state.step)
                logger.info(message)
                bar.write(message)
                if method.structural:  # new tensors: a new DDP wrapper and optimiser (the authors re-create it too)
                    accelerator.free_memory()
                    model, optimizer = accelerator.prepare(objective.trainable,
                                                           optimizer_for(objective.trainable, config))
                    model.train()
                _save_state(accelerator, run_dir, state, method, target, split, training.keep_states)
                bar.set_total(min(method.planned_steps, max_steps or method.planned_steps))
            elif stop:
                checkpoint_and_track(state.step)
                done = True
                break
            elif training.save_state_every and state.step % training.save_state_every == 0:
                _save_state(accelerator, run_dir, state, method, target, split, training.keep_states)
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
    bar.close()

    accelerator.wait_for_everyone()
    summary.steps = state.step
    summary.records = [record for record in tracker.records() if record.compression
                       and record.compression.get("method") == config.method]
    steps = sorted({record.checkpoint["step"] for record in summary.records if record.checkpoint})
    summary.checkpoints = [target.checkpoint_spec(target.checkpoint_path(run_dir, step)) for step in steps]
    if accelerator.is_main_process:
        title = f"{config.method} pruning of {Path(config.model).name or config.model}"
        summary.curve = write_curve(summary.records, run_dir, title=title)
    accelerator.end_training()
    return summary


def optimizer_for(module: torch.nn.Module, config: PruningConfig) -> torch.optim.Optimizer:
    settings = config.optimizer
    return torch.optim.Adam([parameter for parameter in module.parameters() if parameter.requires_grad],
                            lr=settings.lr, betas=tuple(settings.betas), eps=settings.eps,
                            weight_decay=settings.weight_decay)


def _save_state(accelerator, run_dir: Path, state: TrainerState, method, target: TrainableEncoder,
                split: HeldOutSplit | None, keep: int) -> None:
    state.recipe = {"method": method.state_dict(), "layout": layout_of(target).to_dict(),
                    "held_out": split.description() if split else None}
    save_training_state(accelerator, run_dir, state, keep=keep)


def prune_replicates(config: PruningConfig, *, resume: bool | str | None = False, report_to: Any = None,
                     progress: bool = True) -> RunSummary:
    """`prune` once per seed of ``config.training.seeds`` (`run_replicates`: ``RUN_DIR/seed-<s>/``), then the
    across-seed curve in ``RUN_DIR`` (`write_replicate_curve`); the summary holds every seed's checkpoints and
    records."""
    from speat_metric.adapters import checkpoint_series
    from speat_metric.distributed import is_main_process

    run_dir = Path(config.out)
    runs = run_replicates(config, lambda seed_config, started: prune(seed_config, resume=started, report_to=report_to,
                                                                     progress=progress), resume=resume)
    by_seed = run_records(run_dir)
    summary = RunSummary(run_dir, steps=max((run.steps for run in runs.values() if run), default=0))
    for records in by_seed.values():
        summary.records += [record for record in records if record.compression
                            and record.compression.get("method") == config.method]
    for seed, run in runs.items():  # a seed that had finished before: its checkpoints read from its directory
        summary.checkpoints += run.checkpoints if run else [
            spec for spec, _ in checkpoint_series(str(seed_directory(run_dir, seed))) or []]
    if is_main_process():
        title = f"{config.method} pruning of {Path(config.model).name or config.model}, {len(runs)} seeds"
        summary.curve = write_replicate_curve(by_seed, run_dir, title=title)
    return summary

