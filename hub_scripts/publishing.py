"""Publish a set of files to a Hub repository that speat owns (a Space, the benchmark dataset): only what changed.

`publish_files` creates the repository unless it exists, compares each file with the main branch by digest (no
download; `speat_metric.hub.hub.FileDigest`), removes the files a caller says are stale, and commits the rest in one
commit, or none when nothing changed. A dry run pushes nothing and creates nothing; its outcome carries the diff.

Example:
    >>> publish_files(HubClient(), "me/speat-benchmark", {"eval.yaml": "..."}, repo_type="dataset",
    ...               what="the SpEAT benchmark")                                  # doctest: +SKIP
    PublishOutcome(repo_id='me/speat-benchmark', status='committed', ...)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from speat_metric import __version__
from speat_metric.hub import SPEAT_TITLE_PREFIX
from speat_metric.hub.hub import HubClient, HubError

URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_files` did.

    Attributes:
        repo_id: the repository.
        status: ``committed``, ``unchanged`` or ``dry-run``.
        url: the repository's page.
        commit: the commit made, if any.
        diff: what changed (text files as a unified diff, binary files and deletions as one line each).
    """

    repo_id: str
    status: str
    url: str
    commit: str | None = None
    diff: str = ""

    @property
    def summary(self) -> str:
        pushed = f" commit {self.commit[:12]}" if self.commit else ""
        return f"{self.repo_id}: {self.status}{pushed} ({self.url})"


def repo_state(client: HubClient, repo_id: str, *, repo_type: str) -> tuple[str | None, bool]:
    """(head commit, private) of a repository, or (None, False) when it does not exist."""
    try:
        info = client.info(repo_id, repo_type=repo_type)
    except HubError as error:
        if f"has no {repo_type}" in str(error):
            return None, False
        raise
    return info.sha, bool(info.private)


def publish_files(client: HubClient, repo_id: str, files: Mapping[str, str | bytes], *, repo_type: str, what: str,
                  private: bool = False, dry_run: bool = False, space_sdk: str | None = None,
                  stale: Callable[[str], bool] | None = None) -> PublishOutcome:
    """Create the repository (unless it exists) and commit those of `files` that differ from its main branch.

    Args:
        client: the Hub.
        repo_id: ``OWNER/NAME``.
        files: path -> text or bytes.
        repo_type: ``space`` or ``dataset``.
        what: what the repository is, for the commit summary (``the SpEAT leaderboard``).
        private: create the repository as private (an existing one keeps its visibility).
        dry_run: push nothing and create nothing; the outcome carries the diff.
        space_sdk: a new Space's SDK (``gradio``, ``docker``).
        stale: which other files of the repository to delete (a path -> True); None deletes nothing.
    """
    url = f"{client.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
    head, _ = repo_state(client, repo_id, repo_type=repo_type)
    if head is None and not dry_run:
        client.ensure_repo(repo_id, repo_type=repo_type, private=private, space_sdk=space_sdk)
        head = client.head(repo_id, repo_type=repo_type)
    existing = client.file_ids(repo_id, "", repo_type=repo_type, revision=head) if head and stale else {}
    digests = client.file_digests(repo_id, list(files), revision=head, repo_type=repo_type) if head else {}
    changed = {path: content for path, content in files.items()
               if path not in digests or not digests[path].matches(_bytes(content))}
    removed = sorted(path for path in existing if path not in files and stale(path))
    diff = "".join(_diff(client, repo_id, repo_type, head, path, content, path in digests)
                   for path, content in changed.items())
    diff += "".join(f"deleted {path}\n" for path in removed)
    if dry_run:
        return PublishOutcome(repo_id, "dry-run", url, diff=diff)
    if not changed and not removed:
        return PublishOutcome(repo_id, "unchanged", url)
    info = client.commit(repo_id, changed, delete=removed, repo_type=repo_type, parent_commit=head,
                         summary=f"{SPEAT_TITLE_PREFIX} Publish {what} (speat {__version__})",
                         description="Published by `speat hub`.")
    return PublishOutcome(repo_id, "committed", url, commit=info.oid, diff=diff)


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _diff(client: HubClient, repo_id: str, repo_type: str, head: str | None, path: str, content: str | bytes,
          exists: bool) -> str:
    if isinstance(content, bytes):
        return f"{'changed' if exists else 'added'} {path} ({len(content):,} bytes)\n"
    old = client.read_text(repo_id, path, revision=head, repo_type=repo_type) if exists else None
    return unified_diff(path, old, content)


def unified_diff(path: str, old: str | None, new: str) -> str:
    """A ``git diff``-style unified diff of one file (empty when nothing changed)."""
    if (old or "") == new:
        return ""
    return "".join(difflib.unified_diff((old or "").splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}" if old is not None else "/dev/null",
                                        tofile=f"b/{path}"))
