"""Compression curves: SpEAT d per test against a compression measure, as a figure, a CSV file and a Markdown table.

The x axis is a key of the records' ``compression`` (``parameters_removed`` by default, as in Lin et al. 2024,
Figure 2; ``step`` or ``sparsity`` work too). The records at step 0 are the uncompressed model: drawn as dashed
lines, one per test. Error bars are the records' bootstrap confidence intervals. When the records carry the
objective's loss on held-out recordings (``compression["held_out_loss"]``), a second panel draws it on the same x
axis: what each point of bias reduction cost.

A replicated run (``--seeds``) is drawn by `write_replicate_curve`: per test and checkpoint, the mean d over the
seeds as a line and their min-max range as a band, and the same for the held-out loss; its table adds each
spread's standard deviation and the seeds' mean 95% CI width (to compare training noise with the test's own
uncertainty). `write_run_curve` re-reads a run's records (one seed or replicated) and draws its curve again.

Example:
    >>> paths = write_curve(records, Path("runs/heads"), title="head pruning of my-model")  # doctest: +SKIP
    >>> sorted(paths)                                                                      # doctest: +SKIP
    ['csv', 'markdown', 'png']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
               "sparsity", "heads", "held_out_loss", "synthetic")

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
            "held_out_loss": compression.get("held_out_loss"), "prune_steps": compression.get("prune_steps"),
            "seed": ((compression.get("config") or {}).get("training") or {}).get("seed"),
            "layers": compression.get("layers"),  # a distillation's student
            "synthetic": "synthetic-stimuli" in record.labels,
        })
    return sorted(rows, key=lambda row: (row["test"], row["x"], row["step"] or 0, row["seed"] or 0))


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
    held_out = any(row.get("held_out_loss") is not None for row in rows)
    seeds = len({row.get("seed") for row in rows}) > 1  # the records of a replicated run, each seed's own line
    lines += [("| seed " if seeds else "") + f"| test | step | {label} | d | 95% CI | p | size |"
              + (" held-out loss |" if held_out else ""),
              ("|---" if seeds else "") + "|---|---|---|---|---|---|---|" + ("---|" if held_out else "")]
    for row in rows:
        p_value = format_p(row["p_value"], exact=row["exact"], num_permutations=row["num_permutations"])
        lines.append((f"| {row['seed']} " if seeds else "")
                     + f"| {row['test']} | {row['step']} | {_format_x(row['x'], x)} | {format_d(row['d'])} | "
                     f"{format_ci(row['ci_low'], row['ci_high'])} | {p_value} | "
                     f"{format_size(row['size'], row['ci_low'], row['ci_high'])} |"
                     + (f" {_format_loss(row.get('held_out_loss'))} |" if held_out else ""))
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
    """The matplotlib ``Figure`` of `curve_rows`: d per test with CI error bars, the uncompressed d dashed; beside it
    the held-out loss of each checkpoint, when the rows have it."""
    import matplotlib

    held_out = [row for row in _one_per_checkpoint(rows) if row.get("held_out_loss") is not None]
    figure, axes, loss_axes = _panels(bool(held_out))
    colours = matplotlib.colormaps["tab10"]
    for number, test in enumerate(ordered_tests(row["test"] for row in rows)):
        colour = colours(number % 10)
        points = [row for row in rows if row["test"] == test]
        axes.errorbar([row["x"] for row in points], [row["d"] for row in points], yerr=interval_errors(points),
                      color=colour, marker="o", capsize=3, label=test)
        for baseline in (row for row in points if row["step"] == 0):
            axes.axhline(baseline["d"], color=colour, linestyle="--", linewidth=1)
    if loss_axes is not None:
        loss_axes.plot([row["x"] for row in held_out], [row["held_out_loss"] for row in held_out], color="black",
                       marker="o")
    _finish_axes(axes, loss_axes, x)
    set_heading(axes, title or "SpEAT d under compression", rows)
    axes.legend(title="test (dashed: uncompressed)", fontsize=8, title_fontsize=8)
    return figure


def _panels(held_out: bool) -> tuple[Any, Any, Any]:
    """``(figure, d axes, held-out loss axes or None)``: the loss panel beside the d panel, sharing its x axis."""
    from matplotlib.figure import Figure

    if not held_out:
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        return figure, figure.subplots(), None
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    axes, loss_axes = figure.subplots(1, 2, sharex=True)
    return figure, axes, loss_axes


def _finish_axes(axes: Any, loss_axes: Any, x: str) -> None:
    """Labels, the zero line and count-formatted ticks (24.8K, 94.4M) of the d panel and of the loss panel."""
    from matplotlib.ticker import FuncFormatter

    axes.axhline(0.0, color="grey", linewidth=0.5)
    for panel in (axes, loss_axes):
        if panel is None:
            continue
        if x in _PARAMETER_COUNTS:
            panel.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _parameter_count(value)))
        panel.set_xlabel(_X_LABELS.get(x, x))
    axes.set_ylabel("SpEAT effect size d")
    if loss_axes is not None:
        loss_axes.set_ylabel("objective's loss on held-out recordings")
        loss_axes.set_title("quality: held-out loss (lower is better)", fontsize=10)


def _one_per_checkpoint(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each checkpoint (the held-out loss is the checkpoint's, the same for every test), by x."""
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row.get("prune_steps"), row["step"], row["x"]), row)
    return sorted(first.values(), key=lambda row: (row["x"], row["step"] or 0))


