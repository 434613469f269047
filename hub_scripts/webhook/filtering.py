"""What a pushed commit holds, read through the Hub API: whether the worker should evaluate and annotate it.

`screen_commit` answers, in this order (the first that applies decides):

1. the push changed only the model card (``README.md``, ``.eval_results/``) or no file at all: ignored, the model
   is unchanged. This is how our own card commits and the merge of our card pull request are recognised: by the
   files they touch, never by words in a message (an owner's commit that mentions speat is still screened);
2. ``config.json`` at that commit names a ``model_type`` speat reads as a speech encoder
   (`speat_metric.adapters.preflight.SUPPORTED_MODEL_TYPES`): annotate; otherwise ignored with the reason
   (no ``config.json``, unreadable JSON, or e.g. "a 'bert' model, not a speech encoder").

A repository or commit that no longer exists is ignored; other errors (the Hub unreachable, a 5xx) are raised, so
that the job is retried later.

Example:
    >>> from speat_metric.hub.webhook.events import AnnotationRequest
    >>> screen_commit(AnnotationRequest("alice/tiny-hubert", "575db8b7..."))  # doctest: +SKIP
    Screening(annotate=True, reason="a 'hubert' speech encoder", model_type='hubert')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from speat_metric.hub.webhook.events import AnnotationRequest

if TYPE_CHECKING:
    from huggingface_hub import HfApi



@dataclass(frozen=True)
class Screening:
    """The verdict on one commit: annotate it or not, and why."""

    annotate: bool
    reason: str
    model_type: str | None = None


def screen_commit(request: AnnotationRequest, *, endpoint: str | None = None, token: str | None = None,
                  cache_dir: str | Path | None = None) -> Screening:
    """Decide whether the commit of `request` is a speech encoder to annotate (see the module docstring).

    Args:
        request: the repository and commit.
        endpoint: the Hub (default: ``HF_ENDPOINT``).
        token: a Hub token (default: huggingface_hub's usual sources).
        cache_dir: where ``config.json`` is downloaded (default: the Hugging Face cache, where transformers finds it
            again).

    Raises:
        Exception: whatever the Hub client raised for a transient failure (the caller retries).
    """
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from speat_metric.hub.card import is_card_path
    from speat_metric.hub.hub import HubClient

    client = HubClient(token=token, endpoint=endpoint)
    api = client.api
    try:
        commits = api.list_repo_commits(request.repo_id, revision=request.revision)
        base = request.base_revision or (commits[1].commit_id if len(commits) > 1 else None)
        # A base that no longer exists (squashed or force-pushed history, a new branch): anything may have changed.
        changed = client.changed_paths(request.repo_id, base, request.revision) if base else None
        if changed is not None and not changed:
            return Screening(False, "the push changes no file")
        if changed is not None and all(is_card_path(path) for path in changed):
            return Screening(False, f"only the model card changed ({', '.join(sorted(changed))}); the model is "
                             "unchanged")
        return _screen_config(api, request, cache_dir)
    except RepositoryNotFoundError:
        return Screening(False, "the repository does not exist, or our token cannot read it")
    except RevisionNotFoundError:
        return Screening(False, f"commit {request.revision} no longer exists in the repository")


def _screen_config(api: HfApi, request: AnnotationRequest, cache_dir: str | Path | None) -> Screening:
    from huggingface_hub.errors import EntryNotFoundError

    from speat_metric.adapters.base import ModelLoadError
    from speat_metric.adapters.preflight import check_model_type

    try:
        path = api.hf_hub_download(request.repo_id, "config.json", revision=request.revision, cache_dir=cache_dir)
    except EntryNotFoundError:
        return Screening(False, "no config.json at this commit: not a transformers model speat reads")
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        return Screening(False, f"config.json at this commit is not readable JSON ({error.__class__.__name__})")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    try:
        check_model_type(model_type, request.repo_id)
    except ModelLoadError as error:
        return Screening(False, str(error), model_type)
    return Screening(True, f"a {model_type!r} speech encoder", model_type)
