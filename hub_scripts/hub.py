"""The Hugging Face Hub operations speat needs, through ``huggingface_hub``, with errors that say what to do.

`HubClient` reads revisions and files, finds speat's own pull requests on a repository (a bot looks before it
writes: `speat_pull_requests`), commits files (to a branch, as a new pull request, or onto an open one), comments,
validates cards with the Hub, searches models and lists file ids. Every failure is a `HubError` (a ValueError) of
one line that names the repository and never contains the token.

The token comes from ``huggingface_hub``'s usual sources (``HF_TOKEN``, ``hf auth login``) unless one is given; the
endpoint from ``HF_ENDPOINT`` unless one is given.

Example:
    >>> client = HubClient()                                          # doctest: +SKIP
    >>> client.head("facebook/hubert-base-ls960")                      # doctest: +SKIP
    'dba3bb02fda4248b6e082697eee756de8fe8aa8a'
    >>> client.speat_pull_requests("facebook/hubert-base-ls960").open  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, ModelInfo, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from speat_metric.hub import DUPLICATE_MARKER, SPEAT_TITLE_PREFIX
from speat_metric.network import UNREACHABLE

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "draft")



class HubError(ValueError):
    """A Hub operation failed; the message names the repository and what to do (never the token)."""


class HubAuthError(HubError):
    """The Hub refused the token: every further request would fail the same way (a batch stops)."""


class HubConflict(HubError):
    """The branch moved past the ``parent_commit`` a commit was built on (someone committed meanwhile)."""


@dataclass(frozen=True)
class PullRequest:
    """A pull request on a Hub repository.

    Attributes:
        number: its discussion number.
        url: its page.
        author: the user who opened it.
        status: ``open``, ``draft``, ``closed`` or ``merged``.
        title: its title.
    """

    number: int
    url: str
    author: str
    status: str
    title: str

    @property
    def revision(self) -> str:
        """The git reference to commit to, to add to this pull request."""
        return f"refs/pr/{self.number}"


@dataclass(frozen=True)
class FileDigest:
    """What the Hub says of a file's content: its git blob id and, for an LFS file, the content's SHA-256."""

    blob_id: str
    lfs_sha256: str | None = None

    def matches(self, content: bytes) -> bool:
        """Whether `content` is this file's content."""
        if self.lfs_sha256 is not None:
            return hashlib.sha256(content).hexdigest() == self.lfs_sha256
        return git_blob_id(content) == self.blob_id


