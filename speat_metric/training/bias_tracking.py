"""SpEAT during compression: evaluate a model with the ordinary pipeline and keep records that say how it was made.

`BiasTracker` loads the tests once (as ``speat evaluate`` reads them, checked before any training starts), then
`BiasTracker.evaluate` runs `speat_metric.pipeline.evaluate_tests` on a checkpoint or an in-memory `SpeechEncoder`,
fills each record's ``compression`` field and writes the records to the run's ``results/`` directory (main process
only). Under ``accelerate launch`` every process must call `evaluate` at the same point: the stimuli are split
across processes.

`HeldOutLoss` is the quality beside the bias: the recipe's own loss on fixed crops of recordings it never trains on
(`speat_metric.training.data.split_held_out`), measured at every checkpoint into the records' ``compression``
(``held_out_loss`` and ``held_out``); every process calls `HeldOutLoss.measure` at the same point too (each takes its
share of the batches, and the sums are reduced across processes).

Example:
    >>> from speat_metric.evaluation import EvaluationSettings
    >>> tracker = BiasTracker(EvaluationSettings(num_permutations=1000), Path("runs/heads/results"))  # doctest: +SKIP
    >>> tracker.evaluate("runs/heads/checkpoint-26000", compression={"method": "heads", "step": 26000},
    ...                  checkpoint={"name": "checkpoint-26000", "step": 26000})                      # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from speat_metric.adapters.base import SpeechEncoder
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.results import EvaluationRecord
    from speat_metric.training.data import BatchPreparer, HeldOutSplit
    from speat_metric.training.models import TrainableEncoder

RESULTS_DIRECTORY = "results"


class BiasTracker:
    """Evaluate SpEAT at each compression step with the `settings` of ``speat evaluate``, appending
    `EvaluationRecord`s to `results_dir` (ValueError now for an unknown test, a missing stimulus...)."""

    def __init__(self, settings: EvaluationSettings, results_dir: str | Path) -> None:
        from speat_metric.evaluation import load_tests, resolve_device

        self.settings = settings
        self.results_dir = Path(results_dir)
        self.device = resolve_device(settings.device)
        self.tests = load_tests(settings)

    def on_stimuli(self, tests: Mapping[str, Any], results_dir: str | Path) -> BiasTracker:
        """The same settings and device on other stimuli (e.g. one speaker fold's held-out targets), recording into
        `results_dir`; the tests are not loaded again."""
        tracker = copy.copy(self)
        tracker.tests, tracker.results_dir = dict(tests), Path(results_dir)
        return tracker

    @property
    def synthetic(self) -> bool:
        """True when the stimuli are the embedded synthetic demo set (a pipeline check, not a measurement)."""
        return any(test.provenance.synthetic for test in self.tests.values())

    def evaluate(self, model: str | Path | SpeechEncoder, *, compression: Mapping[str, Any] | None,
                 checkpoint: Mapping[str, Any] | None = None, labels: Sequence[str] = ()) -> list[EvaluationRecord]:
        """SpEAT of one model (a model string of `load_encoder`, or an adapter) on every test: one record per test
        (and layer view), saved by the main process.

        `compression` says how the model was made (see ``EvaluationRecord.compression``; None for an uncompressed
        model, a distillation's teacher); `checkpoint` is the checkpoint's name and step (None for the unpruned model).
        """
        from speat_metric.adapters import load_encoder
        from speat_metric.distributed import is_main_process
        from speat_metric.model_spec import ModelSpec
        from speat_metric.pipeline import evaluate_tests

        settings = self.settings
        if isinstance(model, (str, Path)):
            spec = str(model)
            encoder = load_encoder(spec, revision=settings.revision, device=self.device, dtype=settings.dtype,
                                   mean_std_path=settings.mean_std, profile=settings.profile, cmvn=settings.cmvn)
        else:
            spec, encoder = model.description.name, model
        # Each checkpoint has new weights, so its embeddings are computed once: no cache.
        records = evaluate_tests(
            encoder, self.tests, layer_pooling=settings.layer_pooling, frame_pooling=settings.frame_pooling,
            cache_dir=None, batch_seconds=settings.batch_seconds, trim_silence=settings.trim_silence,
            num_permutations=settings.num_permutations, seed=settings.seed,
            labels=[*ModelSpec.parse(spec).labels, *labels], checkpoint=checkpoint, progress=settings.progress)
        if compression is not None:
            records = [record.replace(compression=dict(compression)) for record in records]
        if is_main_process():
            for record in records:
                record.save(self.results_dir)
        return records

    def checkpoint(self, model: TrainableEncoder, directory: str | Path, step: int, *, accelerator: Any,
                   compression: Mapping[str, Any], log_prefix: str = "") -> list[EvaluationRecord]:
        """Save `model` as it is now as the checkpoint of `step` in `directory` (main process), then record its SpEAT
        (every process; its records are returned) and log each test's d to the trackers as
        ``<log_prefix>speat/<test>/d``."""
        path = model.checkpoint_path(directory, step)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            model.save(directory, step)
        accelerator.wait_for_everyone()
        records = self.evaluate(model.checkpoint_spec(path), compression=compression,
                                checkpoint={"name": path.name, "step": step})
        accelerator.log({f"{log_prefix}speat/{record.test}/d": record.speat.effect_size for record in records},
                        step=step)
        return records

    def records(self) -> list[EvaluationRecord]:
        """Every record written so far (also by an earlier, interrupted part of the run)."""
        from speat_metric.results import load_records

        return load_records(self.results_dir) if self.results_dir.is_dir() else []


HELD_OUT_FILE = "held_out.json"
"""The held-out recordings of a run (names relative to ``--data``) and how they were chosen."""


class HeldOutLoss:
    """A recipe's loss on the held-out recordings of `split`, at any checkpoint: one crop of each recording, drawn
    from the split's seed (not the training seed) as epoch 0 of `speat_metric.training.data.RandomCrops`, batched
    by identical length (up to `batch_size`; nothing is cut) and prepared by the recipe's `prepare` with generators
    seeded from the crops (e.g. mask positions): every checkpoint of every run with the same split sees the same
    batches, so the values compare across checkpoints and seeds.

    The value is the mean of the per-batch losses weighted by their crops (for a loss that averages over equal-length
    crops, the mean over crops), computed in eval mode without gradients.
    """

    def __init__(self, split: HeldOutSplit, *, crop_seconds: float, min_seconds: float, batch_size: int,
                 prepare: BatchPreparer) -> None:
        from speat_metric.training.data import CropCollator, RandomCrops

        self.split = split
        self.crops = RandomCrops(split.held_out, crop_seconds=crop_seconds, min_seconds=min_seconds, seed=split.seed)
        self.collate = CropCollator(prepare, split.seed)
        lengths = self.crops.crop_lengths() or [0] * len(self.crops)
        self.groups: list[list[int]] = []
        for index in sorted(range(len(self.crops)), key=lambda index: (-lengths[index], index)):
            group = self.groups[-1] if self.groups else None
            if group and len(group) < batch_size and lengths[group[0]] == lengths[index]:
                group.append(index)
            else:
                self.groups.append([index])
        self.crop_seconds = crop_seconds

    def description(self) -> dict[str, Any]:
        """``compression["held_out"]``: the split (`HeldOutSplit.description`) and its crops."""
        return {**self.split.description(), "crop_seconds": self.crop_seconds, "batches": len(self.groups)}

    def batches(self, process_index: int = 0, num_processes: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(crops, prepared batch)`` of this process's share (every `num_processes`-th batch), on the CPU."""
        for group in self.groups[process_index::num_processes]:
            yield len(group), self.collate([self.crops[(0, index)] for index in group])

    def measure(self, module: torch.nn.Module, loss: Callable[[dict[str, torch.Tensor]], torch.Tensor], *,
                accelerator: Any, step: int | None = None, log_prefix: str = "") -> dict[str, Any]:
        """``{"held_out_loss": value, "held_out": description}`` for the records' ``compression``: `loss` of each
        batch (its tensors, nested mappings' too, moved to the accelerator's device) with `module` (what `loss` runs,
        unwrapped from DDP) in eval mode, under the run's autocast as the training steps; every process must call it
        at the same point. Logged to the trackers as ``<log_prefix>held_out/loss``."""
        import torch
        from accelerate.utils import send_to_device

        totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad(), accelerator.autocast():  # the training steps' precision, frozen models too
                for count, batch in self.batches(accelerator.process_index, accelerator.num_processes):
                    batch = send_to_device(batch, accelerator.device)  # nested too: a distillation's two inputs
                    totals[0] += float(loss(batch)) * count
                    totals[1] += count
        finally:
            module.train(was_training)
        totals = accelerator.reduce(totals, reduction="sum")
        value = float(totals[0] / totals[1])
        if step is not None:
            accelerator.log({f"{log_prefix}held_out/loss": value}, step=step)
        return {"held_out_loss": value, "held_out": self.description()}

    def write_list(self, run_dir: str | Path) -> Path:
        """Write ``RUN_DIR/held_out.json``: the held-out recordings (and speakers), so that a reader can check that
        they were not trained on (main process only)."""
        import json

        from speat_metric.files import atomic_write_text

        held_out = self.split.held_out
        path = Path(run_dir) / HELD_OUT_FILE
        atomic_write_text(path, json.dumps({**self.description(), "held_out_speakers": self.split.speakers,
                                            "held_out_recordings": [held_out.relative_name(index)
                                                                    for index in range(len(held_out))]},
                                           indent=2) + "\n")
        return path
