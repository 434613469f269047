"""Good citizenship on other people's repositories, the same for every way speat annotates (a batch, a Job, a webhook).

- `OptOutList`: the owners and repositories that asked speat to leave them alone, read from the operator's file or
  Hub dataset (`load_opt_out`): one ``owner`` or ``owner/repo`` per line, ``#`` comments allowed; a ``.csv`` file's
  first column is read and may have a header.
- `PolicyLedger`: what a campaign remembers between runs (the batch keeps it in its state file): the pull requests
  opened on each UTC day, and the repositories whose owner closed one of ours, which thereby opted out.
- `SharedLedger`: the day's count kept in a Hub dataset instead, for what runs in many processes at once or has no
  disk that lasts (the webhook service, a Job per webhook event): a claim is a commit on the head it read.
- `CampaignPolicy`: both, with the daily cap on new pull requests and a clock. `annotate_model` asks it before it
  touches a repository (`skip_reason`) and before it evaluates a model for a new pull request (`claim_pr`), and
  tells it what happened (`record`); the caller persists `ledger`.

Example:
    >>> from datetime import datetime, timezone
    >>> policy = CampaignPolicy(opt_out=parse_opt_out("facebook  # asked by mail\\nlab/private-model\\n"),
    ...                         max_prs_per_day=1, clock=lambda: datetime(2025, 3, 1, 9, tzinfo=timezone.utc))
    >>> policy.skip_reason("facebook/hubert-base-ls960")
    "owner 'facebook' is on the opt-out list"
    >>> policy.claim_pr("me/model"), policy.record("me/model", "opened-pr", "https://hf.co/me/model/discussions/1")
    (True, None)
    >>> policy.claim_pr("me/other"), policy.budget_resets_at().isoformat()
    (False, '2025-03-02T00:00:00+00:00')
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speat_metric.hub.hub import HubClient

OPT_OUT_FILES = ("opt-out.txt", "opt-out.csv")
"""The file of an opt-out Hub dataset (``--opt-out OWNER/NAME``), the first that exists at main."""

_OWNER_OR_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_CSV_HEADERS = {"owner", "repo", "repository", "repo_id", "id", "owner/repo", "name"}


def utc_now() -> datetime:
    """The current time, in UTC (the default clock of `CampaignPolicy`)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class OptOutList:
    """Owners and repositories that declined (matched without regard to case, as the Hub's names are).

    Attributes:
        owners: lower-cased owner names.
        repos: lower-cased ``owner/name`` ids.
        source: where the list came from (a file or ``dataset OWNER/NAME``), for messages.
        dataset: the Hub dataset it was read from, named in pull-request bodies (None for a local file).
    """

    owners: frozenset[str] = frozenset()
    repos: frozenset[str] = frozenset()
    source: str | None = None
    dataset: str | None = None

    def reason(self, repo_id: str) -> str | None:
        """Why `repo_id` is opted out, or None when it is not."""
        owner = repo_id.split("/", 1)[0]
        where = f" in {self.source}" if self.source else ""
        if owner.lower() in self.owners:
            return f"owner {owner!r} is on the opt-out list{where}"
        if repo_id.lower() in self.repos:
            return f"{repo_id!r} is on the opt-out list{where}"
        return None


def parse_opt_out(text: str, *, where: str | None = None, csv_format: bool = False,
                  dataset: str | None = None) -> OptOutList:
    """The entries of an opt-out file's text.

    Args:
        text: one ``owner`` or ``owner/repo`` per line; ``#`` starts a comment; blank lines are ignored.
        where: the file's name, in messages and as the list's `OptOutList.source`.
        csv_format: read the first column of each row; a first row naming a column (``owner``, ``repo``, ...) is
            a header.
        dataset: the Hub dataset the text came from.

    Raises:
        ValueError: a line that is neither an owner nor a repository id (named with its line number).
    """
    owners, repos = set(), set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if csv_format and entry:
            entry = next(csv.reader([entry]))[0].strip()
            if not owners and not repos and entry.lower() in _CSV_HEADERS:
                continue
        if not entry:
            continue
        if not _OWNER_OR_REPO.match(entry):
            raise ValueError(f"{where or 'opt-out list'}:{number}: {entry!r} is neither an owner nor an OWNER/NAME "
                             "repository")
        (repos if "/" in entry else owners).add(entry.lower())
    return OptOutList(frozenset(owners), frozenset(repos), source=where, dataset=dataset)