def git_blob_id(content: bytes) -> str:
    """The git blob id (SHA-1 of ``blob <size>\\0`` + content) the Hub reports for a regular file."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class SpeatPullRequests:
    """What a repository already has from speat.

    Attributes:
        open: our open pull request, to update rather than open another (the oldest one if several).
        declined: a speat pull request closed without being merged (after the last one that was merged), by anyone
            but speat's own duplicate housekeeping: the card's owner said no, so no new one is opened unless forced.
        all_open: every open pull request of ours, oldest first (more than one only after two annotations ran at
            once).
    """

    open: PullRequest | None = None
    declined: PullRequest | None = None
    all_open: tuple[PullRequest, ...] = ()


class HubClient:
    """The Hub, as speat uses it.

    Args:
        token: a Hub token; None uses huggingface_hub's usual sources (``HF_TOKEN``, the stored login).
        endpoint: the Hub's URL; None uses ``HF_ENDPOINT`` (default https://huggingface.co).
    """

    _users: ClassVar[dict[tuple[str, str], str]] = {}
    """(endpoint, SHA-256 of the token) -> its user. ``whoami`` is rate-limited on the Hub: it is asked once per
    process and token, however many clients a batch or a service makes."""

    def __init__(self, *, token: str | None = None, endpoint: str | None = None) -> None:
        self.api = HfApi(endpoint=endpoint, token=token)
        self._token = token
        self._user: str | None | bool = False  # False: not asked yet

    @property
    def endpoint(self) -> str:
        return self.api.endpoint

    def user(self) -> str | None:
        """The name of the token's user (None without a token).

        Raises:
            HubError: the Hub refused the token.
        """
        if self._user is False:
            from huggingface_hub import get_token

            token = self._token or get_token()
            if token is None:
                self._user = None
                return None
            key = (self.endpoint, hashlib.sha256(token.encode()).hexdigest())
            if key not in HubClient._users:
                with hub_errors("the token's user"):
                    HubClient._users[key] = self.api.whoami(token=token)["name"]
            self._user = HubClient._users[key]
        return self._user

    def head(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> str:
        """The commit sha that `revision` (a branch, tag, ``refs/pr/N`` or sha) of a repository points to."""
        return self.info(repo_id, revision, repo_type=repo_type).sha

    def info(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> Any:
        """huggingface_hub's info of a repository at `revision` (its ``sha``, ``private``, ...)."""
        with hub_errors(f"{repo_type} {repo_id!r}", revision=revision):
            return self.api.repo_info(repo_id, repo_type=repo_type, revision=revision)

    def changed_paths(self, repo_id: str, base: str, head: str, *, repo_type: str = "model") -> set[str] | None:
        """The files that differ between two commits (added, removed or changed), or None when `base` no longer
        exists (history squashed or force-pushed): then anything may have changed.

        Raises:
            HubError: `head` does not exist, or the Hub failed.
        """
        if not base or set(base) == {"0"}:  # a push's oldSha of all zeros: the branch is new
            return None
        try:
            before = self._tree(repo_id, base, repo_type)
        except HubError as error:
            if "has no revision" in str(error):
                return None
            raise
        after = self._tree(repo_id, head, repo_type)
        return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}

    def _tree(self, repo_id: str, revision: str, repo_type: str) -> dict[str, str]:
        """Path -> content digest of every file at `revision`."""
        from huggingface_hub.hf_api import RepoFile

        with hub_errors(f"{repo_type} {repo_id!r}", revision=revision):
            return {entry.path: entry.lfs.sha256 if entry.lfs else entry.blob_id
                    for entry in self.api.list_repo_tree(repo_id, revision=revision, recursive=True,
                                                         repo_type=repo_type)
                    if isinstance(entry, RepoFile)}

    def file_digests(self, repo_id: str, paths: Sequence[str], *, revision: str, repo_type: str = "model"
                     ) -> dict[str, FileDigest]:
        """The digests of those of `paths` that exist at `revision` (one request, no download)."""
        from huggingface_hub.hf_api import RepoFile

        with hub_errors(f"files of {repo_type} {repo_id!r}", revision=revision):
            entries = self.api.get_paths_info(repo_id, list(paths), revision=revision, repo_type=repo_type)
        return {entry.path: FileDigest(entry.blob_id, entry.lfs.sha256 if entry.lfs else None)
                for entry in entries if isinstance(entry, RepoFile)}

    def read_text(self, repo_id: str, path: str, *, revision: str, repo_type: str = "model") -> str | None:
        """The text of one file at a revision, or None when the file does not exist there (read fresh, not cached)."""
        url = hf_hub_url(repo_id, path, repo_type=repo_type, revision=revision, endpoint=self.endpoint)
        with hub_errors(f"{path} of {repo_type} {repo_id!r}", revision=revision):
            response = get_session().get(url, headers=build_hf_headers(token=self._token))
            try:
                hf_raise_for_status(response)
            except EntryNotFoundError:
                return None
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise HubError(f"{path} of {repo_type} {repo_id!r} at {revision[:12]} is not UTF-8 text ({error.reason} at "
                           f"byte {error.start}): save it as UTF-8 and push it again") from None

    def speat_pull_requests(self, repo_id: str, *, repo_type: str = "model") -> SpeatPullRequests:
        """speat's pull requests on a repository: the open one to update, and one the owner declined.

        Ours are the pull requests whose title starts with `SPEAT_TITLE_PREFIX` and, when there is a token, that its
        user opened (we can push to those). A declined one is a speat pull request closed unmerged after the last
        speat pull request that was merged, unless speat closed it as a duplicate (`DUPLICATE_MARKER`).
        """
        me = self.user()
        with hub_errors(f"the pull requests of {repo_type} {repo_id!r}"):
            found = [discussion for discussion in self.api.get_repo_discussions(
                repo_id, discussion_type="pull_request", repo_type=repo_type)
                if discussion.title.startswith(SPEAT_TITLE_PREFIX)]
            mine = sorted((discussion for discussion in found
                           if discussion.status in OPEN_STATUSES and (me is None or discussion.author == me)),
                          key=lambda d: d.num)
            declined = None
            accepted = max((d.num for d in found if d.status == "merged"), default=0)  # a later merge outweighs
            for discussion in sorted((d for d in found if d.status == "closed" and d.num > accepted),
                                     key=lambda d: -d.num):
                details = self.api.get_discussion_details(repo_id, discussion.num, repo_type=repo_type)
                if not any(event.type == "comment" and DUPLICATE_MARKER in (getattr(event, "content", "") or "")
                           for event in details.events):
                    declined = discussion
                    break
        return SpeatPullRequests(open=_pull_request(mine[0] if mine else None), declined=_pull_request(declined),
                                 all_open=tuple(map(_pull_request, mine)))

    def commit(self, repo_id: str, files: Mapping[str, str | bytes], *, summary: str, description: str,
               revision: str = "main", create_pr: bool = False, parent_commit: str | None = None,
               repo_type: str = "model", delete: Sequence[str] = ()) -> CommitInfo:
        """Commit files (path -> text or bytes) and the deletion of `delete` to `revision`, or open a pull request
        against it with them.

        Raises:
            HubError: the repository or revision does not exist, the token may not write, or `revision` moved past
                `parent_commit` (someone committed meanwhile: run again).
        """
        operations = [CommitOperationAdd(path, content.encode("utf-8") if isinstance(content, str) else content)
                      for path, content in files.items()]
        operations += [CommitOperationDelete(path) for path in delete]
        with hub_errors(f"{repo_type} {repo_id!r}", revision=revision, writing=True):
            return self.api.create_commit(repo_id, operations, commit_message=summary, commit_description=description,
                                          revision=revision, create_pr=create_pr, parent_commit=parent_commit,
                                          repo_type=repo_type)

    def close_duplicate(self, repo_id: str, number: int, kept: int, *, repo_type: str = "model") -> None:
        """Close our pull request `number`, opened at the same time as our pull request `kept`, saying so."""
        with hub_errors(f"pull request #{number} of {repo_type} {repo_id!r}", writing=True):
            self.api.change_discussion_status(
                repo_id, number, "closed", repo_type=repo_type,
                comment=f"Opened at the same time as #{kept}, which now holds these results; closing this one. "
                f"<!-- {DUPLICATE_MARKER} -->")

    def comment(self, repo_id: str, number: int, text: str, *, repo_type: str = "model") -> None:
        """Post a comment on a discussion or pull request."""
        with hub_errors(f"pull request #{number} of {repo_type} {repo_id!r}", writing=True):
            self.api.comment_discussion(repo_id, number, text, repo_type=repo_type)

    def validate_card(self, content: str, *, repo_type: str = "model") -> None:
        """Ask the Hub whether a card's metadata is valid (as ``ModelCard.push_to_hub`` does, but for this text).

        Raises:
            HubError: the Hub rejected the metadata (its reason quoted).
        """
        response = get_session().post(f"{self.endpoint}/api/validate-yaml",
                                      json={"repoType": repo_type, "content": content},
                                      headers={"Accept": "text/plain"})
        if response.status_code == 400:
            raise HubError(f"the Hub rejected the card's metadata: {response.text.strip()}")
        with hub_errors("the card's metadata"):
            hf_raise_for_status(response)

    def search_models(self, *, search: str | None = None, filters: Sequence[str] = (), author: str | None = None,
                      limit: int | None = None, sort: str | None = None) -> list[ModelInfo]:
        """Models matching a Hub search (``list_models``: `search` in the id, every filter tag, `author`), in the
        Hub's order or by `sort` (e.g. ``downloads``, descending)."""
        with hub_errors("the model search"):
            return list(self.api.list_models(search=search, filter=list(filters) or None, author=author,
                                              limit=limit, sort=sort, fetch_config=True))

    def file_ids(self, repo_id: str, folder: str, *, repo_type: str, revision: str) -> dict[str, str]:
        """Path -> git blob id of every file under `folder` at `revision` (empty when the folder does not exist)."""
        from huggingface_hub.hf_api import RepoFile

        with hub_errors(f"{folder}/ of {repo_type} {repo_id!r}", revision=revision):
            try:
                entries = self.api.list_repo_tree(repo_id, folder, recursive=True, repo_type=repo_type,
                                                  revision=revision)
                return {entry.path: entry.blob_id for entry in entries if isinstance(entry, RepoFile)}
            except EntryNotFoundError:
                return {}

    def ensure_repo(self, repo_id: str, *, repo_type: str, private: bool = False,
                    space_sdk: str | None = None) -> None:
        """Create the repository unless it exists."""
        with hub_errors(f"{repo_type} {repo_id!r}", writing=True):
            self.api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)


