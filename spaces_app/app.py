"""The SpEAT Space: composes the views of `speat_metric.space.views` into a Gradio app.

Run it with ``speat space`` (or ``python -m speat_metric.space``), or as a Hugging Face Space: the Space runs
``python app.py``, which reads its settings from the environment (``SPEAT_SPACE_RESULTS``, ``SPEAT_SPACE_REPO``,
``SPEAT_SPACE_REVISION``, ``SPEAT_SPACE_EVALUATE_MODELS``) and its code from this folder.
"""

from __future__ import annotations

import os

import gradio as gr

from speat_metric.space import about, board, model_runs, reference
from speat_metric.space import columns as C
from speat_metric.space.sources import RecordSource, choose_source
from speat_metric.space.store import RecordStore
from speat_metric.space.views import SpaceViews, example_files

# System fonts only: the Space must render the same offline and behind firewalls (no web-font downloads).
# Soft's indigo-500 on indigo-100 labels (3.6:1) and slate-400 footer (2.5:1) miss WCAG AA (4.5:1): darker shades.
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=("ui-sans-serif", "system-ui", "sans-serif"),
                       font_mono=("ui-monospace", "monospace")).set(
    block_label_text_color="*primary_800", block_title_text_color="*primary_800", color_accent="*primary_700",
    button_primary_background_fill="*primary_700", button_primary_background_fill_hover="*primary_800",
    checkbox_label_background_fill_selected="*primary_700", body_text_color_subdued="*neutral_600",
    block_info_text_color="*neutral_600")
CSS = """
.gradio-container {max-width: 1400px !important}
#synthetic-note {background: #fef3c7; border-left: 4px solid #d97706; padding: 8px 14px; border-radius: 6px}
#load-warnings {background: #fee2e2; border-left: 4px solid #dc2626; padding: 8px 14px; border-radius: 6px}
#reference-banner {background: #e0e7ff; border-left: 4px solid #4f46e5; padding: 8px 14px; border-radius: 6px}
#data-source {padding-top: 10px}
#leaderboard .board-scroll {overflow: auto; max-height: 640px; border: 1px solid #cbd5e1; border-radius: 6px}
#leaderboard table.board {border-collapse: separate; border-spacing: 0; table-layout: fixed; width: 100%;
  font-size: 14px; background: #ffffff; color: #0f172a}
#leaderboard th {position: sticky; top: 0; z-index: 2; background: #f1f5f9; color: #0f172a; cursor: pointer;
  text-align: left; padding: 5px 8px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; border: none;
  border-bottom: 1px solid #94a3b8; font-weight: 600; height: 30px; box-sizing: border-box}
#leaderboard tr.sub th {top: 30px}
#leaderboard th.test-name {text-align: center; cursor: default; border-left: 1px solid #cbd5e1}
#leaderboard th.key {background: #e0e7ff}
#leaderboard th:first-child {left: 0; z-index: 3}
#leaderboard td {padding: 5px 8px; border: none; border-bottom: 1px solid #e2e8f0; vertical-align: top;
  background: #ffffff; color: #0f172a; overflow-wrap: normal; word-break: normal; hyphens: none; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis}
#leaderboard td.model {position: sticky; left: 0; z-index: 1; white-space: normal; border-right: 1px solid #e2e8f0}
#leaderboard td.key {background: #f5f7ff}
#leaderboard .num {text-align: right; font-variant-numeric: tabular-nums}
#leaderboard tr[data-run] {cursor: pointer}
#leaderboard tr[data-run]:hover td, #leaderboard tr[data-run]:focus td {background: #eef2ff}
#leaderboard .row-detail {color: #334155; font-size: 12.5px}
#leaderboard .aliases {color: #475569; font-size: 12px}
#leaderboard a {color: #3730a3}
.badge {display: inline-block; background: #fef3c7; color: #713f12; border: 1px solid #b45309; border-radius: 9px;
  padding: 0 6px; font-size: 11.5px; margin: 2px 3px 0 0; white-space: nowrap}
#leaderboard .board-empty {padding: 18px; background: #f8fafc; border: 1px dashed #94a3b8; border-radius: 6px;
  color: #1e293b}
#leaderboard .board-legend {margin-top: 6px; color: #1e293b; font-size: 13px}
#leaderboard .board-switch {display: none}
#leaderboard .board-switch button {border: 1px solid #64748b; border-radius: 6px; padding: 2px 10px; margin: 0 4px;
  background: #ffffff; color: #0f172a}
#leaderboard .board-switch button[aria-pressed=true] {background: #3730a3; color: #ffffff}
@media (max-width: 700px) {
  #leaderboard .board-switch {display: block; margin: 4px 0 8px}
  #leaderboard table.board {min-width: 0 !important; table-layout: auto}
  #leaderboard colgroup, #leaderboard thead {display: none}
  #leaderboard tr[data-run] {display: block; border: 1px solid #cbd5e1; border-radius: 8px; margin: 0 0 8px;
    padding: 6px 8px}
  #leaderboard td {display: none; border: none; padding: 1px 0; background: transparent}
  #leaderboard td.model {display: block; position: static; border: none; margin-bottom: 2px}
  #leaderboard td.key:not(.model), #leaderboard td.focus {display: flex; justify-content: space-between; gap: 12px}
  #leaderboard td:not(.model)::before {content: attr(data-label); color: #334155; font-weight: 600}
}
#detail td, #detail th {word-break: normal !important; overflow-wrap: normal !important; hyphens: none;
  white-space: nowrap}
#detail table {display: block; overflow-x: auto}
@media (max-width: 700px) {  /* a figure keeps a readable size and scrolls sideways on a phone */
  figure.speat-plot {overflow-x: auto; margin: 0}
  figure.speat-plot img {max-width: none !important; width: 760px}
}
#detail pre .token, #upload-result span {color: #1e293b !important}
footer, footer a, footer button {color: #475569 !important}
"""


