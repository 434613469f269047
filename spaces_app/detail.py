"""The model detail view: every result of one model, how each was made, the command that reproduces it, its card."""

from __future__ import annotations

import json

from speat_metric.report import reproduce_command
from speat_metric.results import EvaluationRecord
from speat_metric.space import about
from speat_metric.space.rows import ResultTable, card_url, family, records_of


def _recipe(record: EvaluationRecord) -> str:
    """Everything that makes a record except its test (and, for per-layer runs, its layer)."""
    pooling = {**record.pooling, "layer": None} if record.pooling.get("layer_pooling") == "per-layer" else \
        record.pooling
    return json.dumps([record.model.to_dict(), record.checkpoint, record.compression, record.profile, pooling,
                       {key: value for key, value in record.stimuli.items() if key not in ("test", "config",
                                                                                             "group_sizes")},
                       record.speat.num_permutations, record.speat.seed, record.speat.n_bootstrap,
                       record.environment], sort_keys=True, default=str)


def _provenance(record: EvaluationRecord) -> list[str]:
    result, stimuli = record.speat, record.stimuli
    source = stimuli.get("source") or {}
    versions = stimuli.get("selection_versions") or {}
    dropped = stimuli.get("dropped_ids") or []
    model = record.model
    identity = f"revision `{model.revision}`" if model.revision else (
        f"weights sha256 `{model.weights_sha256[:16]}…`" if model.weights_sha256 else "no weights (a feature)")
    lines = [
        f"- **model**: `{model.name}` ({model.kind}, {family(record)}), {identity}, {model.num_parameters:,} "
        f"parameters, {model.num_layers} layers; dtype {model.settings.get('dtype', 'n/a')}",
        f"- **stimuli**: {source.get('kind', 'unknown') if isinstance(source, dict) else source}"
        f"{' (SYNTHETIC: a pipeline check, not a bias measurement)' if stimuli.get('synthetic') else ''}, "
        f"selections {versions.get('selections', 'n/a')}, "
        f"{'dropped: ' + ', '.join(map(str, dropped)) if dropped else 'nothing dropped'}",
        f"- **pooling**: {record.pooling.get('frame_pooling', 'mean')} over each clip's frames, then "
        f"{record.pooling.get('layer_pooling', 'mean')} over layers; profile `{record.profile}`",
        f"- **statistics**: {'exact enumeration' if result.exact else f'{result.num_permutations:,} random partitions'}"
        f", alternative {result.alternative}, seed {result.seed}, {result.n_bootstrap:,} bootstrap resamples "
        f"({result.confidence:.0%} CI{', pairs resampled together' if result.paired else ''}), ddof {result.ddof}",
        "- **versions**: " + ", ".join(f"{name} {version}" for name, version in record.environment.items()),
        f"- **created**: {record.created}",
    ]
    if record.checkpoint:
        lines.append(f"- **checkpoint**: {record.checkpoint.get('name')} (step {record.checkpoint.get('step')})")
    if record.compression:
        lines.append(f"- **compression**: `{json.dumps(record.compression, sort_keys=True)}`")
        if record.compression.get("command"):
            lines.append(f"- **compressed with**: `{record.compression['command']}`")
    return lines


def model_detail(table: ResultTable, run: str | None) -> str:
    """Markdown: the model's results table, then one block per recipe with its provenance and command."""
    if not run:
        return about.DETAIL_EMPTY
    rows = records_of(table, run)
    if rows.empty:
        return f"No results of `{run}` in {table.origin}."
    records = [table.record(index) for index in rows["record"]]
    first = records[0]
    url = card_url(first)
    header = [f"## {run}", "", f"**{family(first)}** · {first.model.num_parameters / 1e6:.2f}M parameters · "
              f"{first.model.num_layers} layers · " + (f"[model card on the Hub]({url})" if url else
                                                       "not a Hub model, so no model card")]
    if any(row == "synthetic" for row in rows["stimuli"]):
        header += ["", about.SYNTHETIC_NOTE]
    table_lines = ["", "### Results", "",
                   "| model | test | X vs Y | layers | d | size | p | 95% CI | n X/Y | stimuli | compression |",
                   "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (_, row), record in zip(rows.iterrows(), records):
        table_lines.append(
            f"| {row['model_md']} | {row['test']} | {row['groups']} | {row['view']} | {row['d']:+.3f} | {row['size']} "
            f"| {row['p']:.3g} | {row['ci']} | {record.speat.n_x}/{record.speat.n_y} | {row['stimuli_source']} "
            f"| {row['compression']} |")
    recipes: dict[str, list[EvaluationRecord]] = {}
    for record in records:
        recipes.setdefault(_recipe(record), []).append(record)
    blocks = ["", "### How each was made"]
    for group in recipes.values():
        views = sorted({record.pooling.get("layer") for record in group}, key=lambda layer: -1 if layer is None
                       else layer)
        tests = ", ".join(dict.fromkeys(record.test for record in group))
        view_text = "mean over layers" if views == [None] else "layers " + ", ".join(map(str, views))
        blocks += ["", f"#### {group[0].model_label}: {tests} ({view_text})", "", *_provenance(group[0]), "",
                   "Reproduce:", "", "```bash", reproduce_command(group), "```"]
    return "\n".join(header + table_lines + blocks)
