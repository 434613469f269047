"""What each part of the Space shows for the values of its controls: frames, figures, Markdown and control updates.

`SpaceViews` turns control values into outputs with `rows`, `series`, `plots`, `detail`, `reference`, `uploads`
and `model_runs`; `app.py` only wires components to these methods. Nothing here parses a record.
"""

from __future__ import annotations

import hashlib
import html
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from speat_metric.formatting import format_d
from speat_metric.space import about, board, detail, model_runs, plots, reference, rows, series, uploads
from speat_metric.space import columns as C
from speat_metric.space.store import RecordStore


class SpaceViews:
    """The outputs of every view, computed from the store's current table."""

    def __init__(self, store: RecordStore, *, evaluate_models: bool = False) -> None:
        self.store = store
        self.evaluate_models = evaluate_models

    @property
    def table(self) -> rows.ResultTable:
        return self.store.table

    # Header --------------------------------------------------------------------------------------------------------
    def header(self, stimuli: str) -> tuple[str, str, Any]:
        """(data source line, skipped-file warnings, the synthetic-stimuli note shown or hidden)."""
        table = self.table
        warnings = about.warnings_text(table.warnings)
        return (about.source_line(table.origin, len(table.frame), table.superseded),
                gr.update(value=warnings, visible=bool(warnings)),
                gr.update(visible=stimuli == "synthetic"))

    def stimuli_choice(self, current: str | None = None) -> Any:
        """The stimuli switch: the kind chosen stays chosen (an empty kind shows why it is empty); the first load
        picks real stimuli when there are results on them."""
        table = self.table
        choices = [(f"{label} · {table.count(value)} results", value) for label, value in C.STIMULI_CHOICES]
        value = current if current in ("real", "synthetic") else rows.default_stimuli(table)
        return gr.update(choices=choices, value=value)

    # Leaderboard ---------------------------------------------------------------------------------------------------
    def leaderboard_controls(self, families: list[str] | None = None, sizes: list[str] | None = None,
                             methods: list[str] | None = None, view: str | None = None,
                             shown: list[str] | None = None, sort_by: str | None = None) -> tuple[Any, ...]:
        """Updated choices of the family, size, compression, layer-view, column and ranking controls, keeping the
        values chosen that still exist (a refresh or a new result never resets a filter behind the user's back)."""
        table = self.table
        optional, default_shown = rows.optional_columns(table)
        family_choices, size_choices, method_choices = rows.families(table), rows.sizes(table), rows.methods(table)
        view_choices = rows.views(table)
        sort = C.SortOrder.parse(sort_by, table.tests)
        return (gr.update(choices=family_choices, value=[value for value in families or () if value in family_choices]),
                gr.update(choices=size_choices, value=[value for value in sizes or () if value in size_choices]),
                gr.update(choices=method_choices, value=[value for value in methods or () if value in method_choices]),
                gr.update(choices=view_choices, value=view if view in view_choices else C.MEAN_VIEW),
                gr.update(choices=optional, value=default_shown if shown is None else
                          [value for value in shown if value in optional]),
                gr.update(choices=C.sort_choices(table.tests), value=sort.text()))

    def leaderboard(self, stimuli: str, search: str, families: list[str], sizes: list[str], methods: list[str],
                    view: str, shown: list[str] | None, sort_by: str, limit: Any) -> tuple[Any, ...]:
        """(the table, the status under it, the ranking control, the rows control, the CSV and JSON downloads)."""
        table = self.table
        sort = C.SortOrder.parse(sort_by, table.tests)
        count, problem = C.row_limit(limit)
        query = rows.LeaderboardQuery(search=search or "", families=tuple(families or ()), sizes=tuple(sizes or ()),
                                      methods=tuple(methods or ()), stimuli=stimuli or "real",
                                      view=view or C.MEAN_VIEW, columns=None if shown is None else tuple(shown),
                                      sort=sort)
        selected = rows.query_leaderboard(table, query)
        frame = selected.head(count) if count else selected
        status = (f"Showing the first {len(frame):,} of {len(selected):,} rows, ranked by {sort.text()}; search, "
                  f"filter or show more rows to see the others." if len(frame) < len(selected)
                  else f"{len(selected):,} rows, ranked by {sort.text()}.")
        notes = [f"**⚠ {problem}**" if problem else "", rows.per_layer_only(table, selected),
                 rows.mixed_methods(selected, table), rows.audio_summary(table, selected, query.stimuli)]
        status = "\n\n".join(note for note in [notes[0], status, *notes[1:]] if note)
        columns = [column for column in C.leaderboard_columns(table.tests)
                   if column.name in rows.visible_columns(table, query.columns)]
        empty = about.board_empty(query.stimuli, table.count(query.stimuli))
        downloads: tuple[Path | None, Path | None] = (None, None)
        if len(frame):
            exported = board.export_frame(frame, table.tests, query.stimuli)
            folder, stem = downloads_folder(exported), f"speat-leaderboard-{query.stimuli}"
            downloads = (folder / f"{stem}.csv", folder / f"{stem}.json")
            if not all(path.exists() for path in downloads):
                downloads = board.write_exports(exported, folder, stem)
        return (board.board_html(frame, columns, sort, table.tests, empty=empty), status,
                gr.update(choices=C.sort_choices(table.tests), value=sort.text()),
                gr.update(value=limit if not problem else C.DEFAULT_ROW_LIMIT),
                gr.update(value=downloads[0], interactive=downloads[0] is not None),
                gr.update(value=downloads[1], interactive=downloads[1] is not None))

    def board_click(self, stimuli: str, search: str, families: list[str], sizes: list[str], methods: list[str],
                    view: str, shown: list[str] | None, sort_by: str, limit: Any,
                    event: gr.EventData) -> tuple[Any, ...]:
        """A header click ranks by that column (again: the other way round); a row click opens its model in the
        detail and explain views."""
        data = getattr(event, "_data", None) or {}
        if data.get("run"):
            run = str(data["run"])
            unchanged = (gr.update(),) * 6
            return (*unchanged, gr.update(value=run), gr.update(value=run), gr.update(selected="detail"))
        if data.get("sort"):
            current = C.SortOrder.parse(sort_by, self.table.tests)
            column = str(data["sort"])
            sort = current.flipped() if column == current.column else C.SortOrder(column, False)
            sort_by = sort.text()
        return (*self.leaderboard(stimuli, search, families, sizes, methods, view, shown, sort_by, limit),
                gr.update(), gr.update(), gr.update())

    # Plots ---------------------------------------------------------------------------------------------------------
    def plot_choices(self, stimuli: str, current: tuple[Any, ...] = (None, None, None, None)
                     ) -> tuple[Any, Any, Any, Any]:
        """Dropdown updates of the training-steps, pruning, distillation and layer plots; the models chosen stay
        chosen while they have results on these stimuli."""
        table = self.table
        training = series.training_runs(table, stimuli)
        kept = [run for run in current[0] or () if run in training]
        choices = (series.pruned_models(table, stimuli), series.distilled_models(table, stimuli),
                   series.layered_models(table, stimuli))
        return (gr.update(choices=training, value=kept or training[:6]),
                *(gr.update(choices=options, value=chosen if chosen in options else options[0] if options else None)
                  for options, chosen in zip(choices, current[1:])))

    def training_plot(self, stimuli: str, runs: list[str] | None) -> tuple[Any, Any, Any]:
        curves = series.training_curves(self.table, list(runs or []), stimuli)
        return curve_outputs(curves, title="SpEAT d over training steps", empty=about.TRAINING_EMPTY,
                             synthetic=stimuli == "synthetic", name="training-steps", facet="test",
                             colour_by="series")

    def pruning_plot(self, stimuli: str, model: str | None) -> tuple[Any, Any, Any]:
        curves = series.pruning_curves(self.table, model, stimuli) if model else None
        return curve_outputs(curves, title=f"Pruning {model}: d against parameters removed",
                             empty=about.PRUNING_EMPTY, synthetic=stimuli == "synthetic", name="pruning", band=False)

    def distillation_plot(self, stimuli: str, teacher: str | None) -> tuple[Any, Any, Any]:
        curves = series.distillation_curves(self.table, teacher, stimuli) if teacher else None
        return curve_outputs(curves, title=f"Distilling {teacher}: teacher (base) and students",
                             empty=about.DISTILLATION_EMPTY, synthetic=stimuli == "synthetic", name="distillation",
                             band=False)

    def layer_plot(self, stimuli: str, model: str | None) -> tuple[Any, Any, Any]:
        curves = series.layer_curves(self.table, model, stimuli) if model else None
        return curve_outputs(curves, title=f"{model}: d per layer", empty=about.LAYERS_EMPTY,
                             synthetic=stimuli == "synthetic", name="layers")

    # Model detail and explanation ----------------------------------------------------------------------------------
    def model_choices(self, current: str | None) -> tuple[Any, Any]:
        models = rows.models(self.table)
        value = current if current in models else (models[0] if models else None)
        return gr.update(choices=models, value=value), gr.update(choices=models, value=value)

    def detail(self, run: str | None, stimuli: str | None = None) -> tuple[str, str]:
        """(the model's plot: d over checkpoints, per layer or per test, its results and how each was made)."""
        text = detail.model_detail(self.table, run, stimuli)
        curves = detail.detail_curves(self.table, run, stimuli) if run else None
        if curves is None or curves.empty:
            return "", text
        synthetic = detail.plotted_stimuli(rows.records_of(self.table, run), stimuli) == "synthetic"
        per_layer = "layer" in curves.x_label
        title = f"{run}: d " + ("over checkpoint steps" if "step" in curves.x_label else
                                "per layer" if per_layer else "per test")
        figure = plots.curve_figure(curves, title=title, synthetic=synthetic, band=not curves.categorical_x)
        figure_html = plots.figure_html(figure, plots.alt_text(curves, title, synthetic=synthetic,
                                                               band=not curves.categorical_x))
        sentences = detail.layer_sentences(self.table, run, stimuli) if per_layer else []
        if sentences:  # where bias lives, in words, under the per-layer plot
            figure_html += '<ul class="layer-sentences">' + "".join(
                f"<li>{html.escape(sentence)}</li>" for sentence in sentences) + "</ul>"
        return figure_html, text

    def explain_choices(self, run: str | None, stimuli: str) -> Any:
        """The records of a model that can be explained: its results on the chosen stimuli, first."""
        table = self.table
        if not run:
            return gr.update(choices=[], value=None)
        found = rows.records_of(table, run)
        found = pd.concat([found[found["stimuli"] == stimuli], found[found["stimuli"] != stimuli]])
        choices = [(rows.record_choice_label(row), int(row["record"])) for _, row in found.iterrows()]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def explain(self, record_index: int | str | None) -> tuple[str, str, Any]:
        """(summary, s(w) distribution figure, per-target table) of one record."""
        if isinstance(record_index, str) and not record_index.strip().isdigit() or (
                record_index is not None and not 0 <= int(record_index) < len(self.table.records)):
            return ("Choose one of the model's results from the list.", plots.message_html("no such result"), None)
        if record_index is None:
            return "Choose a model and one of its results.", plots.message_html("no result chosen"), None
        record = self.table.record(int(record_index))
        frame = series.association_frame(record)
        if frame is None:
            return (about.NO_SCORES, plots.message_html("per-stimulus scores are not available for this record"),
                    None)
        title = (f"{record.model_label} · {record.test}: {record.groups.get('X')} (X) vs {record.groups.get('Y')} (Y)"
                 f" · d = {format_d(record.speat.effect_size)}")
        synthetic = rows.is_synthetic(record)
        figure = plots.association_figure(frame, title=title, synthetic=synthetic)
        alt = plots.association_alt_text(frame, title, synthetic=synthetic)
        return (uploads.scores_summary(frame, record.speat.effect_size, record.groups),
                plots.figure_html(figure, alt), frame.round(5))

    # Published values ----------------------------------------------------------------------------------------------
    def comparison(self) -> Any:
        frame = reference.comparison(self.table)
        return gr.update(value=reference.formatted(frame), visible=not frame.empty), gr.update(visible=frame.empty)

    # Try it --------------------------------------------------------------------------------------------------------
    @staticmethod
    def upload(path: str | None, num_permutations: float, seed: float) -> tuple[str, dict | None, str, Any]:
        """(summary, the evaluate module's result, s(w) figure, per-target table) of an uploaded embeddings file; a
        problem is shown where the results go, and the previous file's results are cleared."""
        name = Path(path).name if path else None
        try:
            if not path:
                raise ValueError("upload a .csv or .npz file of embeddings first")
            upload = uploads.read_embeddings(path)
            result = uploads.evaluate_upload(upload, num_permutations=int(num_permutations), seed=int(seed))
        except (ValueError, TypeError, OverflowError) as error:
            return uploads.error_summary(name, error), None, "", None
        frame = uploads.upload_scores(upload, result)
        title = f"{name}: d = {format_d(result['effect_size'])}"
        figure = plots.association_figure(frame, title=title)
        return (uploads.upload_summary(name, result, frame), result,
                plots.figure_html(figure, plots.association_alt_text(frame, title)), frame.round(5))

    def evaluate_model(self, model: str, stimuli: str, tests: list[str], num_permutations: float,
                       progress: gr.Progress) -> tuple[str, Any]:
        """Evaluate a model in the Space (queued one at a time); its records join the Space's records."""
        progress(0, desc=f"checking {model}")
        try:
            records = model_runs.evaluate_model(model, stimuli=stimuli, tests=list(tests or []),
                                                num_permutations=int(num_permutations), enabled=self.evaluate_models)
        except ValueError as error:  # said where the results go; the previous results are cleared
            return f"**⚠ Could not evaluate `{model}`:** {error}", gr.update(value=None, visible=False)
        table = rows.build_table(records)
        self.store.add(records)
        shown = rows.query_leaderboard(table, rows.LeaderboardQuery(stimuli=rows.default_stimuli(table),
                                                                    view=C.ALL_VIEWS))
        shown = shown[rows.visible_columns(table, None)].reset_index(drop=True)
        return (f"Evaluated **{model}** on {len(records)} test(s); the results are in every view now "
                f"(until the Space restarts).", gr.update(value=shown, visible=True))