def plot_outputs(elem_id: str) -> tuple[gr.HTML, gr.Dataframe, gr.DownloadButton]:
    """A plot's three outputs: the figure (an image with real alt text), the plotted numbers, their CSV."""
    figure = gr.HTML(elem_id=elem_id, padding=False)
    with gr.Accordion("The plotted numbers", open=False):
        numbers = gr.Dataframe(elem_id=f"{elem_id}-numbers", interactive=False, max_height=320, visible=False)
        download = gr.DownloadButton("⬇ CSV of the plotted numbers", elem_id=f"{elem_id}-csv", size="sm",
                                     visible=False)
    return figure, numbers, download


def build_app(store: RecordStore, *, evaluate_models: bool = False) -> gr.Blocks:
    """The Space over the records of `store`; `evaluate_models` turns on evaluating Hub models in the Space."""
    views = SpaceViews(store, evaluate_models=evaluate_models)
    # Controls start with the choices of the records loaded now (API calls are checked against them); the page's
    # load event and Refresh update them. The model menus (thousands of names) accept any name instead, so the
    # page does not carry their choices twice.
    first_stimuli = views.stimuli_choice(None)
    family_choices, size_choices, method_choices, view_choices, column_choices, sort_choices = \
        views.leaderboard_controls()
    plot_choices = views.plot_choices(first_stimuli["value"])
    with gr.Blocks(title=about.TITLE) as demo:
        gr.Markdown(about.INTRODUCTION)
        with gr.Row(equal_height=True):
            source_line = gr.Markdown(elem_id="data-source", min_width=300)
            stimuli = gr.Radio(**_initial(first_stimuli),
                               label="Stimuli (real and synthetic results are never ranked together)",
                               elem_id="stimuli", scale=2)
            refresh = gr.Button("↻ Refresh data", elem_id="refresh", scale=0, min_width=150, size="md")
        warnings = gr.Markdown(elem_id="load-warnings", visible=False)
        synthetic_note = gr.Markdown(about.SYNTHETIC_NOTE, elem_id="synthetic-note", visible=False)
        with gr.Tabs() as tabs:
            with gr.Tab("Leaderboard", id="leaderboard"):
                gr.Markdown(about.LEADERBOARD_HELP)
                with gr.Row():
                    search = gr.Textbox(label="Search models", placeholder="hubert; wav2vec2", elem_id="search",
                                        scale=2)
                    sort_by = gr.Dropdown(**_initial(sort_choices), label="Rank by", elem_id="sort-by",
                                          allow_custom_value=True)
                    view = gr.Dropdown(**_initial(view_choices), label="Layers",
                                       elem_id="layer-view")
                    row_limit = gr.Dropdown(list(C.ROW_LIMITS), value=C.DEFAULT_ROW_LIMIT, label="Rows",
                                            elem_id="row-limit", allow_custom_value=True)
                with gr.Row():
                    families = gr.CheckboxGroup(**_initial(family_choices), label="Family", elem_id="filter-family")
                    sizes = gr.CheckboxGroup(**_initial(size_choices), label="Model size", elem_id="filter-size")
                    methods = gr.CheckboxGroup(**_initial(method_choices), label="Compression",
                                               elem_id="filter-compression")
                with gr.Accordion("Columns", open=False):
                    shown = gr.CheckboxGroup(**_initial(column_choices), label="Columns to show", elem_id="columns")
                leaderboard_status = gr.Markdown(elem_id="leaderboard-status")
                leaderboard = gr.HTML(elem_id="leaderboard", js_on_load=board.SCRIPT, padding=False)
                with gr.Row():
                    download_csv = gr.DownloadButton("⬇ Download these rows (CSV)", elem_id="download-csv",
                                                     size="sm", interactive=False)
                    download_json = gr.DownloadButton("⬇ Download these rows (JSON)", elem_id="download-json",
                                                      size="sm", interactive=False)

            with gr.Tab("Published values", id="reference"):
                gr.Markdown(about.REFERENCE_INTRO, elem_id="reference-banner")
                for published in reference.published_tables():
                    gr.Markdown(f"### {published.title}\n\n{published.citation}")
                    gr.Dataframe(published.shown, interactive=False, elem_id=f"reference-{published.file[:-4]}",
                                 max_height=420)
                gr.Markdown(about.COMPARISON_HELP)
                comparison = gr.Dataframe(interactive=False, elem_id="comparison", visible=False)
                no_comparison = gr.Markdown(about.NO_COMPARISON)

            with gr.Tab("Plots", id="plots"):
                gr.Markdown(about.PLOTS_HELP)
                with gr.Tab("Training steps", id="plot-training"):
                    training_runs = gr.Dropdown(**_initial(plot_choices[0]), label="Models (checkpoint series)",
                                                multiselect=True, allow_custom_value=True,
                                                elem_id="training-runs")
                    training_plot, training_numbers, training_csv = plot_outputs("training-plot")
                with gr.Tab("Pruning", id="plot-pruning"):
                    pruned = gr.Dropdown(**_initial(plot_choices[1]), label="Pruned model", elem_id="pruned-model",
                                         allow_custom_value=True)
                    pruning_plot, pruning_numbers, pruning_csv = plot_outputs("pruning-plot")
                with gr.Tab("Distillation", id="plot-distillation"):
                    teacher = gr.Dropdown(**_initial(plot_choices[2]), label="Teacher", elem_id="teacher",
                                          allow_custom_value=True)
                    distillation_plot, distillation_numbers, distillation_csv = plot_outputs("distillation-plot")
                with gr.Tab("Layers", id="plot-layers"):
                    layered = gr.Dropdown(**_initial(plot_choices[3]), label="Model", elem_id="layered-model",
                                          allow_custom_value=True)
                    layer_plot, layer_numbers, layer_csv = plot_outputs("layer-plot")

            with gr.Tab("Model detail", id="detail"):
                detail_model = gr.Dropdown(label="Model", elem_id="detail-model", allow_custom_value=True)
                detail_plot = gr.HTML(elem_id="detail-plot", padding=False)
                detail = gr.Markdown(about.DETAIL_EMPTY, elem_id="detail")

            with gr.Tab("Explain a result", id="explain"):
                gr.Markdown(about.EXPLAIN_HELP)
                with gr.Row():
                    explain_model = gr.Dropdown(label="Model", elem_id="explain-model", allow_custom_value=True)
                    explain_record = gr.Dropdown(label="Result", elem_id="explain-record", allow_custom_value=True)
                explain_summary = gr.Markdown(elem_id="explain-summary")
                explain_plot = gr.HTML(elem_id="explain-plot", padding=False)
                explain_table = gr.Dataframe(elem_id="explain-table", interactive=False, max_height=360)

            with gr.Tab("Try it", id="try"):
                gr.Markdown(about.UPLOAD_HELP)
                with gr.Row():
                    upload_file = gr.File(label="Embeddings (.csv or .npz)", file_types=[".csv", ".npz"],
                                          elem_id="upload-file")
                    with gr.Column():
                        upload_permutations = gr.Number(100_000, label="Permutations", precision=0, minimum=1,
                                                        elem_id="upload-permutations")
                        upload_seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="upload-seed")
                        upload_run = gr.Button("Run SpEAT", variant="primary", elem_id="upload-run")
                    gr.File(example_files(), label="Example files (synthetic)", file_count="multiple",
                            interactive=False, elem_id="upload-examples")
                upload_summary = gr.Markdown(elem_id="upload-summary")
                with gr.Row():
                    upload_plot = gr.HTML(elem_id="upload-plot", padding=False)
                    upload_result = gr.JSON(label="evaluate.load('speat').compute(...)", elem_id="upload-result",
                                            scale=2)
                upload_table = gr.Dataframe(elem_id="upload-table", interactive=False, max_height=300)

                gr.Markdown(about.MODEL_HELP)
                if not evaluate_models:
                    gr.Markdown(about.MODEL_EVALUATION_DISABLED, elem_id="model-disabled")
                with gr.Row():
                    model_id = gr.Textbox(label="Model", placeholder="facebook/hubert-base-ls960", elem_id="model-id",
                                          interactive=evaluate_models, scale=2)
                    model_stimuli = gr.Dropdown(list(model_runs.STIMULI_CHOICES), value="demo", label="Stimuli",
                                                interactive=evaluate_models)
                    model_tests = gr.CheckboxGroup(list(C.STANDARD_TESTS), value=list(C.STANDARD_TESTS), label="Tests",
                                                   interactive=evaluate_models)
                    model_permutations = gr.Number(10_000, label="Permutations", precision=0, minimum=1,
                                                   maximum=model_runs.MAX_PERMUTATIONS, interactive=evaluate_models)
                model_run = gr.Button("Evaluate (queued)", variant="primary", interactive=evaluate_models,
                                      elem_id="model-run")
                model_status = gr.Markdown(elem_id="model-status")
                model_results = gr.Dataframe(interactive=False, elem_id="model-results", visible=False)

            with gr.Tab("About", id="about"):
                gr.Markdown(about.CITATION)

        # Wiring ------------------------------------------------------------------------------------------------
        controls = [families, sizes, methods, view, shown]  # and sort_by, which the board's outputs update
        filters = [stimuli, search, families, sizes, methods, view, shown, sort_by, row_limit]
        board_outputs = [leaderboard, leaderboard_status, sort_by, row_limit, download_csv, download_json]
        header_outputs = [source_line, warnings, synthetic_note]
        plot_selectors = [training_runs, pruned, teacher, layered]
        training_outputs = [training_plot, training_numbers, training_csv]
        pruning_outputs = [pruning_plot, pruning_numbers, pruning_csv]
        distillation_outputs = [distillation_plot, distillation_numbers, distillation_csv]
        layer_outputs = [layer_plot, layer_numbers, layer_csv]

        def show_all(current_stimuli, current_search, current_families, current_sizes, current_methods,
                     current_view, current_shown, current_sort, current_limit, current_model, *current_plots):
            """Every view from the current table (first load, refresh, stimuli change, new evaluations); the
            controls keep what the user chose."""
            stimuli_update = views.stimuli_choice(current_stimuli)
            chosen = stimuli_update["value"]
            control_updates = views.leaderboard_controls(current_families, current_sizes, current_methods,
                                                         current_view, current_shown, current_sort)
            kept = [update["value"] for update in control_updates]
            selectors = views.plot_choices(chosen, current_plots)
            values = [selector["value"] for selector in selectors]
            models = views.model_choices(current_model)
            model = models[0]["value"]
            leaderboard_update = views.leaderboard(chosen, current_search, *kept, current_limit)
            return (stimuli_update, *views.header(chosen), *control_updates[:-1], *leaderboard_update, *selectors,
                    *views.training_plot(chosen, values[0]), *views.pruning_plot(chosen, values[1]),
                    *views.distillation_plot(chosen, values[2]), *views.layer_plot(chosen, values[3]),
                    *models, *views.detail(model, chosen), views.explain_choices(model, chosen), *views.comparison())

        everything = [stimuli, *header_outputs, *controls, *board_outputs, *plot_selectors, *training_outputs,
                      *pruning_outputs, *distillation_outputs, *layer_outputs, detail_model, explain_model,
                      detail_plot, detail, explain_record, comparison, no_comparison]
        state = [*filters, detail_model, *plot_selectors]

        def reload(*current):
            store.reload()
            if store.table.warnings:
                gr.Warning(f"{len(store.table.warnings)} file(s) skipped; see the list at the top")
            return show_all(*current)

        demo.load(show_all, state, everything, api_name=False)
        refresh.click(reload, state, everything, api_name="refresh")
        stimuli.input(show_all, state, everything, api_name=False)

        # Filtering is light work: it skips the queue, so it never waits behind a model evaluation.
        for control in (families, sizes, methods, view, shown, sort_by, row_limit):
            control.input(views.leaderboard, filters, board_outputs, api_name=False, queue=False)
        search.change(views.leaderboard, filters, board_outputs, api_name="leaderboard", trigger_mode="always_last",
                      queue=False)
        leaderboard.click(views.board_click, filters, [*board_outputs, detail_model, explain_model, tabs],
                          api_name=False, queue=False)

        training_runs.input(views.training_plot, [stimuli, training_runs], training_outputs, api_name="training_plot")
        pruned.input(views.pruning_plot, [stimuli, pruned], pruning_outputs, api_name="pruning_plot")
        teacher.input(views.distillation_plot, [stimuli, teacher], distillation_outputs,
                      api_name="distillation_plot")
        layered.input(views.layer_plot, [stimuli, layered], layer_outputs, api_name="layer_plot")

        detail_model.change(views.detail, [detail_model, stimuli], [detail_plot, detail], api_name="model_detail")
        explain_model.change(views.explain_choices, [explain_model, stimuli], explain_record, api_name=False)
        explain_record.change(views.explain, explain_record, [explain_summary, explain_plot, explain_table],
                              api_name="explain")

        upload_run.click(views.upload, [upload_file, upload_permutations, upload_seed],
                         [upload_summary, upload_result, upload_plot, upload_table], api_name="speat_upload",
                         concurrency_limit=2)

        def evaluate(model, chosen_stimuli, tests, permutations, progress=gr.Progress(track_tqdm=True)):
            return views.evaluate_model(model, chosen_stimuli, tests, permutations, progress)

        model_run.click(evaluate, [model_id, model_stimuli, model_tests, model_permutations],
                        [model_status, model_results], api_name="evaluate_model", concurrency_limit=1,
                        concurrency_id="model-evaluation").then(show_all, state, everything, api_name=False)
    return demo


