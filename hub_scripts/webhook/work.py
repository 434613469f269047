"""The work queue: in memory, one job per (repository, commit), worked through by worker threads.

Nothing here outlives the process, on purpose: the Hub pull request is the durable record of what was annotated, and a
starting service reconciles (`speat_metric.hub.webhook.reconcile`). A replayed (repository, commit) makes no new job; a
new commit supersedes the repository's queued ones; a worker takes the oldest ready job whose repository has no running
job (so a second commit updates the first's pull request instead of racing it); a failed attempt is retried after
``retry_delay * 2**(attempts - 1)`` seconds, up to `max_attempts`, then failed with the reason.

Example:
    >>> queue = WorkQueue(lambda item: Screening(True, "yes"), lambda item: {"status": "opened-pr"})
    >>> [queue.submit(WorkItem("alice/tiny", sha))[1] for sha in ("a" * 40, "a" * 40, "b" * 40)]
    [True, False, True]
    >>> {state: count for state, count in queue.counts().items() if count}
    {'queued': 1, 'superseded': 1}
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from speat_metric.hub.webhook.events import Screening, WorkItem
from speat_metric.hub.webhook.logs import REDACTED, log_event

logger = logging.getLogger(__name__)

JOB_STATES = ("queued", "running", "done", "ignored", "failed", "superseded")
PRIVATE_REPO = "(private repository)"
KEPT_FINISHED_JOBS = 10_000  # beyond, the oldest are forgotten: a replay runs again and annotate_model finds it done

Screener = Callable[[WorkItem], Screening]  # raising means: retry later
Annotator = Callable[[WorkItem], dict[str, Any]]  # the outcome shown (JSON values); raising means: retry later


@dataclass
class Job:
    """One (repository, commit) and what became of it (`reason`: why ignored, failed, superseded, or the last error)."""

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
        """JSON-ready fields; a private repository's name is hidden (also in errors and links) unless `show_private`."""
        item = self.item
        data = {"id": self.id, "repo_id": item.repo_id, "revision": item.revision, "base_revision": item.base_revision,
                "private": item.private, "origin": item.origin, "state": self.state, "attempts": self.attempts,
                "deliveries": self.deliveries, "updated_at": self.updated_at, "worker": self.worker,
                "reason": self.reason, "outcome": self.outcome}
        if item.private and not show_private:
            data = json.loads(json.dumps(data).replace(json.dumps(item.repo_id)[1:-1], PRIVATE_REPO))
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
        now = time.time()
        with self._condition:
            job = self._jobs.get((item.repo_id, item.revision))
            if job is not None:
                job.deliveries += 1
                return job, False, []
            job = Job(next(self._ids), item, available_at=now, updated_at=now)
            superseded = [old for old in self._jobs.values() if old.item.repo_id == item.repo_id
                          and old.state == "queued"]
            for old in superseded:
                self._finish(old, "superseded", f"superseded by commit {item.revision} (job {job.id})")
            self._jobs[(item.repo_id, item.revision)] = job
            self._forget_old()
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
                wait = min((job.available_at - now for job in queued), default=None)
                self._condition.wait(wait)
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
            except Exception as error:
                with self._condition:
                    if job.attempts >= self.max_attempts:
                        self._finish(job, "failed", f"{_one_line(error)} (attempt {job.attempts} of "
                                     f"{self.max_attempts})")
                    else:
                        job.state, job.reason = "queued", self._scrub(_one_line(error))
                        job.available_at = time.time() + self.retry_delay * 2 ** (job.attempts - 1)
            event = {"done": "job.done", "ignored": "job.ignored", "failed": "job.failed"}.get(job.state, "job.retry")
            log_event(logger, event, f"job {job.id} {job.state}: {job.reason or (job.outcome or {}).get('status')} "
                      f"{(job.outcome or {}).get('pr_url') or ''}".rstrip(), reason=job.reason, outcome=job.outcome,
                      level=logging.INFO if event in ("job.done", "job.ignored") else logging.WARNING, **fields)

    def _finish(self, job: Job, state: str, reason: str | None) -> None:
        job.state, job.reason, job.updated_at = state, reason and self._scrub(reason), time.time()
        self._condition.notify_all()  # a job of its repository may now run

    def _forget_old(self) -> None:
        finished = [key for key, job in self._jobs.items() if job.state not in ("queued", "running")]
        for key in finished[:max(0, len(finished) - KEPT_FINISHED_JOBS)]:
            del self._jobs[key]

    def _scrub(self, text: str) -> str:
        for value in self.redact:
            text = text.replace(value, REDACTED)
        return text[:500]


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split()) or '(no message)'}"
