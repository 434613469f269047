"""The model detail view: a plot of the model's d, a compact table of every result, and how each was made.

`detail_curves` is the plot (d over checkpoint steps, else per layer, else per test), with `layer_sentences` under
a per-layer plot; `model_detail` is the Markdown below it: the header, the results table (numbers written by
`speat_metric.formatting`), what drives each test's d (`speat_metric.diagnostics`: the four single-concept
associations, each group's share g of d, and leave-one-speaker-out), the provenance every result shares written once,
then one collapsed ``<details>`` block per recipe with only what differs and the command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Sequence

import pandas as pd

from speat_metric.diagnostics import layer_profile, layer_sentence, record_concept_associations, record_leave_one_out
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_MARK,
    CI_EXCLUDES_ZERO_NOTE,
    format_ci,
    format_d,
    format_parameters,
    format_size,
)
from speat_metric.report import (
    HOLM_COLUMN,
    HOLM_NOTE,
    format_p_value,
    ordered_tests,
    plural,
    reproduce_command,
    with_holm_column,
)
from speat_metric.results import EvaluationRecord
from speat_metric.space import about, ranks, series
from speat_metric.space import columns as C
from speat_metric.space.rows import Compression, ResultTable, card_url, family, is_synthetic, records_of, stimuli_label

RESULT_COLUMNS = ("result", "test", "d", "size", "p", "95% CI")
"""The columns of the detail's results table (with `HOLM_COLUMN` after p when the model has several tests)."""

STIMULI_KINDS = ("real", "synthetic")


# The plot ----------------------------------------------------------------------------------------------------------

def detail_curves(table: ResultTable, run: str, stimuli: str | None = None) -> series.Curves | None:
    """What the top plot of a model's detail shows, on one kind of stimuli.

    d over checkpoint steps when the model has results at two or more steps; else d per layer when it has results
    for two or more single layers; else d per test of each of its results, on a categorical x.

    Args:
        table: the loaded results.
        run: the model (checkpoints folded into their run, as `rows.models` lists them).
        stimuli: ``"real"`` or ``"synthetic"``; by default (or when the model has no result on them) the kind most
            of its results are on, and the curves' note says so.

    Returns:
        The curves, or None when the model has no results.
    """
    rows = records_of(table, run)
    if rows.empty:
        return None
    chosen = plotted_stimuli(rows, stimuli)
    note = f"no results on {stimuli} stimuli: showing its {chosen} ones" if stimuli and stimuli != chosen else ""
    rows = rows[rows["stimuli"] == chosen]
    stepped = rows[rows["step"].notna() & (rows["view"] == C.MEAN_VIEW)]
    if stepped["step"].nunique() >= 2:
        if (stepped["method"] == C.UNCOMPRESSED).all():
            curves = series.training_curves(table, [run], chosen)
        else:  # pruning or distillation checkpoints: `training_curves` draws uncompressed runs only
            # `series._curve` is the one builder of curve frames; the detail uses it rather than a second one
            points = series._curve(stepped, series=stepped["run"], panel="", x=stepped["step"].astype(float))
            curves = series.Curves(points=points, x_label="checkpoint step")
    else:
        layers = rows[rows["layer"].notna()].groupby("model", sort=False)["layer"].nunique()
        if (layers >= 2).any():
            curves = series.layer_curves(table, str(layers.idxmax()), chosen)
        else:
            tests = pd.Categorical(rows["test"], categories=ordered_tests(rows["test"]), ordered=True)
            points = series._curve(rows, series=result_labels(rows), panel="",
                                   x=pd.Series(tests, index=rows.index))
            curves = series.Curves(points=points, x_label="test", categorical_x=True)
    return dataclasses.replace(curves, note=note) if note else curves


def plotted_stimuli(rows: pd.DataFrame, stimuli: str | None) -> str:
    """The kind of stimuli a model's plot shows: the one asked for when the model has results on it, else the kind
    most of its results are on (real on a tie: those are the measurements)."""
    if stimuli in set(rows["stimuli"]):
        return stimuli
    return max(STIMULI_KINDS, key=lambda kind: int((rows["stimuli"] == kind).sum()))


