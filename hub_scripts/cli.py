"""`speat hub` (also `python -m hub_scripts`): model cards, card pull requests, the results dataset and the webhook service on the Hugging Face Hub."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `hub` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    parser = commands.add_parser("hub", help="model cards, card pull requests, the results dataset and the webhook service on the Hugging Face Hub (not built yet)", description="model cards, card pull requests, the results dataset and the webhook service on the Hugging Face Hub (not built yet).")
    parser.set_defaults(handler=lambda args: _not_built())


def _not_built() -> int:
    raise ValueError("this command is not built yet")
