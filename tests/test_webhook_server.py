"""The webhook service over real HTTP on 127.0.0.1 (uvicorn in a thread), with the worker's screener and annotator
given by the test: secret first, typed payloads, acknowledge-and-queue, duplicates, supersede, retries, workers,
status and health (the queue is in memory: what a test checks, it reads from /status)."""

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from speat_metric.hub.webhook.server import ServiceConfig, build_server
from speat_metric.hub.webhook_events import Screening, content_update_payload
from speat_metric.hub.webhooks import WebhookSecret

SECRET = "webhook-secret-for-the-server-tests"
SIGNED = {"X-Webhook-Secret": SECRET}
WAIT = 30.0  # seconds any wait may take on a loaded machine before the test gives up


def sha(number: int) -> str:
    return f"{number:040x}"


def speech(_request) -> Screening:
    return Screening(True, "a 'hubert' speech encoder", "hubert")


class Annotations:
    """A recording annotator: every call, in order; `gate` (when set) holds each call until released."""

    def __init__(self, *, fail_times: int = 0, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.fail_times = fail_times
        self.gate = gate
        self.started = threading.Semaphore(0)

    def __call__(self, job) -> dict:
        with self.lock:
            self.calls.append((job.repo_id, job.revision, threading.current_thread().name))
            failing = len(self.calls) <= self.fail_times
        self.started.release()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if failing:
            raise RuntimeError(f"the Hub said no to {job.repo_id}")
        return {"status": "opened-pr", "pr_url": f"https://hub.test/{job.repo_id}/discussions/1", "pr_number": 1}

    def wait_started(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=WAIT), "the annotator was not called"


@pytest.fixture
def start_service() -> Callable[..., object]:
    running = []

    def start(annotate: Callable, *, screen: Callable = speech, workers: int = 1, **options):
        config = ServiceConfig(secret=WebhookSecret(SECRET), port=0, workers=workers,
                               retry_delay=options.pop("retry_delay", 0.05), **options)
        server = build_server(config, screen=screen, annotate=annotate, own_user_ids=frozenset({"our-account-id"}))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + WAIT
        while not server.started:  # uvicorn binds the port (0: any free one) and tells the server's url
            assert time.monotonic() < deadline and thread.is_alive(), "the service did not come up"
            time.sleep(0.05)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        return server

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(WAIT)


def post(service, payload, *, headers=SIGNED, **kwargs) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(f"{service.url}/webhooks/speat", content=body, headers=headers, timeout=WAIT, **kwargs)


def status(service, **kwargs) -> dict:
    return httpx.get(f"{service.url}/status", timeout=WAIT, **kwargs).json()


def wait_for(service, predicate: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        current = status(service)
        if predicate(current):
            return current
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status: {current}")


def test_a_signed_event_is_acknowledged_before_the_work_and_annotated_once(start_service):
    gate = threading.Event()
    annotations = Annotations(gate=gate)
    service = start_service(annotations)
    event = content_update_payload("alice/tiny-hubert", sha(1), base_revision=sha(0))
    first = post(service, event)  # answered while the annotation is held: the work is not in the request
    assert first.status_code == 202
    assert first.json() == {"accepted": True, "job": 1, "state": "queued", "duplicate": False, "superseded": []}
    annotations.wait_started()
    replay = post(service, event)
    assert replay.status_code == 202 and replay.json()["duplicate"] and replay.json()["job"] == 1
    gate.set()
    done = wait_for(service, lambda s: s["done"] == 1)
    assert annotations.calls == [("alice/tiny-hubert", sha(1), "worker-1")]
    job = done["recent"][0]
    assert (job["revision"], job["base_revision"], job["deliveries"], job["attempts"]) == (sha(1), sha(0), 2, 1)
    assert job["outcome"]["pr_url"] == "https://hub.test/alice/tiny-hubert/discussions/1"
    assert post(service, event).json()["duplicate"]  # replayed after it was done: still nothing new
    time.sleep(0.3)
    assert len(annotations.calls) == 1


@pytest.mark.parametrize("headers,code,message", [
    ({}, 401, "missing X-Webhook-Secret header"),
    ({"X-Webhook-Secret": "not-the-secret"}, 403, "wrong X-Webhook-Secret header"),
    ({"X-Webhook-Secret": SECRET.upper()}, 403, "wrong X-Webhook-Secret header"),
    ({"X-Webhook-Secret": SECRET[:-1]}, 403, "wrong X-Webhook-Secret header"),
])
def test_a_missing_or_wrong_secret_is_refused_and_makes_no_job(start_service, headers, code, message):
    annotations = Annotations()
    service = start_service(annotations)
    for body in (content_update_payload("alice/tiny-hubert", sha(1)), b"{definitely not json"):
        response = post(service, body, headers=headers)
        assert (response.status_code, response.json()) == (code, {"error": message})  # checked before the body
    query = post(service, content_update_payload("alice/tiny-hubert", sha(1)), headers={},
                 params={"secret": SECRET})
    assert query.status_code == 401  # a secret in the URL is not accepted (URLs end up in logs)
    assert status(service)["recent"] == [] and annotations.calls == []


def test_malformed_or_oversized_payloads_are_refused_and_make_no_job(start_service):
    service = start_service(Annotations())
    event = content_update_payload("alice/tiny-hubert", sha(1))
    del event["repo"]["name"]
    cases = [(b"{not json", 422, "the body is not JSON"),
             (event, 422, "not a Hub webhook payload: repo.name: Field required"),
             (content_update_payload("alice/tiny-hubert", "HEAD"), 422, "newSha 'HEAD' is not a commit sha"),
             (b" " * (1 << 20 | 1), 413, "the body is larger than 1048576 bytes")]
    for body, code, message in cases:
        response = post(service, body)
        assert response.status_code == code and message in response.json()["error"]
    assert status(service)["recent"] == []


def test_events_that_ask_for_nothing_are_acknowledged_and_ignored(start_service):
    annotations = Annotations()
    service = start_service(annotations)
    our_pr = content_update_payload("alice/tiny-hubert", sha(1))
    our_pr.update(event={"action": "create", "scope": "discussion"},
                  discussion={"id": "d" * 24, "num": 3, "title": "[speat-bot] Add SpEAT social-bias results",
                              "status": "open", "isPullRequest": True, "author": {"id": "our-account-id"},
                              "url": {"web": "https://huggingface.co/alice/tiny-hubert/discussions/3"},
                              "changes": {"base": "refs/heads/main"}})
    cases = [(content_update_payload("alice/tiny-hubert", sha(2), ref="refs/pr/3"), "refs/pr/3, not the main branch"),
             (our_pr, "event on our own pull request #3"),
             (content_update_payload("alice/speech-data", sha(3), repo_type="dataset"), "dataset repository"),
             (content_update_payload("alice/some-bucket", sha(4), repo_type="bucket"), "bucket repository")]
    for payload, reason in cases:
        response = post(service, payload)
        assert response.status_code == 200 and response.json()["accepted"] is False
        assert reason in response.json()["reason"]
    assert status(service)["recent"] == [] and annotations.calls == []


def test_a_commit_screened_out_is_ignored_with_its_reason(start_service):
    annotations = Annotations()
    service = start_service(annotations, screen=lambda request: Screening(
        False, f"{request.repo_id!r} is a 'bert' model, not a speech encoder speat can read", "bert"))
    assert post(service, content_update_payload("alice/tiny-bert", sha(1))).status_code == 202
    current = wait_for(service, lambda s: s["ignored"] == 1)
    assert current["recent"][0]["reason"] == "'alice/tiny-bert' is a 'bert' model, not a speech encoder speat can read"
    assert annotations.calls == []


def test_a_newer_commit_supersedes_the_queued_older_one(start_service):
    gate = threading.Event()
    annotations = Annotations(gate=gate)
    service = start_service(annotations)
    post(service, content_update_payload("bob/busy-model", sha(9)))  # keeps the only worker busy
    annotations.wait_started()
    older = post(service, content_update_payload("alice/tiny-hubert", sha(1))).json()
    newer = post(service, content_update_payload("alice/tiny-hubert", sha(2), base_revision=sha(1))).json()
    assert newer["superseded"] == [older["job"]]
    gate.set()
    current = wait_for(service, lambda s: s["done"] == 2)
    assert [call[:2] for call in annotations.calls] == [("bob/busy-model", sha(9)), ("alice/tiny-hubert", sha(2))]
    assert current["superseded"] == 1
    superseded = next(job for job in current["recent"] if job["id"] == older["job"])
    assert superseded["reason"] == f"superseded by commit {sha(2)} (job {newer['job']})"


def test_failures_are_retried_with_back_off_then_failed_with_the_reason(start_service):
    annotations = Annotations(fail_times=4)
    service = start_service(annotations, max_attempts=3, retry_delay=0.05)
    post(service, content_update_payload("alice/flaky", sha(1)))
    wait_for(service, lambda s: s["failed"] == 1)
    post(service, content_update_payload("alice/recovers", sha(2)))
    current = wait_for(service, lambda s: s["done"] == 1)
    assert [call[0] for call in annotations.calls] == ["alice/flaky"] * 3 + ["alice/recovers"] * 2
    [error] = current["last_errors"]
    assert error["repo_id"] == "alice/flaky" and error["state"] == "failed" and error["attempts"] == 3
    assert error["error"] == "RuntimeError: the Hub said no to alice/flaky (attempt 3 of 3)"


def test_two_workers_share_ten_jobs_without_doubling_any(start_service):
    both_running = threading.Barrier(2, timeout=WAIT)
    annotations = Annotations()

    def annotate(job):
        if len(annotations.calls) < 2:
            both_running.wait()  # the first two jobs run at the same time, one per worker
        return annotations(job)

    service = start_service(annotate, workers=2)
    for number in range(10):
        assert post(service, content_update_payload(f"alice/model-{number}", sha(number))).status_code == 202
    current = wait_for(service, lambda s: s["done"] == 10)
    assert sorted(call[:2] for call in annotations.calls) == [(f"alice/model-{n}", sha(n)) for n in range(10)]
    assert {call[2] for call in annotations.calls} == {"worker-1", "worker-2"}
    assert current["queued"] == current["running"] == current["failed"] == 0


def test_private_repositories_are_named_only_to_the_secret_holder(start_service):
    service = start_service(Annotations(fail_times=1), max_attempts=1)
    post(service, content_update_payload("acme/secret-model", sha(1), private=True))
    public = wait_for(service, lambda s: s["failed"] == 1)
    text = json.dumps(public)
    assert "acme/secret-model" not in text and "(private repository)" in text
    assert "acme/secret-model" in json.dumps(status(service, headers=SIGNED))


def test_health_and_index(start_service):
    service = start_service(Annotations())
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    index = httpx.get(f"{service.url}/").json()
    assert index["webhook"] == "/webhooks/speat" and index["status"] == "/status"
    assert status(service)["workers"] == {"configured": 1, "alive": 1}


def test_a_stopping_service_waits_for_its_running_job_then_stops(start_service):
    """What a stop leaves unfinished is not kept anywhere: the next start reconciles (test_webhook_service)."""
    gate = threading.Event()
    annotations = Annotations(gate=gate)
    service = start_service(annotations, shutdown_grace=0.5)
    post(service, content_update_payload("alice/long-job", sha(1)))
    annotations.wait_started()
    started = time.monotonic()
    service.should_exit = True
    deadline = time.monotonic() + WAIT
    while httpx_alive(service) and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.set()
    assert time.monotonic() - started < WAIT / 2 and not httpx_alive(service)


def httpx_alive(service) -> bool:
    try:
        return httpx.get(f"{service.url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
