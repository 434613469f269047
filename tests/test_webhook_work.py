"""The in-process work queue: one job per (repo, commit), supersede, one job of a repository at a time, the oldest
first, retries with back-off then failure (real worker threads; the screener and annotator are the test's)."""

import threading
import time

import pytest

from speat_metric.hub.webhook.work import WorkQueue
from speat_metric.hub.webhook_events import Screening, WorkItem

WAIT = 30.0


def sha(number: int) -> str:
    return f"{number:040x}"


def speech(_item) -> Screening:
    return Screening(True, "a 'hubert' speech encoder", "hubert")


class Annotations:
    """Records each call (repo, revision, time); holds calls of the repositories in `held` until `release`."""

    def __init__(self, *, held: tuple[str, ...] = (), fail_times: int = 0) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.held, self.fail_times = held, fail_times
        self.release, self.started = threading.Event(), threading.Semaphore(0)

    def __call__(self, item: WorkItem) -> dict:
        self.calls.append((item.repo_id, item.revision, time.monotonic()))
        self.started.release()
        if item.repo_id in self.held:
            assert self.release.wait(WAIT)
        if len(self.calls) <= self.fail_times:
            raise RuntimeError(f"boom {len(self.calls)}")
        return {"status": "opened-pr"}

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=WAIT), "the annotator was not called"


@pytest.fixture
def make_queue():
    queues = []

    def make(annotate, **options) -> WorkQueue:
        queue = WorkQueue(speech, annotate, **options)
        queue.start()
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.stop(timeout=1)


def wait_for(queue: WorkQueue, **expected: int) -> dict:
    deadline = time.monotonic() + WAIT
    while (counts := queue.counts()) != {**counts, **expected}:
        assert time.monotonic() < deadline, counts
        time.sleep(0.02)
    return {job.id: job for job in queue.jobs()}


def test_a_replayed_event_makes_no_second_job(make_queue):
    annotations = Annotations()
    queue = make_queue(annotations)
    first, created, _ = queue.submit(WorkItem("alice/tiny", sha(1)))
    replay, again, _ = queue.submit(WorkItem("alice/tiny", sha(1)))
    assert created and not again and replay is first and first.deliveries == 2
    wait_for(queue, done=1)
    assert not queue.submit(WorkItem("alice/tiny", sha(1)))[1]  # replayed after it was done: still nothing new
    time.sleep(0.2)
    assert len(annotations.calls) == 1 and len(queue.jobs()) == 1


def test_a_newer_commit_supersedes_the_queued_older_one_only(make_queue):
    annotations = Annotations(held=("alice/tiny",))
    queue = make_queue(annotations)
    running = queue.submit(WorkItem("alice/tiny", sha(1)))[0]
    annotations.wait_started()
    queued = queue.submit(WorkItem("alice/tiny", sha(2)))[0]
    other_repo = queue.submit(WorkItem("bob/tiny", sha(3)))[0]
    newest, _, superseded = queue.submit(WorkItem("alice/tiny", sha(4)))
    assert superseded == [queued.id] and running.state == "running" and queued.state == "superseded"
    assert queued.reason == f"superseded by commit {sha(4)} (job {newest.id})"
    assert not queue.submit(WorkItem("alice/tiny", sha(2)))[1]  # a late replay of it brings nothing back
    assert queued.state == "superseded"
    annotations.release.set()
    jobs = wait_for(queue, done=3, superseded=1)
    assert [call[:2] for call in annotations.calls] == [("alice/tiny", sha(1)), ("bob/tiny", sha(3)),
                                                         ("alice/tiny", sha(4))]
    assert jobs[other_repo.id].state == "done"


def test_jobs_run_oldest_first_and_once(make_queue):
    annotations = Annotations()
    queue = make_queue(annotations, workers=3)
    for number in range(12):
        queue.submit(WorkItem(f"alice/m{number}", sha(number)))
    jobs = wait_for(queue, done=12)
    assert sorted(call[0] for call in annotations.calls) == sorted(f"alice/m{n}" for n in range(12))
    assert all(job.attempts == 1 for job in jobs.values())
    assert {job.worker for job in jobs.values()} <= {"worker-1", "worker-2", "worker-3"}


def test_two_commits_of_one_repository_never_run_at_once(make_queue):
    annotations = Annotations(held=("alice/tiny",))
    queue = make_queue(annotations, workers=2)
    older = queue.submit(WorkItem("alice/tiny", sha(1)))[0]
    annotations.wait_started()
    newer = queue.submit(WorkItem("alice/tiny", sha(2)))[0]
    other = queue.submit(WorkItem("bob/tiny", sha(3)))[0]
    annotations.wait_started()  # the free worker takes bob's job, not the newer commit of a repository being annotated
    assert annotations.calls[1][0] == "bob/tiny"
    time.sleep(0.2)
    assert (older.state, newer.state) == ("running", "queued")
    annotations.release.set()
    wait_for(queue, done=3)
    assert other.state == "done" and [call[1] for call in annotations.calls] == [sha(1), sha(3), sha(2)]


def test_failures_are_retried_with_back_off_then_marked_failed(make_queue):
    annotations = Annotations(fail_times=3)
    queue = make_queue(annotations, max_attempts=3, retry_delay=0.2)
    job = queue.submit(WorkItem("alice/tiny", sha(1)))[0]
    wait_for(queue, failed=1)
    times = [call[2] for call in annotations.calls]
    assert len(times) == 3 and times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # doubled
    assert (job.state, job.attempts, job.reason) == ("failed", 3, "RuntimeError: boom 3 (attempt 3 of 3)")


def test_a_screened_out_commit_is_ignored_and_screening_errors_are_retried(make_queue):
    verdicts = iter([RuntimeError("the Hub is down"), Screening(False, "a 'bert' model", "bert")])

    def screen(_item):
        verdict = next(verdicts)
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    annotations = Annotations()
    queue = WorkQueue(screen, annotations, retry_delay=0.05)
    queue.start()
    job = queue.submit(WorkItem("alice/tiny-bert", sha(1)))[0]
    wait_for(queue, ignored=1)
    queue.stop(timeout=1)
    assert (job.reason, job.attempts, annotations.calls) == ("a 'bert' model", 2, [])


def test_a_deferred_job_waits_until_the_time_it_names_without_using_an_attempt(make_queue):
    from speat_metric.hub.webhook.work import Deferred

    calls = []

    def annotate(item):
        calls.append(time.time())
        if len(calls) == 1:  # the day's cap is reached: come back when the next day begins (here: in 0.3 s)
            raise Deferred(calls[0] + 0.3, "today's cap of 1 new pull requests is reached")
        return {"status": "opened-pr"}

    queue = make_queue(annotate, max_attempts=1, retry_delay=60)
    job = queue.submit(WorkItem("alice/tiny", sha(1)))[0]
    wait_for(queue, done=1)
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.3  # not retry_delay: the time the deferral named
    assert job.attempts == 1 and job.reason is None  # max_attempts=1, and the deferral did not fail it
