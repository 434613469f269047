"""Records -> table rows: one tidy row per record, and the leaderboard (one row per model variant, tests as columns).

This is the only module that reads `EvaluationRecord` fields for the tables; the view shows the frames it builds.
A model variant is a model and revision (or weight hash), checkpoint, compression, profile, layer view and kind of
stimuli: re-runs of one variant and test keep the newest record.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from speat_metric.formatting import format_ci, format_d, format_p, format_parameters, format_size
from speat_metric.report import holm_p_texts, ordered_tests
from speat_metric.results import EvaluationRecord, display_name, effect_size_label
from speat_metric.space import columns as C

HUB_URL = "https://huggingface.co"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Compression:
    """How a compressed model was made, as the Space reads ``EvaluationRecord.compression``.

    Pruning (``heads``, ``rows``, ``weights``, as ``speat prune`` writes them): ``step`` (0 is the unpruned model),
    ``parameters_removed`` (or ``base_parameters`` minus ``parameters``, the count left), ``sparsity``, and
    ``base_model``, the model that was pruned. Distillation (``distill``): ``teacher``, ``layers`` (the student's
    transformer layers), ``step``. Missing values are None.
    """

    method: str
    step: int | None
    origin: str | None
    parameters_removed: float | None
    parameters_remaining: float | None
    sparsity: float | None
    layers: int | None

    @classmethod
    def of(cls, record: EvaluationRecord) -> Compression | None:
        data = record.compression
        if not data:
            return None
        remaining = _number(data.get("parameters"))
        removed = _number(data.get("parameters_removed"))
        original = _number(data.get("base_parameters"))
        if removed is None and original is not None:
            removed = original - (remaining if remaining is not None else record.model.num_parameters)
        layers = data.get("layers")
        if isinstance(layers, (list, tuple)):
            layers = len(layers)
        return cls(method=str(data.get("method", "unknown")), step=_integer(data.get("step")),
                   origin=data.get("teacher") or data.get("base_model"), parameters_removed=removed,
                   parameters_remaining=remaining, sparsity=_number(data.get("sparsity")),
                   layers=_integer(layers))

    def label(self) -> str:
        if self.method == "distill":
            depth = f"{self.layers}-layer student" if self.layers is not None else "student"
            return f"distilled: {depth}" + (f" of {display_name(self.origin)}" if self.origin else "")
        parts = [f"{self.method} pruning"]
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.parameters_removed:
            parts.append(f"{format_parameters(self.parameters_removed)} removed")
        elif self.parameters_removed == 0:
            parts.append("nothing removed")
        elif self.sparsity is not None:
            parts.append(f"sparsity {self.sparsity:.0%}")
        return ", ".join(parts)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def run_name(record: EvaluationRecord) -> str:
    """The model a record belongs to, without its checkpoint (``run/checkpoint-200`` -> ``run``): the curves over
    training steps and the detail view group by it."""
    name = record.model.name
    checkpoint = (record.checkpoint or {}).get("name")
    if checkpoint and name.rstrip("/").rsplit("/", 1)[-1] == checkpoint and "/" in name.rstrip("/"):
        return name.rstrip("/").rsplit("/", 1)[0]
    return name


def card_url(record: EvaluationRecord) -> str | None:
    """The Hub page of the model, for models that came from the Hub (those record the commit they were read at)."""
    name = record.model.name
    if record.model.kind == "transformers" and record.model.revision and _HUB_ID.match(name):
        return f"{HUB_URL}/{name}"
    return None


def family(record: EvaluationRecord) -> str:
    if record.model.kind == "feature":
        return "classical feature"
    if record.model.kind == "transformers":
        return str(record.model.settings.get("model_type") or "transformers")
    return record.model.kind


def layer_view(record: EvaluationRecord) -> str:
    layer = record.pooling.get("layer")
    return C.MEAN_VIEW if layer is None else f"layer {layer}"


def is_synthetic(record: EvaluationRecord) -> bool:
    return "synthetic-stimuli" in record.labels or bool(record.stimuli.get("synthetic"))


def stimuli_label(record: EvaluationRecord) -> str:
    source = record.stimuli.get("source") or {}
    kind = source.get("kind", "unknown") if isinstance(source, dict) else "unknown"
    return f"{kind} (synthetic)" if is_synthetic(record) else kind


def how_made(record: EvaluationRecord) -> str:
    result = record.speat
    permutations = "exact" if result.exact else f"{result.num_permutations:,} permutations"
    return (f"{layer_view(record)}, {record.pooling.get('frame_pooling', 'mean')} over frames, {permutations}, "
            f"seed {result.seed}, {result.n_bootstrap:,} bootstrap, profile {record.profile}, "
            f"speat {record.environment.get('speat', '?')}")


def size_bucket(parameters: float) -> str:
    for label, low, high in C.SIZE_BUCKETS:
        if low <= parameters < high:
            return label
    return C.SIZE_BUCKETS[0][0]


def record_fields(index: int, record: EvaluationRecord) -> dict[str, Any]:
    """The tidy row of one record (every value the tables, filters and plots need)."""
    result = record.speat
    compression = Compression.of(record)
    parameters = record.model.num_parameters
    if compression is not None and compression.parameters_remaining is not None:
        parameters = compression.parameters_remaining
    label = record.model_label
    url = card_url(record)
    ci = format_ci(result.ci_low, result.ci_high)
    revision = record.model.revision or (f"sha256 {record.model.weights_sha256[:12]}"
                                         if record.model.weights_sha256 else "")
    fields = {
        "record": index, "name": record.model.name, "run": run_name(record), "model": label,
        "url": url,
        "family": family(record), "params": float(parameters), "size_bucket": size_bucket(parameters),
        "method": compression.method if compression else C.UNCOMPRESSED,
        "compression": compression.label() if compression else C.UNCOMPRESSED,
        "compression_step": compression.step if compression else None,
        "origin": (compression.origin if compression else None) or run_name(record),
        "removed": compression.parameters_removed if compression else None,
        "student_layers": compression.layers if compression else None,
        "step": (record.checkpoint or {}).get("step"),
        "test": record.test, "groups": f"{record.groups.get('X', 'X')} vs {record.groups.get('Y', 'Y')}",
        "d": float(result.effect_size), "size": format_size(result.effect_size_label, result.ci_low, result.ci_high),
        "p": float(result.p_value),
        "p_text": format_p(result.p_value, exact=result.exact, num_permutations=result.num_permutations),
        "ci_low": result.ci_low, "ci_high": result.ci_high, "ci": ci,
        "stimuli": "synthetic" if is_synthetic(record) else "real", "stimuli_source": stimuli_label(record),
        "view": layer_view(record), "layer": record.pooling.get("layer"),
        "frame_pooling": record.pooling.get("frame_pooling", "mean"), "profile": record.profile,
        "labels": ", ".join(record.labels), "how": how_made(record), "created": record.created,
        "revision": revision, "has_scores": record.association_scores is not None,
        "fingerprint": record.stimulus_fingerprint or "",
        "benchmark_fingerprint": ((record.fingerprint or {}).get("reference") or {}).get("test") or "",
        "stimuli_differ": "stimuli-differ" in record.labels,
        "identity": record.model.weights_sha256 or f"{record.model.name}@{record.model.revision or ''}",
        "num_layers": record.model.num_layers, "label_tuple": tuple(record.labels),
    }
    fields["variant"] = json.dumps([label, revision, record.compression, record.profile, fields["stimuli"],
                                    fields["view"], fields["frame_pooling"]], sort_keys=True, default=str)
    return fields


def _audio_cell(tests: Sequence[str], statuses: Sequence[str]) -> str:
    """A variant's audio at a glance: ``reference``, ``⚠ differs: <tests>``, ``unknown`` or ``mixed``."""
    differing = [test for test, status in zip(tests, statuses) if status == OTHER_AUDIO]
    if differing:
        return f"⚠ differs: {', '.join(ordered_tests(differing))}"
    distinct = set(statuses)
    return distinct.pop() if len(distinct) == 1 else "partly unknown"