def result_labels(rows: pd.DataFrame) -> pd.Series:
    """What tells one model's results apart: checkpoint step, compression, layer view and stimuli, each only when it
    varies among `rows` (the layer view when nothing does), e.g. ``step 1000`` or ``uncompressed · layer 2``.

    Example:
        >>> rows = pd.DataFrame({"step": [250.0, 500.0], "method": ["none"] * 2, "compression": ["none"] * 2,
        ...                      "compression_step": [None] * 2, "view": ["mean over layers"] * 2,
        ...                      "stimuli_source": ["demo (synthetic)"] * 2})
        >>> result_labels(rows).tolist()
        ['step 250', 'step 500']
    """
    # A pruning label already names its step (``heads pruning, step 3, ...``): no second "step 3" beside it.
    named = rows["method"].isin(series.PRUNING_METHODS) & (rows["compression_step"] == rows["step"])
    parts = pd.DataFrame({
        "step": rows["step"].map(lambda step: "" if pd.isna(step) else f"step {int(step)}").where(~named, ""),
        "compression": rows["compression"].where(rows["method"] != C.UNCOMPRESSED, "uncompressed"),
        "view": rows["view"],
        "stimuli": rows["stimuli_source"],
    }, index=rows.index)
    varying = [column for column in parts.columns if parts[column].nunique() > 1] or ["view"]
    return pd.Series([" · ".join(part for part in values if part) for values in parts[varying].itertuples(
        index=False)], index=rows.index, dtype=object)


# The Markdown ------------------------------------------------------------------------------------------------------

def model_detail(table: ResultTable, run: str | None, stimuli: str | None = None) -> str:
    """Markdown: the model's header, its results table, what drives d in each test (on the stimuli the plot shows,
    `plotted_stimuli`), then how each was made (shared provenance once, one collapsed block per recipe with what
    differs and the reproduce command)."""
    if not run:
        return about.DETAIL_EMPTY
    rows = records_of(table, run)
    if rows.empty:
        return f"No results of `{run}` in {table.origin}."
    records = [table.record(index) for index in rows["record"]]
    return "\n".join([*_header(run, records), "", *_results_table(rows, records), "",
                      *what_drives_d(table, rows, stimuli), "",
                      *_how_made(records, several_stimuli=rows["stimuli"].nunique() > 1)])


DRIVERS_COLUMNS = ("test", "result", "cos X·A", "cos X·B", "cos Y·A", "cos Y·B", "g_X (95% CI)", "g_Y (95% CI)")
"""The columns of the "What drives d" table: the four mean cosines and each group's share of d (d = g_X - g_Y)."""

NO_COSINES = ("not available: this record keeps no cosine matrix (it was written before speat kept them); re-run "
              "`speat evaluate` to see which group carries d")


def driving_rows(rows: pd.DataFrame, stimuli: str | None = None) -> pd.DataFrame:
    """One result per test of a model (`records_of` rows), on the stimuli its plot shows: its uncompressed
    mean-over-layers result when it has one, else its results' last in reading order (the latest checkpoint or
    compression step, the last layer), as the plot's rightmost point."""
    rows = rows[rows["stimuli"] == plotted_stimuli(rows, stimuli)]
    chosen = []
    for _, of_test in rows.groupby("test", sort=False):
        for preferred in (of_test["view"] == C.MEAN_VIEW, of_test["method"] == C.UNCOMPRESSED):
            of_test = of_test[preferred] if preferred.any() else of_test  # a pruning sweep's step 0 is not the model
        chosen.append(of_test.tail(1))
    return pd.concat(chosen)


def what_drives_d(table: ResultTable, rows: pd.DataFrame, stimuli: str | None = None) -> list[str]:
    """Markdown lines: for each test (one result each, `driving_rows`), the mean cosines of X and Y with A and B, g_X
    and g_Y with their intervals (`record_concept_associations`, `ranks.N_RESAMPLES` resamples, seed `ranks.SEED`),
    then per test the sentence of which group carries d and the leave-one-speaker-out sentence (⚠ when removing one
    speaker flips the sign of d)."""
    chosen = driving_rows(rows, stimuli)
    labels = result_labels(rows).loc[chosen.index]
    lines = ["### What drives d", "",
             "Mean cosine of each target group with each attribute group; g = a group's mean association score s "
             "over the pooled standard deviation of s (d = g_X − g_Y), with 95% bootstrap intervals.", "",
             "| " + " | ".join(DRIVERS_COLUMNS) + " |", "|" + "---|" * len(DRIVERS_COLUMNS)]
    sentences = []
    for (_, row), label in zip(chosen.iterrows(), labels):
        record = table.record(int(row["record"]))
        head = f"**{record.test}** ({label})"
        if record.cosines is None:
            lines.append(f"| {record.test} | {label} | " + " | ".join(["—"] * (len(DRIVERS_COLUMNS) - 2)) + " |")
            sentences.append(f"- {head}: {NO_COSINES}.")
            continue
        associations = record_concept_associations(record, n_resamples=ranks.N_RESAMPLES, seed=ranks.SEED)
        cosines = [f"{associations.mean_cosines[pair]:.3f}" for pair in ("XA", "XB", "YA", "YB")]
        effects = [f"{format_d(associations.group_effects[role])} {format_ci(*associations.intervals[role])}"
                   for role in "XY"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in (record.test, label, *cosines, *effects))
                     + " |")
        sentences.append(f"- {head}: {associations.sentence(record.groups)} {_leave_one_out(record)}")
    return [*lines, "", *sentences]


