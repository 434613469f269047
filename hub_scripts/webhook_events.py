"""Which Hub webhook events (version 3 payloads) ask for work, and whether their commit is a speech encoder to annotate:
one module for the service and for the Job a webhook starts (payload in ``WEBHOOK_PAYLOAD``). `event_to_work` asks
nothing of the Hub (the service answers the request with it); `screen_commit` then asks what the commit holds."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import WebhookPayload, WebhookPayloadRepo
from pydantic import AliasChoices, Field, ValidationError

logger = logging.getLogger(__name__)

MAIN_REF = "refs/heads/main"
CONTENT_SCOPE = "repo.content"
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class PayloadError(ValueError):
    """Not a Hub webhook payload this service reads (the service answers 422)."""


class WebhookRepo(WebhookPayloadRepo):
    """huggingface_hub 2.4 names the head commit ``head_sha`` without an alias (the Hub's ``headSha`` would be
    dropped), and the Hub adds repository types (buckets, ...), which are ignored, not refused."""

    head_sha: str | None = Field(default=None, validation_alias=AliasChoices("headSha", "head_sha"))
    type: str


class HubWebhookPayload(WebhookPayload):
    repo: WebhookRepo


@dataclass(frozen=True)
class WorkItem:
    """Annotate `repo_id` at `revision`; `base_revision`: main before the push (None: unknown or new); `origin`:
    ``event`` or ``reconciliation``."""

    repo_id: str
    revision: str
    base_revision: str | None = None
    private: bool = False
    origin: str = "event"


@dataclass(frozen=True)
class IgnoredEvent:
    reason: str


@dataclass(frozen=True)
class Screening:
    annotate: bool
    reason: str
    model_type: str | None = None


def parse_payload(body: bytes | str | dict[str, Any]) -> HubWebhookPayload:
    """A body (or ``WEBHOOK_PAYLOAD``, or its dict) as a typed payload; `PayloadError` names the first wrong field."""
    try:
        if isinstance(body, dict):
            return HubWebhookPayload.model_validate(body)
        return HubWebhookPayload.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "json_invalid":
            raise PayloadError(f"the body is not JSON ({first['msg']})") from None
        if where == "webhook.version":
            raise PayloadError(f"webhook.version {first.get('input')!r} is not supported: this service reads "
                               "version 3 payloads") from None
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise PayloadError(f"not a Hub webhook payload: {where}: {first['msg']}{more}") from None


def event_to_work(payload: bytes | str | dict[str, Any] | HubWebhookPayload, *,
                  own_user_ids: Collection[str] = ()) -> WorkItem | IgnoredEvent:
    """A `WorkItem` for a push that moved a model repository's main branch, else an `IgnoredEvent` with the reason
    (`own_user_ids`, the Hub ids we write as, name our own discussions); `PayloadError` for a malformed payload."""
    if not isinstance(payload, HubWebhookPayload):
        payload = parse_payload(payload)
    repo, event = payload.repo, payload.event
    if repo.type != "model":
        return IgnoredEvent(f"{repo.type} repository: only model repositories are annotated")
    if payload.discussion is not None:
        kind = "pull request" if payload.discussion.isPullRequest else "discussion"
        if payload.discussion.author.id in own_user_ids:
            return IgnoredEvent(f"event on our own {kind} #{payload.discussion.num}")
        return IgnoredEvent(f"{event.scope} event on {kind} #{payload.discussion.num}: only content updates are "
                            "annotated")
    if event.scope != CONTENT_SCOPE and not event.scope.startswith(CONTENT_SCOPE + "."):
        return IgnoredEvent(f"{event.scope} {event.action} event: only content updates (repo.content) are annotated")
    _check_repo_id(repo.name)
    base = None
    if payload.updatedRefs is not None:
        main = next((ref for ref in payload.updatedRefs if ref.ref == MAIN_REF), None)
        if main is None:
            refs = ", ".join(ref.ref for ref in payload.updatedRefs) or "no refs"
            return IgnoredEvent(f"the push updates {refs}, not the main branch")
        if main.newSha is None:
            return IgnoredEvent("the main branch was deleted")
        revision, base = main.newSha, main.oldSha
    elif repo.head_sha is not None:
        revision = repo.head_sha
    else:
        return IgnoredEvent("the event names no commit (neither updatedRefs nor repo.headSha)")
    for name, sha in (("newSha", revision), ("oldSha", base)):
        if sha is not None and not _COMMIT_SHA.match(sha):
            raise PayloadError(f"{name} {sha!r} is not a commit sha (40 lowercase hexadecimal digits)")
    return WorkItem(repo.name, revision, base, repo.private)


def content_update_payload(repo_id: str, revision: str, *, base_revision: str | None = None, private: bool = False,
                           repo_type: str = "model", ref: str = MAIN_REF) -> dict[str, Any]:
    """The payload the Hub sends when a push moves `ref` to `revision` (to try a deployment by hand; tests)."""
    web = f"https://huggingface.co/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
    return {"event": {"action": "update", "scope": CONTENT_SCOPE},
            "repo": {"type": repo_type, "name": repo_id, "id": "0" * 24, "private": private,
                     "url": {"web": web, "api": f"https://huggingface.co/api/{repo_type}s/{repo_id}"},
                     "headSha": revision, "owner": {"id": "0" * 24}},
            "updatedRefs": [{"ref": ref, "oldSha": base_revision, "newSha": revision}],
            "webhook": {"id": "0" * 24, "version": 3}}


def screen_commit(item: WorkItem, *, endpoint: str | None = None, token: str | None = None,
                  cache_dir: str | Path | None = None) -> Screening:
    """Whether the commit of `item` is a speech encoder to annotate (docs/webhook.md). The loop guard (events only):
    a push that changed nothing or only the card (our commits, the merge of our pull request) is ignored, judged by
    the files it touches. Then ``config.json`` there must name a ``model_type`` speat reads. Hub errors but a missing
    repository or commit are raised (the caller retries)."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    from speat_metric.adapters.base import ModelLoadError
    from speat_metric.adapters.preflight import check_model_type
    from speat_metric.hub.card import is_card_path
    from speat_metric.hub.hub import HubClient

    client = HubClient(token=token, endpoint=endpoint)
    try:
        if item.origin == "event":
            commits = client.api.list_repo_commits(item.repo_id, revision=item.revision)
            base = item.base_revision or (commits[1].commit_id if len(commits) > 1 else None)
            # A base that no longer exists (squashed or force-pushed history): anything may have changed.
            changed = client.changed_paths(item.repo_id, base, item.revision) if base else None
            if changed is not None and not changed:
                return Screening(False, "the push changes no file")
            if changed is not None and all(is_card_path(path) for path in changed):
                return Screening(False, f"only the model card changed ({', '.join(sorted(changed))}); the model is "
                                 "unchanged")
        path = client.api.hf_hub_download(item.repo_id, "config.json", revision=item.revision, cache_dir=cache_dir)
    except RepositoryNotFoundError:
        return Screening(False, "the repository does not exist, or our token cannot read it")
    except RevisionNotFoundError:
        return Screening(False, f"commit {item.revision} no longer exists in the repository")
    except EntryNotFoundError:
        return Screening(False, "no config.json at this commit: not a transformers model speat reads")
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return Screening(False, f"config.json at this commit is not readable JSON ({error.__class__.__name__})")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    try:
        check_model_type(model_type, item.repo_id)
    except ModelLoadError as error:
        return Screening(False, str(error), model_type)
    return Screening(True, f"a {model_type!r} speech encoder", model_type)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PayloadError(f"repo.name {repo_id!r} is not a Hub repository id ({error})") from None
    if "/" not in repo_id:
        raise PayloadError(f"repo.name {repo_id!r} is not a Hub repository id: expected owner/name")


def own_account_ids(endpoint: str | None) -> frozenset[str]:
    """The id and name of the account our token writes as (discussions it opened are ours); a ValueError without a
    token or when the Hub rejects it, nothing (with a warning) when the Hub cannot be asked."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        info = HfApi(endpoint=endpoint).whoami()
    except LocalTokenNotFoundError:
        raise ValueError("no Hugging Face token: set HF_TOKEN (or run `hf auth login`) with a token that can open "
                         "pull requests on the watched repositories") from None
    except Exception as error:  # the Hub unreachable: events queue; jobs retry later
        if isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code == 401:
            raise ValueError("the Hub rejects the Hugging Face token (401); set HF_TOKEN to a valid token") from None
        logger.warning("cannot ask the Hub who we are (%s); going on", type(error).__name__)
        return frozenset()
    return frozenset(str(value) for value in (info.get("id"), info.get("name")) if value)
