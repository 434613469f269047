"""Comparisons as people read them: what ``speat compare`` and ``speat explain`` print.

`models_of_records` groups records by model (a model at two commits counts as two models); `pair_comparisons`
matches two models' records test by test and compares them (`speat_metric.comparison.compare_records`);
`rank_tables` ranks three or more; `format_comparisons`, `format_ranks` and `format_drivers` write them as a text
table, Markdown or JSON, with the numbers written as everywhere else (`speat_metric.formatting`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

from speat_metric.comparison import (
    N_RESAMPLES,
    OFF_CENTRE,
    OFF_CENTRE_NOTE,
    PairedComparison,
    RankInterval,
    compare_records,
    rank_records,
)
from speat_metric.diagnostics import record_concept_associations, record_leave_one_out
from speat_metric.formatting import format_ci, format_d
from speat_metric.report import ordered_tests, render_table
from speat_metric.results import EvaluationRecord

COMPARISON_NOTE = ("Δd = d of the first model - d of the second, with a paired bootstrap interval (the same targets "
                   "and attributes resampled for both); P(|d1|<|d2|): share of resamples in which the first is less "
                   "biased; distinguishable only when the interval excludes 0 (docs: speat_metric.comparison).")
RANK_NOTE = ("rank: by |d|, 1 = least biased; interval: the ranks over joint resamples of the shared stimuli; tier: "
             "models the data cannot tell apart from the tier's least biased model share its tier.")


def models_of_records(records: Iterable[EvaluationRecord]) -> dict[str, list[EvaluationRecord]]:
    """Records by model, in order of first appearance; a model's name is its label, with ``@<commit>`` (or the weight
    hash's start) when two models share a label. A re-run of one measurement keeps the newest record."""
    by_identity: dict[tuple[str, str | None], dict[tuple, EvaluationRecord]] = {}
    for record in records:
        kept = by_identity.setdefault(record.key[:2], {})
        measurement = record.key[2:]
        if measurement not in kept or kept[measurement].created <= record.created:
            kept[measurement] = record
    labels = [label for label, _ in by_identity]
    named = {}
    for (label, version), kept in by_identity.items():
        name = f"{label}@{(version or 'unversioned')[:7]}" if labels.count(label) > 1 else label
        named[name] = list(kept.values())
    return named


def pair_comparisons(first: Sequence[EvaluationRecord], second: Sequence[EvaluationRecord], *,
                     allow_different: bool = False, tests: Sequence[str] | None = None, **options
                     ) -> list[PairedComparison]:
    """Compare two models' records measured alike (test, layer view, frame pooling, profile, synthetic or not).

    With `allow_different`, a test that the two measured differently (e.g. other pooling) is compared anyway when each
    model has exactly one record of it (labelled). A ValueError when nothing matches, naming what each model has.
    """
    comparisons = []
    for test in ordered_tests(record.test for record in [*first, *second]):
        if tests and test not in tests:
            continue
        mine = [record for record in first if record.test == test]
        theirs = {record.key[2:]: record for record in second if record.test == test}
        if not mine or not theirs:
            continue
        matched = [(record, theirs[record.key[2:]]) for record in mine if record.key[2:] in theirs]
        if not matched and allow_different and len(mine) == len(theirs) == 1:
            matched = [(mine[0], next(iter(theirs.values())))]
        for record, other in matched:
            comparisons.append(compare_records(record, other, allow_different=allow_different, **options))
    if not comparisons:
        raise ValueError(f"no test measured alike for {_name(first)} ({_measurements(first)}) and {_name(second)} "
                         f"({_measurements(second)}); pass --allow-different to compare one test measured differently")
    return comparisons


def rank_tables(models: dict[str, Sequence[EvaluationRecord]], *, tests: Sequence[str] | None = None,
                **options) -> dict[str, list[RankInterval]]:
    """For each test and measurement that two or more models share, their rank intervals and tiers (titled
    ``test`` or ``test (layer view, frame pooling, profile)`` when a test was measured several ways)."""
    groups: dict[tuple, list[tuple[str, EvaluationRecord]]] = {}
    for name, records in models.items():
        for record in records:
            if not tests or record.test in tests:
                groups.setdefault(record.key[2:], []).append((name, record))
    order = ordered_tests(key[0] for key in groups)
    ways = {test: sum(1 for key in groups if key[0] == test) for test in order}
    tables = {}
    for key in sorted(groups, key=lambda key: (order.index(key[0]), str(key[1:]))):
        if len(groups[key]) < 2:
            continue
        title = key[0] if ways[key[0]] == 1 else f"{key[0]} ({key[1]}, {key[2]}, {key[3]})"
        names, records = zip(*groups[key])
        tables[title] = rank_records(records, names=names, **options)
    if not tables:
        raise ValueError("no test measured alike by two or more models: nothing to rank")
    return tables


