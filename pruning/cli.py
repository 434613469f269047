"""`speat prune` (also `python -m pruning`): head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `prune` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    parser = commands.add_parser("prune", help="head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step (not built yet)", description="head, row and weight pruning of speech encoders, with SpEAT measured after every pruning step (not built yet).")
    parser.set_defaults(handler=lambda args: _not_built())


def _not_built() -> int:
    raise ValueError("this command is not built yet")
