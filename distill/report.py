"""The end of a distillation run: d per test for the teacher ("base") and each student, as Lin et al. (2024),
Figure 3 — ``distill.png`` (grouped bars with 95% CIs), ``distill.csv`` and ``distill.md`` — and, beside it, each
student's distillation loss on the held-out recordings (``compression["held_out_loss"]``): what its d cost.

Each student is shown at its latest checkpoint (the end of its training); the teacher's records are those without
``compression``, and have no held-out loss (the loss is a student's distance from the teacher). A replicated run
(``--seeds``) is drawn by `write_replicate_report`: per test and model, the mean over the seeds as the bar and their
min-max range as its error bar, for d and for the held-out loss. `write_run_report` reads a run's records again
(one seed or replicated) and draws it again.

Example:
    >>> paths = write_report(records, Path("runs/distill"), teacher="facebook/hubert-base-ls960")  # doctest: +SKIP
    >>> sorted(paths)                                                                          # doctest: +SKIP
    ['csv', 'markdown', 'png']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from speat_metric.formatting import format_ci, format_d
from speat_metric.report import ordered_tests, plural
from speat_metric.results import EvaluationRecord
from speat_metric.training.plots import (
    interval_errors,
    replicate_rows,
    run_records,
    set_heading,
    write_figure_and_table,
)

NAME = "distill"
BASE = "base"
CSV_COLUMNS = ("test", "model", "layers", "step", "d", "ci_low", "ci_high", "p_value", "size", "parameters",
               "held_out_loss", "synthetic")
REPLICATE_COLUMNS = ("test", "model", "layers", "step_min", "step_max", "seeds", "d_mean", "d_sd", "d_min", "d_max",
                     "ci_width_mean", "held_out_loss_mean", "held_out_loss_sd", "held_out_loss_min",
                     "held_out_loss_max", "synthetic")
HELD_OUT_NOTE = ("Held-out loss: each student's distillation loss on recordings it never trained on, at its last "
                 "step (lower is better); the teacher has none, the loss being a student's distance from it.")


def report_title(teacher_model: str, seeds: int | None = None) -> str:
    """The figure's and table's title: ``Distilling <teacher's name>``, and the seeds of a replicated run."""
    title = f"Distilling {Path(teacher_model).name or teacher_model}"
    return f"{title}, {seeds} seeds" if seeds else title


def report_rows(records: Sequence[EvaluationRecord]) -> list[dict[str, Any]]:
    """One row per test and model: the teacher (``model == "base"``) and each student depth at its last step (with
    its held-out loss, None when the run had no held-out split), ordered by test, then base first and students by
    depth.

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
            "held_out_loss": (record.compression or {}).get("held_out_loss"),
            "synthetic": "synthetic-stimuli" in record.labels}


def _models(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The models of the rows: base first, then the students by depth."""
    return list(dict.fromkeys(row["model"] for row in sorted(rows, key=lambda row: row["layers"] or 0)))


def _heading(rows: Sequence[dict[str, Any]], title: str | None) -> list[str]:
    """The title and, when any row was measured on the demo set, the synthetic-stimuli warning."""
    lines = [f"# {title}", ""] if title else []
    if any(row["synthetic"] for row in rows):
        lines += ["**SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement.**", ""]
    return lines


