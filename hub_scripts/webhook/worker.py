"""The worker pool: threads that claim jobs from the `JobStore`, screen the commit, and annotate it.

Each worker loops: claim the oldest ready job (one SQLite transaction), screen its commit
(`speat_metric.hub.webhook.filtering.screen_commit`: ours? only the card changed? a speech encoder?), then run the
annotator, which evaluates the model at exactly that commit and opens or updates the card PR
(`speat_metric.hub.annotate.annotate_model`, see `HubAnnotator`). A failure is retried with exponential back-off up to
``max_attempts`` times, then the job is marked failed with the reason. A heartbeat thread renews the lease of every
running job, so a job whose process died is taken up again (`JobStore.claim` requeues it).

The screener and the annotator are plain callables, so tests and other deployments can give their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from speat_metric.hub.source import SpeatSource
from speat_metric.hub.webhook.events import AnnotationRequest
from speat_metric.hub.webhook.filtering import Screening
from speat_metric.hub.webhook.jobs import Job, JobStore, worker_name
from speat_metric.hub.webhook.logs import REDACTED, log_event

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings

logger = logging.getLogger(__name__)

Annotator = Callable[[Job], dict[str, Any]]
"""Annotate a job's commit; returns the outcome to store (JSON values). Raising means: retry later."""
Screener = Callable[[AnnotationRequest], Screening]
"""Screen a commit; raising means: retry later."""

OUTCOME_FIELDS = ("status", "pr_url", "pr_number", "commit", "evaluated_revision")


@dataclass(frozen=True)
class HubAnnotator:
    """The production annotator: `speat_metric.hub.annotate.annotate_model` at the job's commit, as a pull request.

    Attributes:
        settings: how to evaluate (the ``speat evaluate`` options).
        allow_synthetic: allow cards from synthetic stimuli (``--stimuli demo``), labelled as such.
        endpoint: the Hub (default: ``HF_ENDPOINT``).
        source: where the cards tell readers to get speat.
    """

    settings: EvaluationSettings
    allow_synthetic: bool = False
    endpoint: str | None = None
    source: SpeatSource = SpeatSource()

    def __call__(self, job: Job) -> dict[str, Any]:
        from speat_metric.hub.annotate import annotate_model

        outcome = annotate_model(job.repo_id, revision=job.revision, settings=self.settings, create_pr=True,
                                 allow_synthetic=self.allow_synthetic, endpoint=self.endpoint, source=self.source)
        if outcome.evaluated_revision not in (None, job.revision):
            raise RuntimeError(f"annotate evaluated {outcome.evaluated_revision}, not the job's commit {job.revision}")
        return {name: getattr(outcome, name, None) for name in OUTCOME_FIELDS}


class WorkerPool:
    """`workers` threads working through the store's jobs.

    Args:
        store: the job store.
        screen: decides whether a commit is annotated.
        annotate: does the annotation.
        workers: number of threads.
        max_attempts: attempts per job before it is marked failed.
        retry_delay: seconds before the first retry; doubled after each further failure.
        poll_interval: how often an idle worker looks for jobs submitted by other processes or due for a retry.
        redact: strings (the secret, the token) never written into a stored reason.
    """

    def __init__(self, store: JobStore, *, screen: Screener, annotate: Annotator, workers: int = 1,
                 max_attempts: int = 3, retry_delay: float = 60.0, poll_interval: float = 1.0,
                 redact: Iterable[str] = ()) -> None:
        self.store = store
        self.screen = screen
        self.annotate = annotate
        self.workers = workers
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval
        self.redact = [value for value in redact if value]
        self._threads: list[threading.Thread] = []
        self._running: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Condition()
        self._generation = 0
        self._stopping = threading.Event()

    # lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        for number in range(1, self.workers + 1):
            thread = threading.Thread(target=self._work, name=f"worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        self._threads.append(heartbeat)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; wait up to `timeout` seconds for running jobs, then hand the rest back to the queue."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=max(0.0, timeout / max(1, len(self._threads))))
        with self._lock:
            unfinished = list(self._running.values())
        for job in unfinished:
            if self.store.release(job):
                log_event(logger, "job.released", f"job {job.id} handed back to the queue: the service is stopping",
                          level=logging.WARNING, **_job_fields(job))

    def wake(self) -> None:
        """Tell idle workers that a job was submitted."""
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify_all()

    @property
    def alive(self) -> int:
        """Worker threads that are running."""
        return sum(thread.is_alive() for thread in self._threads if thread.name.startswith("worker-"))

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._running.values())

    # the loops -----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        name = worker_name()
        while not self._stopping.is_set():
            with self._wakeup:
                generation = self._generation
            try:
                job = self.store.claim(name, max_attempts=self.max_attempts)
            except Exception as error:  # a locked or broken database: say so, keep trying
                log_event(logger, "worker.error", f"cannot claim a job: {_one_line(error)}", level=logging.ERROR)
                self._stopping.wait(self.poll_interval)
                continue
            if job is None:
                ready_in = self.store.next_ready_in()
                timeout = self.poll_interval if ready_in is None else min(self.poll_interval, ready_in)
                with self._wakeup:
                    if self._generation == generation and not self._stopping.is_set():
                        self._wakeup.wait(timeout)
                continue
            with self._lock:
                self._running[job.claim] = job
            try:
                self._process(job)
            finally:
                with self._lock:
                    self._running.pop(job.claim, None)

    def _heartbeat(self) -> None:
        """Renew the leases of running jobs."""
        interval = max(0.5, self.store.lease_seconds / 5)
        while not self._stopping.wait(interval):
            try:
                self.store.heartbeat([job.claim for job in self.running_jobs()])
            except Exception as error:
                log_event(logger, "worker.error", f"cannot renew leases: {_one_line(error)}", level=logging.ERROR)

    def _process(self, job: Job) -> None:
        fields = _job_fields(job)
        log_event(logger, "job.started", f"job {job.id}: {fields['repo']}@{job.revision[:12]} (attempt "
                  f"{job.attempts})", attempt=job.attempts, **fields)
        try:
            screening = self.screen(job.request)
            if not screening.annotate:
                self.store.finish(job, "ignored", reason=self._scrub(screening.reason))
                log_event(logger, "job.ignored", f"job {job.id} ignored: {screening.reason}",
                          reason=self._scrub(screening.reason), model_type=screening.model_type, **fields)
                return
            outcome = self.annotate(job)
        except Exception as error:
            reason = self._scrub(_one_line(error))
            state = self.store.retry_later(job, reason, max_attempts=self.max_attempts, retry_delay=self.retry_delay)
            event = {"queued": "job.retry", "failed": "job.failed"}.get(state, "job.lost")
            log_event(logger, event, f"job {job.id} attempt {job.attempts} failed: {reason}; now {state}",
                      level=logging.ERROR if state == "failed" else logging.WARNING, reason=reason,
                      attempt=job.attempts, state=state, **fields)
            return
        if self.store.finish(job, "done", outcome=outcome):
            log_event(logger, "job.done", f"job {job.id} done: {outcome.get('status')} {outcome.get('pr_url') or ''}"
                      .rstrip(), outcome=outcome, **fields)
        else:
            log_event(logger, "job.lost", f"job {job.id} finished after its claim was lost (it had been handed "
                      "back or taken over); the outcome is not stored", level=logging.WARNING, **fields)

    def _scrub(self, text: str) -> str:
        for value in self.redact:
            text = text.replace(value, REDACTED)
        return text


def _job_fields(job: Job) -> dict[str, Any]:
    return {"job": job.id, "repo": job.repo_id, "revision": job.revision}


def _one_line(error: BaseException, limit: int = 500) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
