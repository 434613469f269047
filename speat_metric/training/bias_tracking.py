"""SpEAT during compression: evaluate a model with the ordinary pipeline and keep records that say how it was made.

`BiasTracker` loads the tests once (as ``speat evaluate`` reads them, checked before any training starts), then
`BiasTracker.evaluate` runs `speat_metric.pipeline.evaluate_tests` on a checkpoint or an in-memory `SpeechEncoder`,
fills each record's ``compression`` field and writes the records to the run's ``results/`` directory (main process
only). Under ``accelerate launch`` every process must call `evaluate` at the same point: the stimuli are split
across processes.

Example:
    >>> from speat_metric.evaluation import EvaluationSettings
    >>> tracker = BiasTracker(EvaluationSettings(num_permutations=1000), Path("runs/heads/results"))  # doctest: +SKIP
    >>> tracker.evaluate("runs/heads/checkpoint-26000", compression={"method": "heads", "step": 26000},
    ...                  checkpoint={"name": "checkpoint-26000", "step": 26000})                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speat_metric.adapters.base import SpeechEncoder
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.results import EvaluationRecord
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