@dataclass(frozen=True)
class ResultTable:
    """Every loaded record with its tidy rows and the leaderboard, built once per load and only read afterwards.

    Attributes:
        records: the records, in the order of ``frame["record"]``.
        frame: one row per kept record (newest of each variant and test).
        leaderboard: one row per variant; header-named columns plus ``_``-prefixed filter keys.
        tests: the tests present, the study's first.
        warnings: one line per skipped file or record.
        origin: where the records came from.
        superseded: how many older re-runs were left out.
        references: the reference audio of each test and kind of stimuli (`AudioReference`).

    `ranked_leaderboard` adds each test's rank interval and tier (`speat_metric.space.ranks`) on first use.
    """

    records: tuple[EvaluationRecord, ...]
    frame: pd.DataFrame
    leaderboard: pd.DataFrame
    tests: tuple[str, ...]
    warnings: tuple[str, ...]
    origin: str
    superseded: int
    references: dict[tuple[str, str], AudioReference] = field(default_factory=dict)

    def record(self, index: int) -> EvaluationRecord:
        return self.records[index]

    def count(self, stimuli: str) -> int:
        """Records on real (``"real"``) or synthetic (``"synthetic"``) stimuli."""
        return int((self.frame["stimuli"] == stimuli).sum()) if len(self.frame) else 0

    @cached_property
    def ranked_leaderboard(self) -> pd.DataFrame:
        """The leaderboard with each test's rank interval and tier columns: the joint resampling of
        `speat_metric.space.ranks` runs on first use and is kept with the table (once per load; `cached_property`
        writes the instance's ``__dict__``, which a frozen dataclass allows)."""
        return with_rank_columns(self)