def load_opt_out(spec: str, client: HubClient | None = None) -> OptOutList:
    """The opt-out list `spec` names: a local file, else a Hub dataset ``OWNER/NAME`` holding one of `OPT_OUT_FILES`.

    Raises:
        ValueError: no such file nor dataset, a dataset without an opt-out file, or a bad line (one line each).
    """
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"--opt-out {spec!r} cannot be read as UTF-8 text ({error})") from None
        return parse_opt_out(text, where=spec, csv_format=path.suffix.lower() == ".csv")
    if path.exists() or not _OWNER_OR_REPO.match(spec) or "/" not in spec:
        raise ValueError(f"--opt-out {spec!r} is neither a file nor a Hub dataset id (OWNER/NAME)")
    from speat_metric.hub.hub import HubClient, HubError

    client = client or HubClient()
    try:
        for name in OPT_OUT_FILES:
            text = client.read_text(spec, name, revision="main", repo_type="dataset")
            if text is not None:
                return parse_opt_out(text, where=f"datasets/{spec}/{name}", csv_format=name.endswith(".csv"),
                                     dataset=spec)
    except HubError as error:
        raise ValueError(f"--opt-out {spec!r} is no local file, and {error}") from None
    raise ValueError(f"--opt-out dataset {spec!r} holds neither {' nor '.join(OPT_OUT_FILES)} on its main branch")


def check_max_prs_per_day(cap: int | None) -> None:
    """Raise ValueError for a cap that is not a count (0 allows updates of our open pull requests only)."""
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise ValueError(f"--max-prs-per-day must be 0 or more, not {cap!r}")


