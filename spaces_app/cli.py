"""`speat space` (also `python -m speat_metric.space`): the Gradio Space that browses, compares and explains results.

    speat space                                  # the bundled example records (synthetic), on 127.0.0.1:7860
    speat space --results results/               # a results directory (speat evaluate --out, a pruning run, ...)
    speat space --repo ORG/NAME                  # the Hub dataset repository of `speat hub push-results`
    speat space --host 0.0.0.0 --port 8080 --evaluate-models
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speat_metric.extras import require_extra


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `space` subcommand to the `speat` parser (gradio is imported only when the command runs)."""
    parser = commands.add_parser(
        "space", help="the Gradio Space that browses, compares and explains SpEAT results",
        description="Serve the SpEAT Space: a leaderboard of results (real and synthetic stimuli ranked apart), the "
        "published reference values, plots over training steps, pruning, distillation and layers, each model's "
        "results with the command that reproduces them, per-stimulus explanations, and SpEAT on uploaded "
        "embeddings. Reads a results directory, the Hub dataset of `speat hub push-results`, or (by default) the "
        "bundled example records. The same folder (spaces_app/) runs as a Hugging Face Space.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="directory of result JSON files, read recursively (default: the bundled example "
                        "records, made on synthetic stimuli)")
    source.add_argument("--repo", default=None, metavar="ORG/NAME",
                        help="Hub dataset repository written by `speat hub push-results` (HF_ENDPOINT and HF_TOKEN "
                        "are honoured)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of --repo (default main)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0 for "
                        "every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--evaluate-models", action="store_true",
                        help="let visitors evaluate Hub models in the Space (queued one at a time; needs the "
                        "machine's CPU or GPU for minutes per model)")
    parser.set_defaults(handler=_space)


def _space(args: argparse.Namespace) -> int:
    require_extra("space", "space")
    from speat_metric.space.sources import choose_source

    if args.revision is not None and args.repo is None:
        raise ValueError("--revision applies to --repo; give --repo ORG/NAME too")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    source = choose_source(results=args.results, repo=args.repo, revision=args.revision)
    check_listening_address(args.host, args.port)
    from speat_metric.space.app import launch

    print(f"speat space: serving {source.describe()} on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    launch(source, host=args.host, port=args.port, evaluate_models=args.evaluate_models)
    return 0


def check_listening_address(host: str, port: int) -> None:
    """Raise a ValueError naming ``--host``/``--port`` when the server could not listen there (an address of another
    machine, a port in use), before the Space loads anything and before it says it is serving."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closing socket is fine
            probe.bind((host, port))
    except OSError as error:
        raise ValueError(f"cannot listen on --host {host} --port {port} ({error.strerror or error}): give an address "
                         "of this machine (127.0.0.1, or 0.0.0.0 for every interface) and a free port") from None
