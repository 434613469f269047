"""The durable job queue: one SQLite file (stdlib `sqlite3`, WAL mode), one job per (repository, commit).

A job's life::

    queued --claim--> running --> done | ignored | failed
       ^                 |
       +-- retry (back-off) / interrupted (its worker died) --+
    queued --a newer commit of the same repository arrives--> superseded

- `JobStore.submit` is one transaction: a (repo, commit) seen before makes no new job (duplicates and replays only
  count a delivery); a new commit supersedes the repository's queued jobs.
- `JobStore.claim` is one transaction (``BEGIN IMMEDIATE``): it first requeues running jobs whose worker is gone (a
  process of this host that no longer exists, or a lease no heartbeat renewed), then moves the oldest ready job to
  running under a fresh claim token. Two workers, in one process or several processes sharing the file, never get
  the same job, nor two jobs of one repository at once (two commits of a repository are annotated one after the
  other, so the second updates the first's pull request rather than racing it); a job whose worker died runs
  again, once, after the restart.
- Every later change of a running job names its claim token, so a worker that lost its job cannot overwrite it.

Commits are made with ``synchronous=FULL``: an acknowledged event survives a crash of the process or the machine.
The write-ahead log is checkpointed every `_CHECKPOINT_PAGES` pages rather than SQLite's 1,000: the commit that
triggers a checkpoint waits for its copy and fsyncs, and a smaller one keeps that wait (and the log file) small.

Example:
    >>> import tempfile
    >>> from speat_metric.hub.webhook.events import AnnotationRequest
    >>> store = JobStore(Path(tempfile.mkdtemp()) / "jobs.sqlite")
    >>> store.submit(AnnotationRequest("alice/tiny", "a" * 40)).created
    True
    >>> store.submit(AnnotationRequest("alice/tiny", "a" * 40)).created   # a replayed event
    False
    >>> job = store.claim("worker-1")
    >>> job.state, job.attempts, store.claim("worker-2")
    ('running', 1, None)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speat_metric.hub.webhook.events import AnnotationRequest
from speat_metric.hub.webhook.logs import log_event

logger = logging.getLogger(__name__)

JOB_STATES = ("queued", "running", "done", "ignored", "failed", "superseded")
FINAL_STATES = ("done", "ignored", "failed", "superseded")
SCHEMA_VERSION = 1
PRIVATE_REPO = "(private repository)"
DEFAULT_LEASE_SECONDS = 60.0
"""A running job whose worker has not renewed its lease for this long is taken to be orphaned (workers renew every
fifth of it). It is how a job left by a process on another host (a container that was replaced) is taken up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repo          TEXT NOT NULL,
    revision      TEXT NOT NULL,
    base_revision TEXT,
    private       INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'ignored', 'failed', 'superseded')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    deliveries    INTEGER NOT NULL DEFAULT 1,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    available_at  REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    claim         TEXT,
    worker        TEXT,
    lease_until   REAL,
    reason        TEXT,
    outcome       TEXT,
    UNIQUE (repo, revision)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, available_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_repo ON jobs (repo, state);
"""


@dataclass(frozen=True)
class Job:
    """One annotation job, as stored.

    Attributes:
        id: the job number.
        repo_id: the model repository.
        revision: the commit to evaluate and annotate.
        base_revision: main's commit before the push, when the event said.
        private: the repository is private.
        state: one of `JOB_STATES`.
        attempts: how many times a worker has started it.
        deliveries: how many events named this (repo, commit).
        created_at, updated_at, available_at, started_at, finished_at: Unix times; a queued job is not claimed
            before `available_at` (retry back-off).
        claim: token of the current claim (running jobs).
        worker: the worker that holds or last held it (``host:pid:token:thread``, see `worker_name`).
        reason: why it failed, was ignored or superseded, or the error of the last attempt.
        outcome: what the annotation did (status, PR URL and number, commit), for done jobs.
    """

    id: int
    repo_id: str
    revision: str
    base_revision: str | None
    private: bool
    state: str
    attempts: int
    deliveries: int
    created_at: float
    updated_at: float
    available_at: float
    started_at: float | None
    finished_at: float | None
    claim: str | None
    worker: str | None
    reason: str | None
    outcome: dict[str, Any] | None

    @property
    def request(self) -> AnnotationRequest:
        return AnnotationRequest(self.repo_id, self.revision, self.base_revision, self.private)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(id=row["id"], repo_id=row["repo"], revision=row["revision"], base_revision=row["base_revision"],
                   private=bool(row["private"]), state=row["state"], attempts=row["attempts"],
                   deliveries=row["deliveries"], created_at=row["created_at"], updated_at=row["updated_at"],
                   available_at=row["available_at"], started_at=row["started_at"], finished_at=row["finished_at"],
                   claim=row["claim"], worker=row["worker"], reason=row["reason"],
                   outcome=json.loads(row["outcome"]) if row["outcome"] else None)

    def to_dict(self, *, show_private: bool = True) -> dict[str, Any]:
        """JSON-ready fields (no claim token); a private repository's name is hidden unless `show_private`."""
        data = asdict(self)
        data.pop("claim")
        if self.private and not show_private:  # its name also hides in errors and PR links
            hidden = json.dumps(data).replace(json.dumps(self.repo_id)[1:-1], PRIVATE_REPO)
            data = json.loads(hidden)
        return data


