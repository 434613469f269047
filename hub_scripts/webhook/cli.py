"""``speat hub webhook``: run the automatic-annotation service, or register its webhook on the Hub (listed in
``hub_scripts/cli.py``'s ``SUBCOMMAND_MODULES``).

    speat hub webhook --port 7860 --workers 2 --watch org:acme             # serve (secret: $SPEAT_WEBHOOK_SECRET)
    speat hub webhook --register --target-url https://OWNER-SPACE.hf.space --watch org:acme
    speat hub webhook --register --job --source-space acme/speat --watch org:acme   # a Job per event, no server
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speat_metric.extras import require_extra
from speat_metric.hub.jobs import add_job_options
from speat_metric.hub.source import add_source_options, source_from_options


def add_parser(hub_commands: argparse._SubParsersAction) -> None:
    """Add ``webhook`` to the ``speat hub`` parser (heavy imports stay inside the handler)."""
    from speat_metric.cli import _paragraphs, evaluation_options
    from speat_metric.hub.on_event import add_event_policy_options

    parser = hub_commands.add_parser(
        "webhook", parents=[evaluation_options()], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run the webhook service that annotates every pushed speech encoder (or --register it on the Hub)",
        description=_paragraphs(
            "Receive Hub webhook events at POST /webhooks/speat: each push to main of a watched speech encoder is "
            "queued (in memory), evaluated at exactly that commit, and gets a card pull request. At start the "
            "service reconciles: it queues every watched main commit that neither its card nor our open pull request "
            "shows yet, so a restart loses nothing. GET /status and GET /healthz serve operations.\n\n"
            "The secret comes from $SPEAT_WEBHOOK_SECRET or --secret-file (never the command line), the token from "
            "HF_TOKEN or `hf auth login`. --register creates (or updates) the webhook on the Hub. The evaluation "
            "options are those of `speat evaluate`, but --stimuli defaults to speat and each event names the commit "
            "(no --revision). See docs/webhook.md."))
    option = parser.add_argument_group("service").add_argument
    option("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 in a Space)")
    option("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    option("--workers", type=int, default=1, help="worker threads evaluating models (default 1)")
    option("--watch", action="append", default=[], metavar="KIND:NAME", help="what the webhook watches and a "
           "starting service reconciles: user:NAME, org:NAME or model:OWNER/NAME; repeat it (default: the token's "
           "own account)")
    option("--secret-file", type=Path, help="file holding the webhook secret (default: $SPEAT_WEBHOOK_SECRET)")
    option("--secret", nargs="?", action=_RefuseSecretValue, help=argparse.SUPPRESS)
    option("--max-attempts", type=int, default=3, help="attempts per job (and at reconciling) before it fails "
           "(default 3)")
    option("--retry-delay", type=float, default=60.0, help="seconds before the first retry, doubled each time "
           "(default 60)")
    option("--allow-synthetic", action="store_true", help="allow cards from synthetic stimuli (--stimuli demo), "
           "labelled as such")
    option = parser.add_argument_group("registering the webhook on the Hub").add_argument
    option("--register", action="store_true", help="create the webhook on the Hub (or update the one posting to "
           "--target-url), then exit")
    option("--target-url", help="the service's public URL, e.g. https://OWNER-SPACE.hf.space (/webhooks/speat is "
           "added when it has no path)")
    option("--job", action="store_true", help="instead of a service: a webhook that starts a Job running `speat hub "
           "on-event` with these options for every event (docs/webhook.md)")
    add_job_options(parser, what="the Job of each event")
    add_event_policy_options(parser)
    add_source_options(parser)
    parser.set_defaults(handler=run, stimuli="speat")  # the study's stimuli, as a card deserves
    for action in parser._actions:
        if action.dest == "stimuli":
            action.help = action.help.replace("(default demo)", "(default speat; demo needs --allow-synthetic)")


class _RefuseSecretValue(argparse.Action):
    """``--secret VALUE`` is refused without echoing VALUE (a secret in a command line shows in ``ps``)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.error("--secret is not accepted: a secret on the command line shows in `ps` and the shell history; "
                     "set SPEAT_WEBHOOK_SECRET or give --secret-file FILE")


def run(args: argparse.Namespace) -> int:
    """The ``speat hub webhook`` handler."""
    require_extra("hub", "hub webhook")
    from huggingface_hub import get_token

    from speat_metric.hub.json_logs import configure_logging
    from speat_metric.hub.on_event import event_policy, event_settings
    from speat_metric.hub.webhook.server import ServiceConfig, build_server
    from speat_metric.hub.webhooks import describe, load_secret, parse_watched, register_webhook

    secret, token = load_secret(args.secret_file), get_token() or ""  # the token is read only to redact it
    if args.job:
        from speat_metric.hub.on_event import register_from_options

        return register_from_options(args, secret, token)
    if args.register or args.target_url is not None:
        if not args.register:
            raise ValueError("--target-url is for --register; add --register to create the webhook")
        if args.target_url is None:
            raise ValueError("--register needs --target-url URL: where the Hub should send the events")
        configure_logging(redact=[secret.value, token])
        webhook, created = register_webhook(args.target_url, secret=secret, watched=args.watch)
        print(f"{'created' if created else 'updated'} {describe(webhook)}")
        return 0
    parse_watched(args.watch)  # a bad item fails now, not at reconciling
    config = ServiceConfig(secret=secret, settings=event_settings(args), host=args.host, port=args.port,
                           workers=args.workers, allow_synthetic=args.allow_synthetic, max_attempts=args.max_attempts,
                           retry_delay=args.retry_delay, reconcile=True, watched=tuple(args.watch), redact=[token],
                           source=source_from_options(args), policy=event_policy(args))
    configure_logging(redact=[secret.value, token])
    build_server(config).run()
    return 0
