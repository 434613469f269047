"""`speat space` (also `python -m spaces_app`): the Gradio Space that browses, compares and explains SpEAT results."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `space` subcommand to the `speat` parser (heavy imports stay inside the handlers)."""
    parser = commands.add_parser("space", help="the Gradio Space that browses, compares and explains SpEAT results (not built yet)", description="the Gradio Space that browses, compares and explains SpEAT results (not built yet).")
    parser.set_defaults(handler=lambda args: _not_built())


def _not_built() -> int:
    raise ValueError("this command is not built yet")
