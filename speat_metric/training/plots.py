"""Compression curves: SpEAT d per test against a compression measure, as a figure, a CSV file and a Markdown table.

The x axis is a key of the records' ``compression`` (``parameters_removed`` by default, as in Lin et al. 2024,
Figure 2; ``step`` or ``sparsity`` work too). The records at step 0 are the uncompressed model: drawn as dashed
lines, one per test. Error bars are the records' bootstrap confidence intervals.

Example:
    >>> paths = write_curve(records, Path("runs/heads"), title="head pruning of my-model")  # doctest: +SKIP
    >>> sorted(paths)                                                                      # doctest: +SKIP
    ['csv', 'markdown', 'png']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speat_metric.files import atomic_open, atomic_write_text
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_NOTE,
    excludes_zero,
    format_ci,
    format_d,
    format_p,
    format_parameters,
    format_size,
)
from speat_metric.report import ordered_tests
from speat_metric.results import EvaluationRecord

CSV_COLUMNS = ("test", "step", "x", "d", "ci_low", "ci_high", "p_value", "size", "parameters", "parameters_removed",
               "sparsity", "heads", "synthetic")

_X_LABELS = {"parameters_removed": "parameters removed", "step": "training step", "sparsity": "sparsity",
             "parameters": "parameters"}
_PARAMETER_COUNTS = ("parameters_removed", "parameters")


def curve_rows(records: Sequence[EvaluationRecord], *, x: str = "parameters_removed") -> list[dict[str, Any]]:
    """One row per record with a ``compression`` field (ValueError when it lacks `x`), sorted by test, then x, then
    step (``exact`` and ``num_permutations``, which say how to write p, are for the Markdown table and stay out of
    the CSV file)."""
    rows = []
    for record in records:
        compression = record.compression
        if not compression:
            continue
        if x not in compression:
            raise ValueError(f"record {record.file_name} has no compression[{x!r}] (keys: {', '.join(compression)})")
        heads = compression.get("heads_per_layer")
        rows.append({
            "test": record.test, "step": compression.get("step"), "x": compression[x],
            "d": record.speat.effect_size, "ci_low": record.speat.ci_low, "ci_high": record.speat.ci_high,
            "p_value": record.speat.p_value, "size": record.speat.effect_size_label,
            "exact": record.speat.exact, "num_permutations": record.speat.num_permutations,
            "parameters": compression.get("parameters"), "parameters_removed": compression.get("parameters_removed"),
            "sparsity": compression.get("sparsity"), "heads": sum(heads) if heads else None,
            "synthetic": "synthetic-stimuli" in record.labels,
        })
    return sorted(rows, key=lambda row: (row["test"], row["x"], row["step"] or 0))


def write_curve(records: Sequence[EvaluationRecord], directory: str | Path, *, x: str = "parameters_removed",
                name: str = "curve", title: str | None = None) -> dict[str, Path]:
    """Write the curve of the run's `records` (`BiasTracker.records`) against the compression key `x` as
    ``<name>.png``, ``<name>.csv`` and ``<name>.md`` into `directory`; return ``{"png": path, "csv": path,
    "markdown": path}``."""
    rows = curve_rows(records, x=x)
    if not rows:
        raise ValueError("no compression records to draw (evaluate at least one checkpoint first)")
    return write_figure_and_table(directory, name, curve_figure(rows, x=x, title=title), rows, CSV_COLUMNS,
                                  curve_markdown(rows, x=x, title=title))


def write_figure_and_table(directory: str | Path, name: str, figure: Any, rows: Sequence[dict[str, Any]],
                           columns: Sequence[str], markdown: str) -> dict[str, Path]:
    """Write ``<name>.png`` (the figure), ``<name>.csv`` (the rows' `columns`, every digit) and ``<name>.md``, each
    atomically."""
    directory = Path(directory)
    paths = {"png": directory / f"{name}.png", "csv": directory / f"{name}.csv", "markdown": directory / f"{name}.md"}
    with atomic_open(paths["png"], "wb") as file:
        figure.savefig(file, format="png", dpi=120)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(paths["csv"], buffer.getvalue())
    atomic_write_text(paths["markdown"], markdown)
    return paths


def interval_errors(rows: Sequence[dict[str, Any]]) -> list[list[float]]:
    """matplotlib's ``yerr`` (below, above) of each row's 95% CI around its d; 0 where a row has no interval."""
    return [[max(row["d"] - row["ci_low"], 0) if row["ci_low"] is not None else 0 for row in rows],
            [max(row["ci_high"] - row["d"], 0) if row["ci_high"] is not None else 0 for row in rows]]


def set_heading(axes: Any, heading: str, rows: Sequence[dict[str, Any]]) -> None:
    """The axes' title, with the synthetic-stimuli warning when any row was measured on the demo set."""
    if any(row["synthetic"] for row in rows):
        heading += "\nSYNTHETIC demo stimuli: a pipeline check, not a bias measurement"
    axes.set_title(heading, fontsize=10)


def curve_markdown(rows: Sequence[dict[str, Any]], *, x: str = "parameters_removed", title: str | None = None) -> str:
    """The rows as a Markdown table (one line per test and checkpoint), with the synthetic-stimuli warning; numbers
    are written by `speat_metric.formatting`."""
    label = _X_LABELS.get(x, x)
    lines = [f"# {title}", ""] if title else []
    if any(row["synthetic"] for row in rows):
        lines += ["**SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement.**", ""]
    lines += [f"| test | step | {label} | d | 95% CI | p | size |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        p_value = format_p(row["p_value"], exact=row["exact"], num_permutations=row["num_permutations"])
        lines.append(f"| {row['test']} | {row['step']} | {_format_x(row['x'], x)} | {format_d(row['d'])} | "
                     f"{format_ci(row['ci_low'], row['ci_high'])} | {p_value} | "
                     f"{format_size(row['size'], row['ci_low'], row['ci_high'])} |")
    if any(excludes_zero(row["ci_low"], row["ci_high"]) for row in rows):
        lines += ["", CI_EXCLUDES_ZERO_NOTE]
    return "\n".join(lines) + "\n"


def _format_x(value: Any, x: str) -> str:
    if x in _PARAMETER_COUNTS and isinstance(value, (int, float)):
        return _parameter_count(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def curve_figure(rows: Sequence[dict[str, Any]], *, x: str = "parameters_removed", title: str | None = None):
    """The matplotlib ``Figure`` of `curve_rows`: d per test with CI error bars, the uncompressed d dashed."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    tests = ordered_tests(row["test"] for row in rows)
    colours = matplotlib.colormaps["tab10"]
    for number, test in enumerate(tests):
        colour = colours(number % 10)
        points = [row for row in rows if row["test"] == test]
        axes.errorbar([row["x"] for row in points], [row["d"] for row in points], yerr=interval_errors(points),
                      color=colour, marker="o", capsize=3, label=test)
        for baseline in (row for row in points if row["step"] == 0):
            axes.axhline(baseline["d"], color=colour, linestyle="--", linewidth=1)
    axes.axhline(0.0, color="grey", linewidth=0.5)
    if x in _PARAMETER_COUNTS:  # ticks as the tables write counts (24.8K, 94.4M)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _parameter_count(value)))
    axes.set_xlabel(_X_LABELS.get(x, x))
    axes.set_ylabel("SpEAT effect size d")
    set_heading(axes, title or "SpEAT d under compression", rows)
    axes.legend(title="test (dashed: uncompressed)", fontsize=8, title_fontsize=8)
    return figure


def _parameter_count(value: float) -> str:
    """A count of parameters (kept or removed) as `format_parameters` writes it; 0 is 0 (none removed), a tick below
    1,000 keeps its digits."""
    if abs(value) < 1000:
        return f"{value:g}"
    return ("-" if value < 0 else "") + format_parameters(abs(value))
