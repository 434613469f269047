"""The ``speat`` command line.

    speat --version
    speat register     # let evaluate.load("speat") work offline from any directory
    speat example      # SpEAT through the evaluate module on the bundled (synthetic) example embeddings
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from speat_metric import __version__

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


if __name__ == "__main__":
    sys.exit(main())