_FRAME_COLUMNS = (
    "record", "name", "run", "model", "url", "family", "params", "size_bucket", "method", "compression",
    "compression_step", "origin", "removed", "student_layers", "step", "test", "groups", "d", "size", "p", "ci_low",
    "ci_high", "ci", "stimuli", "stimuli_source", "view", "layer", "frame_pooling", "profile", "labels", "how",
    "created", "revision", "has_scores", "fingerprint", "benchmark_fingerprint", "stimuli_differ", "identity",
    "num_layers", "label_tuple", "p_text", "variant", "p_holm")
"""The keys of `record_fields`, in order (the columns of an empty table too)."""


def build_table(records: Sequence[EvaluationRecord], *, warnings: Sequence[str] = (), origin: str = "") -> ResultTable:
    """Rows and leaderboard of the records; a record whose fields cannot be shown is skipped with a warning. A Space
    shows no path of the machine that made a record (`EvaluationRecord.without_machine_paths`)."""
    records = [record.without_machine_paths() for record in records]
    rows, notes = [], list(warnings)
    for index, record in enumerate(records):
        try:
            rows.append(record_fields(index, record))
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            notes.append(f"record {index} ({record.model.name}, {record.test}) skipped: {error}")
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    before = len(frame)
    frame = (frame.sort_values(["created", "record"]).drop_duplicates(["variant", "test"], keep="last")
             .sort_values("record").reset_index(drop=True))
    tests = ordered_tests(frame["test"])
    # Holm over the kept results (a re-run replaces its older record): the families of the CLI table and the card.
    frame["p_holm"] = holm_p_texts([records[index] for index in frame["record"]]) if len(frame) else []
    references = audio_references(frame)
    frame["audio"] = [audio_status(row, references) for row in frame.itertuples()]
    return ResultTable(records=tuple(records), frame=frame, leaderboard=_leaderboard(frame, tests), tests=tests,
                       warnings=tuple(notes), origin=origin, superseded=before - len(frame), references=references)


@dataclass(frozen=True)
class AudioReference:
    """The audio a test's results are compared on: the benchmark's when a record names it, else the audio most
    results of the test share.

    Attributes:
        fingerprint: the reference fingerprint.
        source: ``benchmark`` or ``most results``.
        sharing: how many results have it, of `total` results with a fingerprint.
        total: results of the test with a fingerprint.
    """

    fingerprint: str
    source: str
    sharing: int
    total: int


REFERENCE_AUDIO, OTHER_AUDIO, UNKNOWN_AUDIO = "reference", "differs", "unknown"


def audio_references(frame: pd.DataFrame) -> dict[tuple[str, str], AudioReference]:
    """(test, stimuli kind) -> its `AudioReference`, for tests with at least one fingerprinted result."""
    references = {}
    for (test, stimuli), rows in frame[frame["fingerprint"] != ""].groupby(["test", "stimuli"]):
        named = rows["benchmark_fingerprint"][rows["benchmark_fingerprint"] != ""]
        chosen = named.mode() if len(named) else rows["fingerprint"].mode()
        fingerprint = sorted(chosen)[0]
        references[(test, stimuli)] = AudioReference(fingerprint, "benchmark" if len(named) else "most results",
                                                     int((rows["fingerprint"] == fingerprint).sum()), len(rows))
    return references


