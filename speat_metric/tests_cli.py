"""``speat tests build`` and ``speat tests interaction``: SpEAT tests from any corpus with speaker metadata.

    speat tests build cv-fr/validated.tsv --x accents=France --y "accents=Canada" --per-group 20 --out fr.json
    speat tests build --from-provenance fr.provenance.json          # the identical selection again
    speat tests build validated.tsv --x accents=us --y accents=korean --by gender=female,male --out accent.json
    speat tests interaction accent.intersectional.json results/     # d_female - d_male per model, with its CI

The selection is in `speat_metric.stimuli.builder`, the interaction in `speat_metric.intersectional`; the options:
docs/building-tests.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from speat_metric.comparison import N_RESAMPLES

if TYPE_CHECKING:
    from speat_metric.stimuli.builder import BuildSpec


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add ``tests`` (with ``build`` and ``interaction``) to the ``speat`` command parser."""
    tests = commands.add_parser("tests", help="build SpEAT tests from a corpus with speaker metadata; "
                                "intersectional interactions",
                                description="Build custom SpEAT tests (for speat evaluate --tests) from a metadata "
                                "table or a Hugging Face dataset, and measure intersectional interactions.")
    tests.set_defaults(handler=lambda args: tests.print_help() or 0)
    subcommands = tests.add_subparsers(dest="tests_command", title="tests commands")

    build = subcommands.add_parser(
        "build", help="a custom test JSON and its provenance from a corpus with speaker metadata",
        description="Choose N speakers per target group (one clip each) from a metadata table (.tsv such as Common "
        "Voice's validated.tsv, or .csv) or a Hugging Face dataset (a save_to_disk folder or a Hub id), optionally "
        "matched on other columns; attributes are the study's MESS sets or an emotional speech table. Writes the "
        "test JSON (speat evaluate --tests reads it) and OUT's .provenance.json, which rebuilds the same selection.")
    build.add_argument("corpus", nargs="?", default=None, metavar="CORPUS",
                       help="a .tsv/.csv table, a dataset folder (save_to_disk) or a Hub dataset id")
    build.add_argument("--x", default=None, help="group X: COLUMN=VALUE[,VALUE...][;COLUMN=...], e.g. gender=female")
    build.add_argument("--y", default=None, help="group Y, e.g. gender=male")
    build.add_argument("--per-group", type=int, default=None, help="speakers per target group (N)")
    build.add_argument("--out", type=Path, default=None,
                       help="the test JSON to write (its provenance: OUT's stem + .provenance.json)")
    build.add_argument("--name", default=None, help="the test's name (default: OUT's stem)")
    build.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    build.add_argument("--match", default="", help="comma-separated columns on which X and Y speakers are paired")
    build.add_argument("--match-rule", default="exact", choices=("exact", "nearest"),
                       help="exact: equal values; nearest: the smallest distance (default exact)")
    build.add_argument("--by", default=None, metavar="COLUMN=V1,V2",
                       help="intersectional: one test per value (X and Y within it), with the same attributes")
    build.add_argument("--locale", default=None, help="keep rows whose locale column is this, e.g. fr")
    build.add_argument("--min-seconds", type=float, default=None, help="shortest clip kept")
    build.add_argument("--max-seconds", type=float, default=None, help="longest clip kept")
    build.add_argument("--attributes", default="mess",
                       help="mess (the study's sets, default) or a .tsv/.csv of emotional speech with a path column")
    build.add_argument("--emotion-column", default=None, help="attribute table: the emotion label column")
    build.add_argument("--valence-column", default=None, help="attribute table: the valence rating column")
    build.add_argument("--attribute-count", type=int, default=None, help="clips per attribute group")
    build.add_argument("--clips-dir", default=None,
                       help="where the table's path column points (default: clips/ beside it, else its folder)")
    build.add_argument("--speaker-column", default="client_id", help="speaker column (default client_id)")
    build.add_argument("--path-column", default="path", help="table: audio path column (default path)")
    build.add_argument("--audio-column", default="audio", help="dataset: audio column (default audio)")
    build.add_argument("--split", default="train", help="Hub dataset: split (default train)")
    build.add_argument("--revision", default=None, help="Hub dataset: revision (pin a commit to cite)")
    build.add_argument("--from-provenance", type=Path, default=None, metavar="PROVENANCE",
                       help="rebuild what a provenance file records (no other selection option), checking that the "
                       "selection is identical; writes beside it unless --out")
    build.set_defaults(handler=_build)

    interaction = subcommands.add_parser(
        "interaction", help="the interaction d_1 - d_2 of an intersectional build, with a bootstrap CI",
        description="For each model of RESULTS with both cells of DEFINITION (the .intersectional.json of speat tests "
        "build --by): d of each cell and their difference, with a bias-corrected bootstrap interval that resamples "
        "each cell's targets apart and the shared attributes jointly.")
    interaction.add_argument("definition", type=Path, metavar="DEFINITION", help="the .intersectional.json file")
    interaction.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                             help="record files or results directories (speat evaluate --out)")
    interaction.add_argument("--resamples", type=int, default=N_RESAMPLES,
                             help=f"bootstrap resamples (default {N_RESAMPLES:,})")
    interaction.add_argument("--seed", type=int, default=0, help="seed of the resamples (default 0)")
    interaction.add_argument("--confidence", type=float, default=0.95, help="coverage of the interval (default 0.95)")
    interaction.add_argument("--format", default="table", choices=("table", "json"), help="output (default table)")
    interaction.set_defaults(handler=_interaction)


