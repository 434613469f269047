"""Records for the Space's tests: the bundled example records, and records derived from the bundle's uncompressed
ones with values a test can predict (pruning sweeps, distilled students, real stimuli), plus bad and foreign files.

Derived records change only what the view reads (names, parameters, compression, d and its interval); the
statistics in them are not recomputed, which is fine for display tests and stated here so nobody reads them as
measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

from speat_metric.results import EvaluationRecord
from speat_metric.space.sources import bundled_records_dir, read_record_files

SMALL = "models/small-wav2vec2"


def bundled(*, compressed: bool = False) -> list[EvaluationRecord]:
    """The bundled records; without ``compressed``, only those of uncompressed models (the tests that derive their
    own pruning sweeps and students from them know every value they put in)."""
    records, warnings = read_record_files(bundled_records_dir())
    assert records and not warnings, warnings
    return records if compressed else [record for record in records if record.compression is None]


def of(records: list[EvaluationRecord], name: str, test: str, *, layer: int | None = None) -> EvaluationRecord:
    return next(record for record in records if record.model.name == name and record.test == test
                and record.pooling.get("layer") == layer and record.checkpoint is None)


def shifted(record: EvaluationRecord, delta: float, **changes) -> EvaluationRecord:
    """A copy with d, its interval and any other fields changed."""
    result = record.speat
    speat = result.replace(effect_size=result.effect_size + delta, ci_low=result.ci_low + delta,
                           ci_high=result.ci_high + delta)
    return record.replace(speat=speat, **changes)


def with_model(record: EvaluationRecord, name: str, parameters: int | None = None) -> EvaluationRecord:
    model = record.model.to_dict()
    model.update(name=name, num_parameters=record.model.num_parameters if parameters is None else parameters)
    return type(record.model).from_dict(model)


def pruning_sweep(records: list[EvaluationRecord], method: str = "rows", steps: int = 3) -> list[EvaluationRecord]:
    """A pruning sweep of the small wav2vec2: ``steps`` steps, each removing 10,000 parameters."""
    made = []
    for test in ("gender", "age", "native"):
        base = of(records, SMALL, test)
        for step in range(1, steps + 1):
            removed = 10_000 * step
            name = f"runs/prune-{method}/checkpoint-{step}"
            made.append(shifted(
                base, -0.2 * step, model=with_model(base, name, base.model.num_parameters - removed),
                checkpoint={"name": f"checkpoint-{step}", "step": step},
                compression={"method": method, "step": step, "base_model": SMALL, "parameters_removed": removed,
                             "parameters": base.model.num_parameters - removed,
                             "base_parameters": base.model.num_parameters}))
    return made


def distilled_students(records: list[EvaluationRecord], layers: tuple[int, ...] = (2, 4)) -> list[EvaluationRecord]:
    made = []
    for test in ("gender", "age", "native"):
        base = of(records, SMALL, test)
        for depth in layers:
            made.append(shifted(
                base, 0.1 * depth, model=with_model(base, f"runs/distill-{depth}l", 20_000 * depth),
                compression={"method": "distill", "teacher": SMALL, "layers": depth, "targets": [4, 8, 12],
                             "step": 6, "noise": None}))
    return made


def with_compression(records: list[EvaluationRecord]) -> list[EvaluationRecord]:
    """The records with a rows pruning sweep (3 steps), a heads sweep (2 steps) and distilled students of the small
    wav2vec2: what the curve and plot tests draw."""
    return records + pruning_sweep(records) + pruning_sweep(records, "heads", 2) + distilled_students(records)


def on_real_stimuli(record: EvaluationRecord, name: str | None = None) -> EvaluationRecord:
    """The record as if it had been measured on the study's stimuli (for ranking-separation tests)."""
    stimuli = {**record.stimuli, "synthetic": False, "source": {"kind": "download"}}
    labels = tuple(label for label in record.labels if label != "synthetic-stimuli")
    model = with_model(record, name) if name else record.model
    return record.replace(stimuli=stimuli, labels=labels, model=model)


def version_1(record: EvaluationRecord) -> dict:
    """The record as speat's first schema wrote it (no profile, compression or per-stimulus scores)."""
    data = record.to_dict()
    for key in ("profile", "compression", "association_scores", "fingerprint"):
        data.pop(key)
    data["schema_version"] = 1
    data["model"]["name"] = "old/version-1-model"
    return data


FOREIGN = {"model_name": "bert-base-uncased", "results": {"accuracy": 0.91}, "config": {"lr": 3e-5}}


def write_results_dir(root: Path, *, extra: list[EvaluationRecord] = ()) -> Path:
    """A results directory: the bundled records, a pruning sweep, distilled students, a version-1 record in a
    subfolder, `extra` records, and three files that are not records (foreign JSON, broken JSON, newer schema)."""
    records = bundled()
    root.mkdir(parents=True)
    for record in records:
        record.save(root)
    for record in pruning_sweep(records) + distilled_students(records) + list(extra):
        record.save(root / "compressed")
    (root / "old").mkdir()
    (root / "old" / "v1.json").write_text(json.dumps(version_1(of(records, "mfcc", "gender"))))
    (root / "foreign_results.json").write_text(json.dumps(FOREIGN))
    (root / "broken.json").write_text('{"schema_version": 2, "test": ')
    newer = of(records, "mfcc", "age").to_dict()
    newer["schema_version"] = 99
    (root / "from_the_future.json").write_text(json.dumps(newer))
    return root