def _table(rows: Sequence[dict[str, Any]], intro: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
    """A Figure-3 table after `intro`: one line per test, one column per model, `cell` of each row."""
    models = _models(rows)
    lines = [intro, "", "| test | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    by_cell = {(row["test"], row["model"]): row for row in rows}
    for test in ordered_tests(row["test"] for row in rows):
        lines.append(f"| {test} | " + " | ".join(cell(by_cell[test, model]) if (test, model) in by_cell else ""
                                                 for model in models) + " |")
    return lines


def _students(rows: Sequence[dict[str, Any]], loss: str) -> dict[str, dict[str, Any]]:
    """The first row of each student with a held-out loss (the row's `loss` key), by model, shallowest first."""
    students: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda row: row["layers"] or 0):
        if row["model"] != BASE and row.get(loss) is not None:
            students.setdefault(row["model"], row)
    return students


def _loss_table(rows: Sequence[dict[str, Any]], loss: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
    """Each student's held-out loss (`cell` of its first row) as a one-line table; nothing when none has one."""
    students = _students(rows, loss)
    if not students:
        return []
    return ["", HELD_OUT_NOTE, "", "| | " + " | ".join(students) + " |", "|---|" + "---|" * len(students),
            "| held-out loss | " + " | ".join(cell(row) for row in students.values()) + " |"]


def report_markdown(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> str:
    """The Figure-3 table: one line per test, the teacher's d then each student's (written by
    `speat_metric.formatting`); then each student's held-out loss, when the run measured it."""
    def cell(row: dict[str, Any]) -> str:
        if row["ci_low"] is None:
            return format_d(row["d"])
        return f"{format_d(row['d'])} {format_ci(row['ci_low'], row['ci_high'])}"

    lines = [*_heading(rows, title),
             *_table(rows, "SpEAT d (95% CI) of the teacher (base) and of each student at its last step.", cell),
             *_loss_table(rows, "held_out_loss", lambda row: _format_loss(row["held_out_loss"]))]
    return "\n".join(lines) + "\n"


def replicate_markdown(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> str:
    """The Figure-3 table of a replicated run (`replicate_report_rows`): per test and model, d's mean and min to
    max over the seeds; then its standard deviation over the seeds beside the seeds' mean 95% CI width (training
    noise against the test's own uncertainty); then each student's held-out loss, mean and min to max."""
    seeds = max(row["seeds"] for row in rows)
    lines = [*_heading(rows, title),
             *_table(rows, f"SpEAT d of the teacher (base) and of each student at its last step: mean over {seeds} "
                     "seeds (min to max).",
                     lambda row: f"{format_d(row['d_mean'])} ({format_d(row['d_min'])} to {format_d(row['d_max'])})"),
             "",
             *_table(rows, "Standard deviation of d over the seeds / the seeds' mean 95% CI width.",
                     lambda row: f"{_format_loss(row['d_sd'])} / {_format_loss(row['ci_width_mean'])}"),
             *_loss_table(rows, "held_out_loss_mean",
                          lambda row: f"{_format_loss(row['held_out_loss_mean'])} "
                          f"({_format_loss(row['held_out_loss_min'])} to {_format_loss(row['held_out_loss_max'])})")]
    return "\n".join(lines) + "\n"


def _format_loss(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _spread(rows: Sequence[dict[str, Any]], name: str) -> list[list[float]]:
    """matplotlib's ``yerr`` (below, above) of each row's min-max range around its mean of `name`."""
    return [[row[f"{name}_mean"] - row[f"{name}_min"] for row in rows],
            [row[f"{name}_max"] - row[f"{name}_mean"] for row in rows]]


def report_figure(rows: Sequence[dict[str, Any]], *, title: str | None = None, replicated: bool = False):
    """Grouped bars: one group per test, one bar per model (base first), 95% CIs as error bars; beside them, when
    the students have a held-out loss, one bar per student. `replicated` rows (`replicate_report_rows`): the bars
    are the means over the seeds and the error bars their min-max ranges."""
    import matplotlib
    from matplotlib.figure import Figure

    d, loss = ("d_mean", "held_out_loss_mean") if replicated else ("d", "held_out_loss")
    tests = ordered_tests(row["test"] for row in rows)
    models = _models(rows)
    by_cell = {(row["test"], row["model"]): row for row in rows}
    students = _students(rows, loss)
    figure = Figure(figsize=(12 if students else 7, 4.5), layout="constrained")
    axes, loss_axes = figure.subplots(1, 2, width_ratios=(2, 1)) if students else (figure.subplots(), None)
    colours = {model: "grey" if model == BASE else matplotlib.colormaps["tab10"](number % 10)
               for number, model in enumerate(models)}
    bar_width = 0.8 / len(models)
    for number, model in enumerate(models):
        cells = [(position, by_cell[test, model]) for position, test in enumerate(tests) if (test, model) in by_cell]
        points = [row for _, row in cells]
        axes.bar([position - 0.4 + bar_width * (number + 0.5) for position, _ in cells], [row[d] for row in points],
                 width=bar_width, yerr=_spread(points, "d") if replicated else interval_errors(points), capsize=3,
                 label=model, color=colours[model])
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xticks(range(len(tests)), tests)
    axes.set_ylabel("SpEAT effect size d")
    set_heading(axes, title or "SpEAT d of the teacher (base) and its students", rows)
    legend = (f"model: mean of {max(row['seeds'] for row in rows)} seeds, error bars min-max" if replicated
              else "model (error bars: 95% CI)")
    axes.legend(title=legend, fontsize=8, title_fontsize=8)
    if loss_axes is not None:
        points = list(students.values())
        loss_axes.bar(range(len(points)), [row[loss] for row in points], color=[colours[model] for model in students],
                      yerr=_spread(points, "held_out_loss") if replicated else None, capsize=3)
        loss_axes.set_xticks(range(len(points)), list(students))
        loss_axes.set_ylabel("distillation loss on held-out recordings")
        loss_axes.set_title("quality: held-out loss (lower is better)", fontsize=10)
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


def replicate_report_rows(records_by_seed: Mapping[int, Sequence[EvaluationRecord]]) -> list[dict[str, Any]]:
    """One row per test and model over the seeds that have a student record (`replicate_rows` of each seed's
    `report_rows`): d's and the held-out loss's mean, standard deviation, min and max, and the seeds' mean 95% CI
    width; ordered as `report_rows`.

    Raises:
        ValueError: no seed has a student record.
    """
    by_seed = {seed: report_rows(records) for seed, records in records_by_seed.items()
               if any(record.compression for record in records)}
    if not by_seed:
        raise ValueError("no distilled student has been evaluated yet")
    rows = replicate_rows(by_seed, by=("test", "model", "layers"))
    return sorted(rows, key=lambda row: (row["test"], row["layers"] or 0))


def write_replicate_report(records_by_seed: Mapping[int, Sequence[EvaluationRecord]], directory: str | Path, *,
                           title: str | None = None) -> dict[str, Path]:
    """Write the across-seed ``distill.png``, ``distill.csv`` and ``distill.md`` of a replicated run into
    `directory` (each atomically); return their paths."""
    rows = replicate_report_rows(records_by_seed)
    return write_figure_and_table(directory, NAME, report_figure(rows, title=title, replicated=True), rows,
                                  REPLICATE_COLUMNS, replicate_markdown(rows, title=title))


def write_run_report(run_dir: str | Path) -> dict[str, Path]:
    """Read a distillation run's records again (`speat_metric.training.plots.run_records`) and write its report
    into ``RUN_DIR`` as the run did: the across-seed report of a replicated run (`write_replicate_report`), or the
    report of a run of one seed (`write_report`)."""
    by_seed = run_records(run_dir)
    students = [record for records in by_seed.values() for record in records if record.compression]
    if not students:
        raise ValueError(f"{run_dir}: no distilled student has been evaluated yet")
    teacher_model = students[0].compression["teacher_model"]
    if None in by_seed:
        return write_report(by_seed[None], run_dir, title=report_title(teacher_model))
    return write_replicate_report(by_seed, run_dir, title=report_title(teacher_model, len(by_seed)))