def _format_loss(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _parameter_count(value: float) -> str:
    """A count of parameters (kept or removed) as `format_parameters` writes it; 0 is 0 (none removed), a tick below
    1,000 keeps its digits."""
    if abs(value) < 1000:
        return f"{value:g}"
    return ("-" if value < 0 else "") + format_parameters(abs(value))


REPLICATE_COLUMNS = ("test", "prune_steps", "step_min", "step_max", "x", "seeds", "d_mean", "d_sd", "d_min", "d_max",
                     "ci_width_mean", "held_out_loss_mean", "held_out_loss_sd", "held_out_loss_min",
                     "held_out_loss_max", "synthetic")
_SPREAD_VALUES = ("d", "held_out_loss")


def replicate_rows(rows_by_seed: Mapping[int, Sequence[dict[str, Any]]], *,
                   by: Sequence[str] = ("test", "prune_steps")) -> list[dict[str, Any]]:
    """The rows of several seeds' curves (`curve_rows`, or any rows with ``d``, ``ci_low``, ``ci_high`` and
    optionally ``x``, ``step`` and ``held_out_loss``) merged into one row per `by` group (pruning: a test after the
    same number of pruning steps, which every seed reaches at the same x in head and row pruning; a distillation's
    Figure-3 rows, one per test and model at its last step: `speat_metric.distill.report.replicate_report_rows`).

    Each row has the group's keys, ``seeds`` (how many seeds reached it), the mean x, the steps' range, and for d
    and the held-out loss the mean, the standard deviation over seeds (n - 1; None for one seed), the min and the
    max; ``ci_width_mean`` is the seeds' mean 95% CI width of d.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for seed in sorted(rows_by_seed):
        for row in rows_by_seed[seed]:
            groups.setdefault(tuple(row.get(key) for key in by), []).append(row)
    merged = []
    for key, rows in groups.items():
        steps = [row["step"] for row in rows if row.get("step") is not None]
        xs = [row["x"] for row in rows if isinstance(row.get("x"), (int, float))]
        widths = [row["ci_high"] - row["ci_low"] for row in rows if row.get("ci_low") is not None]
        entry = {**dict(zip(by, key)), "seeds": len(rows), "step_min": min(steps, default=None),
                 "step_max": max(steps, default=None), "x": float(np.mean(xs)) if xs else None,
                 "ci_width_mean": float(np.mean(widths)) if widths else None,
                 "synthetic": any(row.get("synthetic") for row in rows)}
        for name in _SPREAD_VALUES:
            values = np.array([row[name] for row in rows if row.get(name) is not None], dtype=float)
            entry |= {f"{name}_mean": float(values.mean()) if len(values) else None,
                      f"{name}_sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                      f"{name}_min": float(values.min()) if len(values) else None,
                      f"{name}_max": float(values.max()) if len(values) else None}
        merged.append(entry)
    return sorted(merged, key=lambda row: tuple((row[key] is None, row[key]) for key in by))


def replicate_figure(rows: Sequence[dict[str, Any]], *, x: str = "parameters_removed", title: str | None = None):
    """d per test over the seeds (mean line, min-max band, the uncompressed mean dashed) and, beside it, the
    held-out loss (mean line, min-max band), from `replicate_rows`."""
    import matplotlib

    held_out = [row for row in _one_per_group(rows) if row["held_out_loss_mean"] is not None]
    figure, axes, loss_axes = _panels(bool(held_out))
    colours = matplotlib.colormaps["tab10"]
    for number, test in enumerate(ordered_tests(row["test"] for row in rows)):
        colour = colours(number % 10)
        points = [row for row in rows if row["test"] == test]
        _band(axes, points, "d", colour, test)
        for baseline in (row for row in points if row["step_max"] == 0):
            axes.axhline(baseline["d_mean"], color=colour, linestyle="--", linewidth=1)
    if loss_axes is not None:
        _band(loss_axes, held_out, "held_out_loss", "black", None)
    _finish_axes(axes, loss_axes, x)
    seeds = max(row["seeds"] for row in rows)
    set_heading(axes, title or "SpEAT d under compression", [{"synthetic": row["synthetic"]} for row in rows])
    axes.legend(title=f"test: mean of {seeds} seeds, band min-max (dashed: uncompressed)", fontsize=8,
                title_fontsize=8)
    return figure


def _band(axes: Any, rows: Sequence[dict[str, Any]], name: str, colour: Any, label: str | None) -> None:
    xs = [row["x"] for row in rows]
    axes.plot(xs, [row[f"{name}_mean"] for row in rows], color=colour, marker="o", label=label)
    axes.fill_between(xs, [row[f"{name}_min"] for row in rows], [row[f"{name}_max"] for row in rows], color=colour,
                      alpha=0.2, linewidth=0)


def _one_per_group(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first test's row of each checkpoint group (the held-out loss is the same for every test), by x."""
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row.get("prune_steps"), row.get("layers"), row["step_min"], row["x"]), row)
    return sorted(first.values(), key=lambda row: (row["x"] is None, row["x"]))


