"""The SQLite job store: one job per (repo, commit), supersede, atomic claims across threads and processes,
retries with back-off, and recovery of jobs whose worker died (a real SIGKILL)."""

import doctest
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from speat_metric.hub.webhook import auth, jobs, logs
from speat_metric.hub.webhook.events import AnnotationRequest
from speat_metric.hub.webhook.jobs import JobStore, worker_name


def sha(number: int) -> str:
    return f"{number:040x}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite")


def test_module_examples():
    for module in (jobs, auth, logs):
        assert doctest.testmod(module).failed == 0


def test_the_store_is_in_wal_mode_and_survives_reopening(tmp_path):
    store = JobStore(tmp_path / "state" / "jobs.sqlite")
    job = store.submit(AnnotationRequest("alice/tiny", sha(1), sha(0), private=True)).job
    store.close()
    with sqlite3.connect(tmp_path / "state" / "jobs.sqlite") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = JobStore(tmp_path / "state" / "jobs.sqlite").get(job.id)
    assert (again.repo_id, again.revision, again.base_revision, again.private, again.state) == \
        ("alice/tiny", sha(1), sha(0), True, "queued")


def test_a_replayed_event_makes_no_second_job(store):
    first = store.submit(AnnotationRequest("alice/tiny", sha(1)))
    replay = store.submit(AnnotationRequest("alice/tiny", sha(1)))
    assert first.created and not replay.created and replay.job.id == first.job.id
    assert replay.job.deliveries == 2 and len(store.jobs()) == 1


def test_a_newer_commit_supersedes_the_queued_older_one_only(store):
    running = store.submit(AnnotationRequest("alice/tiny", sha(1))).job
    assert store.claim("w").id == running.id
    queued = store.submit(AnnotationRequest("alice/tiny", sha(2))).job
    other_repo = store.submit(AnnotationRequest("bob/tiny", sha(3))).job
    newest = store.submit(AnnotationRequest("alice/tiny", sha(4)))
    assert newest.superseded == (queued.id,)
    states = {job.id: job.state for job in store.jobs()}
    assert states == {running.id: "running", queued.id: "superseded", other_repo.id: "queued",
                      newest.job.id: "queued"}
    assert store.get(queued.id).reason == f"superseded by commit {sha(4)} (job {newest.job.id})"
    # a late replay of the superseded commit brings nothing back
    assert not store.submit(AnnotationRequest("alice/tiny", sha(2))).created
    assert store.get(queued.id).state == "superseded"


def test_claims_take_the_oldest_ready_job_once(store):
    ids = [store.submit(AnnotationRequest(f"alice/m{n}", sha(n))).job.id for n in range(3)]
    claimed = [store.claim(f"w{n}") for n in range(4)]
    assert [job.id for job in claimed[:3]] == ids and claimed[3] is None
    assert all(job.state == "running" and job.attempts == 1 for job in claimed[:3])
    assert len({job.claim for job in claimed[:3]}) == 3


def test_two_commits_of_one_repository_never_run_at_once(store):
    older = store.submit(AnnotationRequest("alice/tiny", sha(1))).job
    assert store.claim("w1").id == older.id
    newer = store.submit(AnnotationRequest("alice/tiny", sha(2))).job
    other = store.submit(AnnotationRequest("bob/tiny", sha(3))).job
    assert store.claim("w2").id == other.id  # not the newer commit of a repository that is being annotated
    assert store.claim("w3") is None
    store.finish(store.get(older.id), "done")
    assert store.claim("w3").id == newer.id


def test_failures_are_retried_with_back_off_then_marked_failed(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path / "jobs.sqlite", clock=clock)
    store.submit(AnnotationRequest("alice/tiny", sha(1)))
    delays = []
    for attempt in (1, 2):
        job = store.claim("w", max_attempts=3)
        assert job.attempts == attempt
        assert store.retry_later(job, f"boom {attempt}", max_attempts=3, retry_delay=10.0) == "queued"
        delays.append(store.next_ready_in())
        assert store.claim("w", max_attempts=3) is None  # not before the back-off
        clock.now += delays[-1]
    assert delays == [10.0, 20.0]
    job = store.claim("w", max_attempts=3)
    assert store.retry_later(job, "boom 3", max_attempts=3, retry_delay=10.0) == "failed"
    failed = store.get(job.id)
    assert (failed.state, failed.attempts, failed.reason) == ("failed", 3, "boom 3 (attempt 3 of 3)")
    assert store.next_ready_in() is None


def test_a_lost_claim_cannot_overwrite_the_job(store):
    store.submit(AnnotationRequest("alice/tiny", sha(1)))
    job = store.claim("w")
    assert store.release(job)
    assert store.get(job.id).attempts == 0  # a release is not an attempt
    assert not store.finish(job, "done", outcome={"status": "opened-pr"})
    again = store.claim("w2")
    assert store.finish(again, "done", outcome={"status": "opened-pr"})
    assert store.get(job.id).outcome == {"status": "opened-pr"}
    with pytest.raises(ValueError, match="a job ends as done, ignored or failed, not 'queued'"):
        store.finish(again, "queued")


