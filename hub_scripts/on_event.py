"""``speat hub on-event``: the command a Hub webhook's Job runs, and ``speat hub webhook --register --job``, which
creates that webhook. No server: the Hub starts one Job per event, with the event in ``WEBHOOK_PAYLOAD``.

    speat hub webhook --register --job --source-space acme/speat --watch org:acme     # once (docs/webhook.md)
    speat hub on-event --stimuli speat                                                # what each Job runs

`handle_event` applies the service's filters (`speat_metric.hub.webhook_events`: model repositories, pushes to main,
not our own pull requests; `screen_commit`: a speech encoder, not a card-only push), the operator's opt-out list
(`speat_metric.hub.campaign_policy`), then annotates the model at the event's commit (`annotate_model`, idempotent:
a replayed event finds our pull request up to date). The Job prints one JSON line saying what happened.

Example:
    >>> handle_event("", settings=None)["status"]
    'template'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from speat_metric.extras import require_extra
from speat_metric.hub.source import SpeatSource, add_source_options, source_from_options

if TYPE_CHECKING:
    from huggingface_hub import HfApi, JobInfo, WebhookInfo

    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.campaign_policy import CampaignPolicy
    from speat_metric.hub.jobs import JobRuntime
    from speat_metric.hub.webhooks import WebhookSecret

PAYLOAD_VARIABLE = "WEBHOOK_PAYLOAD"
TEMPLATE_LABEL = {"speat": "webhook-template"}
TEMPLATE_TIMEOUT = 900.0
"""Seconds registering waits for the template Job (installing speat on a plain image takes a few minutes)."""
TEMPLATE_POLL_SECONDS = 1.0
"""The label of the Job run once at registering, whose spec the webhook copies for every event."""


def add_event_policy_options(parser: argparse.ArgumentParser) -> None:
    """``--opt-out``, ``--max-prs-per-day`` and ``--ledger``: the manners of every event's work, in the service and in
    the Jobs of a webhook (read back by `event_policy`)."""
    from speat_metric.hub.cli import _add_opt_out_option

    _add_opt_out_option(parser)
    parser.add_argument("--max-prs-per-day", type=int, default=None, metavar="N", help="open at most N new pull "
                        "requests per UTC day, counted in --ledger; an event over the cap waits for the next day (the "
                        "service keeps it queued; a Job leaves it to the next push or to `speat hub schedule`) "
                        "(default: no cap)")
    parser.add_argument("--ledger", default=None, metavar="OWNER/NAME", help="the Hub dataset (it must exist) "
                        "where --max-prs-per-day is counted, shared by restarts, workers and Jobs")


def event_policy(args: argparse.Namespace) -> CampaignPolicy:
    """The `CampaignPolicy` of `add_event_policy_options`, every option checked (the ledger dataset must exist)."""
    from speat_metric.hub.campaign_policy import CampaignPolicy, SharedLedger, check_max_prs_per_day
    from speat_metric.hub.cli import _opt_out
    from speat_metric.hub.hub import HubClient
    from speat_metric.repo_ids import check_repo_id

    check_max_prs_per_day(args.max_prs_per_day)
    if (args.max_prs_per_day is None) != (args.ledger is None):
        raise ValueError("--max-prs-per-day and --ledger go together: events are handled by many processes (Jobs, "
                         "workers, restarts), which count the day's pull requests in the --ledger Hub dataset")
    shared = None
    if args.ledger is not None:
        check_repo_id(args.ledger, "--ledger", "my-org/speat-ledger")
        HubClient().head(args.ledger, repo_type="dataset")  # a missing dataset fails now, not at the first event
        shared = SharedLedger(args.ledger)
    return CampaignPolicy(opt_out=_opt_out(args.opt_out), max_prs_per_day=args.max_prs_per_day, shared=shared)


def add_parser(hub_commands: argparse._SubParsersAction) -> None:
    """Add ``on-event`` to the ``speat hub`` parser (heavy imports stay inside the handler)."""
    from speat_metric.cli import evaluation_options

    parser = hub_commands.add_parser(
        "on-event", parents=[evaluation_options()],
        help="annotate the model of the webhook event in $WEBHOOK_PAYLOAD (what a webhook's Job runs)",
        description="Read the Hub webhook event in $WEBHOOK_PAYLOAD (set by the Hub in a Job a webhook starts: "
        "speat hub webhook --register --job), apply the webhook service's filters (a speech encoder, the main "
        "branch, not our own pull request or card push) and the --opt-out list, and annotate the model at the "
        "event's commit with a card pull request. Prints one JSON line. An empty $WEBHOOK_PAYLOAD (the template "
        "run made at registering) does nothing. The evaluation options are those of `speat evaluate`, with --stimuli "
        "speat by default; the event names the commit (no --revision).")
    parser.add_argument("--allow-synthetic", action="store_true", help="allow cards from synthetic stimuli "
                        "(--stimuli demo), labelled as such")
    add_event_policy_options(parser)
    add_source_options(parser)
    parser.set_defaults(handler=run, stimuli="speat")


def run(args: argparse.Namespace) -> int:
    """The ``speat hub on-event`` handler."""
    require_extra("hub", "hub on-event")
    payload = os.environ.get(PAYLOAD_VARIABLE)
    if payload is None:  # before any other work: this command only makes sense inside a webhook's Job
        raise ValueError(f"${PAYLOAD_VARIABLE} is not set: `speat hub on-event` runs in the Job a Hub webhook starts "
                         "(speat hub webhook --register --job); to try it, set it to an event's JSON")
    settings = event_settings(args)
    result = handle_event(payload, settings=settings, policy=event_policy(args), allow_synthetic=args.allow_synthetic,
                          source=source_from_options(args))
    print(json.dumps(result))
    return 0


def handle_event(payload: str, *, settings: EvaluationSettings | None, policy: CampaignPolicy | None = None,
                 allow_synthetic: bool = False, source: SpeatSource = SpeatSource(), endpoint: str | None = None,
                 token: str | None = None) -> dict[str, Any]:
    """What one webhook event asks for, done: the outcome as JSON-ready fields.

    Args:
        payload: the event's JSON (``$WEBHOOK_PAYLOAD``); empty for the template run made at registering.
        settings: how to evaluate (None only for an empty payload).
        policy: the opt-out list and the daily cap on new pull requests (`event_policy`).
        allow_synthetic, source: as for `speat_metric.hub.annotate.annotate_model`.
        endpoint, token: the Hub (None: ``HF_ENDPOINT`` and huggingface_hub's usual token).

    Returns:
        ``status``: ``template`` (empty payload), ``ignored`` (with the filter's ``reason``), ``opted-out``, or what
        `annotate_model` did (``opened-pr``, ``updated-pr``, ``unchanged``, ``deferred`` over the cap, ...), with
        ``repo_id``, ``revision``, ``pr_url`` and ``reason`` where they apply.

    Raises:
        ValueError: a payload that is not a Hub event (`PayloadError`, one line), no token, a Hub failure.
    """
    if not payload.strip():
        return {"status": "template", "reason": f"empty ${PAYLOAD_VARIABLE}: the template run made when the webhook "
                "was registered; nothing to do"}
    from speat_metric.hub.annotate import annotate_model
    from speat_metric.hub.campaign_policy import CampaignPolicy
    from speat_metric.hub.webhook_events import (
        IgnoredEvent,
        event_to_work,
        own_account_ids,
        parse_payload,
        screen_commit,
    )

    event = parse_payload(payload)  # a malformed payload fails before the Hub is asked who we are
    own = own_account_ids(endpoint) if event.discussion is not None else frozenset()
    work = event_to_work(event, own_user_ids=own)
    if isinstance(work, IgnoredEvent):
        return {"status": "ignored", "reason": work.reason}
    where = {"repo_id": work.repo_id, "revision": work.revision}
    policy = policy or CampaignPolicy()
    if (reason := policy.skip_reason(work.repo_id)) is not None:  # not even screened: no request to that repository
        return {"status": "opted-out", **where, "reason": reason}
    screening = screen_commit(work, endpoint=endpoint, token=token)
    if not screening.annotate:
        return {"status": "ignored", **where, "reason": screening.reason}
    outcome = annotate_model(work.repo_id, revision=work.revision, settings=settings, create_pr=True,
                             allow_synthetic=allow_synthetic, source=source, policy=policy, token=token,
                             endpoint=endpoint)
    return {"status": outcome.status, **where, "pr_url": outcome.pr_url, "commit": outcome.commit,
            "reason": outcome.reason}


def option_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The command-line options of `parser` that give `args` their values, every value spelled out (a Job's command
    then does not depend on the defaults of the speat it installs); flags only when set, None values left out."""
    arguments: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help" or not hasattr(args, action.dest):
            continue
        value, flag = getattr(args, action.dest), action.option_strings[-1]
        if action.nargs == 0:  # store_true, store_false, store_const
            arguments += [flag] if value == action.const and value != action.default else []
        elif isinstance(value, list):
            for item in value:
                arguments += [flag, str(item)]
        elif value is not None:
            arguments += [flag, str(value)]
    return arguments


def on_event_arguments(args: argparse.Namespace) -> list[str]:
    """``hub on-event ...`` with the evaluation, opt-out and source options of the registering command."""
    from speat_metric.cli import evaluation_options

    chosen = evaluation_options()
    chosen.add_argument("--allow-synthetic", action="store_true")
    for name in ("--opt-out", "--max-prs-per-day", "--ledger", "--source-space", "--source-url", "--requirement"):
        chosen.add_argument(name)
    return ["hub", "on-event", *option_arguments(chosen, args)]


def register_job_webhook(runtime: JobRuntime, arguments: Sequence[str], *, secret: WebhookSecret,
                         watched: Sequence[str] = (), endpoint: str | None = None, token: str | None = None
                         ) -> tuple[WebhookInfo, JobInfo, bool]:
    """Run the template Job of ``speat ARGUMENTS`` (an empty ``WEBHOOK_PAYLOAD``: it does nothing) and create the
    webhook that starts a copy of it for every ``repo`` event of `watched` (default: the token's account), or point
    our existing Job webhook at it. The token goes in the webhook's Job secrets only.

    Returns:
        The webhook, the template Job, and whether the webhook was created (False: updated).

    Raises:
        ValueError: a bad watched item, no token, or a template Job that did not complete (then no webhook is made).
    """
    from huggingface_hub import HfApi, WebhookWatchedItem, get_token

    from speat_metric.hub.jobs import run_speat_job
    from speat_metric.hub.webhooks import DOMAINS, parse_watched

    items, api = parse_watched(watched), HfApi(endpoint=endpoint, token=token)
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) to register the webhook; the "
                         "Jobs it starts get it as a secret")
    items = items or [WebhookWatchedItem(type="user", name=api.whoami()["name"])]
    template = dataclasses.replace(runtime, env={**runtime.env, PAYLOAD_VARIABLE: ""})
    job = wait_for_template(api, run_speat_job(api, template, arguments, token=token, labels=TEMPLATE_LABEL))
    options = dict(job_id=job.id, watched=items, domains=DOMAINS, secret=secret.value, secrets={"HF_TOKEN": token})
    same_watch = {(item.type, item.name) for item in items}
    ours = next((hook for hook in api.list_webhooks() if hook.job is not None
                 and "hub on-event" in " ".join(hook.job.command or [])
                 and {(item.type, item.name) for item in hook.watched} == same_watch), None)
    if ours is not None:
        return api.update_webhook(ours.id, **options), job, False
    return api.create_webhook(**options), job, True