@dataclass(frozen=True)
class Submission:
    """What `JobStore.submit` did: the job for the event, whether it is new, and the jobs it superseded."""

    job: Job
    created: bool
    superseded: tuple[int, ...] = ()


_PROCESS_TOKEN = uuid.uuid4().hex[:8]
"""Tells this process from an earlier one that had the same pid (containers restart with the same small pids)."""


def worker_name(label: str | None = None) -> str:
    """``host:pid:token:label``: who holds a job (the label defaults to the current thread's name)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TOKEN}:{label or threading.current_thread().name}"


class JobStore:
    """The SQLite job store. Safe to share between threads (one connection per thread) and processes.

    Args:
        path: the database file (created, with its directory, when missing).
        lease_seconds: how long a claim lasts without a heartbeat.
        clock: the time source (Unix seconds).
    """

    def __init__(self, path: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._local = threading.local()
        if self.path.exists() and not self.path.is_file():
            raise ValueError(f"--db {str(self.path)!r} is not a file; give the path of the job database")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connection()
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"--db {str(self.path)!r} was written by a newer speat (job store version {version}); "
                             "upgrade speat or use another file")
        with self._transaction() as connection:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # connections ---------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                connection.row_factory = sqlite3.Row
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.DatabaseError as error:
                raise ValueError(f"--db {str(self.path)!r} is not a job database ({error})") from None
            if mode.lower() != "wal":
                raise ValueError(f"--db {str(self.path)!r}: SQLite cannot use WAL mode there (got {mode!r}); put "
                                 "the job database on a local file system")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        # Threads of this process take turns here rather than in SQLite's busy handler, whose growing sleeps (up to
        # 100 ms) would otherwise make a webhook request wait long after the lock is free.
        with _process_lock(self.path):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # the request path ----------------------------------------------------------------------------------------
    def submit(self, request: AnnotationRequest) -> Submission:
        """Queue `request` unless its (repo, commit) already has a job; supersede the repo's older queued jobs."""
        now = self.clock()
        with self._transaction() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE repo = ? AND revision = ?",
                                     (request.repo_id, request.revision)).fetchone()
            if row is not None:
                row = connection.execute("UPDATE jobs SET deliveries = deliveries + 1 WHERE id = ? RETURNING *",
                                         (row["id"],)).fetchone()
                return Submission(Job.from_row(row), created=False)
            row = connection.execute(
                "INSERT INTO jobs (repo, revision, base_revision, private, state, created_at, updated_at, "
                "available_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?) RETURNING *",
                (request.repo_id, request.revision, request.base_revision, int(request.private), now, now, now),
            ).fetchone()
            job = Job.from_row(row)
            superseded = connection.execute(
                "UPDATE jobs SET state = 'superseded', reason = ?, updated_at = ?, finished_at = ? "
                "WHERE repo = ? AND state = 'queued' AND id != ? RETURNING id",
                (f"superseded by commit {request.revision} (job {job.id})", now, now, request.repo_id, job.id),
            ).fetchall()
        return Submission(job, created=True, superseded=tuple(sorted(r["id"] for r in superseded)))

    # the worker path -----------------------------------------------------------------------------------------
    def claim(self, worker: str, *, max_attempts: int = 3) -> Job | None:
        """Take the oldest ready job for `worker` (see `worker_name`) whose repository has no running job, or None
        when none is ready."""
        now = self.clock()
        with self._transaction() as connection:
            self._recover_orphans(connection, now, max_attempts)
            row = connection.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, claim = ?, worker = ?, lease_until = ?, "
                "started_at = ?, updated_at = ? WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND "
                "available_at <= ? AND repo NOT IN (SELECT repo FROM jobs WHERE state = 'running') "
                "ORDER BY available_at, id LIMIT 1) RETURNING *",
                (uuid.uuid4().hex, worker, now + self.lease_seconds, now, now, now),
            ).fetchone()
        return Job.from_row(row) if row is not None else None

    def recover(self, *, max_attempts: int = 3) -> list[int]:
        """Requeue (or fail, after `max_attempts`) running jobs whose worker is gone; returns their ids."""
        with self._transaction() as connection:
            return self._recover_orphans(connection, self.clock(), max_attempts)

    def _recover_orphans(self, connection: sqlite3.Connection, now: float, max_attempts: int) -> list[int]:
        recovered = []
        for row in connection.execute("SELECT * FROM jobs WHERE state = 'running'").fetchall():
            expired = row["lease_until"] is None or row["lease_until"] < now
            if not (expired or _worker_is_gone(row["worker"])):
                continue
            why = f"interrupted: its worker {row['worker']} stopped while it ran"
            if row["attempts"] >= max_attempts:
                connection.execute("UPDATE jobs SET state = 'failed', reason = ?, claim = NULL, updated_at = ?, "
                                   "finished_at = ? WHERE id = ?", (f"{why} (attempt {row['attempts']} of "
                                                                    f"{max_attempts})", now, now, row["id"]))
                state = "failed"
            else:
                # Its available_at stays: the interrupted job goes before the ones queued after it.
                connection.execute("UPDATE jobs SET state = 'queued', reason = ?, claim = NULL, updated_at = ? "
                                   "WHERE id = ?", (why, now, row["id"]))
                state = "queued"
            recovered.append(row["id"])
            log_event(logger, "job.recovered", f"job {row['id']} {why}; now {state}", level=logging.WARNING,
                      job=row["id"], repo=row["repo"], revision=row["revision"],
                      state=state, attempts=row["attempts"])
        return recovered

    def heartbeat(self, claims: Sequence[str]) -> None:
        """Renew the lease of the running jobs held under `claims`."""
        if not claims:
            return
        marks = ", ".join("?" * len(claims))
        with self._transaction() as connection:
            connection.execute(f"UPDATE jobs SET lease_until = ? WHERE state = 'running' AND claim IN ({marks})",
                               (self.clock() + self.lease_seconds, *claims))

    def finish(self, job: Job, state: str, *, reason: str | None = None,
               outcome: dict[str, Any] | None = None) -> bool:
        """End a claimed job as ``done``, ``ignored`` or ``failed``; False when the claim was lost meanwhile."""
        if state not in ("done", "ignored", "failed"):
            raise ValueError(f"a job ends as done, ignored or failed, not {state!r}")
        now = self.clock()
        with self._transaction() as connection:
            row = connection.execute(
                "UPDATE jobs SET state = ?, reason = ?, outcome = ?, claim = NULL, lease_until = NULL, "
                "updated_at = ?, finished_at = ? WHERE id = ? AND claim = ? AND state = 'running' RETURNING id",
                (state, reason, json.dumps(outcome) if outcome is not None else None, now, now, job.id, job.claim),
            ).fetchone()
        return row is not None

    def retry_later(self, job: Job, reason: str, *, max_attempts: int, retry_delay: float) -> str:
        """After a failed attempt: queue the job again after ``retry_delay * 2**(attempts - 1)`` seconds, or mark it
        failed when it has had `max_attempts`. Returns the new state (``queued``/``failed``; ``lost`` when the
        claim was lost meanwhile)."""
        if job.attempts >= max_attempts:
            return "failed" if self.finish(job, "failed", reason=f"{reason} (attempt {job.attempts} of "
                                                                   f"{max_attempts})") else "lost"
        now = self.clock()
        with self._transaction() as connection:
            row = connection.execute(
                "UPDATE jobs SET state = 'queued', reason = ?, claim = NULL, lease_until = NULL, available_at = ?, "
                "updated_at = ? WHERE id = ? AND claim = ? AND state = 'running' RETURNING id",
                (reason, now + retry_delay * 2 ** (job.attempts - 1), now, job.id, job.claim),
            ).fetchone()
        return "queued" if row is not None else "lost"

    def release(self, job: Job) -> bool:
        """Give a claimed job back unfinished (the service is stopping); the attempt is not counted."""
        now = self.clock()
        with self._transaction() as connection:
            row = connection.execute(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, claim = NULL, lease_until = NULL, "
                "available_at = ?, updated_at = ? WHERE id = ? AND claim = ? AND state = 'running' RETURNING id",
                (now, now, job.id, job.claim)).fetchone()
        return row is not None

    # reading -------------------------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        row = self._connection().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row is not None else None

    def jobs(self, *, states: Sequence[str] = JOB_STATES, limit: int | None = None,
             newest_first: bool = False) -> list[Job]:
        """Jobs in `states`, by id (or most recently updated first)."""
        marks = ", ".join("?" * len(states))
        order = "updated_at DESC, id DESC" if newest_first else "id"
        query = f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY {order}" + (" LIMIT ?" if limit else "")
        rows = self._connection().execute(query, (*states, *((limit,) if limit else ()))).fetchall()
        return [Job.from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state (every state present, zero included)."""
        rows = self._connection().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        return {state: 0 for state in JOB_STATES} | {row["state"]: row["n"] for row in rows}

    def next_ready_in(self) -> float | None:
        """Seconds until the next queued job is ready (0 when one is), or None when nothing is queued."""
        row = self._connection().execute("SELECT MIN(available_at) FROM jobs WHERE state = 'queued'").fetchone()
        return None if row[0] is None else max(0.0, row[0] - self.clock())

    def check(self) -> None:
        """Raise when the database cannot be read and written (for the health check)."""
        with self._transaction() as connection:
            connection.execute("SELECT COUNT(*) FROM jobs").fetchone()


_CHECKPOINT_PAGES = 100
_PROCESS_LOCKS: dict[Path, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    """One lock per database file in this process."""
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(path.resolve(), threading.Lock())


def _worker_is_gone(worker: str | None) -> bool:
    """A worker of this host whose process no longer exists. Workers of other hosts are judged by their lease."""
    host, pid_text, token, _ = ((worker or "").split(":", 3) + ["", "", ""])[:4]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token != _PROCESS_TOKEN  # an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