def audio_status(row: Any, references: dict[tuple[str, str], AudioReference]) -> str:
    """``reference``, ``differs`` (another fingerprint, or labelled stimuli-differ) or ``unknown`` (no fingerprint)."""
    if not row.fingerprint:
        return UNKNOWN_AUDIO
    reference = references.get((row.test, row.stimuli))
    same = reference is not None and reference.fingerprint == row.fingerprint and not row.stimuli_differ
    return REFERENCE_AUDIO if same else OTHER_AUDIO


COMPUTED_MEAN = "mean-of-layer-d"
"""The label of a leaderboard row computed from a model's per-layer results (it has no mean-over-layers result)."""

COMPUTED_MEAN_NOTE = ("d averaged over the model's per-layer results (it was evaluated per layer only): not the d "
                      "of its mean-pooled layers, and without p or CI.")


def _leaderboard(frame: pd.DataFrame, tests: tuple[str, ...]) -> pd.DataFrame:
    """One row per variant: display texts under the column headers, ``_sort:<header>`` sort values, ``_raw:`` full
    precision numbers for exports, and ``_``-prefixed filter keys and model-cell parts. Built from plain dicts
    (a per-variant pandas frame costs milliseconds, and a Hub dataset holds thousands of variants)."""
    if frame.empty:
        return pd.DataFrame(columns=[column.name for column in C.leaderboard_columns(tests)])
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for result in frame.to_dict("records"):
        by_variant.setdefault(result["variant"], []).append(result)
    computed, incomplete = _computed_means(list(by_variant.values()), tests)
    variants = [_variant_row(results, tests) for results in by_variant.values()] + computed
    for row in variants:
        row["_per_layer_only"] = row["_model_key"] in incomplete and row["_view"] != C.MEAN_VIEW
    return pd.DataFrame(_fold_duplicates(variants, tests))


def _variant_row(results: list[dict[str, Any]], tests: tuple[str, ...], *, computed: bool = False) -> dict[str, Any]:
    """The leaderboard row of one variant's results (one per test; a re-run's newest, which comes last)."""
    first = results[0]
    by_test = {result["test"]: result for result in results}
    labels = tuple(dict.fromkeys(label for result in results for label in result["label_tuple"]))
    if computed:
        labels = (*labels, COMPUTED_MEAN)
    row: dict[str, Any] = {
        "_variant": first["variant"], "_run": first["run"], "_label": first["model"],
        "_link": first["url"] if isinstance(first["url"], str) else None,
        "_detail": distinction(first, computed=computed),
        "_aliases": "", "_labels": labels, "_audio_warning": False, "_computed": computed,
        "_per_layer_only": False, "_search": f"{first['model']} {first['family']} {first['compression']}".lower(),
        "_family": first["family"], "_size": first["size_bucket"], "_method": first["method"],
        "_stimuli": first["stimuli"], "_view": C.MEAN_VIEW if computed else first["view"], "_layer": first["layer"],
        "_identity": first["identity"], "_profile": first["profile"], "_frame_pooling": first["frame_pooling"],
        "_model_key": model_key(first),
        "_fingerprints": "|".join(f"{test}:{result['fingerprint']}" for test, result in by_test.items()),
    }
    standard = [test for test in tests if test in C.STANDARD_TESTS] or list(tests)
    for test in tests:
        result = by_test.get(test)
        d = None if result is None else float(result["d"])
        low = None if result is None or _missing(result["ci_low"]) else float(result["ci_low"])
        high = None if result is None or _missing(result["ci_high"]) else float(result["ci_high"])
        p = None if result is None or computed else float(result["p"])
        row.update({
            C.d_column(test): "" if d is None else format_d(d),
            f"{test} size": "" if result is None else result["size"],
            f"{test} p": "" if result is None else result["p_text"],
            C.holm_column(test): "" if result is None else "n/a" if computed else result["p_holm"],
            f"{test} CI": "" if result is None else result["ci"],
            f"_sort:{C.d_column(test)}": None if d is None else abs(d),
            f"_sort:{test} size": None if d is None else abs(d),
            f"_sort:{test} p": p, f"_sort:{test} CI": low,
            f"_sort:{C.holm_column(test)}": None if p is None else _holm_sort_value(result["p_holm"]),
            f"_raw:{test}:d": d, f"_raw:{test}:p": p, f"_raw:{test}:ci_low": low, f"_raw:{test}:ci_high": high,
            f"_raw:{test}:groups": "" if result is None else result["groups"],
            f"_raw:{test}:audio": "" if result is None else result["audio"],
        })
    present = [row[f"_raw:{test}:d"] for test in standard if row[f"_raw:{test}:d"] is not None]
    mean_abs = sum(abs(d) for d in present) / len(present) if present else None
    audio = _audio_cell([result["test"] for result in results], [result["audio"] for result in results])
    row.update({
        C.MEAN_ABS_D: "" if mean_abs is None else f"{mean_abs:.2f}", f"_sort:{C.MEAN_ABS_D}": mean_abs,
        "_raw:mean_abs_d": mean_abs, C.MODEL: first["model"], f"_sort:{C.MODEL}": first["model"].lower(),
        C.AUDIO: audio, "_audio_warning": audio.startswith("⚠"), "family": first["family"],
        "params": format_parameters(first["params"]), "_sort:params": float(first["params"]),
        "_raw:params": float(first["params"]), "compression": first["compression"], "revision": first["revision"],
        "layers": row["_view"], "stimuli": first["stimuli_source"], "profile": first["profile"],
        "how it was made": COMPUTED_MEAN_NOTE if computed else first["how"], "labels": ", ".join(labels),
        "created": first["created"],
    })
    return row


