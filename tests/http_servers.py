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
  Hugging Face Jobs (``run_job``, ``inspect_job``, ``fetch_job_logs``, ``cancel_job``, scheduled Jobs, webhooks with
  ``job_id=``): each Job's command runs as a local subprocess with the Job's env and secrets, its volumes mapped to
  local folders; the only thing simulated is where a Job runs (see "Hugging Face Jobs" in `HubServer`).

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
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
    downloads: int = 0  # reported by info and search results; ``sort=downloads`` orders a search by it

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None


_TERMINAL_STAGES = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
_VOLUME_TYPES = ("model", "dataset", "space", "bucket")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_KEEP_ALIVE_SECONDS = 30  # the Jobs log stream sends ": keep-alive" this often when a Job is silent


class JobSpecError(ValueError):
    """A Job spec the test Hub refuses before starting anything (answered with `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    """A Job: its spec as posted (secret values included: they are never answered), its process and its log."""

    id: str
    owner: str
    spec: dict[str, Any]
    initiator: dict[str, Any]
    folder: Path  # the Job's local "container": work/, home/ and volumes/
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stage: str = "SCHEDULING"
    message: str | None = None
    log: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, line), stdout and stderr interleaved
    process: subprocess.Popen | None = None
    stop_reason: str | None = None  # why the server ended it: "canceled", "timeout" or "shutdown"
    read_only: dict[str, tuple[Path, str]] = field(default_factory=dict)  # mount path -> (local folder, digest)
    supervisor: threading.Thread | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)  # guards the fields above


@dataclass
class _ScheduledJob:
    id: str
    owner: str
    spec: dict[str, Any]
    schedule: str
    suspend: bool = False
    concurrency: bool = False
    created_at: str = field(default_factory=lambda: _now())
    last_job: dict[str, str] | None = None  # {"id", "at"} of the latest run


@dataclass
class _WebhookRun:
    """What a webhook runs, kept apart from `HubServer.webhooks` so that secret values are never answered."""

    owner: str
    spec: dict[str, Any] | None = None  # a Job webhook: its source Job's spec without the source's secrets
    secrets: dict[str, str] = field(default_factory=dict)  # the `secrets` given to create_webhook



_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class HubServer(RecordingServer):
    """A small Hugging Face Hub-compatible server, in memory (see the module docstring for what it supports).

    Test-side helpers: `create_repo`, `commit` (add/replace/delete files on a branch), `tag`, `files` (read a
    revision back), `commit_messages` and `discussions`; for Jobs `job_info`, `job_log`, `bucket_dir`,
    `trigger_scheduled_job`, `fire_webhook` and `emit_event`.

    Args:
        user: who every request acts as when `tokens` is None.
        tokens: token -> user name. When given, a request acts as its bearer token's user, an unknown token is
            refused with 401 everywhere, and writes (repo creation, commits, discussions) need a known token.
        data_dir: where Jobs get their folders (work, home, volumes) and buckets live; a temporary folder removed
            on `stop` when not given.
        job_env: added to (or replacing) the base environment of every Job (PATH with this Python's folder first,
            a fresh HOME and HF_HOME, HF_ENDPOINT pointing here, telemetry and download counts off), before the
            Job's own `environment` and `secrets`.
        job_images: Docker image -> command prefix run before a Job's command (e.g. ``{"python:3.12": ["env"]}``);
            an image not listed runs the command as given.
        job_kill_grace: seconds between SIGTERM and SIGKILL when a Job is canceled or times out.
    """

    DISCUSSIONS_PER_PAGE = 50  # the Hub's page size for discussion listings (tests lower it to exercise paging)

    def __init__(self, *, user: str = "speat-tester", tokens: Mapping[str, str] | None = None,
                 data_dir: Path | None = None, job_env: Mapping[str, str] | None = None,
                 job_images: Mapping[str, Sequence[str]] | None = None, job_kill_grace: float = 2.0) -> None:
        super().__init__()
        self.user = user
        self.tokens = dict(tokens) if tokens is not None else None
        self.repos: dict[tuple[str, str], _Repo] = {}
        self._counter = itertools.count()
        self._messages: dict[str, str] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}  # /api/settings/webhooks, by webhook id
        self._webhook_runs: dict[str, _WebhookRun] = {}  # by webhook id
        self._holds: dict[str, threading.Event] = {}  # path -> released when set (see `hold`)
        self.jobs: dict[str, _Job] = {}  # by Job id, oldest first
        self.scheduled_jobs: dict[str, _ScheduledJob] = {}
        self.job_env = dict(job_env or {})
        self.job_images = {image: list(prefix) for image, prefix in (job_images or {}).items()}
        self.job_kill_grace = job_kill_grace
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._own_data_dir = data_dir is None

    # test-side helpers -----------------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False) -> None:
        """Create a repository with an initial commit holding ``.gitattributes`` (as the Hub does)."""
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            self.repos[(repo_type, repo_id)] = _Repo(repo_type, repo_id, private=private)
        self.commit(repo_id, {".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"},
                    repo_type=repo_type, message="initial commit")

    def set_downloads(self, repo_id: str, downloads: int, *, repo_type: str = "model") -> None:
        """The download count the Hub reports for a repository (what ``sort=downloads`` orders by)."""
        with self._lock:
            self.repos[(repo_type, repo_id)].downloads = downloads

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
        if path.startswith(("/api/jobs/", "/api/scheduled-jobs/")):
            self._jobs_api(handler, request)
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
        """``/api/settings/webhooks[/ID[/enable|/disable]]``: list (GET), create (POST), read (GET ID), update
        (POST ID), DELETE ID. A ``jobSourceId`` (create_webhook's `job_id`) makes a Job webhook, which copies the
        spec of that Job of the caller's; its ``secrets`` are kept for the Jobs it starts and never answered."""
        webhook_id, _, action = request.path.removeprefix("/api/settings/webhooks").strip("/").partition("/")
        body = json.loads(handler._body or b"{}") if request.method == "POST" else {}
        source = None
        if body.get("jobSourceId"):
            with self._lock:
                source = self.jobs.get(body["jobSourceId"])
            if source is None or source.owner != handler._user:
                self._error(handler, 404, "NotFound", f"no Job {body['jobSourceId']!r} to start from a webhook")
                return
        with self._lock:
            if not webhook_id and request.method in ("GET", "POST"):
                if request.method == "POST":
                    webhook_id = hashlib.md5(f"webhook:{next(self._counter)}".encode()).hexdigest()[:24]
                    self.webhooks[webhook_id] = {"id": webhook_id, "url": body.get("url"), "job": None,
                                                 "watched": body["watched"], "domains": body["domains"],
                                                 "secret": body.get("secret"), "disabled": False}
                    self._webhook_runs[webhook_id] = _WebhookRun(owner=handler._user or self.user)
                    self._set_webhook_job(webhook_id, source, body)
                reply = {"webhook": self.webhooks[webhook_id]} if webhook_id else list(self.webhooks.values())
            elif webhook_id in self.webhooks and action in ("enable", "disable") and request.method == "POST":
                self.webhooks[webhook_id]["disabled"] = action == "disable"
                reply = {"webhook": self.webhooks[webhook_id]}
            elif webhook_id in self.webhooks and not action and request.method in ("GET", "POST", "DELETE"):
                if request.method == "POST":
                    self.webhooks[webhook_id].update({key: value for key, value in body.items()
                                                      if key in ("url", "watched", "domains", "secret")})
                    self._set_webhook_job(webhook_id, source, body)
                if request.method == "DELETE":
                    self._webhook_runs.pop(webhook_id, None)
                reply = {"webhook": self.webhooks.pop(webhook_id) if request.method == "DELETE"
                         else self.webhooks[webhook_id]}
            else:
                reply = None
        if reply is None:
            self._error(handler, 404, "NotFound", f"no webhook {webhook_id!r}")
        else:
            self.respond_json(handler, copy.deepcopy(reply))

    def _set_webhook_job(self, webhook_id: str, source: _Job | None, body: Mapping[str, Any]) -> None:
        """Record a Job webhook's spec (from `source`, without its secrets) and secrets (call with the lock held)."""
        run = self._webhook_runs[webhook_id]
        if source is not None:
            run.spec = {key: copy.deepcopy(value) for key, value in source.spec.items() if key != "secrets"}
            self.webhooks[webhook_id]["url"] = None
        if "secrets" in body:
            run.secrets = {name: str(value) for name, value in (body["secrets"] or {}).items() if value is not None}
        if run.spec is not None:
            self.webhooks[webhook_id]["job"] = _public_spec({**run.spec, "secrets": run.secrets})

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
                   "createdAt": now, "tags": tags, "downloads": repo.downloads, "likes": 0}
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
        """``GET /api/models?search=&filter=&author=&limit=&sort=``: models whose id contains `search` (any case) and
        whose tags, library or pipeline tag include every `filter`, by `author`; one page, in id order or, with
        ``sort=downloads``, most downloaded first (the client's default direction)."""
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
        if request.query.get("sort", [""])[0] == "downloads":
            found.sort(key=lambda summary: -summary["downloads"])
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

    # Hugging Face Jobs ---------------------------------------------------------------------------------------------
    # What huggingface_hub 2.4's HfApi asks of the Jobs API (read in its hf_api.py and _jobs_api.py). Without
    # `namespace=`, every call first asks GET /api/whoami-v2 for the token's user, whose namespace the Job lives in.
    # - run_job / run_uv_job: POST /api/jobs/<ns> with {"command", "arguments": [], "environment", "flavor" (default
    #   "cpu-basic"), "dockerImage" or "spaceId" (an image "hf.co/spaces/<id>"), and only when given "secrets",
    #   "timeoutSeconds" (the client turns "5m" into 300), "attempts", "labels" (a "name" label is always there,
    #   derived from image and command when not given), "volumes" [{"type", "source", "mountPath", "revision"?,
    #   "readOnly"?, "path"?}], "expose", "ssh", "network", "resourceGroupId"}. run_uv_job sends ["uv", "run", ...]
    #   after uploading a local script to a "jobs-artifacts" bucket (the buckets API is not served here, so only a
    #   script URL or a command works).
    # - JobInfo needs "id", "owner" {"id", "name", "type"} and "status" {"stage", "message"}; it also reads
    #   createdAt, startedAt, finishedAt, dockerImage, spaceId, command, arguments, environment, secrets, flavor,
    #   labels, volumes, durations {schedulingSecs, runningSecs, totalSecs} and initiator {"type", "id", "name"?}.
    #   Stages: SCHEDULING, RUNNING, then COMPLETED, ERROR, CANCELED or DELETED (terminal).
    # - inspect_job: GET /api/jobs/<ns>/<id>; wait_for_job polls it every `poll_interval` until a terminal stage.
    # - list_jobs: GET /api/jobs/<ns>?stage=RUNNING&label=key=value (paged with Link headers; one page here). It
    #   asks the module-level whoami (default endpoint and token): with HfApi(endpoint=...), pass `namespace=`.
    # - cancel_job: POST /api/jobs/<ns>/<id>/cancel (the reply is ignored); rerun_job: POST .../<id>/duplicate.
    # - fetch_job_logs: GET /api/jobs/<ns>/<id>/logs[?tail=N], server-sent events: only lines "data: {...}" count,
    #   each {"data": line, "timestamp": "...Z"}; lines starting "===== Job started" are dropped. follow=False stops
    #   at the first event later than the reply's Date + 1 s, or after 5 s of silence; follow=True reads until the
    #   stream ends, asks GET .../<id> whether the stage is terminal, and otherwise reconnects 2 s later, skipping
    #   the events it has seen. So the stream here replays the log, follows it, and ends once the Job has ended.
    # - Scheduled Jobs: POST /api/scheduled-jobs/<ns> {"jobSpec", "schedule", "suspend"?, "concurrency"?}; GET
    #   (?label=key=value), GET and DELETE <ns>/<id>, POST <id>/suspend, /resume, /schedule {"schedule"} and /run
    #   (trigger_scheduled_job: a JobInfo, 409 while a run is going on and concurrency is off). ScheduledJobInfo
    #   needs "id" and "owner"; it reads "jobSpec", "schedule", "suspend", "concurrency", "createdAt" and "status"
    #   {"lastJob" {"id", "at"}, "nextJobRunAt"}.
    # - Webhooks: create_webhook(job_id=...) posts {"watched", "domains", "secret"?, "jobSourceId", "secrets"?} to
    #   /api/settings/webhooks; "secrets" are the started Jobs' secrets (the source Job's are not copied). Replies
    #   {"webhook": {..., "job": a JobSpec: dockerImage, command, arguments, environment, secrets, flavor, timeout,
    #   labels, volumes}}. A started Job gets WEBHOOK_PAYLOAD, WEBHOOK_REPO_ID, WEBHOOK_REPO_TYPE, WEBHOOK_SECRET.
    # Where the client does not tell, this server chooses: secrets are answered as a list of names (never values);
    # WEBHOOK_SECRET goes in the Job's secrets; a Job past its timeout ends in ERROR saying so; a failed one says its
    # exit code; "nextJobRunAt" is null (no cron clock: tests call `trigger_scheduled_job`).

    @property
    def data_dir(self) -> Path:
        """Where Jobs' folders and buckets live (created on first use)."""
        with self._lock:
            if self._data_dir is None:
                self._data_dir = Path(tempfile.mkdtemp(prefix="test-hub-jobs-"))
            return self._data_dir

    def bucket_dir(self, bucket_id: str) -> Path:
        """The local folder of a bucket (``namespace/name``), mounted by Jobs that name it in a volume."""
        folder = self.data_dir / "buckets" / bucket_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def job_info(self, job_id: str) -> dict[str, Any]:
        """A Job as inspect_job's reply describes it (secret names only)."""
        with self._lock:
            job = self.jobs[job_id]
        return self._job_json(job)

    def job_log(self, job_id: str) -> list[str]:
        """The lines a Job printed so far (stdout and stderr, interleaved as they came)."""
        with self._lock:
            job = self.jobs[job_id]
        with job.changed:
            return [line for _, line in job.log[1:]]  # the first is the "===== Job started" banner

    def trigger_scheduled_job(self, scheduled_job_id: str) -> str | None:
        """One tick of the cron clock (tests have none) for a scheduled Job: start it and return the Job's id; None
        when it is suspended or, without concurrency, while its previous run is still going on."""
        with self._lock:
            scheduled = self.scheduled_jobs[scheduled_job_id]
        if scheduled.suspend:
            return None
        job = self._run_scheduled(scheduled)
        return job.id if job is not None else None

    def fire_webhook(self, webhook_id: str, payload: Mapping[str, Any]) -> str | int:
        """Deliver one event to a webhook as the Hub does and return the Job's id, or the URL's HTTP status.

        A Job webhook starts one Job: its source Job's spec with the webhook's secrets, ``WEBHOOK_PAYLOAD`` (the
        payload's JSON), ``WEBHOOK_REPO_ID`` and ``WEBHOOK_REPO_TYPE`` in its environment and the webhook's secret
        as the secret ``WEBHOOK_SECRET``. A URL webhook is POSTed the payload with an ``X-Webhook-Secret`` header.
        """
        with self._lock:
            webhook = copy.deepcopy(self.webhooks[webhook_id])
            run = copy.deepcopy(self._webhook_runs[webhook_id])
        if webhook["disabled"]:
            raise ValueError(f"webhook {webhook_id} is disabled")
        body = json.dumps(payload)
        if run.spec is None:
            headers = {"Content-Type": "application/json"}
            if webhook["secret"]:
                headers["X-Webhook-Secret"] = webhook["secret"]
            request = urllib.request.Request(webhook["url"], data=body.encode(), headers=headers, method="POST")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
            try:
                with opener.open(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
        repo = payload.get("repo") or {}
        environment = {**(run.spec.get("environment") or {}), "WEBHOOK_PAYLOAD": body,
                       "WEBHOOK_REPO_ID": str(repo.get("name", "")), "WEBHOOK_REPO_TYPE": str(repo.get("type", ""))}
        secrets = {**run.secrets, **({"WEBHOOK_SECRET": webhook["secret"]} if webhook["secret"] else {})}
        spec = {**run.spec, "environment": environment, "secrets": secrets}
        return self._start_job(run.owner, spec, {"type": "webhook", "id": webhook_id}).id

    def emit_event(self, payload: Mapping[str, Any]) -> dict[str, str | int]:
        """Deliver a Hub event (``{"event": {"scope": "repo.content", ...}, "repo": {"type", "name", ...}}``) to
        every enabled webhook of its domain watching its repository or the repository's owner (user or org);
        returns webhook id -> what `fire_webhook` returned."""
        repo, domain = payload["repo"], payload["event"]["scope"].split(".")[0]
        watchers = {("user", repo["name"].split("/")[0]), ("org", repo["name"].split("/")[0]),
                    (repo["type"], repo["name"])}
        with self._lock:
            chosen = [webhook_id for webhook_id, webhook in self.webhooks.items()
                      if not webhook["disabled"] and domain in webhook["domains"]
                      and any((item["type"], item["name"]) in watchers for item in webhook["watched"])]
        return {webhook_id: self.fire_webhook(webhook_id, payload) for webhook_id in chosen}

    def stop(self) -> None:
        """Stop the server, after ending every Job still running (its whole process group)."""
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            self._end_job(job, "shutdown", grace=0)
        for job in jobs:
            if job.supervisor is not None:
                job.supervisor.join(timeout=10)
        super().stop()
        if self._own_data_dir and self._data_dir is not None:
            _remove_tree(self._data_dir)
            self._data_dir = None

    # Jobs: HTTP side ---------------------------------------------------------------------------------------------
    def _jobs_api(self, handler: _Handler, request: RecordedRequest) -> None:
        """``/api/jobs/<ns>[/<id>[/<action>]]`` and ``/api/scheduled-jobs/<ns>[/<id>[/<action>]]``, for the
        token's own namespace only."""
        match = re.fullmatch(r"/api/(jobs|scheduled-jobs)/([^/]+)(?:/([^/]+))?(?:/([^/]+))?", request.path)
        if match is None:
            self.respond(handler, 404, b"Not Found", content_type="text/plain")
            return
        kind, namespace, object_id, action = match.groups()
        if not self._require_user(handler):
            return
        if namespace != handler._user:
            self._error(handler, 403, "Forbidden", f"{handler._user!r} may not use the namespace {namespace!r}")
            return
        try:
            if kind == "jobs":
                self._jobs_endpoint(handler, request, object_id, action)
            else:
                self._scheduled_jobs_endpoint(handler, request, object_id, action)
        except JobSpecError as error:
            self._error(handler, error.status, "BadRequest" if error.status == 400 else "NotFound", str(error))

    def _jobs_endpoint(self, handler: _Handler, request: RecordedRequest, job_id: str | None,
                       action: str | None) -> None:
        user, method = handler._user, request.method
        if job_id is None:
            if method == "POST":
                job = self._start_job(user, json.loads(handler._body or b"{}"), _owner_json(user))
                self.respond_json(handler, self._job_json(job))
            elif method == "GET":
                stages = request.query.get("stage", [])
                labels = [label.partition("=")[::2] for label in request.query.get("label", [])]
                with self._lock:
                    jobs = [job for job in reversed(self.jobs.values()) if job.owner == user]
                replies = [self._job_json(job) for job in jobs]
                self.respond_json(handler, [reply for reply in replies
                                            if (not stages or reply["status"]["stage"] in stages)
                                            and all((reply["labels"] or {}).get(k) == v for k, v in labels)])
            else:
                self.respond(handler, 405)
            return
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None or job.owner != user:
            self._error(handler, 404, "NotFound", f"no Job {job_id!r} in {user!r}")
        elif action is None and method == "GET":
            self.respond_json(handler, self._job_json(job))
        elif action == "logs" and method == "GET":
            tail = request.query.get("tail", [None])[0]
            self._stream_log(handler, job, int(tail) if tail else None)
        elif action == "cancel" and method == "POST":
            self._end_job(job, "canceled", grace=self.job_kill_grace)
            self.respond_json(handler, self._job_json(job))
        elif action == "duplicate" and method == "POST":
            copied = self._start_job(user, job.spec, {"type": "duplicated-job", "id": job.id})
            self.respond_json(handler, self._job_json(copied))
        else:
            self.respond(handler, 404, b"Not Found", content_type="text/plain")

    def _scheduled_jobs_endpoint(self, handler: _Handler, request: RecordedRequest, scheduled_id: str | None,
                                 action: str | None) -> None:
        user, method = handler._user, request.method
        body = json.loads(handler._body or b"{}") if method == "POST" else {}
        if scheduled_id is None:
            if method == "POST":
                spec = body.get("jobSpec") or {}
                _check_job_spec(spec)
                if not isinstance(body.get("schedule"), str) or not body["schedule"].strip():
                    raise JobSpecError(f"a scheduled Job needs a schedule, not {body.get('schedule')!r}")
                scheduled = _ScheduledJob(uuid.uuid4().hex[:24], user, spec, body["schedule"],
                                          suspend=bool(body.get("suspend")), concurrency=bool(body.get("concurrency")))
                with self._lock:
                    self.scheduled_jobs[scheduled.id] = scheduled
                self.respond_json(handler, self._scheduled_json(scheduled))
            elif method == "GET":
                key, _, value = request.query.get("label", [""])[0].partition("=")
                with self._lock:
                    chosen = [s for s in self.scheduled_jobs.values() if s.owner == user
                              and (not key or (s.spec.get("labels") or {}).get(key) == value)]
                self.respond_json(handler, [self._scheduled_json(scheduled) for scheduled in chosen])
            else:
                self.respond(handler, 405)
            return
        with self._lock:
            scheduled = self.scheduled_jobs.get(scheduled_id)
            if scheduled is not None and scheduled.owner != user:
                scheduled = None
            if scheduled is not None and method == "DELETE" and action is None:
                del self.scheduled_jobs[scheduled_id]
        if scheduled is None:
            self._error(handler, 404, "NotFound", f"no scheduled Job {scheduled_id!r} in {user!r}")
        elif action is None and method in ("GET", "DELETE"):
            self.respond_json(handler, self._scheduled_json(scheduled))
        elif action in ("suspend", "resume", "schedule") and method == "POST":
            with self._lock:
                if action == "schedule":
                    scheduled.schedule = body["schedule"]
                else:
                    scheduled.suspend = action == "suspend"
            self.respond_json(handler, self._scheduled_json(scheduled))
        elif action == "run" and method == "POST":
            job = self._run_scheduled(scheduled)
            if job is None:
                self._error(handler, 409, "Conflict", f"scheduled Job {scheduled_id} is already running")
            else:
                self.respond_json(handler, self._job_json(job))
        else:
            self.respond(handler, 404, b"Not Found", content_type="text/plain")

    def _stream_log(self, handler: _Handler, job: _Job, tail: int | None) -> None:
        """Server-sent events of a Job's log: the lines so far (the last `tail`), then new ones until it ends."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")  # no length: the body ends when the connection closes
        handler.end_headers()
        handler.close_connection = True
        with job.changed:
            sent = max(0, len(job.log) - tail) if tail is not None else 0
        while True:
            with job.changed:
                if len(job.log) == sent and job.stage not in _TERMINAL_STAGES:
                    job.changed.wait(timeout=_KEEP_ALIVE_SECONDS)
                events, sent = job.log[sent:], len(job.log)
                ended = job.stage in _TERMINAL_STAGES
            chunk = "".join(f"data: {json.dumps({'data': line, 'timestamp': moment})}\n\n" for moment, line in events)
            handler.wfile.write((chunk or (": keep-alive\n\n" if not ended else "")).encode())
            handler.wfile.flush()
            if ended:
                return

    def _job_json(self, job: _Job) -> dict[str, Any]:
        spec = job.spec
        with job.changed:
            now = datetime.now(timezone.utc)
            running = (job.finished_at or now) - job.started_at if job.started_at else None
            data = {"id": job.id, "createdAt": _iso(job.created_at), "startedAt": _iso(job.started_at),
                    "finishedAt": _iso(job.finished_at), "command": spec.get("command"),
                    "arguments": spec.get("arguments") or [], "environment": spec.get("environment") or {},
                    "secrets": sorted(spec.get("secrets") or {}), "flavor": spec.get("flavor"),
                    "labels": spec.get("labels"), "volumes": spec.get("volumes"),
                    "status": {"stage": job.stage, "message": job.message}, "owner": _owner_json(job.owner),
                    "initiator": job.initiator,
                    "durations": {"schedulingSecs": 0, "runningSecs": int(running.total_seconds()) if running else None,
                                  "totalSecs": int(((job.finished_at or now) - job.created_at).total_seconds())}}
        data.update({"spaceId": spec["spaceId"]} if spec.get("spaceId") else {"dockerImage": spec.get("dockerImage")})
        return copy.deepcopy(data)

    def _scheduled_json(self, scheduled: _ScheduledJob) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy({"id": scheduled.id, "createdAt": scheduled.created_at,
                                  "owner": _owner_json(scheduled.owner), "jobSpec": _public_spec(scheduled.spec),
                                  "schedule": scheduled.schedule, "suspend": scheduled.suspend,
                                  "concurrency": scheduled.concurrency,
                                  "status": {"lastJob": scheduled.last_job, "nextJobRunAt": None}})

    # Jobs: the local engine --------------------------------------------------------------------------------------
    def _run_scheduled(self, scheduled: _ScheduledJob) -> _Job | None:
        """Start a run of a scheduled Job; None while its previous run runs and concurrency is off."""
        with self._lock:
            last = self.jobs.get((scheduled.last_job or {}).get("id", ""))
        if last is not None and not scheduled.concurrency and last.stage not in _TERMINAL_STAGES:
            return None
        job = self._start_job(scheduled.owner, scheduled.spec, {"type": "scheduled-job", "id": scheduled.id})
        with self._lock:
            scheduled.last_job = {"id": job.id, "at": _iso(job.created_at)}
        return job

    def _start_job(self, owner: str, spec: Mapping[str, Any], initiator: dict[str, Any]) -> _Job:
        """Check a Job spec, map its volumes to local folders and start its command; return the Job (RUNNING, or
        ERROR when the command cannot start). Raises JobSpecError (before any work) for a spec the Hub refuses."""
        spec = copy.deepcopy(dict(spec))
        _check_job_spec(spec)
        sources = [(volume["mountPath"].rstrip("/"), volume, self._volume_source(volume))
                   for volume in spec.get("volumes") or []]
        job_id = uuid.uuid4().hex[:24]
        job = _Job(job_id, owner, spec, initiator, self.data_dir / "jobs" / job_id)
        (job.folder / "work").mkdir(parents=True)
        (job.folder / "home").mkdir()
        mounts = {}
        for number, (mount_path, volume, source) in enumerate(sources):
            if isinstance(source, Path):  # a writable bucket: the Job writes to the bucket itself
                mounts[mount_path] = source
                continue
            folder = _write_read_only(source, job.folder / "volumes" / str(number))
            mounts[mount_path] = folder
            job.read_only[volume["mountPath"]] = (folder, _folder_digest(folder))
        environment = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{_SYSTEM_PATH}",
                       "HOME": str(job.folder / "home"), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
                       "HF_ENDPOINT": self.url, "HF_HOME": str(job.folder / "home" / ".cache" / "huggingface"),
                       "HF_HUB_DISABLE_TELEMETRY": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0",
                       "NO_PROXY": "127.0.0.1,localhost", **self.job_env}
        for name, value in [*(spec.get("environment") or {}).items(), *(spec.get("secrets") or {}).items()]:
            if value is not None:  # the CLI sends None for a secret it could not find
                environment[name] = str(value)
        image = spec.get("dockerImage") or spec.get("spaceId")
        command = [*self.job_images.get(image, []), *spec["command"], *(spec.get("arguments") or [])]
        with self._lock:
            self.jobs[job.id] = job
        with job.changed:
            job.started_at = datetime.now(timezone.utc)
            job.stage = "RUNNING"
            job.log.append((_iso(job.started_at), f"===== Job started at {_iso(job.started_at)} ====="))
            try:
                job.process = subprocess.Popen(
                    [_remap_mounts(argument, mounts) for argument in command], cwd=job.folder / "work",
                    env={name: _remap_mounts(value, mounts) for name, value in environment.items()},
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    start_new_session=True)  # its own process group, so that ending it ends its children too
            except OSError as error:
                job.log.append((_now(), f"could not start {command[0]!r}: {error.strerror}"))
                job.stage, job.message = "ERROR", f"could not start {command[0]!r}: {error.strerror}"
                job.finished_at = datetime.now(timezone.utc)
                return job
        job.supervisor = threading.Thread(target=self._supervise, args=(job,), daemon=True)
        job.supervisor.start()
        return job

    def _volume_source(self, volume: Mapping[str, Any]) -> dict[str, bytes] | Path:
        """What a volume mounts: a repository's files at its revision (under its `path`) to copy read-only, a
        bucket folder to mount writable, or a read-only bucket's files."""
        kind, source, prefix = volume.get("type") or "model", volume["source"], (volume.get("path") or "").strip("/")
        if kind == "bucket":
            folder = self.bucket_dir(source) / prefix
            folder.mkdir(parents=True, exist_ok=True)
            if not volume.get("readOnly"):
                return folder
            return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
        revision = volume.get("revision") or "main"
        with self._lock:
            repo = self.repos.get((kind, source))
            sha = repo.resolve(revision) if repo is not None else None
            tree = dict(repo.commits[sha]) if sha is not None else None
        if repo is None:
            raise JobSpecError(f"volume {volume['mountPath']}: no {kind} repository {source!r}", 404)
        if tree is None:
            raise JobSpecError(f"volume {volume['mountPath']}: {source} has no revision {revision!r}", 404)
        return {path[len(prefix) + 1:] if prefix else path: content for path, content in tree.items()
                if not prefix or path.startswith(prefix + "/")}

    def _supervise(self, job: _Job) -> None:
        """Wait for a Job's process (killing it past its timeout), collect its log and record how it ended."""
        process = job.process
        reader = threading.Thread(target=_read_log, args=(job, process.stdout), daemon=True)
        reader.start()
        timeout = job.spec.get("timeoutSeconds")
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._end_job(job, "timeout", grace=self.job_kill_grace)
            process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # a container ends with its main process, and so do its children
        reader.join(timeout=5)
        process.stdout.close()
        code, reason = process.returncode, job.stop_reason
        changed = [mount for mount, (folder, digest) in job.read_only.items() if _folder_digest(folder) != digest]
        if reason == "canceled":
            stage, message = "CANCELED", "Job canceled"
        elif reason == "timeout":
            stage, message = "ERROR", f"Job timed out after {timeout} seconds (its timeout)"
        elif reason == "shutdown":
            stage, message = "ERROR", "the test Hub stopped while the Job was running"
        elif changed:  # root ignores file modes: a read-only mount's files were changed all the same
            stage, message = "ERROR", f"the Job wrote to the read-only volume {changed[0]}"
        elif code == 0:
            stage, message = "COMPLETED", None
        elif code > 0:
            stage, message = "ERROR", f"Job failed with exit code: {code}"
        else:
            stage, message = "ERROR", f"Job was killed by signal {signal.Signals(-code).name}"
        with job.changed:
            job.stage, job.message, job.finished_at = stage, message, datetime.now(timezone.utc)
            job.changed.notify_all()

    def _end_job(self, job: _Job, reason: str, *, grace: float) -> None:
        """Stop a running Job's process group: SIGTERM, then SIGKILL after `grace` seconds (the first reason given
        is the one recorded)."""
        with job.changed:
            if job.process is None or job.stage in _TERMINAL_STAGES:
                return
            job.stop_reason = job.stop_reason or reason
            pid = job.process.pid
        if grace <= 0:
            _signal_group(pid, signal.SIGKILL)
            return
        _signal_group(pid, signal.SIGTERM)
        timer = threading.Timer(grace, lambda: job.stage in _TERMINAL_STAGES or _signal_group(pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()


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


# Jobs: helpers of the local engine -----------------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    """A time as the Hub writes it (``2024-01-01T00:00:00.000Z``)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment is not None else None


def _owner_json(name: str) -> dict[str, str]:
    return {"id": hashlib.md5(name.encode()).hexdigest()[:24], "name": name, "type": "user"}


def _public_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A Job spec as replies show it: secret names, never values."""
    public = {key: copy.deepcopy(value) for key, value in spec.items() if key != "secrets"}
    return {**public, "secrets": sorted(spec.get("secrets") or {}), "timeout": spec.get("timeoutSeconds")}


def _check_job_spec(spec: Mapping[str, Any]) -> None:
    """Refuse (JobSpecError, 400) what the Jobs API would: no image, no command, malformed env, secrets, timeout or
    volumes."""
    if not (spec.get("dockerImage") or spec.get("spaceId")):
        raise JobSpecError("a Job needs a dockerImage or a spaceId")
    command = spec.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(part, str) for part in command):
        raise JobSpecError(f"a Job's command must be a non-empty list of strings, not {command!r}")
    for key in ("environment", "secrets"):
        if not isinstance(spec.get(key) or {}, dict):
            raise JobSpecError(f"a Job's {key} must be an object, not {spec[key]!r}")
    timeout = spec.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise JobSpecError(f"timeoutSeconds must be a positive integer, not {timeout!r}")
    mount_paths = set()
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict) or (volume.get("type") or "model") not in _VOLUME_TYPES or not volume.get(
                "source"):
            raise JobSpecError(f"a volume needs a type among {_VOLUME_TYPES} and a source, not {volume!r}")
        mount_path = volume.get("mountPath")
        if not isinstance(mount_path, str) or not mount_path.startswith("/") or mount_path.rstrip("/") == "":
            raise JobSpecError(f"a volume's mountPath must be an absolute path below /, not {mount_path!r}")
        if mount_path.rstrip("/") in mount_paths:
            raise JobSpecError(f"two volumes are mounted at {mount_path}")
        mount_paths.add(mount_path.rstrip("/"))


def _remap_mounts(value: str, mounts: Mapping[str, Path]) -> str:
    """`value` with each mount path (e.g. ``/data`` in ``--stimuli=/data/x``, not in ``/database`` or
    ``/x/data``) replaced by the local folder mounted there, in one pass (a local folder is not remapped again)."""
    if not mounts:
        return value
    alternatives = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
    return re.sub(rf"(?<![\w./-])({alternatives})(?=/|$|[^\w.-])", lambda match: str(mounts[match.group(1)]),
                  value)


def _write_read_only(files: Mapping[str, bytes], folder: Path) -> Path:
    """Write a snapshot (relative path -> content) into `folder` and make it read-only (files 0444, folders 0555)."""
    folder.mkdir(parents=True)
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return folder


def _folder_digest(folder: Path) -> str:
    """A fingerprint of a folder's file names and contents (to notice writes that file modes did not stop)."""
    digest = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha1(path.read_bytes()).digest())
    return digest.hexdigest()


def _remove_tree(folder: Path) -> None:
    """Remove a folder, read-only snapshots included."""
    for directory, _, _ in os.walk(folder):
        os.chmod(directory, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _read_log(job: _Job, stream: Any) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        with job.changed:
            job.log.append((_now(), line))
            job.changed.notify_all()


def _signal_group(pid: int, signum: int) -> bool:
    """Send `signum` to the process group led by `pid`; False when no such group is left."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def add_github_folder(server: StaticFileServer, repo: str, commit: str, folder: str, files: Mapping[str, bytes],
                      *, listed: Mapping[str, bytes] | None = None) -> None:
    """Make `server` answer like GitHub for one folder of `repo` at `commit`: the contents API's listing at
    ``/repos/<repo>/contents/<folder>`` (name, path, git blob ``sha``, size, type) and the raw files at
    ``/raw/<commit>/<folder>/<name>`` (raw base URL: ``f"{server.url}/raw"``). `listed` (default `files`) is what the
    listing describes, so a test can serve bytes that differ from it."""
    entries = [{"name": name, "path": f"{folder}/{name}", "sha": git_blob_sha1(content), "size": len(content),
                "type": "file", "download_url": f"{server.url}/raw/{commit}/{folder}/{name}"}
               for name, content in (files if listed is None else listed).items()]
    server.add_json(f"/repos/{repo}/contents/{folder}", entries)
    for name, content in files.items():
        server.add_file(f"/raw/{commit}/{folder}/{name}", content, "audio/wav")