def _leave_one_out(record: EvaluationRecord) -> str:
    try:
        found = record_leave_one_out(record)
    except ValueError as error:  # no per-stimulus scores, or groups too small to leave one out
        return f"Leave-one-speaker-out: not available ({error})."
    warning = "⚠ One speaker decides the direction of d: " if found.sign_flips else ""
    return warning + found.sentence()


def layer_sentences(table: ResultTable, run: str, stimuli: str | None = None) -> list[str]:
    """Under a per-layer plot: for each test, `layer_sentence` of the plotted model's per-layer results
    (`layer_profile`), on the stimuli the plot shows; empty when the model has no per-layer results there."""
    rows = records_of(table, run)
    if rows.empty:
        return []
    rows = rows[(rows["stimuli"] == plotted_stimuli(rows, stimuli)) & rows["layer"].notna()]
    if rows.empty:
        return []
    model = rows.groupby("model", sort=False)["layer"].nunique().idxmax()  # the model `detail_curves` plots
    rows = rows[rows["model"] == model]
    sentences = []
    for test, of_test in rows.groupby("test", sort=False):
        points = layer_profile([table.record(int(index)) for index in of_test["record"]])
        if points:
            sentences.append(layer_sentence(str(test), points))
    return sentences


def _header(run: str, records: Sequence[EvaluationRecord]) -> list[str]:
    first = records[0]
    url = card_url(first)
    card = f"[model card on the Hub]({url})" if url else "not a Hub model, so no model card"
    parameters = format_parameters(first.model.num_parameters)
    size = [] if parameters == "—" else [f"{parameters} parameters", plural(first.model.num_layers, "layer")]
    lines = [f"## {run}", "", " · ".join([f"**{family(first)}**", *size, card])]
    if any(is_synthetic(record) for record in records):
        lines += ["", about.SYNTHETIC_NOTE]
    return lines


def _results_table(rows: pd.DataFrame, records: Sequence[EvaluationRecord]) -> list[str]:
    """The results table (one row per record, `RESULT_COLUMNS`, with Holm-adjusted p beside p when the model has
    several tests), and the notes on ◆ and on the Holm column when they are shown."""
    marked = False
    cells = []
    for label, record in zip(result_labels(rows), records):
        result = record.speat
        size = format_size(result.effect_size_label, result.ci_low, result.ci_high)
        marked |= CI_EXCLUDES_ZERO_MARK in size
        cells.append((label, record.test, format_d(result.effect_size), size, format_p_value(result),
                      format_ci(result.ci_low, result.ci_high)))
    columns, cells = with_holm_column(RESULT_COLUMNS, cells, records)
    lines = ["### Results", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in cells]
    notes = [*([CI_EXCLUDES_ZERO_NOTE] if marked else []), *([HOLM_NOTE] if HOLM_COLUMN in columns else [])]
    return [*lines, *(line for note in notes for line in ("", note))]


def _how_made(records: Sequence[EvaluationRecord], *, several_stimuli: bool) -> list[str]:
    """Provenance lines that every recipe shares, once; then per recipe a collapsed block with the rest."""
    recipes: dict[str, list[EvaluationRecord]] = {}
    for record in records:
        recipes.setdefault(_recipe(record), []).append(record)
    provenances = [_provenance(group) for group in recipes.values()]
    shared = {field: line for field, line in provenances[0].items()
              if all(provenance.get(field) == line for provenance in provenances)}
    lines = ["### How each was made", "", *(["Shared by every result:", ""] if len(recipes) > 1 else []),
             *shared.values()]
    for group, provenance in zip(recipes.values(), provenances):
        own = [line for field, line in provenance.items() if field not in shared]
        lines += ["", "<details>", f"<summary>{html.escape(_summary(group, several_stimuli=several_stimuli))}"
                                   "</summary>", "", *own, *([""] if own else []), "Reproduce:", "", "```bash",
                  reproduce_command(group), "```", "", "</details>"]
    return lines