def format_comparisons(comparisons: Sequence[PairedComparison], fmt: str = "table") -> str:
    """Paired comparisons as a table (first and second model named under it), Markdown, or JSON."""
    if fmt == "json":
        return json.dumps([{**dataclasses.asdict(comparison), "verdict": comparison.verdict}
                           for comparison in comparisons], indent=2, allow_nan=False)
    first, second = comparisons[0].models
    columns = ("test", "d1", "d2", "Δd", f"{comparisons[0].confidence:.0%} CI", "P(|d1|<|d2|)", "verdict", "notes")
    rows = [(comparison.test, format_d(comparison.effect_sizes[0]), format_d(comparison.effect_sizes[1]),
             format_d(comparison.difference), format_ci(comparison.ci_low, comparison.ci_high),
             f"{comparison.p_first_less_biased:.2f}", comparison.verdict,
             ", ".join(comparison.labels + (() if comparison.paired else ("unpaired",))))
            for comparison in comparisons]
    resamples = min(comparison.n_resamples for comparison in comparisons)
    notes = [f"1 = {first}, 2 = {second}", COMPARISON_NOTE,
             f"{resamples:,} resamples or more per test, seed {comparisons[0].seed}."]
    if any(OFF_CENTRE in comparison.labels for comparison in comparisons):
        notes.append(OFF_CENTRE_NOTE)
    if any(not comparison.paired for comparison in comparisons):
        notes.append("unpaired: different stimuli, each model resampled on its own; the interval is wider and the "
                     "difference mixes models and stimuli.")
    return render_table(columns, rows, notes, fmt)


def format_ranks(tables: dict[str, Sequence[RankInterval]], fmt: str = "table", *,
                 confidence: float = 0.95) -> str:
    """Rank intervals and tiers, per test, as a table, Markdown, or JSON."""
    if fmt == "json":
        return json.dumps({title: [dataclasses.asdict(interval) for interval in intervals]
                           for title, intervals in tables.items()}, indent=2, allow_nan=False)
    columns = ("test", "model", "d", "rank", f"{confidence:.0%} interval", "tier")
    rows = [(title, interval.model, format_d(interval.effect_size), str(interval.rank),
             f"{interval.rank_low}-{interval.rank_high}", str(interval.tier))
            for title, intervals in tables.items() for interval in intervals]
    return render_table(columns, rows, [RANK_NOTE], fmt)


def format_drivers(records: Sequence[EvaluationRecord], fmt: str = "table", *, n_resamples: int = N_RESAMPLES,
                   seed: int = 0, confidence: float = 0.95) -> str:
    """What drives each record's d: the four mean cosines, g_X and g_Y with intervals, leave-one-speaker-out."""
    results = []
    for record in records:
        associations = record_concept_associations(record, n_resamples=n_resamples, seed=seed,
                                                   confidence=confidence)
        left_out = record_leave_one_out(record)
        results.append((record, associations, left_out))
    if fmt == "json":
        return json.dumps([{"model": record.model_label, "test": record.test, "layer": record.pooling.get("layer"),
                            "effect_size": record.speat.effect_size,
                            "single_concept": dataclasses.asdict(associations),
                            "leave_one_out": dataclasses.asdict(left_out)}
                           for record, associations, left_out in results], indent=2, allow_nan=False)
    columns = ("model", "test", "layer", "d", "cos X·A", "cos X·B", "cos Y·A", "cos Y·B", "g_X", "g_Y",
               "largest LOO change", "sign flips")
    rows = []
    for record, associations, left_out in results:
        cosines, effects, intervals = associations.mean_cosines, associations.group_effects, associations.intervals
        layer = "mean" if record.pooling.get("layer") is None else str(record.pooling["layer"])
        rows.append((record.model_label, record.test, layer, format_d(record.speat.effect_size),
                     *(f"{cosines[name]:+.3f}" for name in ("XA", "XB", "YA", "YB")),
                     *(f"{format_d(effects[role])} {format_ci(*intervals[role])}" for role in "XY"),
                     f"{format_d(left_out.largest_change)} ({left_out.most_influential})",
                     str(len(left_out.sign_flips))))
    notes = ["cos: mean cosine of a target group with an attribute group; g_X = mean_X s / std(s), g_Y likewise, "
             "so d = g_X - g_Y: the group whose g is far from 0 carries the effect (intervals: bootstrap over targets "
             "and attributes).",
             "LOO: d recomputed without each target speaker; the largest change and whose; sign flips: how many "
             "single speakers' removal flips the sign of d."]
    notes += [f"{record.model_label}, {record.test}: {associations.sentence(record.groups)} {left_out.sentence()}"
              for record, associations, left_out in results]
    return render_table(columns, rows, notes, fmt)


def _name(records: Sequence[EvaluationRecord]) -> str:
    return records[0].model_label if records else "?"


def _measurements(records: Sequence[EvaluationRecord]) -> str:
    return "; ".join(f"{record.test} at {record.key[3]}, {record.key[4]} frames, profile {record.key[5]}"
                     for record in records[:4])
