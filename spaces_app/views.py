"""What each part of the Space shows for the values of its controls: frames, figures, Markdown and control updates.

`SpaceViews` turns control values into outputs with `rows`, `series`, `plots`, `detail`, `reference`, `uploads`
and `model_runs`; `app.py` only wires components to these methods. Nothing here parses a record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from speat_metric.space import about, detail, model_runs, plots, reference, rows, series, uploads
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
        table = self.table
        choices = [(f"{label} · {table.count(value)} results", value) for label, value in C.STIMULI_CHOICES]
        value = current if current in ("real", "synthetic") and table.count(current) else rows.default_stimuli(table)
        return gr.update(choices=choices, value=value)

    # Leaderboard ---------------------------------------------------------------------------------------------------
    def leaderboard_controls(self) -> tuple[Any, ...]:
        """Updated choices of the family, size, compression, layer-view and column controls."""
        table = self.table
        optional, shown = rows.optional_columns(table)
        return (gr.update(choices=rows.families(table)), gr.update(choices=rows.sizes(table)),
                gr.update(choices=rows.methods(table)), gr.update(choices=rows.views(table)),
                gr.update(choices=optional, value=shown))

    def leaderboard(self, stimuli: str, search: str, families: list[str], sizes: list[str], methods: list[str],
                    view: str, shown: list[str] | None, sort_by: str, limit: int) -> tuple[Any, str, dict[str, str]]:
        """(the leaderboard update, how many rows it shows of how many, model cell -> model for row clicks)."""
        table = self.table
        query = rows.LeaderboardQuery(search=search or "", families=tuple(families or ()), sizes=tuple(sizes or ()),
                                      methods=tuple(methods or ()), stimuli=stimuli or "real",
                                      view=view or C.MEAN_VIEW, columns=None if shown is None else tuple(shown),
                                      sort_by=sort_by or C.SORT_CHOICES[0])
        selected = rows.query_leaderboard(table, query)
        frame = selected.head(int(limit)) if limit else selected
        status = (f"Showing the first {len(frame):,} of {len(selected):,} rows, ranked by {query.sort_by}; search, "
                  f"filter or show more rows to see the others." if len(frame) < len(selected)
                  else f"{len(selected):,} rows.")
        shown = table.leaderboard.loc[selected.index]
        notes = [rows.mixed_methods(shown, table), rows.audio_summary(table, shown, query.stimuli)]
        status = "\n\n".join([status, *(note for note in notes if note)])
        runs = dict(zip(table.leaderboard.loc[frame.index, C.MODEL], table.leaderboard.loc[frame.index, "_run"]))
        names = list(frame.columns)
        return (gr.update(value=frame.reset_index(drop=True), datatype=rows.column_datatypes(table, names),
                          column_widths=rows.column_widths(table, names)), status, runs)

    @staticmethod
    def selected_model(runs: dict[str, str], event: gr.SelectData) -> tuple[Any, Any]:
        """A leaderboard row click opens that model in the detail and explain views."""
        cell = event.row_value[0] if event.row_value else None
        run = runs.get(cell)
        return (gr.update(value=run), gr.update(value=run)) if run else (gr.update(), gr.update())

    # Plots ---------------------------------------------------------------------------------------------------------
    def plot_choices(self, stimuli: str) -> tuple[Any, Any, Any, Any]:
        """Dropdown updates of the training-steps, pruning, distillation and layer plots."""
        table = self.table
        training = series.training_runs(table, stimuli)
        choices = (series.pruned_models(table, stimuli), series.distilled_models(table, stimuli),
                   series.layered_models(table, stimuli))
        return (gr.update(choices=training, value=training[:6]),
                *(gr.update(choices=options, value=options[0] if options else None) for options in choices))

    def training_plot(self, stimuli: str, runs: list[str] | None):
        curves = series.training_curves(self.table, list(runs or []), stimuli)
        return plots.curve_figure(curves, title="SpEAT d over training steps", facet="test", colour_by="series",
                                  empty_message=about.TRAINING_EMPTY)

    def pruning_plot(self, stimuli: str, model: str | None):
        if not model:
            return plots.message_figure(about.PRUNING_EMPTY)
        curves = series.pruning_curves(self.table, model, stimuli)
        return plots.curve_figure(curves, title=f"Pruning {model}: d against parameters removed (dashed: unpruned)",
                                  band=False, empty_message=about.PRUNING_EMPTY)

    def distillation_plot(self, stimuli: str, teacher: str | None):
        if not teacher:
            return plots.message_figure(about.DISTILLATION_EMPTY)
        curves = series.distillation_curves(self.table, teacher, stimuli)
        return plots.curve_figure(curves, title=f"Distilling {teacher}: teacher (base) and students", band=False,
                                  empty_message=about.DISTILLATION_EMPTY)

    def layer_plot(self, stimuli: str, model: str | None):
        if not model:
            return plots.message_figure(about.LAYERS_EMPTY)
        curves = series.layer_curves(self.table, model, stimuli)
        return plots.curve_figure(curves, title=f"{model}: d per layer (dashed: mean over layers)",
                                  empty_message=about.LAYERS_EMPTY)

    # Model detail and explanation ----------------------------------------------------------------------------------
    def model_choices(self, current: str | None) -> tuple[Any, Any]:
        models = rows.models(self.table)
        value = current if current in models else (models[0] if models else None)
        return gr.update(choices=models, value=value), gr.update(choices=models, value=value)

    def detail(self, run: str | None) -> str:
        return detail.model_detail(self.table, run)

    def explain_choices(self, run: str | None, stimuli: str) -> Any:
        """The records of a model that can be explained: its results on the chosen stimuli, first."""
        table = self.table
        if not run:
            return gr.update(choices=[], value=None)
        found = rows.records_of(table, run)
        found = pd.concat([found[found["stimuli"] == stimuli], found[found["stimuli"] != stimuli]])
        choices = [(rows.record_choice_label(row), int(row["record"])) for _, row in found.iterrows()]
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def explain(self, record_index: int | None) -> tuple[str, Any, Any]:
        """(summary, s(w) distribution figure, per-target table) of one record."""
        if record_index is None:
            return "Choose a model and one of its results.", plots.message_figure("no result chosen"), None
        record = self.table.record(int(record_index))
        frame = series.association_frame(record)
        if frame is None:
            return about.NO_SCORES, plots.message_figure("per-stimulus scores not available for this record"), None
        title = (f"{record.model_label} · {record.test}: {record.groups.get('X')} (X) vs {record.groups.get('Y')} (Y)"
                 f" · d = {record.speat.effect_size:+.2f}")
        return (_scores_summary(frame, record.speat.effect_size, record.groups),
                plots.association_figure(frame, title=title), frame.round(5))

    # Published values ----------------------------------------------------------------------------------------------
    def comparison(self) -> Any:
        frame = reference.comparison(self.table)
        return gr.update(value=frame, visible=not frame.empty), gr.update(visible=frame.empty)

    # Try it --------------------------------------------------------------------------------------------------------
    @staticmethod
    def upload(path: str | None, num_permutations: float, seed: float) -> tuple[str, dict | None, Any, Any]:
        """(summary, the evaluate module's result, s(w) figure, per-target table) of an uploaded embeddings file."""
        if not path:
            raise gr.Error("Upload a .csv or .npz file of embeddings first.")
        try:
            upload = uploads.read_embeddings(path)
            result = uploads.evaluate_upload(upload, num_permutations=int(num_permutations), seed=int(seed))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        frame = uploads.upload_scores(upload, result)
        kind = "exact" if result["exact"] else f"{result['num_permutations']:,} random partitions"
        summary = (f"### d = {result['effect_size']:+.4f} ({result['effect_size_label']})\n\n"
                   f"p = {result['p_value']:.4g} ({result['alternative']}, {kind}, seed {result['seed']}) · "
                   f"{result['confidence']:.0%} CI [{result['ci_low']:+.3f}, {result['ci_high']:+.3f}] · "
                   f"X/Y/A/B: {result['n_x']}/{result['n_y']}/{result['n_a']}/{result['n_b']}\n\n"
                   + _scores_summary(frame, result["effect_size"], {"X": "X", "Y": "Y"}))
        figure = plots.association_figure(frame, title=f"{Path(path).name}: d = {result['effect_size']:+.2f}")
        return summary, result, figure, frame.round(5)

    def evaluate_model(self, model: str, stimuli: str, tests: list[str], num_permutations: float,
                       progress: gr.Progress) -> tuple[str, Any]:
        """Evaluate a model in the Space (queued one at a time); its records join the Space's records."""
        progress(0, desc=f"checking {model}")
        try:
            records = model_runs.evaluate_model(model, stimuli=stimuli, tests=list(tests or []),
                                                num_permutations=int(num_permutations), enabled=self.evaluate_models)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        table = rows.build_table(records)
        self.store.add(records)
        shown = rows.query_leaderboard(table, rows.LeaderboardQuery(stimuli=rows.default_stimuli(table),
                                                                    view=C.ALL_VIEWS))
        return (f"Evaluated **{model}** on {len(records)} test(s); the results are in every view now "
                f"(until the Space restarts).", gr.update(value=shown.reset_index(drop=True), visible=True))


def _scores_summary(frame: pd.DataFrame, effect: float, groups: dict[str, str]) -> str:
    means = frame.groupby("role")["s(w)"].mean()
    drivers = frame.head(3)
    lines = [f"Mean s(w): X ({groups.get('X')}) {means.get('X', np.nan):+.4f}, Y ({groups.get('Y')}) "
             f"{means.get('Y', np.nan):+.4f}. d = {effect:+.3f} is their difference over the pooled standard "
             "deviation.", "", "Targets that move d most (d minus d without them):"]
    lines += [f"- `{row['stimulus']}` ({row['group']}): s = {row['s(w)']:+.4f}, influence {row['influence on d']:+.3f}"
              for _, row in drivers.iterrows()]
    return "\n".join(lines)


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
