"""The work queue: in memory, one job per (repository, commit), worked through by worker threads.

Nothing here outlives the process, on purpose: the Hub pull request is the durable record of what was annotated, and a
starting service reconciles (`speat_metric.hub.webhook.reconcile`). A replayed (repository, commit) makes no new job; a
new commit supersedes the repository's queued ones; a worker takes the oldest ready job whose repository has no running
job (a second commit then updates the first's pull request instead of racing it); a failed attempt is retried after
``retry_delay * 2**(attempts - 1)`` seconds, up to `max_attempts`, then failed with the reason; a `Deferred` one waits,
without using an attempt, until the time it names (the next UTC day of the pull-request cap).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from speat_metric.hub.json_logs import REDACTED, log_event
from speat_metric.hub.webhook_events import Screening, WorkItem

logger = logging.getLogger(__name__)

JOB_STATES = ("queued", "running", "done", "ignored", "failed", "superseded")
PRIVATE_REPO = "(private repository)"
KEPT_FINISHED_JOBS = 10_000  # beyond, the oldest are forgotten: a replay runs again and annotate_model finds it done

Screener = Callable[[WorkItem], Screening]  # raising means: retry later
Annotator = Callable[[WorkItem], dict[str, Any]]  # the outcome shown (JSON values); raising means: retry later


class Deferred(Exception):  # noqa: N818 (not an error: the job waits)
    """Raised by an annotator: the job waits until `until` (a Unix time), its attempt not counted."""

    def __init__(self, until: float, reason: str) -> None:
        super().__init__(reason)
        self.until = until


@dataclass
class Job:
    """One (repository, commit) and what became of it (`reason`: why ignored, failed, superseded, deferred, or the
    last error)."""

    id: int
    item: WorkItem
    state: str = "queued"
    attempts: int = 0
    deliveries: int = 1
    available_at: float = 0.0
    updated_at: float = 0.0
    worker: str | None = None
    reason: str | None = None
    outcome: dict[str, Any] | None = None

    def to_dict(self, *, show_private: bool = True) -> dict[str, Any]:
        """JSON-ready fields; a private repository's name is hidden (in errors and links too) unless `show_private`."""
        data = {**asdict(self.item), **{key: value for key, value in asdict(self).items() if key != "item"}}
        if self.item.private and not show_private:
            data = json.loads(json.dumps(data).replace(json.dumps(self.item.repo_id)[1:-1], PRIVATE_REPO))
        return data


class WorkQueue:
    """Jobs and the `workers` threads that `screen`, then `annotate`, each; `redact`: strings no reason may show."""

    def __init__(self, screen: Screener, annotate: Annotator, *, workers: int = 1, max_attempts: int = 3,
                 retry_delay: float = 60.0, redact: Iterable[str] = ()) -> None:
        self.screen, self.annotate, self.workers = screen, annotate, workers
        self.max_attempts, self.retry_delay = max_attempts, retry_delay
        self.redact = [value for value in redact if value]
        self._jobs: dict[tuple[str, str], Job] = {}  # in submission order
        self._ids = itertools.count(1)
        self._condition = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
                         for number in range(1, workers + 1)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more jobs; wait up to `timeout` seconds for the running ones (a restart reconciles the rest)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    def submit(self, item: WorkItem) -> tuple[Job, bool, list[int]]:
        """Queue `item` unless its (repository, commit) has a job: (the job, whether it is new, the ids superseded)."""
        with self._condition:
            if (job := self._jobs.get((item.repo_id, item.revision))) is not None:
                job.deliveries += 1
                return job, False, []
            job = Job(next(self._ids), item, available_at=time.time(), updated_at=time.time())
            superseded = [old for old in self._jobs.values() if old.item.repo_id == item.repo_id
                          and old.state == "queued"]
            for old in superseded:
                self._finish(old, "superseded", f"superseded by commit {item.revision} (job {job.id})")
            self._jobs[(item.repo_id, item.revision)] = job
            finished = [key for key, old in self._jobs.items() if old.state not in ("queued", "running")]
            for key in finished[:max(0, len(finished) - KEPT_FINISHED_JOBS)]:
                del self._jobs[key]
            self._condition.notify_all()
        return job, True, [old.id for old in superseded]

    def jobs(self) -> list[Job]:
        with self._condition:
            return list(self._jobs.values())

    def counts(self) -> dict[str, int]:
        states = [job.state for job in self.jobs()]
        return {state: states.count(state) for state in JOB_STATES}

    def _next(self) -> Job | None:
        """The next job to run (marked running), waiting for one; None when stopping."""
        with self._condition:
            while not self._stopping:
                now = time.time()
                busy = {job.item.repo_id for job in self._jobs.values() if job.state == "running"}
                queued = [job for job in self._jobs.values() if job.state == "queued" and job.item.repo_id not in busy]
                ready = min((job for job in queued if job.available_at <= now), default=None,
                            key=lambda job: (job.available_at, job.id))
                if ready is not None:
                    ready.state, ready.worker, ready.updated_at = "running", threading.current_thread().name, now
                    ready.attempts += 1
                    return ready
                self._condition.wait(min((job.available_at - now for job in queued), default=None))
        return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            item = job.item
            fields = {"job": job.id, "repo": item.repo_id, "revision": item.revision, "origin": item.origin}
            log_event(logger, "job.started", f"job {job.id}: {item.repo_id}@{item.revision[:12]} (attempt "
                      f"{job.attempts})", attempt=job.attempts, **fields)
            try:
                screening = self.screen(item)
                outcome = self.annotate(item) if screening.annotate else None
                with self._condition:
                    job.outcome = outcome
                    self._finish(job, "done" if outcome else "ignored", None if outcome else screening.reason)
            except Deferred as deferred:
                self._retry(job, deferred.until, str(deferred), counted=False)
            except Exception as error:
                message = f"{type(error).__name__}: {' '.join(str(error).split()) or '(no message)'}"
                if job.attempts >= self.max_attempts:
                    with self._condition:
                        self._finish(job, "failed", f"{message} (attempt {job.attempts} of {self.max_attempts})")
                else:
                    self._retry(job, time.time() + self.retry_delay * 2 ** (job.attempts - 1), message)
            event = {"done": "job.done", "ignored": "job.ignored", "failed": "job.failed"}.get(job.state, "job.retry")
            log_event(logger, event, f"job {job.id} {job.state}: {job.reason or (job.outcome or {}).get('status')} "
                      f"{(job.outcome or {}).get('pr_url') or ''}".rstrip(), reason=job.reason, outcome=job.outcome,
                      level=logging.INFO if event in ("job.done", "job.ignored") else logging.WARNING, **fields)

    def _retry(self, job: Job, at: float, reason: str, *, counted: bool = True) -> None:
        with self._condition:
            job.available_at, job.attempts = at, job.attempts - (not counted)
            self._finish(job, "queued", reason)

    def _finish(self, job: Job, state: str, reason: str | None) -> None:
        for value in self.redact if reason else ():
            reason = reason.replace(value, REDACTED)
        job.state, job.reason, job.updated_at = state, reason and reason[:500], time.time()
        self._condition.notify_all()  # a job of its repository may now run