_SELECTION_OPTIONS = ("corpus", "x", "y", "per_group", "name", "by", "locale", "min_seconds", "max_seconds",
                      "emotion_column", "valence_column", "attribute_count", "clips_dir", "revision")


def build_spec(args: argparse.Namespace) -> tuple[BuildSpec, Path]:
    """The `BuildSpec` and the output path of parsed ``speat tests build`` options, checked before any work."""
    from speat_metric.stimuli.builder import AttributeSpec, BuildSpec, GroupDefinition

    missing = [option for option, value in (("CORPUS", args.corpus), ("--x", args.x), ("--y", args.y),
                                            ("--per-group", args.per_group), ("--out", args.out)) if value is None]
    if missing:
        raise ValueError(f"speat tests build needs {', '.join(missing)} (or --from-provenance FILE)")
    if args.out.suffix != ".json":
        raise ValueError(f"--out {str(args.out)!r} must be a .json file (the test speat evaluate --tests reads)")
    by = None
    if args.by is not None:
        column, _, values = args.by.partition("=")
        by = (column.strip(), tuple(value.strip() for value in values.split(",") if value.strip()))
    attributes = AttributeSpec(args.attributes, args.emotion_column, args.valence_column, args.attribute_count)
    spec = BuildSpec(corpus=args.corpus, x=GroupDefinition.parse(args.x, "--x"), y=GroupDefinition.parse(args.y, "--y"),
                     per_group=args.per_group, name=args.name or args.out.stem, seed=args.seed,
                     match=tuple(column.strip() for column in args.match.split(",") if column.strip()),
                     match_rule=args.match_rule, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                     locale=args.locale, attributes=attributes, by=by, clips_dir=args.clips_dir,
                     speaker_column=args.speaker_column, path_column=args.path_column,
                     audio_column=args.audio_column, split=args.split, revision=args.revision)
    return spec, args.out


def _build(args: argparse.Namespace) -> int:
    from speat_metric.stimuli.builder import build_tests, rebuild, write_tests

    if args.from_provenance is not None:
        given = [option for option in _SELECTION_OPTIONS if getattr(args, option) is not None]
        if given:
            raise ValueError(f"--from-provenance rebuilds what the file records; leave out "
                             f"{', '.join('--' + option.replace('_', '-') for option in given)}")
        result, provenance = rebuild(args.from_provenance)
        out = args.out or args.from_provenance.parent / provenance["out"]
        written = write_tests(result, out, base=args.from_provenance.parent)
    else:
        spec, out = build_spec(args)
        result = build_tests(spec, file_stem=out.stem)
        written = write_tests(result, out)
    for test in result.tests:
        found = ", ".join(f"{role} {count}" for role, count in test.selection.speakers_found.items())
        print(f"{test.name}: X {test.x.text} vs Y {test.y.text}: {len(test.selection.x)} speakers each "
              f"(found {found}){', paired' if test.selection.pairs else ''}")
    print("written: " + ", ".join(str(path) for path in written))
    return 0


def _interaction(args: argparse.Namespace) -> int:
    from speat_metric.compare_cli import read_results
    from speat_metric.comparison_report import models_of_records
    from speat_metric.intersectional import record_interaction

    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must lie strictly between 0 and 1, e.g. 0.95, got {args.confidence}")
    try:
        definition = json.loads(args.definition.read_text(encoding="utf-8"))
        cells = list(definition["cells"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{args.definition} is not an intersectional definition (speat tests build --by writes "
                         f"<out>.intersectional.json): {error}") from None
    if len(cells) != 2:
        raise ValueError(f"{args.definition}: an interaction needs 2 cells, found {len(cells)}")
    records = read_results(args.results, ",".join(cells))
    interactions = []
    for model, model_records in models_of_records(records).items():
        by_test = {record.test: record for record in model_records}
        if all(cell in by_test for cell in cells):
            interactions.append(record_interaction(by_test[cells[0]], by_test[cells[1]], n_resamples=args.resamples,
                                                   seed=args.seed, confidence=args.confidence))
    if not interactions:
        raise ValueError(f"no model in the results has records of both {cells[0]} and {cells[1]}")
    if args.format == "json":
        print(json.dumps([interaction.to_dict() for interaction in interactions], indent=2))
    else:
        for interaction in interactions:
            print(interaction.sentence() + (f" [{', '.join(interaction.labels)}]" if interaction.labels else ""))
    return 0
