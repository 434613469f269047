"""The end of a distillation run: d per test for the teacher ("base") and each student, as Lin et al. (2024),
Figure 3 — ``distill.png`` (grouped bars with 95% CIs), ``distill.csv`` and ``distill.md``.

Each student is shown at its latest checkpoint (the end of its training); the teacher's records are those without
``compression``.

Example:
    >>> paths = write_report(records, Path("runs/distill"), teacher="facebook/hubert-base-ls960")  # doctest: +SKIP
    >>> sorted(paths)                                                                          # doctest: +SKIP
    ['csv', 'markdown', 'png']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speat_metric.formatting import format_ci, format_d
from speat_metric.report import ordered_tests, plural
from speat_metric.results import EvaluationRecord
from speat_metric.training.plots import interval_errors, set_heading, write_figure_and_table

NAME = "distill"
BASE = "base"
CSV_COLUMNS = ("test", "model", "layers", "step", "d", "ci_low", "ci_high", "p_value", "size", "parameters",
               "synthetic")


def report_rows(records: Sequence[EvaluationRecord]) -> list[dict[str, Any]]:
    """One row per test and model: the teacher (``model == "base"``) and each student depth at its last step,
    ordered by test, then base first and students by depth.

    Raises:
        ValueError: no student record.
    """
    latest: dict[tuple[str, int], EvaluationRecord] = {}
    rows = []
    for record in records:
        compression = record.compression
        if not compression:
            rows.append(_row(record, BASE, None, None))
            continue
        key = (record.test, int(compression["layers"]))
        if key not in latest or compression["step"] > latest[key].compression["step"]:
            latest[key] = record
    if not latest:
        raise ValueError("no distilled student has been evaluated yet")
    for (test, layers), record in latest.items():
        rows.append(_row(record, plural(layers, "layer"), layers, record.compression["step"]))
    return sorted(rows, key=lambda row: (row["test"], row["layers"] or 0))


def _row(record: EvaluationRecord, model: str, layers: int | None, step: int | None) -> dict[str, Any]:
    result = record.speat
    return {"test": record.test, "model": model, "layers": layers, "step": step, "d": result.effect_size,
            "ci_low": result.ci_low, "ci_high": result.ci_high, "p_value": result.p_value,
            "size": result.effect_size_label, "parameters": record.model.num_parameters,
            "synthetic": "synthetic-stimuli" in record.labels}


def report_markdown(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> str:
    """The Figure-3 table: one line per test, the teacher's d then each student's (written by
    `speat_metric.formatting`)."""
    models = list(dict.fromkeys(row["model"] for row in sorted(rows, key=lambda row: row["layers"] or 0)))
    lines = [f"# {title}", ""] if title else []
    if any(row["synthetic"] for row in rows):
        lines += ["**SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement.**", ""]
    lines += ["SpEAT d (95% CI) of the teacher (base) and of each student at its last step.", "",
              "| test | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    by_cell = {(row["test"], row["model"]): row for row in rows}
    for test in ordered_tests(row["test"] for row in rows):
        cells = []
        for model in models:
            row = by_cell.get((test, model))
            if row is None:
                cells.append("")
            elif row["ci_low"] is None:
                cells.append(format_d(row["d"]))
            else:
                cells.append(f"{format_d(row['d'])} {format_ci(row['ci_low'], row['ci_high'])}")
        lines.append(f"| {test} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_figure(rows: Sequence[dict[str, Any]], *, title: str | None = None):
    """Grouped bars: one group per test, one bar per model (base first), 95% CIs as error bars."""
    import matplotlib
    from matplotlib.figure import Figure

    tests = ordered_tests(row["test"] for row in rows)
    models = list(dict.fromkeys(row["model"] for row in sorted(rows, key=lambda row: row["layers"] or 0)))
    by_cell = {(row["test"], row["model"]): row for row in rows}
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    colours = matplotlib.colormaps["tab10"]
    bar_width = 0.8 / len(models)
    for number, model in enumerate(models):
        cells = [(position, by_cell[test, model]) for position, test in enumerate(tests) if (test, model) in by_cell]
        axes.bar([position - 0.4 + bar_width * (number + 0.5) for position, _ in cells],
                 [row["d"] for _, row in cells], width=bar_width, yerr=interval_errors([row for _, row in cells]),
                 capsize=3, label=model, color="grey" if model == BASE else colours(number % 10))
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xticks(range(len(tests)), tests)
    axes.set_ylabel("SpEAT effect size d")
    set_heading(axes, title or "SpEAT d of the teacher (base) and its students", rows)
    axes.legend(title="model", fontsize=8, title_fontsize=8)
    return figure


def write_report(records: Sequence[EvaluationRecord], directory: str | Path, *, teacher: str | None = None,
                 title: str | None = None) -> dict[str, Path]:
    """Write ``distill.png``, ``distill.csv`` and ``distill.md`` into `directory` (each atomically).

    Args:
        records: the run's records: the teacher's (no ``compression``) and the students'.
        directory: where to write.
        teacher: the teacher's name, for the title.
        title: the figure's and table's title.
    """
    rows = report_rows(records)
    title = title or (f"Distilling {teacher}" if teacher else None)
    return write_figure_and_table(directory, NAME, report_figure(rows, title=title), rows, CSV_COLUMNS,
                                  report_markdown(rows, title=title))