DOWNLOADS_LIFETIME = 3600.0
"""Seconds a file offered for download is kept: Gradio copies it to its own cache when the page receives it."""


def downloads_folder(table: pd.DataFrame) -> Path:
    """The folder of the files offered for `table`: named by a hash of its content, so a table asked for again (each
    filter action, each visitor) is written once, in this process's download folder, whose folders older than
    `DOWNLOADS_LIFETIME` are removed (the folder does not grow with every request)."""
    root = Path(tempfile.gettempdir()) / f"speat-space-downloads-{os.getpid()}"
    root.mkdir(exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        if now - old.stat().st_mtime > DOWNLOADS_LIFETIME:
            shutil.rmtree(old, ignore_errors=True)
    digest = hashlib.sha256("|".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    folder = root / digest.hexdigest()[:20]
    folder.mkdir(exist_ok=True)
    return folder


def curve_outputs(curves: series.Curves | None, *, title: str, empty: str, synthetic: bool, name: str,
                  **drawing: Any) -> tuple[str, Any, Any]:
    """(the figure with its alt text, the plotted numbers as a table, their CSV download) of one plot; the empty
    message as text when there is nothing to draw."""
    if curves is None or curves.empty:
        return plots.message_html(empty), gr.update(value=None, visible=False), gr.update(value=None, visible=False)
    figure = plots.curve_figure(curves, title=title, empty_message=empty, synthetic=synthetic, **drawing)
    alt = plots.alt_text(curves, title, synthetic=synthetic, **drawing)
    numbers = plots.curves_table(curves)
    path = downloads_folder(numbers) / f"speat-{name}.csv"
    if not path.exists():
        numbers.to_csv(path, index=False, float_format="%.17g")
    return (plots.figure_html(figure, alt), gr.update(value=plots.formatted_table(numbers), visible=True),
            gr.update(value=str(path), visible=True))


def example_files() -> list[str]:
    """Example uploads (CSV and NPZ) made from the bundled synthetic example embeddings, in a temporary folder."""
    import speat_metric

    folder = Path(tempfile.mkdtemp(prefix="speat-space-examples-"))
    with np.load(Path(speat_metric.__file__).parent / "data" / "example_embeddings.npz") as arrays:
        parts = {role: arrays[role] for role in uploads.ROLES}
    np.savez(folder / "example_embeddings.npz", **parts)
    frame = pd.concat([pd.DataFrame(parts[role]).assign(group=role, id=[f"{role}{i}" for i in range(len(parts[role]))])
                       for role in uploads.ROLES], ignore_index=True)
    frame = frame[["id", "group", *[column for column in frame.columns if column not in ("id", "group")]]]
    frame.columns = [str(column) if column in ("id", "group") else f"dim{column}" for column in frame.columns]
    frame.to_csv(folder / "example_embeddings.csv", index=False)
    return [str(folder / "example_embeddings.csv"), str(folder / "example_embeddings.npz")]
