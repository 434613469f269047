"""``speat hub webhook``: run the automatic-annotation service, or register its webhook on the Hub.

``hub_scripts/cli.py`` adds this command to ``speat hub`` by calling ``add_parser(hub_commands)`` (it lists this
module in its ``SUBCOMMAND_MODULES``).

    speat hub webhook --port 7860 --db jobs.sqlite --workers 2                 # serve (secret: $SPEAT_WEBHOOK_SECRET)
    speat hub webhook --register --target-url https://OWNER-SPACE.hf.space --watch org:acme
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speat_metric.extras import require_extra
from speat_metric.hub.source import add_source_options, source_from_options

DEFAULT_DB = Path("speat-webhook.sqlite")


def add_parser(hub_commands: argparse._SubParsersAction) -> None:
    """Add the ``webhook`` subcommand to the ``speat hub`` parser (heavy imports stay inside the handler)."""
    from speat_metric.cli import _paragraphs, evaluation_options

    parser = hub_commands.add_parser(
        "webhook", parents=[evaluation_options()],
        help="run the webhook service that annotates every pushed speech encoder (or --register it on the Hub)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_paragraphs(
            "Receive Hugging Face Hub webhook events at POST /webhooks/speat: each push to the main branch of a "
            "watched model repository is queued (SQLite job store --db); a worker checks that the commit is a speech "
            "encoder speat reads, evaluates it at exactly that commit and opens (or updates) the pull request that "
            "adds its SpEAT table to the model card. GET /status and GET /healthz serve operations.\n\n"
            "The webhook secret comes from $SPEAT_WEBHOOK_SECRET or --secret-file (never from the command line); "
            "the Hub token from huggingface_hub's usual sources (HF_TOKEN, `hf auth login`). With --register, "
            "create the webhook on the Hub (or update the one posting to --target-url) and exit. See "
            "docs/webhook.md.\n\n"
            "The evaluation options are those of `speat evaluate`, except that --stimuli defaults to speat (the "
            "study's stimuli) and each event names the commit to evaluate (no --revision)."),
    )
    service = parser.add_argument_group("service")
    service.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 "
                         "in a container or Space)")
    service.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    service.add_argument("--db", type=Path, default=DEFAULT_DB,
                         help=f"job store file, SQLite (default ./{DEFAULT_DB}; keep it on persistent storage)")
    service.add_argument("--workers", type=int, default=1, help="worker threads evaluating models (default 1)")
    service.add_argument("--secret-file", type=Path, default=None,
                         help="file holding the webhook secret (default: $SPEAT_WEBHOOK_SECRET)")
    service.add_argument("--secret", nargs="?", action=_RefuseSecretValue, help=argparse.SUPPRESS)
    service.add_argument("--max-attempts", type=int, default=3,
                         help="attempts per job before it is marked failed (default 3)")
    service.add_argument("--retry-delay", type=float, default=60.0,
                         help="seconds before the first retry of a failed job, doubled each time (default 60)")
    registration = parser.add_argument_group("registering the webhook on the Hub")
    registration.add_argument("--register", action="store_true",
                              help="create the webhook on the Hub (or update the one posting to --target-url), "
                              "then exit")
    registration.add_argument("--target-url", default=None,
                              help="the service's public URL, e.g. https://OWNER-SPACE.hf.space (/webhooks/speat is "
                              "added when it has no path)")
    registration.add_argument("--watch", action="append", default=[], metavar="KIND:NAME",
                              help="what the webhook watches: user:NAME, org:NAME or model:OWNER/NAME; repeat it "
                              "(default: the token's own account)")
    service.add_argument("--allow-synthetic", action="store_true",
                         help="allow cards from synthetic stimuli (--stimuli demo), labelled as such")
    add_source_options(parser)
    # The study's stimuli by default, as a card deserves; each event names the commit to evaluate.
    parser.set_defaults(handler=run, stimuli="speat")
    for action in parser._actions:
        if action.dest == "stimuli":
            action.help = action.help.replace("(default demo)", "(default speat; demo needs --allow-synthetic)")


class _RefuseSecretValue(argparse.Action):
    """``--secret VALUE`` is refused without echoing VALUE (a secret in a command line shows in ``ps``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser.error("--secret is not accepted: a secret on the command line shows in `ps` and the shell history; "
                     "set SPEAT_WEBHOOK_SECRET or give --secret-file FILE")


def run(args: argparse.Namespace) -> int:
    """The ``speat hub webhook`` handler."""
    require_extra("hub", "hub webhook")
    from speat_metric.hub.webhook.auth import load_secret
    from speat_metric.hub.webhook.logs import configure_logging

    secret = load_secret(args.secret_file)
    if args.register or args.target_url is not None or args.watch:
        return _register(args, secret)
    from speat_metric.hub.webhook.server import ServiceConfig, serve

    config = ServiceConfig(db=args.db, secret=secret, settings=_settings(args), host=args.host, port=args.port,
                           workers=args.workers, allow_synthetic=args.allow_synthetic,
                           max_attempts=args.max_attempts, retry_delay=args.retry_delay, redact=[_token()],
                           source=source_from_options(args))
    configure_logging(redact=[secret.value, _token()])
    serve(config)
    return 0


def _register(args: argparse.Namespace, secret: object) -> int:
    from speat_metric.hub.webhook.logs import configure_logging
    from speat_metric.hub.webhook.register import describe, register_webhook

    if not args.register:
        raise ValueError("--target-url and --watch are for --register; add --register to create the webhook")
    if args.target_url is None:
        raise ValueError("--register needs --target-url URL: where the Hub should send the events")
    configure_logging(redact=[secret.value, _token()])
    webhook, created = register_webhook(args.target_url, secret=secret, watched=args.watch)
    print(f"{'created' if created else 'updated'} {describe(webhook)}")
    return 0


def _settings(args: argparse.Namespace) -> object:
    import dataclasses

    from speat_metric.cli import evaluation_settings
    from speat_metric.evaluation import resolve_device
    from speat_metric.stimuli import get_speat_test

    if args.revision is not None:
        raise ValueError("--revision does not apply: the service evaluates the commit each event names")
    settings = dataclasses.replace(evaluation_settings(args), progress=False)
    resolve_device(settings.device)  # fail now, not at the first event
    for test in settings.tests:
        if test.endswith(".json"):
            if not Path(test).is_file():
                raise FileNotFoundError(f"--tests: custom test file {test!r} does not exist")
        else:
            get_speat_test(test)
    if settings.stimuli == "demo" and not args.allow_synthetic:
        raise ValueError("--stimuli demo is synthetic speech: cards from it need --allow-synthetic (and say so)")
    return settings


def _token() -> str:
    """The Hub token huggingface_hub will use, read only so that logs can redact it."""
    from huggingface_hub import get_token

    return get_token() or ""
