"""Hub webhook payloads: parse them (typed, with huggingface_hub's `WebhookPayload`) and decide which ask for work.

The payload format is the Hub's webhook version 3 (https://huggingface.co/docs/hub/webhooks): ``event`` {action,
scope}, ``repo`` {type, name, id, private, headSha, ...}, ``updatedRefs`` [{ref, oldSha, newSha}] on content
changes, ``discussion`` and ``comment`` on community events, ``webhook`` {id, version}.

An event asks for an annotation when it is a content update (scope ``repo.content``) of a model repository that
moved its main branch to a commit. Everything else is acknowledged and ignored with a reason: other repository
types, discussions and comments (our own pull requests among them), pushes to pull-request refs, tags and other
branches, deleted branches. Checks that need the Hub (is the commit ours, is it a speech encoder) run later, in the
worker (`speat_metric.hub.webhook.filtering`), so that the request is answered at once.

Example:
    >>> body = b'''{"event": {"action": "update", "scope": "repo.content"},
    ...   "repo": {"type": "model", "name": "alice/tiny-hubert", "id": "6366c000a2abcdf2fd69a080", "private": false,
    ...            "url": {"web": "https://huggingface.co/alice/tiny-hubert"}, "owner": {"id": "61d2f90c3c2083e1"},
    ...            "headSha": "575db8b7a51b6f85eb06eee540738584589f131c"},
    ...   "updatedRefs": [{"ref": "refs/heads/main", "oldSha": "ce9a4674fa833a68d5a73ec355f0ea95eedd60b7",
    ...                    "newSha": "575db8b7a51b6f85eb06eee540738584589f131c"}],
    ...   "webhook": {"id": "6390e855e30d9209411de93b", "version": 3}}'''
    >>> classify(parse_payload(body)).revision
    '575db8b7a51b6f85eb06eee540738584589f131c'
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from huggingface_hub import WebhookPayload, WebhookPayloadRepo
from pydantic import AliasChoices, Field, ValidationError

MAIN_REF = "refs/heads/main"
CONTENT_SCOPE = "repo.content"
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class PayloadError(ValueError):
    """The request body is not a Hub webhook payload this service reads (answered with 422)."""


class WebhookRepo(WebhookPayloadRepo):
    """`WebhookPayloadRepo` reading the head commit as the Hub sends it: ``headSha`` (huggingface_hub 2.4 names the
    field ``head_sha`` without an alias, so the Hub's value would be dropped)."""

    head_sha: str | None = Field(default=None, validation_alias=AliasChoices("headSha", "head_sha"))
    type: str  # the Hub adds repository types (buckets, ...): an event of one we do not handle is ignored, not refused


class HubWebhookPayload(WebhookPayload):
    """huggingface_hub's `WebhookPayload` with `WebhookRepo` as its ``repo``."""

    repo: WebhookRepo


@dataclass(frozen=True)
class AnnotationRequest:
    """What an accepted event asks for: annotate `repo_id` at `revision`, the new head of its main branch.

    Attributes:
        repo_id: the model repository, ``owner/name``.
        revision: the commit sha main moved to.
        base_revision: main's commit before the push (None when the Hub did not say, or main is new).
        private: the repository is private (its name is not shown on the public status page).
    """

    repo_id: str
    revision: str
    base_revision: str | None = None
    private: bool = False


@dataclass(frozen=True)
class IgnoredEvent:
    """An event acknowledged but not acted on, and why."""

    reason: str


def parse_payload(body: bytes) -> HubWebhookPayload:
    """Parse a request body into a typed payload.

    Raises:
        PayloadError: the body is not JSON, or not a version-3 Hub webhook payload; the message names the first
            field that is wrong.
    """
    try:
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


def classify(payload: HubWebhookPayload, *, own_user_ids: Collection[str] = ()) -> AnnotationRequest | IgnoredEvent:
    """Decide whether an event asks for an annotation.

    Args:
        payload: a parsed event.
        own_user_ids: Hub ids of the account the service writes as; discussions they authored are reported as ours.

    Returns:
        An `AnnotationRequest`, or an `IgnoredEvent` with the reason.

    Raises:
        PayloadError: the event names an invalid repository id or commit sha.
    """
    repo, event = payload.repo, payload.event
    if repo.type != "model":
        return IgnoredEvent(f"{repo.type} repository: only model repositories are annotated")
    if payload.discussion is not None:
        discussion = payload.discussion
        kind = "pull request" if discussion.isPullRequest else "discussion"
        if discussion.author.id in own_user_ids:
            return IgnoredEvent(f"event on our own {kind} #{discussion.num}")
        return IgnoredEvent(f"{event.scope} event on {kind} #{discussion.num}: only content updates are annotated")
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
    return AnnotationRequest(repo.name, revision, base, repo.private)


def content_update_payload(repo_id: str, revision: str, *, base_revision: str | None = None, private: bool = False,
                           repo_type: str = "model", ref: str = MAIN_REF) -> dict:
    """The payload the Hub sends when a push moves `ref` of a repository to `revision` (version 3, as documented).

    For checking a deployment by hand (``curl -H "X-Webhook-Secret: ..." -d @event.json``), tests and benchmarks.
    """
    web = f"https://huggingface.co/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
    return {
        "event": {"action": "update", "scope": CONTENT_SCOPE},
        "repo": {"type": repo_type, "name": repo_id, "id": "0" * 24, "private": private,
                 "url": {"web": web, "api": f"https://huggingface.co/api/{repo_type}s/{repo_id}"},
                 "headSha": revision, "owner": {"id": "0" * 24}},
        "updatedRefs": [{"ref": ref, "oldSha": base_revision, "newSha": revision}],
        "webhook": {"id": "0" * 24, "version": 3},
    }


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PayloadError(f"repo.name {repo_id!r} is not a Hub repository id ({error})") from None
    if "/" not in repo_id:
        raise PayloadError(f"repo.name {repo_id!r} is not a Hub repository id: expected owner/name")
