"""Reconciliation at start: the Hub pull request, not a local disk, is the record of what was annotated, so a starting
service queues every watched speech encoder's ``main`` commit that neither our entries on ``main`` nor our open pull
request show up to date. Events a dead process acknowledged (a crash, a SIGKILL, a Space restart) are not lost.

"Up to date" is `annotate_model`'s own rule (`card_up_to_date`); what this misses, `annotate_model` finds before
evaluating.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from speat_metric.hub.json_logs import log_event
from speat_metric.hub.webhook_events import WorkItem

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings
    from speat_metric.hub.campaign_policy import OptOutList
    from speat_metric.hub.hub import HubClient

logger = logging.getLogger(__name__)


def watched_models(client: HubClient, watched: Sequence[str]) -> list[str]:
    """The speech encoders ``KIND:NAME`` items name (`find_speech_models` for an account); none: the token's."""
    from speat_metric.hub.batch import find_speech_models
    from speat_metric.hub.webhooks import parse_watched

    models: list[str] = []
    for item in parse_watched(watched or [f"user:{client.user()}"]):
        if item.type == "model":
            models.append(item.name)
        else:  # the Hub's search matches anywhere in the id: keep the owner's own
            models += [model for model in find_speech_models(client, search=f"{item.name}/")
                       if model.startswith(f"{item.name}/")]
    return list(dict.fromkeys(models))


def is_annotated(client: HubClient, repo_id: str, commit: str, settings: EvaluationSettings) -> bool:
    """Whether our entries on ``main`` or in our open pull request are up to date at `commit` (`card_up_to_date`),
    or the owner declined our pull request."""
    from speat_metric.hub.annotate import card_up_to_date, settings_fingerprint
    from speat_metric.hub.card import README_PATH

    ours = client.speat_pull_requests(repo_id)
    if ours.declined is not None and ours.open is None:
        return True
    fingerprint = settings_fingerprint(dataclasses.replace(settings, revision=commit))
    return any(card_up_to_date(client, repo_id, client.read_text(repo_id, README_PATH, revision=revision), commit,
                               fingerprint) is not None
               for revision in ([ours.open.revision] if ours.open else []) + ["main"])


def stale_commits(watched: Sequence[str], settings: EvaluationSettings, *, endpoint: str | None = None,
                  opt_out: OptOutList | None = None) -> Iterator[WorkItem]:
    """The watched ``main`` commits not annotated, as work; repositories on the `opt_out` list are not read. A
    repository that cannot be read is skipped, one whose card cannot be checked is queued; `HubError` when the
    accounts cannot be listed (the caller retries)."""
    from speat_metric.hub.hub import HubClient, HubError

    client = HubClient(endpoint=endpoint)
    for repo_id in watched_models(client, watched):
        if opt_out is not None and (reason := opt_out.reason(repo_id)) is not None:
            log_event(logger, "reconcile.opted-out", f"{repo_id}: {reason}", repo=repo_id)
            continue
        try:
            info = client.info(repo_id)
        except HubError as error:
            log_event(logger, "reconcile.skipped", f"{repo_id}: {error}", level=logging.WARNING, repo=repo_id)
            continue
        try:
            if is_annotated(client, repo_id, info.sha, settings):
                continue
        except HubError as error:
            log_event(logger, "reconcile.unsure", f"{repo_id}: {error}; queued", level=logging.WARNING, repo=repo_id)
        yield WorkItem(repo_id, info.sha, private=bool(info.private), origin="reconciliation")