def replicate_markdown(rows: Sequence[dict[str, Any]], *, x: str = "parameters_removed",
                       title: str | None = None) -> str:
    """The replicated curve as a Markdown table: per test and checkpoint, d's mean, min to max and sd over the
    seeds beside the seeds' mean 95% CI width, and the held-out loss's mean and min to max."""
    lines = [f"# {title}", ""] if title else []
    if any(row["synthetic"] for row in rows):
        lines += ["**SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement.**", ""]
    lines += ["Over the seeds: mean, min to max, and standard deviation of d; the mean width of the seeds' 95% CIs; "
              "the held-out loss's mean and min to max.", "",
              f"| test | step | {_X_LABELS.get(x, x)} | seeds | d mean | d min to max | d sd | mean 95% CI width | "
              "held-out loss | held-out min to max |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        steps = (str(row["step_min"]) if row["step_min"] == row["step_max"]
                 else f"{row['step_min']} to {row['step_max']}")
        lines.append(
            f"| {row['test']} | {steps} | {_format_x(row['x'], x)} | {row['seeds']} | {format_d(row['d_mean'])} | "
            f"{format_d(row['d_min'])} to {format_d(row['d_max'])} | {_format_loss(row['d_sd'])} | "
            f"{_format_loss(row['ci_width_mean'])} | {_format_loss(row['held_out_loss_mean'])} | "
            + (f"{_format_loss(row['held_out_loss_min'])} to {_format_loss(row['held_out_loss_max'])} |"
               if row["held_out_loss_mean"] is not None else " |"))
    return "\n".join(lines) + "\n"


def write_replicate_curve(records_by_seed: Mapping[int, Sequence[EvaluationRecord]], directory: str | Path, *,
                          x: str = "parameters_removed", by: Sequence[str] = ("test", "prune_steps"),
                          name: str = "curve", title: str | None = None) -> dict[str, Path]:
    """Write the across-seed curve of a replicated run (`replicate_rows` of each seed's `curve_rows`) as
    ``<name>.png``, ``<name>.csv`` and ``<name>.md`` into `directory`; return their paths."""
    rows = replicate_rows({seed: curve_rows(records, x=x) for seed, records in records_by_seed.items()}, by=by)
    if not rows:
        raise ValueError("no compression records to draw (evaluate at least one checkpoint first)")
    return write_figure_and_table(directory, name, replicate_figure(rows, x=x, title=title), rows,
                                  REPLICATE_COLUMNS, replicate_markdown(rows, x=x, title=title))


def run_records(run_dir: str | Path) -> dict[int | None, list[EvaluationRecord]]:
    """A run's records (also those without ``compression``: a distillation's teacher), by seed: ``{seed: records}``
    of each ``RUN_DIR/seed-<s>/`` of a replicated run, or ``{None: records}`` of a run of one seed."""
    from speat_metric.results import load_records
    from speat_metric.training.bias_tracking import RESULTS_DIRECTORY
    from speat_metric.training.checkpoints import replicate_directories

    def records(directory: Path) -> list[EvaluationRecord]:
        results = directory / RESULTS_DIRECTORY
        return load_records(results) if results.is_dir() else []

    if seeds := replicate_directories(run_dir):
        return {seed: records(directory) for seed, directory in seeds.items()}
    return {None: records(Path(run_dir))}


def write_run_curve(run_dir: str | Path, *, x: str = "parameters_removed", title: str | None = None,
                    name: str = "curve") -> dict[str, Path]:
    """Read a run's records again (`run_records`) and write its curve into ``RUN_DIR``: the across-seed curve of a
    replicated run (`write_replicate_curve`), or the curve of a run of one seed (`write_curve`)."""
    by_seed = run_records(run_dir)
    if None in by_seed:
        return write_curve(by_seed[None], run_dir, x=x, name=name, title=title)
    return write_replicate_curve(by_seed, run_dir, x=x, name=name, title=title)