def wait_for_template(api: HfApi, job: JobInfo, *, timeout: float = TEMPLATE_TIMEOUT) -> JobInfo:
    """`job` once it completed; a ValueError naming its stage and last log line when it failed, was cancelled or
    ran past `timeout` seconds: a webhook copying a Job that cannot start speat would fail on every event."""
    from huggingface_hub import JobStage

    unfinished, namespace = (JobStage.SCHEDULING, JobStage.RUNNING), job.owner.name
    deadline = time.monotonic() + timeout
    while (info := api.inspect_job(job_id=job.id, namespace=namespace)).status.stage in unfinished:
        if time.monotonic() > deadline:
            raise ValueError(f"the template Job {job.id} still runs after {timeout:.0f} s: no webhook was made; "
                             f"see its log (hf jobs logs {job.id})")
        time.sleep(TEMPLATE_POLL_SECONDS)
    if info.status.stage == JobStage.COMPLETED:
        return info
    logs = [line.strip() for line in api.fetch_job_logs(job_id=job.id, namespace=namespace, tail=5) if line.strip()]
    said = f"; its last line: {logs[-1][:300]!r}" if logs else ""
    message = f" ({info.status.message})" if info.status.message else ""
    stage = getattr(info.status.stage, "value", info.status.stage)
    raise ValueError(f"the template Job {job.id} ended {stage}{message}{said}: no webhook was made; "
                     "check --image, --source-space and the options")