def _recipe(record: EvaluationRecord) -> str:
    """Everything that makes a record except its test (and, for per-layer runs, its layer)."""
    pooling = {**record.pooling, "layer": None} if record.pooling.get("layer_pooling") == "per-layer" else \
        record.pooling
    return json.dumps([record.model.to_dict(), record.checkpoint, record.compression, record.profile, pooling,
                       {key: value for key, value in record.stimuli.items() if key not in ("test", "config",
                                                                                             "group_sizes")},
                       record.speat.num_permutations, record.speat.seed, record.speat.n_bootstrap,
                       record.environment], sort_keys=True, default=str)


def _summary(group: Sequence[EvaluationRecord], *, several_stimuli: bool) -> str:
    """The title of a recipe's block: checkpoint, compression, layers (and stimuli), then its tests."""
    first = group[0]
    compression = Compression.of(first)
    layers = sorted({record.pooling.get("layer") for record in group}, key=lambda layer: -1 if layer is None
                    else layer)
    parts = [f"{first.checkpoint.get('name')} (step {first.checkpoint.get('step')})" if first.checkpoint else "",
             compression.label() if compression else "",
             C.MEAN_VIEW if layers == [None] else "layers " + ", ".join(map(str, layers)),
             f"{stimuli_label(first)} stimuli" if several_stimuli else ""]
    return " · ".join(part for part in parts if part) + ": " + ", ".join(ordered_tests(r.test for r in group))


def _provenance(group: Sequence[EvaluationRecord]) -> dict[str, str]:
    """A recipe's provenance, one Markdown line per field (the checkpoint is named by the block's summary)."""
    first = group[0]
    result, stimuli, model = first.speat, first.stimuli, first.model
    source = stimuli.get("source") or {}
    versions = stimuli.get("selection_versions") or {}
    dropped = stimuli.get("dropped_ids") or []
    identity = f"revision `{model.revision}`" if model.revision else (
        f"weights sha256 `{model.weights_sha256[:16]}…`" if model.weights_sha256 else "no weights (a feature)")
    created = sorted({record.created for record in group})
    lines = {
        "model": f"- **model**: `{model.name}`, {identity}",
        "architecture": f"- **architecture**: {model.kind} ({family(first)}), {format_parameters(model.num_parameters)}"
                        f" parameters, {plural(model.num_layers, 'layer')}; dtype {model.settings.get('dtype', 'n/a')}",
        "stimuli": f"- **stimuli**: {source.get('kind', 'unknown') if isinstance(source, dict) else source}"
                   f"{' (SYNTHETIC: a pipeline check, not a bias measurement)' if stimuli.get('synthetic') else ''}, "
                   f"selections {versions.get('selections', 'n/a')}, "
                   f"{'dropped: ' + ', '.join(map(str, dropped)) if dropped else 'nothing dropped'}",
        "pooling": f"- **pooling**: {first.pooling.get('frame_pooling', 'mean')} over each clip's frames, then "
                   f"{first.pooling.get('layer_pooling', 'mean')} over layers; profile `{first.profile}`",
        "statistics": f"- **statistics**: "
                      f"{'exact enumeration' if result.exact else f'{result.num_permutations:,} random partitions'}, "
                      f"alternative {result.alternative}, seed {result.seed}, {result.n_bootstrap:,} bootstrap "
                      f"resamples ({result.confidence:.0%} CI{', pairs resampled together' if result.paired else ''})"
                      f", ddof {result.ddof}",
        "versions": "- **versions**: " + ", ".join(f"{name} {version}" for name, version in first.environment.items()),
        "created": f"- **created**: {created[0]}" + (f" to {created[-1]}" if len(created) > 1 else ""),
    }
    if first.compression:
        lines["compression"] = f"- **compression**: `{json.dumps(first.compression, sort_keys=True)}`"
        if first.compression.get("command"):
            lines["compressed with"] = f"- **compressed with**: `{first.compression['command']}`"
    return lines