@dataclass
class PolicyLedger:
    """What a campaign remembers between runs (JSON through `to_dict`/`from_dict`).

    Attributes:
        opened: UTC day (``YYYY-MM-DD``) -> the repositories a pull request was opened on that day, in order.
        declined: repository -> how its owner declined (``pr_url``, ``since``): closing our pull request opts the
            repository out of every later campaign.
    """

    opened: dict[str, list[str]] = field(default_factory=dict)
    declined: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"opened": {day: list(repos) for day, repos in self.opened.items()},
                "declined": {repo: dict(entry) for repo, entry in self.declined.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyLedger:
        """Raises ValueError for data that is not a ledger."""
        opened, declined = data.get("opened", {}), data.get("declined", {})
        if not (isinstance(opened, dict) and all(isinstance(repos, list) for repos in opened.values())
                and isinstance(declined, dict) and all(isinstance(entry, dict) for entry in declined.values())):
            raise ValueError("its 'policy' is not a campaign ledger ({'opened': {day: [repo]}, 'declined': {...}})")
        return cls({day: list(repos) for day, repos in opened.items()},
                   {repo: dict(entry) for repo, entry in declined.items()})


LEDGER_FILE = "ledger.json"
"""The file of a `SharedLedger` dataset: `PolicyLedger.to_dict` (only ``opened`` is used)."""


@dataclass(frozen=True)
class SharedLedger:
    """The pull requests opened per UTC day, in the Hub dataset `dataset` (it must exist; the token must write to it),
    shared by every process that opens pull requests for one operator. A claim is a commit built on the head it read
    (``parent_commit``): when another process claimed meanwhile, the Hub refuses it and the claim is tried again, so
    the cap holds however many Jobs or workers claim at once. A claim counts even if the pull request then fails."""

    dataset: str
    endpoint: str | None = None

    def claim(self, repo_id: str, day: str, cap: int, *, attempts: int = 20) -> bool:
        """Count a new pull request on `repo_id` on `day` unless `cap` are counted already; whether it was counted.

        Raises:
            HubError: the dataset cannot be read or written, or `attempts` claims in a row met another one.
        """
        from speat_metric.hub.hub import HubClient, HubConflict, HubError

        client = HubClient(endpoint=self.endpoint)
        for _ in range(attempts):
            head = client.head(self.dataset, repo_type="dataset")
            text = client.read_text(self.dataset, LEDGER_FILE, revision=head, repo_type="dataset")
            try:
                ledger = PolicyLedger.from_dict(json.loads(text) if text else {})
            except ValueError as error:
                raise HubError(f"{LEDGER_FILE} of dataset {self.dataset!r} is not a ledger ({error}); fix or delete "
                               "it") from None
            opened = ledger.opened.setdefault(day, [])
            if len(opened) >= cap:
                return False
            opened.append(repo_id)
            try:
                client.commit(self.dataset, {LEDGER_FILE: json.dumps(ledger.to_dict(), indent=1) + "\n"},
                              summary=f"speat: a pull request on {repo_id} ({day}: {len(opened)} of {cap})",
                              description="", parent_commit=head, repo_type="dataset")
                return True
            except HubConflict:
                continue  # another claim landed first: read the new count
        raise HubError(f"could not claim a pull request in dataset {self.dataset!r}: {attempts} claims in a row met "
                       "another one")


@dataclass
class CampaignPolicy:
    """The opt-out list, the daily cap on new pull requests, and the ledger they are counted in.

    Attributes:
        opt_out: the operator's opt-out list.
        max_prs_per_day: at most this many pull requests opened per UTC day (None: no cap); updating our open pull
            request, committing, dry runs and unchanged cards do not count.
        ledger: what earlier runs did (the caller loads and saves it; `record` adds to it).
        clock: the current time (tests pass a fixed one).
        shared: count the cap in this Hub dataset instead of `ledger` (many processes, no lasting disk).
    """

    opt_out: OptOutList = field(default_factory=OptOutList)
    max_prs_per_day: int | None = None
    ledger: PolicyLedger = field(default_factory=PolicyLedger)
    clock: Callable[[], datetime] = utc_now
    shared: SharedLedger | None = None

    def __post_init__(self) -> None:
        check_max_prs_per_day(self.max_prs_per_day)

    def skip_reason(self, repo_id: str, *, include_declined: bool = True) -> str | None:
        """Why `repo_id` must not be touched at all (None: it may), checked before any request to it.

        Args:
            include_declined: also skip repositories whose owner closed our pull request (``--force`` does not).
        """
        reason = self.opt_out.reason(repo_id)
        declined = self.ledger.declined.get(repo_id) if include_declined else None
        if reason is None and declined is not None:
            reason = (f"opted out: its owner closed speat's pull request {declined.get('pr_url') or '(no URL)'} "
                      f"(recorded {str(declined.get('since'))[:10]}; --force asks again)")
        return reason

    def opened_today(self) -> int:
        """How many pull requests were opened on the current UTC day."""
        return len(self.ledger.opened.get(self._day(), []))

    def may_open_pr(self) -> bool:
        """Whether `ledger` leaves room for one more pull request today."""
        return self.max_prs_per_day is None or self.opened_today() < self.max_prs_per_day

    def claim_pr(self, repo_id: str) -> bool:
        """Whether a new pull request on `repo_id` may be opened today; with a `shared` ledger, a yes is counted."""
        if self.max_prs_per_day is None:
            return True
        if self.shared is not None:
            return self.shared.claim(repo_id, self._day(), self.max_prs_per_day)
        return self.may_open_pr()

    def budget_resets_at(self) -> datetime:
        """When the next UTC day, and its budget, begins."""
        now = self.clock().astimezone(timezone.utc)
        return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)

    def deferral_reason(self) -> str:
        """Why a model waits, and until when."""
        return (f"today's cap of {self.max_prs_per_day} new pull requests is reached; the next day begins "
                f"{self.budget_resets_at():%Y-%m-%d %H:%M} UTC")

    def record(self, repo_id: str, status: str, pr_url: str | None) -> None:
        """Count an opened pull request (``opened-pr``); remember a repository whose owner closed ours
        (``skipped-owner-closed``) as opted out."""
        if status == "opened-pr":
            self.ledger.opened.setdefault(self._day(), []).append(repo_id)
            self.ledger.declined.pop(repo_id, None)  # a forced new pull request: the owner is asked again
        elif status == "skipped-owner-closed" and repo_id not in self.ledger.declined:
            self.ledger.declined[repo_id] = {"pr_url": pr_url,
                                             "since": self.clock().astimezone(timezone.utc).isoformat()}

    def _day(self) -> str:
        return self.clock().astimezone(timezone.utc).date().isoformat()
