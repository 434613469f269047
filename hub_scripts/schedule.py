"""``speat hub schedule``: a scheduled Hugging Face Job that runs ``speat hub annotate-many`` (e.g. nightly), so
that new speech encoders get their card pull request without a server; ``--list`` and ``--delete ID`` manage them.

    speat hub schedule --cron "0 3 * * *" --state-bucket acme/speat-campaign --source-space acme/speat \\
        -- --search hubert --tier popular --max-prs-per-day 20 --opt-out acme/speat-opt-out

Everything after ``--`` is ``speat hub annotate-many``'s options, checked by its parser now. The campaign's state
file (what was annotated at which commit, the pull requests opened per day, the repositories whose owner declined)
lives in a writable Hub bucket mounted at `STATE_MOUNT`, so each run resumes where the last one stopped and the daily
cap counts across runs. Runs never overlap (a tick while the last run goes on is skipped).

Example:
    >>> check_cron("0 3 * * *"), check_cron("@daily")
    ('0 3 * * *', '@daily')
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from speat_metric.extras import require_extra
from speat_metric.hub.source import add_source_options, source_from_options

if TYPE_CHECKING:
    from huggingface_hub import ScheduledJobInfo

    from speat_metric.hub.jobs import JobRuntime

STATE_MOUNT = "/state"
STATE_FILE = f"{STATE_MOUNT}/annotate-many.json"
SCHEDULE_LABEL = {"speat": "schedule"}
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z]+$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def add_parser(hub_commands: argparse._SubParsersAction) -> None:
    """Add ``schedule`` to the ``speat hub`` parser (heavy imports stay inside the handler)."""
    from speat_metric.hub.jobs import add_job_options

    parser = hub_commands.add_parser(
        "schedule", help="run `speat hub annotate-many` as a scheduled Hugging Face Job (e.g. nightly back-fills)",
        usage="speat hub schedule (--cron CRON --state-bucket OWNER/NAME [job options] -- [annotate-many options]"
        " | --list | --delete ID)",
        description="Create a scheduled Job that runs `speat hub annotate-many` with the options after `--` (see "
        "speat hub annotate-many --help), e.g. --search hubert --tier popular --max-prs-per-day 20. Its state file "
        f"lives in the writable bucket --state-bucket, mounted at {STATE_MOUNT}, so that every run resumes the "
        "campaign and counts the pull requests of the day. The token goes in the Job's secrets. --list shows the "
        "scheduled Jobs this command made; --delete removes one. See docs/hub.md.")
    action = parser.add_mutually_exclusive_group().add_argument
    action("--cron", default=None, metavar="CRON", help='when to run: a cron line ("0 3 * * *": 03:00 UTC daily) '
           "or @hourly, @daily, @weekly, @monthly")
    action("--list", action="store_true", help="list the scheduled Jobs made by speat hub schedule")
    action("--delete", default=None, metavar="ID", help="delete this scheduled Job")
    parser.add_argument("--state-bucket", default=None, metavar="OWNER/NAME", help="the Hub bucket (create it "
                        f"once, private) that keeps the campaign's state between runs, mounted at {STATE_MOUNT}")
    parser.add_argument("annotate_many", nargs="*", metavar="ANNOTATE-MANY-OPTION",
                        help="after --: the options of speat hub annotate-many (not --state)")
    add_job_options(parser, what="each scheduled run")
    add_source_options(parser)
    parser.set_defaults(handler=run)


def check_cron(schedule: str) -> str:
    """`schedule` when it is a five-field cron line or a macro; ValueError naming it otherwise."""
    fields = schedule.split()
    if schedule in _CRON_MACROS or (len(fields) == 5 and all(_CRON_FIELD.match(field) for field in fields)):
        return schedule
    raise ValueError(f"--cron {schedule!r} is not a schedule: give five cron fields (minute hour day month weekday, "
                     f"e.g. '0 3 * * *') or one of {', '.join(_CRON_MACROS)}")


def annotate_many_arguments(options: Sequence[str]) -> list[str]:
    """``hub annotate-many OPTIONS --state STATE_FILE``, checked by annotate-many's own parser.

    Raises:
        ValueError: ``--state`` given, or options annotate-many refuses (with its parser's reason).
    """
    from speat_metric.cli import build_parser

    if any(option == "--state" or option.startswith("--state=") for option in options):
        raise ValueError(f"--state is not an option here: the scheduled Job keeps its state at {STATE_FILE} in "
                         "--state-bucket")
    arguments, said = ["hub", "annotate-many", *options, "--state", STATE_FILE], io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # argparse prints its usage, then the error: keep the error only
            build_parser("hub").parse_args(arguments)
    except SystemExit:
        reason = said.getvalue().strip().splitlines()[-1:] or ["see speat hub annotate-many --help"]
        raise ValueError(f"speat hub annotate-many refuses the options after --: {' '.join(options)!r} "
                         f"({reason[0].split(': error: ', 1)[-1]})") from None
    return arguments


def create_schedule(runtime: JobRuntime, cron: str, arguments: Sequence[str], *, state_bucket: str,
                    endpoint: str | None = None, token: str | None = None) -> ScheduledJobInfo:
    """Schedule ``speat ARGUMENTS`` with `state_bucket` mounted writable at `STATE_MOUNT`; never two runs at once.

    Raises:
        ValueError: a bad schedule or bucket id, or no token.
    """
    from huggingface_hub import HfApi, Volume, get_token

    from speat_metric.hub.jobs import speat_job_spec
    from speat_metric.repo_ids import check_repo_id

    check_cron(cron)
    check_repo_id(state_bucket, "--state-bucket", "my-org/speat-campaign")
    token = token or get_token()
    if not token:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`); the scheduled Job gets it as "
                         "a secret")
    spec = speat_job_spec(runtime, arguments, token=token, labels=SCHEDULE_LABEL)
    spec["volumes"] = [*(spec["volumes"] or []), Volume(type="bucket", source=state_bucket, mount_path=STATE_MOUNT)]
    return HfApi(endpoint=endpoint).create_scheduled_job(schedule=cron, concurrency=False, **spec, token=token)


def describe(scheduled: ScheduledJobInfo) -> str:
    """One line about a scheduled Job: id, schedule, state, last run and command (never its secrets' values)."""
    last = scheduled.status.last_job.id if scheduled.status and scheduled.status.last_job else "none yet"
    return (f"{scheduled.id} {scheduled.schedule!r} ({'suspended' if scheduled.suspend else 'active'}; last Job "
            f"{last}): {' '.join(scheduled.job_spec.command or [])}")


def run(args: argparse.Namespace) -> int:
    """The ``speat hub schedule`` handler."""
    require_extra("hub", "hub schedule")
    from huggingface_hub import HfApi

    from speat_metric.hub.jobs import job_runtime
    from speat_metric.hub.on_event import option_arguments

    api = HfApi()
    if args.list or args.delete is not None:
        if args.annotate_many or args.state_bucket:
            raise ValueError("--list and --delete take no annotate-many options nor --state-bucket")
        if args.delete is not None:
            api.delete_scheduled_job(scheduled_job_id=args.delete, namespace=args.namespace)
            print(f"deleted scheduled Job {args.delete}")
            return 0
        namespace = args.namespace or api.whoami()["name"]  # list_scheduled_jobs asks the default endpoint otherwise
        for scheduled in api.list_scheduled_jobs(labels=SCHEDULE_LABEL, namespace=namespace):
            print(describe(scheduled))
        return 0
    if args.cron is None:
        raise ValueError("give --cron CRON to create a scheduled Job (or --list, or --delete ID)")
    if args.state_bucket is None:
        raise ValueError(f"--state-bucket OWNER/NAME is needed: the campaign's state must outlive each run (mounted "
                         f"at {STATE_MOUNT})")
    check_cron(args.cron)
    sources = argparse.ArgumentParser(add_help=False)
    add_source_options(sources)
    arguments = annotate_many_arguments([*args.annotate_many, *option_arguments(sources, args)])
    runtime = job_runtime(args, source_from_options(args).install if args.source_space else None)
    scheduled = create_schedule(runtime, args.cron, arguments, state_bucket=args.state_bucket)
    print(f"created scheduled Job {describe(scheduled)}")
    return 0