def register_from_options(args: argparse.Namespace, secret: WebhookSecret, token: str) -> int:
    """``speat hub webhook --register --job``: `register_job_webhook` with the command's options."""
    from speat_metric.hub.jobs import job_runtime
    from speat_metric.hub.json_logs import configure_logging
    from speat_metric.hub.webhooks import describe

    if not args.register or args.target_url is not None:
        raise ValueError("--job goes with --register and without --target-url: the Hub starts a Job per event")
    event_settings(args), event_policy(args)  # bad options fail now, not in every Job
    runtime = job_runtime(args, source_from_options(args).install if args.source_space else None)
    configure_logging(redact=[secret.value, token])
    webhook, job, created = register_job_webhook(runtime, on_event_arguments(args), secret=secret, watched=args.watch)
    print(f"{'created' if created else 'updated'} {describe(webhook)} (template Job {job.id})")
    return 0


def event_settings(args: argparse.Namespace) -> EvaluationSettings:
    """The evaluation settings of an event's work (``speat hub on-event``'s and the webhook service's), checked
    before any event."""
    from speat_metric.cli import evaluation_settings
    from speat_metric.evaluation import resolve_device
    from speat_metric.hub.annotate import check_settings
    from speat_metric.stimuli import get_speat_test

    if args.revision is not None:
        raise ValueError("--revision does not apply: the service evaluates the commit each event names")
    settings = dataclasses.replace(evaluation_settings(args), progress=False)
    check_settings(settings, allow_synthetic=args.allow_synthetic)
    resolve_device(settings.device)  # fail now, not at the first event
    for test in settings.tests:
        if not test.endswith(".json"):
            get_speat_test(test)
        elif not os.path.isfile(test):
            raise FileNotFoundError(f"--tests: custom test file {test!r} does not exist")
    return settings
