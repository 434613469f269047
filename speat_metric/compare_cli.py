"""``speat compare`` and ``speat explain``: statistics across records, without re-embedding anything.

    speat compare results/model-a results/model-b      # Δd per test with a paired CI and a verdict
    speat compare results/                             # three or more models: rank intervals and tiers per test
    speat explain results/                             # what drives each d: single-concept associations, LOO

Both read records (JSON files, or directories of them, as ``speat evaluate --out`` writes them); the statistics are in
`speat_metric.comparison` and `speat_metric.diagnostics`, the tables in `speat_metric.comparison_report`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from speat_metric.comparison import N_RESAMPLES
from speat_metric.report import FORMATS
from speat_metric.results import EvaluationRecord, load_records, read_record_file


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add ``compare`` and ``explain`` to the ``speat`` command parser."""
    compare = commands.add_parser(
        "compare",
        help="compare models' results on the same stimuli: Δd with a paired CI, or rank intervals and tiers",
        description="Two models: for each test both measured alike, Δd = d1 - d2 with a paired bootstrap interval "
        "(the same targets and attributes resampled for both), the share of resamples in which the first is less "
        "biased, and a verdict (distinguishable only when the interval excludes 0). Three or more models: each "
        "model's rank by |d| with an interval, and tiers of models the data cannot tell apart. Results of different "
        "stimuli (fingerprint), profile or pooling are refused unless --allow-different.",
    )
    compare.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                         help="record files or results directories (speat evaluate --out); every model found is "
                         "compared")
    _add_common_options(compare)
    compare.add_argument("--allow-different", action="store_true",
                         help="compare results of different stimuli, profile or pooling anyway (labelled; different "
                         "stimuli are resampled apart, unpaired)")
    compare.set_defaults(handler=_compare)

    explain = commands.add_parser(
        "explain",
        help="what drives each d: single-concept associations and leave-one-speaker-out",
        description="For each record: the mean cosines of X and Y with A and B, each group's share of d (g_X - g_Y = "
        "d) with bootstrap intervals, and d without each target speaker (the largest change; whether one speaker "
        "flips its sign).",
    )
    explain.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                         help="record files or results directories (speat evaluate --out)")
    _add_common_options(explain)
    explain.set_defaults(handler=_explain)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tests", default=None, help="comma-separated tests to keep (default: all)")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES,
                        help=f"bootstrap resamples (default {N_RESAMPLES:,})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of the intervals (default 0.95)")
    parser.add_argument("--format", default="table", choices=FORMATS, help="output format (default table)")


def read_results(paths: Sequence[Path], tests: str | None = None) -> list[EvaluationRecord]:
    """Every record of `paths` (files or directories), checked before any work: a missing path, a file that is not
    a record, a directory without records, or a test no record has is a ValueError naming it."""
    records = []
    for path in paths:
        if path.is_dir():
            found = load_records(path)
        elif path.is_file():
            try:
                found = read_record_file(path)
            except ValueError as error:
                raise ValueError(f"{path} is not a speat evaluation record: {error}") from None
        else:
            raise ValueError(f"{path} does not exist (give record files or results directories)")
        if not found:
            raise ValueError(f"{path} holds no speat evaluation records (*.json)")
        records += found
    if tests:
        wanted = [test.strip() for test in tests.split(",") if test.strip()]
        unknown = [test for test in wanted if not any(record.test == test for record in records)]
        if unknown:
            raise ValueError(f"--tests {','.join(unknown)}: no record of that test (the records have "
                             f"{', '.join(sorted({record.test for record in records}))})")
        records = [record for record in records if record.test in wanted]
    return records


def _check_options(args: argparse.Namespace) -> None:
    if args.resamples < 100:
        raise ValueError(f"--resamples must be a whole number of at least 100, got {args.resamples}")
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must lie strictly between 0 and 1, e.g. 0.95, got {args.confidence}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative whole number, got {args.seed}")


def _compare(args: argparse.Namespace) -> int:
    from speat_metric.comparison_report import (
        format_comparisons,
        format_ranks,
        models_of_records,
        pair_comparisons,
        rank_tables,
    )

    _check_options(args)
    models = models_of_records(read_results(args.results, args.tests))
    options = {"confidence": args.confidence, "n_resamples": args.resamples, "seed": args.seed}
    if len(models) < 2:
        raise ValueError(f"the results hold one model ({next(iter(models))}); give the results of two or more "
                         "models to compare, or use speat explain for one")
    if len(models) == 2:
        first, second = models.values()
        print(format_comparisons(pair_comparisons(first, second, allow_different=args.allow_different, **options),
                                 args.format))
    else:
        if args.allow_different:
            raise ValueError("--allow-different compares two models; ranks are only of results measured alike")
        print(format_ranks(rank_tables(models, **options), args.format, confidence=args.confidence))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from speat_metric.comparison_report import format_drivers

    _check_options(args)
    records = read_results(args.results, args.tests)
    print(format_drivers(records, args.format, n_resamples=args.resamples, seed=args.seed,
                         confidence=args.confidence))
    return 0