def test_a_running_job_whose_lease_expired_is_taken_up_again(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path / "jobs.sqlite", lease_seconds=60.0, clock=clock)
    store.submit(AnnotationRequest("alice/tiny", sha(1)))
    job = store.claim("another-host:123:worker-1")
    clock.now += 30
    store.heartbeat([job.claim])
    clock.now += 59
    assert store.claim("here") is None  # the heartbeat kept it
    clock.now += 2
    again = store.claim("here")
    assert again.id == job.id and again.attempts == 2 and again.claim != job.claim
    assert store.get(job.id).reason == "interrupted: its worker another-host:123:worker-1 stopped while it ran"
    assert not store.finish(job, "done")  # the first worker's late result is refused


def test_a_job_of_an_earlier_process_with_our_pid_is_recovered(store):
    """A container restarts with the same hostname and pid: the process token tells the runs apart."""
    job = store.submit(AnnotationRequest("alice/tiny", sha(1))).job
    store.claim(f"{socket.gethostname()}:{os.getpid()}:0ld70ken:worker-1")
    assert store.recover() == [job.id] and store.get(job.id).state == "queued"
    store.claim(worker_name())
    assert store.recover() == []  # our own running job is not an orphan


CLAIMER = textwrap.dedent("""
    import sys, time
    from speat_metric.hub.webhook.jobs import JobStore, worker_name
    store = JobStore(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    while (job := store.claim(worker_name(sys.argv[2]))) is not None:
        print(job.id, flush=True)
        if sys.argv[2] == "hold":
            time.sleep(600)
    print("done", flush=True)
    sys.stdin.readline()  # a process that exits holding running jobs leaves them to be recovered: stay until told
""")


def run_claimer(db, label: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", CLAIMER, str(db), label], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    return process


def test_processes_and_threads_sharing_the_file_never_take_the_same_job(tmp_path):
    db = tmp_path / "jobs.sqlite"
    store = JobStore(db)
    for number in range(60):
        store.submit(AnnotationRequest(f"alice/m{number}", sha(number)))
    processes = [run_claimer(db, f"p{n}") for n in range(2)]
    claimed_here: list[int] = []

    def claim_in_thread():
        local = JobStore(db)
        while (job := local.claim(worker_name())) is not None:
            claimed_here.append(job.id)

    threads = [threading.Thread(target=claim_in_thread) for _ in range(2)]
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = list(claimed_here)
    for process in processes:
        while (line := process.stdout.readline()) != "done\n":
            claimed.append(int(line))
    assert sorted(claimed) == list(range(1, 61))  # every job once, none twice
    assert store.counts()["running"] == 60
    for process in processes:
        process.communicate("exit\n", timeout=60)


def test_a_job_whose_process_was_killed_runs_again_after_a_restart(tmp_path):
    db = tmp_path / "jobs.sqlite"
    store = JobStore(db)
    first = store.submit(AnnotationRequest("alice/tiny", sha(1))).job
    second = store.submit(AnnotationRequest("bob/tiny", sha(2))).job
    process = run_claimer(db, "hold")
    process.stdin.write("go\n")
    process.stdin.flush()
    assert int(process.stdout.readline()) == first.id  # it holds the first job...
    os.kill(process.pid, signal.SIGKILL)  # ...and dies with it
    process.wait()
    assert store.get(first.id).state == "running"
    assert store.recover() == [first.id]
    recovered = store.get(first.id)
    assert recovered.state == "queued" and "stopped while it ran" in recovered.reason
    order = [store.claim("restarted"), store.claim("restarted"), store.claim("restarted")]
    assert [job.id for job in order[:2]] == [first.id, second.id] and order[2] is None
    assert order[0].attempts == 2 and order[1].attempts == 1


def test_a_job_that_keeps_killing_its_worker_is_failed_after_max_attempts(tmp_path):
    db = tmp_path / "jobs.sqlite"
    store = JobStore(db)
    job = store.submit(AnnotationRequest("alice/tiny", sha(1))).job
    for _ in range(2):
        process = run_claimer(db, "hold")
        process.stdin.write("go\n")
        process.stdin.flush()
        assert int(process.stdout.readline()) == job.id
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        store.recover(max_attempts=2)
    failed = store.get(job.id)
    assert failed.state == "failed" and failed.reason.endswith("(attempt 2 of 2)")


def test_bad_database_paths_are_clear_errors(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="--db '.*folder' is not a file"):
        JobStore(tmp_path / "folder")
    (tmp_path / "notes.txt").write_text("these are not jobs\n" * 100)
    with pytest.raises(ValueError, match="--db '.*notes.txt' is not a job database"):
        JobStore(tmp_path / "notes.txt")
