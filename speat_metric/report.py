"""Evaluation records as people read them: a plain-text table, Markdown, or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from speat_metric.results import EvaluationRecord

FORMATS = ("table", "markdown", "json")

_COLUMNS = ("model", "test", "X vs Y", "layer", "d", "size", "p", "95% CI", "n X/Y", "notes")


def format_records(records: Sequence[EvaluationRecord], fmt: str = "table") -> str:
    """Render records as ``table`` (aligned text), ``markdown`` or ``json`` (a list of record dicts)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([record.to_dict() for record in records], indent=2, allow_nan=False)
    rows = [_row(record) for record in records]
    if fmt == "markdown":
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join("---" for _ in _COLUMNS) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(cell) for cell in column) for column in zip(_COLUMNS, *rows)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                 for line in [_COLUMNS, tuple("-" * width for width in widths), *rows]]
    notes = _footnotes(records)
    return "\n".join(lines + ([""] + notes if notes else []))


def _row(record: EvaluationRecord) -> tuple[str, ...]:
    result = record.speat
    interval = "n/a" if result.ci_low is None else f"[{result.ci_low:+.2f}, {result.ci_high:+.2f}]"
    layer = "mean" if record.pooling.get("layer") is None else str(record.pooling["layer"])
    model = record.model.name if record.checkpoint is None else f"{record.model.name} @ {record.checkpoint['name']}"
    p_value = f"{result.p_value:.2g}"
    return (model, record.test, f"{record.groups['X']} vs {record.groups['Y']}", layer, f"{result.effect_size:+.2f}",
            result.effect_size_label, p_value, interval, f"{result.n_x}/{result.n_y}", ", ".join(record.labels))


def _footnotes(records: Sequence[EvaluationRecord]) -> list[str]:
    labels = {label for record in records for label in record.labels}
    notes = []
    if "synthetic-stimuli" in labels:
        notes.append("synthetic-stimuli: the embedded demo set, synthetic speech made to check the pipeline; these "
                     "numbers are NOT a bias measurement. Use --stimuli speat (or your copy) for the study's stimuli.")
    if "random-init" in labels:
        notes.append("random-init: a randomly initialised model (the 'step 0' point of Lin et al. 2024, Figure 1), "
                     "not a trained model.")
    if any(record.model.kind == "feature" for record in records):
        notes.append("classical features (stft, spectrogram, mel_spectrogram, mfcc) are the study's baselines "
                     "(Lin et al. 2024, Table 3).")
    if records:
        first = records[0].speat
        kind = "exact" if first.exact else f"{first.num_permutations:,} random partitions"
        notes.append(f"d: SpEAT effect size (positive: X closer to A = {records[0].groups['A']} than Y is); "
                     f"p: one-sided permutation p-value ({kind}, seed {first.seed}); CI: {first.confidence:.0%} "
                     f"bootstrap interval over targets.")
    return notes
