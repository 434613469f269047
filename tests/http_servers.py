"""Local HTTP servers for the tests: real sockets on 127.0.0.1, started and stopped by the tests themselves.

Nothing is mocked at the Python level: the code under test makes real HTTP requests, which these servers answer.

- `StaticFileServer`: serves bytes at paths (GET, HEAD, single-range Range requests), records every request, and
  injects faults: answer a status N times (`fail`), drop the connection after K bytes of a body N times
  (`drop_connection`), ignore Range headers (`ignore_range`). `add_zenodo_record` makes it answer like Zenodo's
  REST API (``/api/records/<id>`` listing files with md5 checksums and ``.../content`` links).
- `HubServer`: a small Hugging Face Hub-compatible server for model and dataset repositories, enough for
  ``huggingface_hub``'s ``repo_info``/``dataset_info``/``model_info``, ``list_repo_tree``, ``hf_hub_download``,
  ``snapshot_download``, ``create_repo``, ``upload_file``/``create_commit`` (regular, non-LFS uploads) and README
  metadata validation (``ModelCard.push_to_hub``; invalid YAML or a malformed ``model-index`` is a 400).
  Repositories (models, datasets, Spaces) live in memory as commits of path -> bytes; branches point at commits.
  Discussions and pull requests: listing (paged, filtered), creation, details with events, status changes,
  comments and merging; ``create_commit(create_pr=True)`` opens a pull request on branch ``refs/pr/N``, commits to
  ``refs/pr/N`` add to it, and a stale ``parent_commit`` is refused (412). ``list_models`` searches by id, tags,
  library, pipeline tag and author (tags come from the README header and ``config.json``'s ``model_type``). With
  ``tokens``, requests act as their token's user and writes need a token. Point clients at it with
  ``endpoint=server.url`` or ``HF_ENDPOINT``.

Both servers share the request log and the fault injection of `RecordingServer`.

Example:
    with StaticFileServer() as server:
        server.add_file("/soundtracks/english1.mp3", data)
        server.drop_connection("/soundtracks/english1.mp3", after_bytes=100)
        ...  # download from f"{server.url}/soundtracks"
        assert server.count("GET", "/soundtracks/english1.mp3") == 2
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    """One request a server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _Fault:
    kind: str  # "status" or "drop"
    times: int
    status: int = 500
    after_bytes: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: RecordingServer  # set on the subclass made per server

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionResetError:  # a client killed mid-connection (tests kill processes on purpose)
            pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.owner._dispatch(self, "GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self.owner._dispatch(self, "HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self.owner._dispatch(self, "POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.owner._dispatch(self, "PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.owner._dispatch(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (keep the tests' output clean)
        pass


class RecordingServer:
    """Base of the test servers: a threaded HTTP server on 127.0.0.1 with a request log and fault injection.

    Subclasses implement `route(request, handler)`, which answers with `respond`.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._ignore_range: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> RecordingServer:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it as a context manager or call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # request log -----------------------------------------------------------------------------------------------
    def count(self, method: str | None = None, path: str | None = None, *, prefix: str | None = None) -> int:
        """Number of requests received, optionally only those with this method, exact path or path prefix."""
        with self._lock:
            return sum(
                (method is None or r.method == method) and (path is None or r.path == path)
                and (prefix is None or r.path.startswith(prefix))
                for r in self.requests
            )

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # faults ----------------------------------------------------------------------------------------------------
    def fail(self, path: str, status: int = 500, *, times: int = 1, headers: Mapping[str, str] | None = None
             ) -> None:
        """Answer the next `times` requests for `path` with `status` (and an empty body)."""
        with self._lock:
            self._faults.setdefault(path, []).append(_Fault("status", times, status=status,
                                                            headers=dict(headers or {})))

    def drop_connection(self, path: str, *, after_bytes: int, times: int = 1) -> None:
        """For the next `times` GETs of `path`, announce the full length, send `after_bytes` bytes and hang up."""
        with self._lock:
            self._faults.setdefault(path, []).append(_Fault("drop", times, after_bytes=after_bytes))

    def ignore_range(self, path: str) -> None:
        """Always answer GETs of `path` with the whole file (200), as servers without Range support do."""
        with self._lock:
            self._ignore_range.add(path)

    def _take_fault(self, path: str, kinds: Iterable[str]) -> _Fault | None:
        with self._lock:
            for fault in self._faults.get(path, []):
                if fault.kind in kinds and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # answering -------------------------------------------------------------------------------------------------
    def _dispatch(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        headers = {key.lower(): value for key, value in handler.headers.items()}
        request = RecordedRequest(method, path, parse_qs(parts.query), headers)
        with self._lock:
            self.requests.append(request)
        handler._body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        handler._method = method
        handler._path = path
        fault = self._take_fault(path, ("status",))
        if fault is not None:
            self.respond(handler, fault.status, b"", headers=fault.headers)
            return
        try:
            self.route(request, handler)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, request: RecordedRequest, handler: _Handler) -> None:
        raise NotImplementedError

    def respond(self, handler: _Handler, status: int, body: bytes = b"", *, headers: Mapping[str, str] | None = None,
                content_type: str = "application/octet-stream") -> None:
        """Send a response; bodies of GETs are cut short when a `drop_connection` fault is pending for the path."""
        handler.send_response(status)
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        for key, value in all_headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler._method == "HEAD" or not body:
            return
        fault = self._take_fault(handler._path, ("drop",)) if handler._method == "GET" else None
        if fault is None:
            handler.wfile.write(body)
            return
        handler.wfile.write(body[: fault.after_bytes])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    def respond_json(self, handler: _Handler, data: Any, status: int = 200, *,
                     headers: Mapping[str, str] | None = None) -> None:
        self.respond(handler, status, json.dumps(data).encode(), headers=headers, content_type="application/json")

    def respond_file(self, handler: _Handler, content: bytes, *, headers: Mapping[str, str] | None = None,
                     content_type: str = "application/octet-stream") -> None:
        """Answer with a file, honouring a single ``Range: bytes=start-[end]`` unless ranges are ignored."""
        headers = {"Accept-Ranges": "bytes", **(headers or {})}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", "").strip())
        if match is None or handler._path in self._ignore_range:
            self.respond(handler, 200, content, headers=headers, content_type=content_type)
            return
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
        if start >= len(content) or start > end:
            self.respond(handler, 416, b"", headers={**headers, "Content-Range": f"bytes */{len(content)}"})
            return
        self.respond(handler, 206, content[start:end + 1], content_type=content_type,
                     headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(content)}"})


class StaticFileServer(RecordingServer):
    """Serves fixed files at fixed paths; everything else is 404."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}

    def add_file(self, path: str, content: bytes, content_type: str = "application/octet-stream") -> str:
        """Serve `content` at `path` (e.g. ``/soundtracks/english1.mp3``); returns its full URL."""
        with self._lock:
            self.files[path] = (content, content_type)
        return f"{self.url}{quote(path)}"

    def add_json(self, path: str, data: Any) -> str:
        return self.add_file(path, json.dumps(data).encode(), "application/json")

    def route(self, request: RecordedRequest, handler: _Handler) -> None:
        if request.method not in ("GET", "HEAD"):
            self.respond(handler, 405)
            return
        with self._lock:
            found = self.files.get(request.path)
        if found is None:
            self.respond(handler, 404, b"<html><body>Not Found</body></html>", content_type="text/html")
            return
        self.respond_file(handler, found[0], content_type=found[1])


def add_zenodo_record(server: StaticFileServer, record_id: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    """Make `server` answer like Zenodo's REST API for a record holding `files` (key -> content).

    Serves ``/api/records/<id>`` (files with key, size, ``md5:`` checksum and a ``links.self`` ending in
    ``/content``) and each file at that link. Returns the record JSON.
    """
    entries = []
    for key, content in files.items():
        link_path = f"/api/records/{record_id}/files/{key}/content"
        entries.append({"id": hashlib.md5(key.encode()).hexdigest(), "key": key, "size": len(content),
                        "checksum": f"md5:{hashlib.md5(content).hexdigest()}",
                        "links": {"self": f"{server.url}{quote(link_path)}"}})
        server.add_file(link_path, content, "application/octet-stream")
    record = {"id": int(record_id), "metadata": {"title": f"test record {record_id}"}, "files": entries}
    server.add_json(f"/api/records/{record_id}", record)
    return record


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, as the Hub reports it for regular (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class _Discussion:
    """A discussion or pull request; a pull request's changes live on the branch ``refs/pr/<num>``."""

    num: int
    title: str
    author: str
    is_pull_request: bool
    status: str = "open"  # open, closed or merged
    base_commit: str | None = None  # the commit a pull request was opened from
    merge_commit: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # comments, status changes, commits, oldest first
    created_at: str = field(default_factory=lambda: _now())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)  # commit -> parent commit (for commit listings)
    discussions: list[_Discussion] = field(default_factory=list)  # discussions and pull requests, numbered from 1
    private: bool = False  # reported by the repository's info (access is not enforced)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None


_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class HubServer(RecordingServer):
    """A small Hugging Face Hub-compatible server, in memory (see the module docstring for what it supports).

    Test-side helpers: `create_repo`, `commit` (add/replace/delete files on a branch), `tag`, `files` (read a
    revision back), `commit_messages` and `discussions`.

    Args:
        user: who every request acts as when `tokens` is None.
        tokens: token -> user name. When given, a request acts as its bearer token's user, an unknown token is
            refused with 401 everywhere, and writes (repo creation, commits, discussions) need a known token.
    """

    DISCUSSIONS_PER_PAGE = 50  # the Hub's page size for discussion listings (tests lower it to exercise paging)

    def __init__(self, *, user: str = "speat-tester", tokens: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.user = user
        self.tokens = dict(tokens) if tokens is not None else None
        self.repos: dict[tuple[str, str], _Repo] = {}
        self._counter = itertools.count()
        self._messages: dict[str, str] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}  # /api/settings/webhooks, by webhook id
        self._holds: dict[str, threading.Event] = {}  # path -> released when set (see `hold`)

    # test-side helpers -----------------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False) -> None:
        """Create a repository with an initial commit holding ``.gitattributes`` (as the Hub does)."""
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            self.repos[(repo_type, repo_id)] = _Repo(repo_type, repo_id, private=private)
        self.commit(repo_id, {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"},
                    repo_type=repo_type, message="initial commit")

    def commit(self, repo_id: str, files: Mapping[str, bytes], *, repo_type: str = "model", branch: str = "main",
               delete: Iterable[str] = (), message: str = "update") -> str:
        """Commit `files` (path -> content) and deletions to `branch` (created from main if new); return the sha."""
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                raise KeyError(f"no {repo_type} repo {repo_id}")
            parent = repo.branches.get(branch) or repo.branches.get("main")
            tree = dict(repo.commits.get(parent, {})) if parent else {}
            for path in delete:
                tree = {p: c for p, c in tree.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
            tree.update(files)
            sha = hashlib.sha1(f"{repo_type}/{repo_id}:{parent}:{next(self._counter)}:{message}".encode()).hexdigest()
            repo.commits[sha] = tree
            repo.parents[sha] = parent
            repo.branches[branch] = sha
            self._messages[sha] = message
            return sha

    def tag(self, repo_id: str, tag: str, revision: str = "main", *, repo_type: str = "model") -> None:
        with self._lock:
            repo = self.repos[(repo_type, repo_id)]
            repo.tags[tag] = repo.resolve(revision)

    def files(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a repository at a revision."""
        with self._lock:
            repo = self.repos[(repo_type, repo_id)]
            return dict(repo.commits[repo.resolve(revision)])

    def commit_messages(self, repo_id: str, *, repo_type: str = "model") -> list[str]:
        with self._lock:
            return [self._messages[sha] for sha in self.repos[(repo_type, repo_id)].commits]

    def hold(self, path: str) -> threading.Event:
        """Keep requests for `path` waiting (they are logged on arrival) until the returned event is set, e.g. to
        stop a client at a known point before killing it; `release` (or ``event.set()``) lets them through."""
        with self._lock:
            return self._holds.setdefault(path, threading.Event())

    def release(self, path: str) -> None:
        with self._lock:
            event = self._holds.pop(path, None)
        if event is not None:
            event.set()

    def discussions(self, repo_id: str, *, repo_type: str = "model") -> list[_Discussion]:
        """The discussions and pull requests of a repository, oldest first (copies: change them over HTTP)."""
        with self._lock:
            return copy.deepcopy(self.repos[(repo_type, repo_id)].discussions)

    # HTTP side -------------------------------------------------------------------------------------------------
    def _error(self, handler: _Handler, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self.respond_json(handler, {"error": message}, status, headers=headers)

    def _repo(self, handler: _Handler, repo_type: str, repo_id: str) -> _Repo | None:
        with self._lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            self._error(handler, 404, "RepoNotFound", "Repository not found")
        return repo

    def _commit_of(self, handler: _Handler, repo: _Repo, revision: str) -> str | None:
        with self._lock:
            sha = repo.resolve(revision)
        if sha is None:
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    def route(self, request: RecordedRequest, handler: _Handler) -> None:
        path, method = request.path, request.method
        hold = self._holds.get(path)
        if hold is not None:
            hold.wait(timeout=120)
        handler._user = self._user_of(request)
        if handler._user is False:
            self._error(handler, 401, "Unauthorized", "Invalid credentials in Authorization header")
            return
        if path == "/api/whoami-v2":
            if handler._user is None:
                self._error(handler, 401, "Unauthorized", "Invalid credentials in Authorization header")
                return
            self.respond_json(handler, {"type": "user", "name": handler._user, "fullname": handler._user,
                                        "orgs": [], "auth": {"type": "access_token",
                                                             "accessToken": {"role": "write"}}})
            return
        if path == "/api/validate-yaml" and method == "POST":
            self._validate_yaml(handler)
            return
        if path == "/api/models" and method == "GET":
            self._search_models(handler, request)
            return
        if path == "/api/repos/create" and method == "POST":
            self._create_repo(handler)
            return
        if path == "/api/settings/webhooks" or path.startswith("/api/settings/webhooks/"):
            self._webhooks(handler, request)
            return
        match = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+|[^/]+)(?:/(.*))?", path)
        if match:
            repo = self._repo(handler, _REPO_TYPES[match.group(1)], match.group(2))
            if repo is not None:
                self._api(handler, request, repo, match.group(3) or "")
            return
        match = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+|[^/]+)/resolve/(refs/pr/\d+|[^/]+)/(.+)", path)
        if match and method in ("GET", "HEAD"):
            repo = self._repo(handler, _REPO_TYPES[match.group(1)] if match.group(1) else "model", match.group(2))
            if repo is not None:
                self._resolve(handler, repo, match.group(3), match.group(4))
            return
        self.respond(handler, 404, b"Not Found", content_type="text/plain")

    def _create_repo(self, handler: _Handler) -> None:
        if not self._require_user(handler):
            return
        payload = json.loads(handler._body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or handler._user}/{payload['name']}"
        url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        try:
            self.create_repo(repo_id, repo_type=repo_type, private=bool(payload.get("private")))
        except ValueError:
            self.respond_json(handler, {"error": "You already created this repo", "url": url}, 409)
            return
        self.respond_json(handler, {"url": url, "name": repo_id, "id": repo_id})

    def _webhooks(self, handler: _Handler, request: RecordedRequest) -> None:
        """``/api/settings/webhooks[/ID]``: list (GET), create (POST), read (GET ID), update (POST ID), DELETE ID."""
        webhook_id = request.path.removeprefix("/api/settings/webhooks").strip("/")
        body = json.loads(handler._body or b"{}") if request.method == "POST" else {}
        with self._lock:
            if not webhook_id and request.method in ("GET", "POST"):
                if request.method == "POST":
                    webhook_id = hashlib.md5(f"webhook:{next(self._counter)}".encode()).hexdigest()[:24]
                    self.webhooks[webhook_id] = {"id": webhook_id, "url": body.get("url"), "job": None,
                                                 "watched": body["watched"], "domains": body["domains"],
                                                 "secret": body.get("secret"), "disabled": False}
                reply = {"webhook": self.webhooks[webhook_id]} if webhook_id else list(self.webhooks.values())
            elif webhook_id in self.webhooks and request.method in ("GET", "POST", "DELETE"):
                if request.method == "POST":
                    self.webhooks[webhook_id].update({key: value for key, value in body.items()
                                                      if key in ("url", "watched", "domains", "secret")})
                reply = {"webhook": self.webhooks.pop(webhook_id) if request.method == "DELETE"
                         else self.webhooks[webhook_id]}
            else:
                reply = None
        if reply is None:
            self._error(handler, 404, "NotFound", f"no webhook {webhook_id!r}")
        else:
            self.respond_json(handler, reply)

    def _commits(self, handler: _Handler, repo: _Repo, revision: str) -> None:
        """``/api/<type>s/<repo>/commits/<rev>``: the history of a revision, newest first, as one page."""
        sha = self._commit_of(handler, repo, revision)
        history = []
        with self._lock:
            while sha is not None:
                title, _, message = self._messages[sha].partition("\n")
                history.append({"id": sha, "title": title, "message": message.strip(), "authors": [{"user": self.user}],
                                "date": "2024-01-01T00:00:00.000Z"})
                sha = repo.parents.get(sha)
        if history:
            self.respond_json(handler, history)

    def _api(self, handler: _Handler, request: RecordedRequest, repo: _Repo, rest: str) -> None:
        head, _, tail = rest.partition("/")
        if head in ("", "revision") and request.method == "GET":
            sha = self._commit_of(handler, repo, unquote(tail) if head else "main")
            if sha is not None:
                self._info(handler, repo, sha, blobs=request.query.get("blobs") == ["True"])
        elif head == "tree" and request.method == "GET":
            revision, folder = _split_revision(tail)
            sha = self._commit_of(handler, repo, unquote(revision))
            if sha is not None:
                recursive = request.query.get("recursive", ["False"])[0].lower() == "true"
                self.respond_json(handler, self._tree(repo, sha, folder.strip("/"), recursive))
        elif head == "paths-info" and request.method == "POST":
            sha = self._commit_of(handler, repo, unquote(tail))
            if sha is not None:
                self._paths_info(handler, repo, sha)
        elif head == "commits" and request.method == "GET":
            self._commits(handler, repo, unquote(tail))
        elif head == "refs" and request.method == "GET":
            with self._lock:
                branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()]
                tags = [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()]
            self.respond_json(handler, {"branches": branches, "tags": tags, "converts": []})
        elif head == "preupload" and request.method == "POST":
            self._preupload(handler, repo, unquote(tail))
        elif head == "commit" and request.method == "POST":
            self._commit_endpoint(handler, request, repo, unquote(tail))
        elif head == "discussions":
            self._discussions(handler, request, repo, tail)
        else:
            self.respond(handler, 404, b"Not Found", content_type="text/plain")

    def _info(self, handler: _Handler, repo: _Repo, sha: str, *, blobs: bool) -> None:
        with self._lock:
            tree = repo.commits[sha]
        siblings = [{"rfilename": p, **({"size": len(c), "blobId": git_blob_sha1(c)} if blobs else {})}
                    for p, c in sorted(tree.items())]
        self.respond_json(handler, {**self._summary(repo, sha), "gated": False, "disabled": False,
                                    "siblings": siblings})

    def _summary(self, repo: _Repo, sha: str) -> dict[str, Any]:
        """What info and search results say of a repository at a commit; tags, library and pipeline tag come from
        the README's YAML header and ``config.json`` (whose ``model_type`` becomes a tag), as on the Hub."""
        with self._lock:
            tree = repo.commits[sha]
        card = _front_matter(tree.get("README.md", b"").decode("utf-8", "replace")) or {}
        try:
            config = json.loads(tree["config.json"]) if "config.json" in tree else None
        except ValueError:
            config = None
        model_type = config.get("model_type") if isinstance(config, dict) else None
        library = card.get("library_name") or ("transformers" if config is not None else None)
        card_tags = card.get("tags") if isinstance(card.get("tags"), list) else []
        tags = list(dict.fromkeys(str(tag) for tag in [*card_tags, library, model_type] if tag))
        now = _now()
        summary = {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
                   "author": repo.repo_id.split("/")[0], "sha": sha, "private": repo.private, "lastModified": now,
                   "createdAt": now, "tags": tags, "downloads": 0, "likes": 0}
        if repo.repo_type == "model":
            summary.update(pipeline_tag=card.get("pipeline_tag"), library_name=library,
                           config={"model_type": model_type} if model_type else None)
        return summary

    def _tree(self, repo: _Repo, sha: str, folder: str, recursive: bool) -> list[dict[str, Any]]:
        with self._lock:
            tree = dict(repo.commits[sha])
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in sorted(tree.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            depth = len(parts) if recursive else 1
            for level in range(1, min(depth, len(parts) - 1) + 1):
                directory = prefix + "/".join(parts[:level])
                entries.setdefault(directory, {"type": "directory", "path": directory, "size": 0,
                                               "oid": hashlib.sha1(directory.encode()).hexdigest()})
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha1(content)}
        return list(entries.values())

    def _paths_info(self, handler: _Handler, repo: _Repo, sha: str) -> None:
        content_type = handler.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = json.loads(handler._body or b"{}").get("paths", [])
        else:
            paths = parse_qs(handler._body.decode()).get("paths", [])
        with self._lock:
            tree = repo.commits[sha]
        found = [{"type": "file", "path": p, "size": len(tree[p]), "oid": git_blob_sha1(tree[p])}
                 for p in paths if p in tree]
        self.respond_json(handler, found)

    def _resolve(self, handler: _Handler, repo: _Repo, revision: str, path: str) -> None:
        sha = self._commit_of(handler, repo, unquote(revision))
        if sha is None:
            return
        with self._lock:
            content = repo.commits[sha].get(path)
        if content is None:
            self._error(handler, 404, "EntryNotFound", f"{path} does not exist on {revision}", commit=sha)
            return
        self.respond_file(handler, content, headers={"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(content)}"'})

    def _preupload(self, handler: _Handler, repo: _Repo, revision: str) -> None:
        payload = json.loads(handler._body or b"{}")
        with self._lock:
            sha = repo.resolve(revision)
            tree = repo.commits.get(sha, {}) if sha else {}
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_blob_sha1(tree[f["path"]]) if f["path"] in tree else None}
                 for f in payload.get("files", [])]
        self.respond_json(handler, {"files": files, "commitOid": sha})

    def _commit_endpoint(self, handler: _Handler, request: RecordedRequest, repo: _Repo, revision: str) -> None:
        """A commit to a branch or ``refs/pr/N``; with ``create_pr=1`` it opens a pull request holding it (from the
        header's ``parentCommit``, else the branch head). A ``parentCommit`` that is not the branch head is 412."""
        if not self._require_user(handler):
            return
        lines = [json.loads(line) for line in handler._body.splitlines() if line.strip()]
        message, description, parent, files, deleted = "update", "", None, {}, []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "header":
                message = value.get("summary") or message
                description = value.get("description") or ""
                parent = value.get("parentCommit")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                self.respond_json(handler, {"error": f"the test Hub does not support {key!r} operations (LFS)"}, 400)
                return
        create_pr = request.query.get("create_pr", [""])[0].lower() in ("1", "true")
        with self._lock:
            head = repo.resolve(revision)
            base = repo.resolve(parent) if parent else head
        if parent is not None and (base is None or not create_pr and base != head):
            self._error(handler, 412, "PreconditionFailed",
                        "A commit has happened since. Please refresh and try again.")
            return
        pull_request = None
        if create_pr:
            pull_request = self._open_discussion(repo, title=message, description=description, author=handler._user,
                                                 base_commit=base)
            revision = f"refs/pr/{pull_request.num}"
        full_message = f"{message}\n\n{description}" if description else message
        sha = self.commit(repo.repo_id, files, repo_type=repo.repo_type, branch=revision, delete=deleted,
                          message=full_message)
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            with self._lock:
                discussion = next((d for d in repo.discussions if d.num == int(match.group(1))), None)
                if discussion is not None:
                    discussion.events.append(self._event("commit", handler._user, {"subject": message, "oid": sha}))
        url = f"{self.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"
        pr_url = f"{url}/discussions/{pull_request.num}" if pull_request else None
        self.respond_json(handler, {"success": True, "commitOid": sha, "commitUrl": f"{url}/commit/{sha}",
                                    "pullRequestUrl": pr_url})

    # users -----------------------------------------------------------------------------------------------------
    def _user_of(self, request: RecordedRequest) -> str | None | bool:
        """The user a request acts as: None without a token, False for a token the server does not know."""
        if self.tokens is None:
            return self.user
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return None
        return self.tokens.get(authorization.removeprefix("Bearer ").strip(), False)

    def _require_user(self, handler: _Handler) -> bool:
        if handler._user is None:
            self._error(handler, 401, "Unauthorized", "You must be authenticated to do this (no token given)")
            return False
        return True

    # metadata: validation and model search ---------------------------------------------------------------------
    def _validate_yaml(self, handler: _Handler) -> None:
        """``POST /api/validate-yaml``: 400 with the problems as text, else ``{"errors": [], "warnings": []}``."""
        payload = json.loads(handler._body or b"{}")
        problems = _metadata_problems(payload.get("content") or "")
        if problems:
            self.respond(handler, 400, "; ".join(problems).encode(), content_type="text/plain")
        else:
            self.respond_json(handler, {"errors": [], "warnings": []})

    def _search_models(self, handler: _Handler, request: RecordedRequest) -> None:
        """``GET /api/models?search=&filter=&author=&limit=``: models whose id contains `search` (any case) and whose
        tags, library or pipeline tag include every `filter`, by `author`; one page, in id order."""
        search = request.query.get("search", [""])[0].lower()
        # As on the Hub, a model's config (model_type) comes only when asked for.
        with_config = request.query.get("config", [""])[0].lower() == "true" or "config" in request.query.get(
            "expand", []) or request.query.get("full", [""])[0].lower() == "true"
        filters = request.query.get("filter", [])
        author = request.query.get("author", [None])[0]
        limit = int(request.query.get("limit", ["0"])[0] or 0)
        with self._lock:
            repos = [(repo, repo.branches["main"]) for (kind, _), repo in sorted(self.repos.items()) if kind == "model"]
        found = []
        for repo, sha in repos:
            summary = self._summary(repo, sha)
            labels = {*summary["tags"], summary["library_name"], summary["pipeline_tag"]}
            if search in repo.repo_id.lower() and all(tag in labels for tag in filters) and (
                    author is None or summary["author"] == author):
                found.append(summary if with_config else {key: value for key, value in summary.items()
                                                          if key != "config"})
        self.respond_json(handler, found[:limit] if limit else found)

    # discussions and pull requests -----------------------------------------------------------------------------
    def _event(self, kind: str, author: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": hashlib.md5(f"event:{next(self._counter)}".encode()).hexdigest()[:24], "type": kind,
                "createdAt": _now(), "author": {"name": author}, "data": data}

    def _comment_event(self, author: str, text: str) -> dict[str, Any]:
        return self._event("comment", author, {"edited": False, "hidden": False,
                                               "latest": {"raw": text, "html": text}})

    def _open_discussion(self, repo: _Repo, *, title: str, description: str, author: str,
                         base_commit: str | None = None, pull_request: bool = True) -> _Discussion:
        """Open a discussion (or a pull request, whose branch ``refs/pr/N`` starts at `base_commit` or main)."""
        with self._lock:
            discussion = _Discussion(num=len(repo.discussions) + 1, title=title, author=author,
                                     is_pull_request=pull_request,
                                     base_commit=(base_commit or repo.branches["main"]) if pull_request else None)
            discussion.events.append(self._comment_event(author, description))
            repo.discussions.append(discussion)
            if pull_request:
                repo.branches[f"refs/pr/{discussion.num}"] = discussion.base_commit
            return discussion

    def _discussion_json(self, repo: _Repo, discussion: _Discussion, *, details: bool = False) -> dict[str, Any]:
        data = {"num": discussion.num, "title": discussion.title, "status": discussion.status,
                "author": {"name": discussion.author}, "createdAt": discussion.created_at,
                "repo": {"name": repo.repo_id, "type": repo.repo_type}, "isPullRequest": discussion.is_pull_request,
                "numComments": sum(event["type"] == "comment" for event in discussion.events)}
        if details:
            data.update(events=copy.deepcopy(discussion.events), filesWithConflicts=[], diff="",
                        changes={"base": "refs/heads/main", "mergeCommitId": discussion.merge_commit})
        return data

    def _discussions(self, handler: _Handler, request: RecordedRequest, repo: _Repo, rest: str) -> None:
        """``/api/<type>s/<repo>/discussions``: list (paged; ``type``, ``status``, ``author`` filters), create, and
        per number: details, ``status``, ``comment`` and ``merge`` (pull requests)."""
        number, _, action = rest.partition("/")
        if not number:
            if request.method == "GET":
                self._list_discussions(handler, request, repo)
            elif request.method == "POST" and self._require_user(handler):
                payload = json.loads(handler._body or b"{}")
                discussion = self._open_discussion(repo, title=payload.get("title") or "", author=handler._user,
                                                   description=payload.get("description") or "",
                                                   pull_request=bool(payload.get("pullRequest")))
                self.respond_json(handler, self._discussion_json(repo, discussion))
            else:
                self.respond(handler, 405)
            return
        with self._lock:
            discussion = next((d for d in repo.discussions if str(d.num) == number), None)
        if discussion is None:
            self._error(handler, 404, "DiscussionNotFound", f"Discussion #{number} does not exist")
            return
        if not action and request.method == "GET":
            with self._lock:
                details = self._discussion_json(repo, discussion, details=True)
            self.respond_json(handler, details)
            return
        if request.method != "POST" or action not in ("status", "comment", "merge"):
            self.respond(handler, 404, b"Not Found", content_type="text/plain")
            return
        if not self._require_user(handler):
            return
        payload = json.loads(handler._body or b"{}")
        if action == "merge":
            self._merge(handler, repo, discussion, payload)
            return
        with self._lock:
            if action == "status":
                discussion.status = payload["status"]
                event = self._event("status-change", handler._user, {"status": payload["status"]})
                reply = {"newStatus": event}
            else:
                event = self._comment_event(handler._user, payload["comment"])
                reply = {"newMessage": event}
            discussion.events.append(event)
            if action == "status" and payload.get("comment"):
                discussion.events.append(self._comment_event(handler._user, payload["comment"]))
        self.respond_json(handler, reply)

    def _list_discussions(self, handler: _Handler, request: RecordedRequest, repo: _Repo) -> None:
        kind = request.query.get("type", ["all"])[0]
        status = request.query.get("status", ["all"])[0]
        author = request.query.get("author", [None])[0]
        page = int(request.query.get("p", ["0"])[0])
        with self._lock:
            selected = [self._discussion_json(repo, d) for d in reversed(repo.discussions)
                        if kind in ("all", "pull_request" if d.is_pull_request else "discussion")
                        and (status == "all" or (d.status == "open") == (status == "open"))
                        and author in (None, d.author)]
        start = page * self.DISCUSSIONS_PER_PAGE
        self.respond_json(handler, {"discussions": selected[start:start + self.DISCUSSIONS_PER_PAGE],
                                    "count": len(selected), "start": start})

    def _merge(self, handler: _Handler, repo: _Repo, discussion: _Discussion, payload: dict[str, Any]) -> None:
        """Apply a pull request's changes (its branch against the commit it was opened from) onto main."""
        if not discussion.is_pull_request or discussion.status != "open":
            self._error(handler, 400, "BadRequest", f"#{discussion.num} is not an open pull request")
            return
        with self._lock:
            base = repo.commits[discussion.base_commit]
            head = repo.commits[repo.branches[f"refs/pr/{discussion.num}"]]
        changed = {path: content for path, content in head.items() if base.get(path) != content}
        sha = self.commit(repo.repo_id, changed, repo_type=repo.repo_type, delete=[p for p in base if p not in head],
                          message=f"Merge pull request #{discussion.num}: {discussion.title}")
        with self._lock:
            discussion.status, discussion.merge_commit = "merged", sha
            discussion.events.append(self._event("status-change", handler._user, {"status": "merged"}))
        self.respond_json(handler, {"success": True, "commitOid": sha})


def _split_revision(tail: str) -> tuple[str, str]:
    """``<revision>/<path>`` of a tree URL, where the revision may itself be ``refs/pr/N`` (paths arrive decoded)."""
    match = re.match(r"(refs/pr/\d+)(?:/(.*))?$", tail)
    if match:
        return match.group(1), match.group(2) or ""
    revision, _, rest = tail.partition("/")
    return unquote(revision), rest


def _front_matter(text: str) -> dict[str, Any] | None:
    """The YAML header of a README as a dict (None when there is none or it is not a valid mapping)."""
    import yaml

    match = re.match(r"^\s*---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)", text)
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _metadata_problems(content: str) -> list[str]:
    """What the Hub would reject in a card's YAML header: invalid YAML, not a mapping, a malformed model-index."""
    import yaml

    match = re.match(r"^\s*---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)", content)
    if match is None:
        return []
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        return [f"Invalid YAML in the metadata: {str(error).splitlines()[0]}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["The metadata must be a mapping"]
    problems = []
    model_index = data.get("model-index")
    if model_index is not None:
        if not isinstance(model_index, list):
            return ['"model-index" must be an array']
        for number, entry in enumerate(model_index):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                problems.append(f'"model-index[{number}].name" must be a string')
                continue
            for index, result in enumerate(entry.get("results") or []):
                where = f"model-index[{number}].results[{index}]"
                if not isinstance(result, dict) or not isinstance((result.get("task") or {}).get("type"), str):
                    problems.append(f'"{where}.task.type" is required')
                    continue
                dataset = result.get("dataset") or {}
                if not all(isinstance(dataset.get(key), str) for key in ("type", "name")):
                    problems.append(f'"{where}.dataset" needs a type and a name')
                metrics = result.get("metrics")
                if not isinstance(metrics, list) or not metrics or not all(
                        isinstance(metric, dict) and "type" in metric and "value" in metric for metric in metrics):
                    problems.append(f'"{where}.metrics" must be a non-empty array of {{type, value}}')
    return problems