def _holm_sort_value(text: str) -> float | None:
    """The number a Holm-adjusted p text sorts by (a bound ``<0.003`` by its bound)."""
    try:
        return float(text.lstrip("<"))
    except ValueError:
        return None


def with_rank_columns(table: ResultTable) -> pd.DataFrame:
    """The table's leaderboard plus, per test, the rank interval (``2 (1-4)``) and tier of each row's result among
    comparable results (`speat_metric.space.ranks`); ``—`` where there is none, "" where the row has no result."""
    from speat_metric.space import ranks  # ranks reads this module's table: imported when first used

    board = table.leaderboard.copy()
    if board.empty:
        return board
    cells = ranks.table_rank_cells(table)
    unranked = ranks.RankCell(ranks.NO_RANK, ranks.NO_RANK)
    for test in table.tests:
        of_test = table.frame[table.frame["test"] == test]
        record_of = dict(zip(of_test["variant"], of_test["record"]))
        # a row without this test shows nothing; a computed mean over layers has a d but no record to rank: "—"
        found = [cells.get(int(record_of[variant]), unranked) if variant in record_of else
                 unranked if d is not None and not _missing(d) else ranks.RankCell("", "")
                 for variant, d in zip(board["_variant"], board[f"_raw:{test}:d"])]
        intervals = [cell.interval for cell in found]
        board[C.rank_column(test)] = [cell.rank for cell in found]
        board[C.tier_column(test)] = [cell.tier for cell in found]
        board[f"_sort:{C.rank_column(test)}"] = [None if one is None else one.rank for one in intervals]
        board[f"_sort:{C.tier_column(test)}"] = [None if one is None else one.tier for one in intervals]
        for part in ("rank", "rank_low", "rank_high", "tier"):
            board[f"_raw:{test}:{part}"] = [None if one is None else getattr(one, part) for one in intervals]
    return board


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def distinction(result: Mapping[str, Any], *, computed: bool = False) -> str:
    """What tells a result's row from its neighbours: its layer (or the computed mean over layers), checkpoint step
    and compression; "" for a plain model's mean over layers."""
    parts = []
    if computed:
        parts.append("mean of d over its layers")
    elif result["view"] != C.MEAN_VIEW:
        parts.append(result["view"])
    if result["method"] != C.UNCOMPRESSED:
        parts.append(result["compression"])
    elif not _missing(result["step"]) and " @ " not in result["model"]:
        parts.append(f"step {int(result['step'])}")
    return " · ".join(parts)


def _computed_means(variants: list[list[dict[str, Any]]], tests: tuple[str, ...]
                    ) -> tuple[list[dict[str, Any]], set[str]]:
    """(rows for models evaluated per layer only on every layer: the mean of d over their layers, the model keys
    of those evaluated per layer only on some layers: their per-layer rows show in the mean-over-layers view)."""
    pooled, layered = set(), {}
    for results in variants:
        for result in results:
            if _missing(result["layer"]):
                pooled.add(model_key(result))
            else:
                layered.setdefault(model_key(result), []).append(result)
    made, incomplete = [], set()
    for key, results in layered.items():
        if key in pooled:
            continue
        if {int(result["layer"]) for result in results} != set(range(int(results[0]["num_layers"]))):
            incomplete.add(key)
            continue
        means = []
        for test in dict.fromkeys(result["test"] for result in results):
            of_test = [result for result in results if result["test"] == test]
            d = sum(result["d"] for result in of_test) / len(of_test)
            means.append({**of_test[0], "d": d, "ci_low": None, "ci_high": None, "ci": "n/a", "p_text": "n/a",
                          "size": format_size(effect_size_label(d), None, None), "view": C.MEAN_VIEW, "layer": None,
                          "variant": f"computed:{key}"})
        made.append(_variant_row(means, tests, computed=True))
    return made, incomplete


