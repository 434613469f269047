"""The ``speat`` command line.

    speat --version
    speat register     # let evaluate.load("speat") work offline from any directory
    speat example      # SpEAT through the evaluate module on the bundled (synthetic) example embeddings
    speat stimuli list       # the SpEAT tests, their groups and sizes (and the synthetic demo set)
    speat stimuli download   # fetch the real stimuli into the cache; says what it has and what is missing
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from speat_metric import __version__

if TYPE_CHECKING:
    from speat_metric.stimuli import SpeatTestSpec

EXAMPLE_EMBEDDINGS = Path(__file__).parent / "data" / "example_embeddings.npz"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speat`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"speat {args.command}: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speat",
        description="Measure social bias in self-supervised speech models with the Speech Embedding Association "
        "Test (SpEAT).",
    )
    parser.add_argument("--version", action="version", version=f"speat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", title="commands")

    register = commands.add_parser(
        "register",
        help='make evaluate.load("speat") work offline from any directory',
        description='Install a shim in the Hugging Face evaluate modules cache so that evaluate.load("speat") '
        "finds the measurement installed with this package, offline and from any working directory.",
    )
    register.add_argument("--modules-cache", type=Path, default=None,
                          help="modules cache to register in (default: evaluate's, i.e. $HF_MODULES_CACHE)")
    register.set_defaults(handler=_register)

    example = commands.add_parser(
        "example",
        help="run SpEAT through the evaluate module on the bundled synthetic example embeddings",
        description="A worked example of the statistics: loads the bundled synthetic embeddings (not a "
        "measurement of any model), runs evaluate.load('speat') on them and prints the result.",
    )
    example.add_argument("--permutations", type=int, default=100_000, help="permutation budget (default 100000)")
    example.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    example.set_defaults(handler=_example)
    _add_stimuli_parser(commands)
    return parser


def _register(args: argparse.Namespace) -> int:
    from speat_metric.evaluate_registration import register_evaluate_module

    path = register_evaluate_module(args.modules_cache)
    print(f'registered: evaluate.load("speat") now resolves to {path}')
    return 0


def _example(args: argparse.Namespace) -> int:
    import evaluate
    import numpy as np

    from speat_metric.evaluate_registration import MODULE_PATH

    with np.load(EXAMPLE_EMBEDDINGS) as groups:
        embeddings = [vector for role in "XYAB" for vector in groups[role].tolist()]
        roles = [role for role in "XYAB" for _ in range(len(groups[role]))]
    speat = evaluate.load(str(MODULE_PATH))
    result = speat.compute(embeddings=embeddings, groups=roles, num_permutations=args.permutations, seed=args.seed)
    print("SpEAT on the bundled SYNTHETIC example embeddings (a worked example, not a bias measurement)")
    print(f"  targets X/Y: {result['n_x']}/{result['n_y']}   attributes A/B: {result['n_a']}/{result['n_b']}")
    print(f"  effect size d = {result['effect_size']:+.3f} ({result['effect_size_label']}), "
          f"{result['confidence']:.0%} CI [{result['ci_low']:+.3f}, {result['ci_high']:+.3f}]")
    kind = "exact" if result["exact"] else f"{result['num_permutations']:,} random partitions"
    print(f"  p = {result['p_value']:.3g} ({result['alternative']}, {kind}, seed {result['seed']})")
    return 0


def _add_stimuli_parser(commands: argparse._SubParsersAction) -> None:
    stimuli = commands.add_parser(
        "stimuli",
        help="list the SpEAT tests and their stimuli, or download the stimuli",
        description="The SpEAT tests (gender, age, native) use Speech Accent Archive recordings as targets and Morgan "
        "Emotional Speech Set clips as attributes, as selected by Slaughter et al. (2023).",
    )
    stimuli.set_defaults(handler=lambda args: stimuli.print_help() or 0)
    stimuli_commands = stimuli.add_subparsers(dest="stimuli_command", title="stimuli commands")

    listing = stimuli_commands.add_parser(
        "list", help="show the tests with their group names and sizes",
        description="Show the three SpEAT tests with their X/Y target and A/B attribute groups, and the embedded "
        "synthetic demo set (a pipeline check, not a bias measurement).")
    listing.set_defaults(handler=_stimuli_list)

    download = stimuli_commands.add_parser(
        "download", help="fetch the real stimuli into the stimulus cache",
        description="Download the recordings of the chosen tests from the Speech Accent Archive (accent.gmu.edu) "
        "and the Morgan Emotional Speech Set (Zenodo) into the stimulus cache ($SPEAT_CACHE/stimuli, else "
        "$HF_HOME/speat/stimuli), with retries and resume; files already cached are not requested again. Prints what "
        "the cache holds and what is missing; exits with 1 when something is missing.")
    download.add_argument("--tests", default="gender,age,native",
                          help="comma-separated tests to fetch (default gender,age,native)")
    download.add_argument("--cache-dir", type=Path, default=None, help="stimulus cache directory")
    download.add_argument("--base-url-saa", default=None,
                          help="where <name>.mp3 lives (default $SPEAT_SAA_BASE_URL or "
                          "https://accent.gmu.edu/soundtracks)")
    download.add_argument("--base-url-zenodo", default=None,
                          help="Zenodo server (default $SPEAT_ZENODO_BASE_URL or https://zenodo.org)")
    download.add_argument("--retries", type=int, default=5, help="attempts per file before giving up (default 5)")
    download.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    download.set_defaults(handler=_stimuli_download)


def _group_line(spec: SpeatTestSpec) -> str:
    groups = "   ".join(f"{group.role} {group.name} ({len(group)})" for group in spec.groups)
    return f"{groups}   pairs: {len(spec.pairs) or 'none'}"


def _stimuli_list(args: argparse.Namespace) -> int:
    from speat_metric.stimuli import demo_available, demo_speat_test, speat_tests

    print("SpEAT tests (targets: Speech Accent Archive; attributes: Morgan Emotional Speech Set)")
    for name, spec in speat_tests().items():
        print(f"  {name:<7} {_group_line(spec)}")
    sources = next(iter(speat_tests().values())).citations
    print("  selections and corpora: " + "; ".join(citation.text.split(". ")[0] for citation in sources))
    if demo_available():
        print("demo set: SYNTHETIC PIPELINE CHECK, NOT A BIAS MEASUREMENT (synthesised speech, works offline)")
        for name in speat_tests():
            print(f"  {name:<7} {_group_line(demo_speat_test(name))}")
    else:
        print("demo set: not installed")
    return 0


def _stimuli_download(args: argparse.Namespace) -> int:
    from speat_metric.stimuli import DownloadSource, RetryPolicy, get_speat_test, stimulus_refs

    names = [name.strip() for name in args.tests.split(",") if name.strip()]
    specs = [get_speat_test(name) for name in names]
    refs = list({ref.stimulus_id: ref for spec in specs for ref in stimulus_refs(spec)}.values())
    source = DownloadSource(cache_dir=args.cache_dir, saa_base_url=args.base_url_saa,
                            zenodo_base_url=args.base_url_zenodo, retry=RetryPolicy(attempts=args.retries))
    resolution = source.resolve(refs, progress=not args.no_progress)
    print(f"stimulus cache: {source.cache_dir}")
    for spec in specs:
        counts = "   ".join(f"{group.role} {group.name} {sum(s in resolution.files for s in group.stimulus_ids)}"
                           f"/{len(group)}" for group in spec.groups)
        print(f"  {spec.name:<7} {counts}")
    if not resolution.missing:
        print(f"all {len(refs)} stimuli are in the cache")
        return 0
    print(f"missing {len(resolution.missing)} of {len(refs)} stimuli:")
    by_reason: dict[str, list[str]] = {}
    for stimulus_id, reason in resolution.missing.items():
        by_reason.setdefault(reason, []).append(stimulus_id)
    for reason, ids in by_reason.items():
        print(f"  {reason}: {', '.join(ids)}")
    print("load the tests with allow_missing=True to go on without them, or provide them from a local copy "
          "(--stimuli DIR) or a Hub dataset")
    return 1


if __name__ == "__main__":
    sys.exit(main())