def _initial(update: dict) -> dict:
    """The properties a control update sets, as constructor arguments."""
    return {key: value for key, value in update.items() if key != "__type__"}


def launch(source: RecordSource, *, host: str | None = None, port: int | None = None, evaluate_models: bool = False,
           block: bool = True) -> gr.Blocks:
    """Load the records and serve the Space (host and port default to Gradio's, which honour the
    ``GRADIO_SERVER_NAME`` and ``GRADIO_SERVER_PORT`` a Space sets)."""
    demo = build_app(RecordStore(source), evaluate_models=evaluate_models)
    demo.queue(default_concurrency_limit=8, max_size=64)
    demo.launch(server_name=host, server_port=port, theme=THEME, css=CSS, max_file_size="50mb", ssr_mode=False,
                show_error=True, prevent_thread_lock=not block, quiet=True, footer_links=["api", "gradio"])
    return demo


def settings_from_environment() -> dict:
    """The Space's settings (its variables): where the records are, and whether it may evaluate models."""
    return {"source": choose_source(results=os.environ.get("SPEAT_SPACE_RESULTS") or None,
                                    repo=os.environ.get("SPEAT_SPACE_REPO") or None,
                                    revision=os.environ.get("SPEAT_SPACE_REVISION") or None),
            "evaluate_models": os.environ.get("SPEAT_SPACE_EVALUATE_MODELS", "").lower() in ("1", "true", "yes")}


if __name__ == "__main__":
    launch(**settings_from_environment())