def model_key(result: Mapping[str, Any]) -> str:
    """A result's model without its layer: the same weights, checkpoint, compression, recipe and stimuli."""
    return "|".join(str(result[key]) for key in ("model", "revision", "compression", "profile", "stimuli",
                                                  "frame_pooling"))


def _fold_duplicates(rows: list[dict[str, Any]], tests: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of the same weights (hash), stimuli, profile and pooling with the same d in every test are one row:
    the plain model's (or the shortest name) stays and names the others as aliases."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        d_values = tuple(None if row[f"_raw:{test}:d"] is None else round(row[f"_raw:{test}:d"], 9) for test in tests)
        key = (row["_identity"], row["_stimuli"], row["_fingerprints"], row["_profile"], row["_view"],
               row["_frame_pooling"], row["_computed"], d_values)
        groups.setdefault(key, []).append(row)
    kept = []
    for group in groups.values():
        group = sorted(group, key=lambda row: (row["_method"] != C.UNCOMPRESSED or " @ " in row["_label"],
                                               len(row["_label"])))
        row = group[0]
        row["_aliases"] = "; ".join(_alias(other, row["_label"]) for other in group[1:])
        kept.append(row)
    return kept


def _alias(row: Mapping[str, Any], kept: str) -> str:
    """How a folded row is named beside the row it is folded into (its name only when it differs)."""
    if not row["_detail"]:
        return row["_label"]
    return row["_detail"] if row["_label"] == kept else f"{row['_label']} ({row['_detail']})"


@dataclass(frozen=True)
class LeaderboardQuery:
    """What the leaderboard's controls ask for. Empty selections mean "all"; stimuli is never mixed."""

    search: str = ""
    families: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    stimuli: str = "real"
    view: str = C.MEAN_VIEW
    columns: tuple[str, ...] | None = None
    sort: C.SortOrder = C.SortOrder()


def query_leaderboard(table: ResultTable, query: LeaderboardQuery) -> pd.DataFrame:
    """The leaderboard rows the query selects, ranked (ties keep their order; rows without the key last), with all
    their columns (`visible_columns` says which to show)."""
    board = table.ranked_leaderboard
    if board.empty:
        return board
    mask = board["_stimuli"] == query.stimuli
    if query.view == C.MEAN_VIEW:
        mask &= (board["_view"] == C.MEAN_VIEW) | board["_per_layer_only"]
    elif query.view == C.ALL_VIEWS:
        mask &= ~board["_computed"]
    else:
        mask &= board["_view"] == query.view
    for values, key in ((query.families, "_family"), (query.sizes, "_size"), (query.methods, "_method")):
        if values:
            mask &= board[key].isin(values)
    terms = [term.strip().lower() for term in re.split(r"[;,]", query.search) if term.strip()]
    if terms:
        found = pd.Series(False, index=board.index)
        for term in terms:
            found |= board["_search"].str.contains(term, regex=False)
        mask &= found
    selected = board[mask]
    key = f"_sort:{query.sort.column}"
    if key not in selected.columns:
        key = query.sort.column if query.sort.column in selected.columns else f"_sort:{C.MEAN_ABS_D}"
    return selected.sort_values(key, ascending=not query.sort.descending, kind="stable", na_position="last")


def per_layer_only(table: ResultTable, selected: pd.DataFrame) -> str:
    """A note naming the models shown by their per-layer rows in the mean-over-layers view, else ``""``."""
    if selected.empty or "_per_layer_only" not in selected:
        return ""
    names = sorted(set(selected.loc[selected["_per_layer_only"], "_label"]))
    if not names:
        return ""
    return (f"{', '.join(names)}: evaluated per layer only, and not on every layer, so shown by layer (no mean "
            "over layers can be computed).")


def audio_summary(table: ResultTable, selected: pd.DataFrame, stimuli: str) -> str:
    """For each test, how many of the results shown share its reference audio (and which audio that is)."""
    rows = table.frame[table.frame["variant"].isin(selected["_variant"]) & (table.frame["fingerprint"] != "")]
    parts = []
    for test in table.tests:
        reference = table.references.get((test, stimuli))
        of_test = rows[rows["test"] == test]
        if reference is not None and len(of_test):
            parts.append(f"{test} {int((of_test['audio'] == REFERENCE_AUDIO).sum())} of {len(of_test)} "
                         f"(`{reference.fingerprint[:12]}`, "
                         f"{'the benchmark' if reference.source == 'benchmark' else 'most results'})")
    if not parts:
        return ""
    warning = (" Rows marked ⚠ were computed from other audio and are not comparable with the rest."
               if (rows["audio"] == OTHER_AUDIO).any() else "")
    return "Audio: results on each test's reference audio: " + "; ".join(parts) + "." + warning


def mixed_methods(selected: pd.DataFrame, table: ResultTable) -> str:
    """A warning when the rows shown were not all computed the same way (profile or frame pooling), else ``""``."""
    rows = table.frame[table.frame["variant"].isin(selected["_variant"])]
    mixed = [f"{len(set(rows[key]))} {what} ({', '.join(sorted(set(map(str, rows[key]))))})"
             for key, what in (("profile", "extraction profiles"), ("frame_pooling", "frame poolings"))
             if len(set(rows[key])) > 1]
    return ("⚠ These rows mix " + " and ".join(mixed) + ": d computed in different ways is not directly comparable; "
            "filter or search to compare like with like.") if mixed else ""


def visible_columns(table: ResultTable, chosen: Sequence[str] | None) -> list[str]:
    """The never-hidden columns plus the chosen ones (the default selection when None), in column order."""
    all_columns = C.leaderboard_columns(table.tests)
    if chosen is None:
        chosen = [column.name for column in all_columns if column.shown_by_default]
    return [column.name for column in all_columns if column.never_hidden or column.name in chosen]


def optional_columns(table: ResultTable) -> tuple[list[str], list[str]]:
    """(every column a user may show or hide, those shown by default)."""
    optional = [column for column in C.leaderboard_columns(table.tests) if not column.never_hidden]
    return [column.name for column in optional], [column.name for column in optional if column.shown_by_default]


# Choices for the controls ------------------------------------------------------------------------------------------

def families(table: ResultTable) -> list[str]:
    return sorted(set(table.leaderboard["_family"]))


def methods(table: ResultTable) -> list[str]:
    present = set(table.leaderboard["_method"])
    return [method for method in C.COMPRESSION_METHODS if method in present] + sorted(
        present - set(C.COMPRESSION_METHODS))


def sizes(table: ResultTable) -> list[str]:
    present = set(table.leaderboard["_size"])
    return [label for label, _, _ in C.SIZE_BUCKETS if label in present]


def views(table: ResultTable) -> list[str]:
    layers = sorted({int(layer) for layer in table.leaderboard["_layer"].dropna()})
    return [C.MEAN_VIEW, *(f"layer {layer}" for layer in layers), C.ALL_VIEWS]


def default_stimuli(table: ResultTable) -> str:
    """Real stimuli when there are any results on them, else synthetic."""
    return "real" if table.count("real") else "synthetic"


def models(table: ResultTable) -> list[str]:
    """Every model (checkpoints folded into their run), for the detail and explain views."""
    return sorted(set(table.frame["run"]))


def records_of(table: ResultTable, run: str) -> pd.DataFrame:
    """The tidy rows of one model's records, in a stable reading order."""
    rows = table.frame[table.frame["run"] == run]
    order = {test: position for position, test in enumerate(table.tests)}
    return rows.assign(_test_order=rows["test"].map(order), _layer_order=rows["layer"].fillna(-1),
                       _step=rows["step"].fillna(-1)).sort_values(
        ["stimuli", "method", "compression_step", "_step", "_layer_order", "_test_order"], na_position="first")


def record_choice_label(row: pd.Series) -> str:
    """How one record reads in a dropdown: test, checkpoint or compression, layer view, stimuli."""
    parts = [f"{row['test']} ({row['groups']})", row["model"].rsplit(" @ ", 1)[-1] if " @ " in row["model"] else None,
             None if row["method"] == C.UNCOMPRESSED else row["compression"], row["view"], row["stimuli_source"]]
    return " · ".join(part for part in parts if part)
