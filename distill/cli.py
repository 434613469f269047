"""`speat distill` (also `python -m distill`): DistilHuBERT-style distillation of speech encoders, with SpEAT measured at every checkpoint."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `distill` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    parser = commands.add_parser("distill", help="DistilHuBERT-style distillation of speech encoders, with SpEAT measured at every checkpoint (not built yet)", description="DistilHuBERT-style distillation of speech encoders, with SpEAT measured at every checkpoint (not built yet).")
    parser.set_defaults(handler=lambda args: _not_built())


def _not_built() -> int:
    raise ValueError("this command is not built yet")