def _pull_request(discussion: object | None) -> PullRequest | None:
    if discussion is None:
        return None
    return PullRequest(number=discussion.num, url=discussion.url, author=discussion.author, status=discussion.status,
                       title=discussion.title)


@contextmanager
def hub_errors(what: str, *, revision: str | None = None, writing: bool = False) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one-line `HubError`s that name `what` and say what to do."""
    try:
        yield
    except GatedRepoError:
        raise HubError(f"{what} is gated: accept its terms on the Hub with the token's account") from None
    except RepositoryNotFoundError:
        raise HubError(f"the Hub has no {what} (check the name; a private repository needs a token that can see "
                       "it: set HF_TOKEN or run `hf auth login`)") from None
    except RevisionNotFoundError:
        raise HubError(f"{what} has no revision {revision!r}") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        reason = (error.server_message or "").strip().splitlines()[0] if error.server_message else ""
        if status == 401:
            raise HubAuthError(f"the Hub refused the token for {what}: set a valid HF_TOKEN or run `hf auth login`"
                           ) from None
        if status == 403:
            raise HubError(f"the token may not {'write to' if writing else 'read'} {what}; use a token with write "
                           "access (or open a pull request instead of committing)") from None
        if status == 412:
            raise HubConflict(f"{what} changed while we were writing to it (someone committed meanwhile); run the "
                           "command again") from None
        raise HubError(f"the Hub answered {status} for {what}{': ' + reason if reason else ''}") from None
    except UNREACHABLE as error:  # connection refused, DNS failure, timeout
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HubError(f"the Hub could not be reached for {what} ({first}); check the network and HF_ENDPOINT"
                       ) from None
