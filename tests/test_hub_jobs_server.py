"""The test Hub's Jobs API (tests/http_servers.py), driven by huggingface_hub's real HfApi over loopback HTTP.

Each Job runs as a local subprocess; these tests check what a client can see of it (stages, messages, logs,
replies without secret values) and what the Job itself sees (environment, secrets, mounted volumes).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_servers import HubServer, RecordedRequest, RecordingServer, _Handler
from huggingface_hub import HfApi, Volume
from huggingface_hub.errors import HfHubHTTPError

TOKEN = "hf_jobsTOKEN0123456789abcdef"
OTHER_TOKEN = "hf_otherTOKEN0123456789abcdef"
SECRET_VALUE = "s3cret-VALUE-never-shown-0123"
USER = "alice"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tokens={TOKEN: USER, OTHER_TOKEN: "mallory"}, data_dir=tmp_path / "hub-data",
                   job_kill_grace=0.5) as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


def python_job(api: HfApi, code: str, *arguments: str, **options) -> str:
    """Start a Job running ``python -c code arguments...`` (the image is recorded, not used); return its id."""
    return api.run_job(image="python:3.12", command=["python", "-c", code, *arguments], **options).id


def wait_for_log(hub: HubServer, job_id: str, lines: int, timeout: float = 20) -> list[str]:
    """The Job's log once it has at least `lines` lines (read on the server: a client's no-follow read of a
    running Job waits for 5 s of silence)."""
    deadline = time.monotonic() + timeout
    while len(log := hub.job_log(job_id)) < lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} printed only {log}")
        time.sleep(0.05)
    return log


def process_is_gone(pid: int) -> bool:
    """No such process, or only its zombie (an orphan reparented to an init that does not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def raw_get(hub: HubServer, path: str) -> bytes:
    request = urllib.request.Request(f"{hub.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        return response.read()


PRINT_ENV = """
import hashlib, os
print("greeting:", os.environ["GREETING"])
secret = os.environ.get("MY_SECRET", "")
print("secret present:", hashlib.sha256(secret.encode()).hexdigest() == os.environ["SECRET_SHA256"])
print("endpoint:", os.environ["HF_ENDPOINT"])
"""


def test_a_job_sees_its_env_and_secrets_and_its_log_comes_back(hub, api):
    job_id = python_job(api, PRINT_ENV, secrets={"MY_SECRET": SECRET_VALUE},
                        env={"GREETING": "bonjour", "SECRET_SHA256": hashlib.sha256(SECRET_VALUE.encode()).hexdigest()})
    assert api.inspect_job(job_id=job_id).owner.name == USER
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "COMPLETED" and info.status.message is None
    assert info.started_at <= info.finished_at and info.initiator.type == "user"
    log = list(api.fetch_job_logs(job_id=job_id))
    assert log == ["greeting: bonjour", "secret present: True", f"endpoint: {hub.url}"]
    assert list(api.fetch_job_logs(job_id=job_id, tail=1)) == [f"endpoint: {hub.url}"]


def test_following_the_log_streams_until_the_job_ends(api):
    job_id = python_job(api, "import time; print('first', flush=True); time.sleep(0.8); print('second')")
    started = time.monotonic()
    assert list(api.fetch_job_logs(job_id=job_id, follow=True)) == ["first", "second"]
    assert time.monotonic() - started >= 0.7  # it waited for the second line rather than stopping at the first
    assert api.inspect_job(job_id=job_id).status.stage == "COMPLETED"


def test_a_failing_command_ends_in_error_with_its_exit_code_and_stderr(api):
    job_id = python_job(api, "import sys; print('about to fail', file=sys.stderr); sys.exit(3)")
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "ERROR" and "exit code: 3" in info.status.message
    assert list(api.fetch_job_logs(job_id=job_id)) == ["about to fail"]


def test_a_command_that_cannot_start_is_an_error(api):
    info = api.run_job(image="ubuntu", command=["no-such-program-speat"])
    assert info.status.stage == "ERROR" and "no-such-program-speat" in info.status.message


SLEEP_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_cancel_kills_the_whole_process_group(hub, api):
    job_id = python_job(api, SLEEP_WITH_CHILD)
    [child_pid] = wait_for_log(hub, job_id, 1)
    leader_pid = hub.jobs[job_id].process.pid
    assert not process_is_gone(int(child_pid))
    api.cancel_job(job_id=job_id)
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "CANCELED"
    assert process_is_gone(leader_pid) and process_is_gone(int(child_pid))


def test_a_job_past_its_timeout_is_killed_and_marked_as_an_error(api):
    started = time.monotonic()
    job_id = python_job(api, "import time; print('working', flush=True); time.sleep(60)", timeout=1)
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "ERROR" and "timed out after 1 seconds" in info.status.message
    assert time.monotonic() - started < 10
    assert list(api.fetch_job_logs(job_id=job_id)) == ["working"]


READ_STIMULI = """
import os, stat, sys
folder = os.environ["STIMULI"]
print(sorted(os.listdir(folder)))
print(open(sys.argv[1]).read())
print("writable:", any(os.stat(os.path.join(folder, name)).st_mode & 0o222 for name in os.listdir(folder)))
"""


def test_a_dataset_volume_is_a_read_only_snapshot_at_its_revision(hub, api):
    hub.create_repo(f"{USER}/stimuli", repo_type="dataset")
    first = hub.commit(f"{USER}/stimuli", {"speech/a.txt": b"first a", "speech/b.txt": b"b", "other.txt": b"o"},
                       repo_type="dataset")
    hub.commit(f"{USER}/stimuli", {"speech/a.txt": b"second a"}, repo_type="dataset")
    volume = Volume(type="dataset", source=f"{USER}/stimuli", mount_path="/data/stimuli", revision=first,
                    path="speech")
    job_id = python_job(api, READ_STIMULI, "/data/stimuli/a.txt", volumes=[volume],
                        env={"STIMULI": "/data/stimuli"})
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "COMPLETED", hub.job_log(job_id)
    assert hub.job_log(job_id) == ["['a.txt', 'b.txt']", "first a", "writable: False"]
    assert info.volumes[0].mount_path == "/data/stimuli" and info.environment == {"STIMULI": "/data/stimuli"}


def test_writing_to_a_read_only_volume_fails_the_job(hub, api):
    hub.create_repo(f"{USER}/stimuli", repo_type="dataset")
    hub.commit(f"{USER}/stimuli", {"a.txt": b"original"}, repo_type="dataset")
    job_id = python_job(api, "import sys; open(sys.argv[1], 'w').write('changed')", "/data/a.txt",
                        volumes=[Volume(type="dataset", source=f"{USER}/stimuli", mount_path="/data")])
    assert api.wait_for_job(job_id, poll_interval=0.1, timeout=30).status.stage == "ERROR"
    assert hub.files(f"{USER}/stimuli", repo_type="dataset")["a.txt"] == b"original"


def test_a_bucket_volume_is_writable_and_kept_by_the_server(hub, api):
    (hub.bucket_dir(f"{USER}/results") / "run").mkdir()
    job_id = python_job(api, "import sys; open(sys.argv[1], 'w').write('result')", "/output/run/result.txt",
                        volumes=[Volume(type="bucket", source=f"{USER}/results", mount_path="/output")])
    assert api.wait_for_job(job_id, poll_interval=0.1, timeout=30).status.stage == "COMPLETED", hub.job_log(job_id)
    assert (hub.bucket_dir(f"{USER}/results") / "run" / "result.txt").read_text() == "result"


def test_a_volume_of_a_missing_repository_is_refused_before_anything_runs(hub, api):
    with pytest.raises(HfHubHTTPError, match="no dataset repository 'alice/missing'"):
        api.run_job(image="python:3.12", command=["python", "-c", "print(1)"],
                    volumes=[Volume(type="dataset", source=f"{USER}/missing", mount_path="/data")])
    assert hub.jobs == {}


def test_secret_values_never_appear_in_replies(hub, api):
    job_id = python_job(api, "print('done')", secrets={"MY_SECRET": SECRET_VALUE}, env={"VISIBLE": "yes"})
    api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    inspected = raw_get(hub, f"/api/jobs/{USER}/{job_id}")
    listed = raw_get(hub, f"/api/jobs/{USER}")
    for reply in (inspected, listed):
        assert SECRET_VALUE.encode() not in reply and b"MY_SECRET" in reply and b"VISIBLE" in reply
    assert json.loads(inspected)["secrets"] == ["MY_SECRET"]
    # list_jobs asks the module-level whoami (the default endpoint), so the namespace is given here.
    jobs = list(api.list_jobs(namespace=USER))
    assert [job.id for job in jobs] == [job_id] and SECRET_VALUE not in repr(jobs)
    assert SECRET_VALUE not in repr(api.inspect_job(job_id=job_id))


def test_jobs_are_filtered_by_stage_and_label_and_can_be_rerun(hub, api):
    done = python_job(api, "print('a')", labels={"campaign": "one"})
    api.wait_for_job(done, poll_interval=0.1, timeout=30)
    failed = python_job(api, "raise SystemExit(1)", labels={"campaign": "two"})
    api.wait_for_job(failed, poll_interval=0.1, timeout=30)
    assert [job.id for job in api.list_jobs(namespace=USER, status="ERROR")] == [failed]
    assert [job.id for job in api.list_jobs(namespace=USER, labels={"campaign": "one"})] == [done]
    again = api.rerun_job(job_id=done)
    assert again.id != done and again.initiator.type == "duplicated-job" and again.labels["campaign"] == "one"


def test_jobs_need_a_token_and_stay_in_their_namespace(hub, api):
    job_id = python_job(api, "print('mine')")
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(endpoint=hub.url, token=False).run_job(image="python:3.12", command=["true"], namespace=USER)
    other = HfApi(endpoint=hub.url, token=OTHER_TOKEN)
    with pytest.raises(HfHubHTTPError, match="403"):
        other.run_job(image="python:3.12", command=["true"], namespace=USER)
    with pytest.raises(HfHubHTTPError, match="404"):
        other.inspect_job(job_id=job_id)
    assert list(hub.jobs) == [job_id]


def test_scheduled_jobs_are_stored_and_run_when_triggered(hub, api):
    scheduled = api.create_scheduled_job(image="python:3.12", command=["python", "-c", "print('nightly')"],
                                         schedule="@daily", secrets={"MY_SECRET": SECRET_VALUE})
    assert scheduled.schedule == "@daily" and scheduled.job_spec.secrets == ["MY_SECRET"]
    assert [s.id for s in api.list_scheduled_jobs()] == [scheduled.id]
    assert SECRET_VALUE.encode() not in raw_get(hub, f"/api/scheduled-jobs/{USER}/{scheduled.id}")
    job_id = hub.trigger_scheduled_job(scheduled.id)
    info = api.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert info.status.stage == "COMPLETED" and hub.job_log(job_id) == ["nightly"]
    assert info.initiator.type == "scheduled-job" and info.initiator.id == scheduled.id
    assert api.inspect_scheduled_job(scheduled_job_id=scheduled.id).status.last_job.id == job_id
    api.suspend_scheduled_job(scheduled_job_id=scheduled.id)
    assert api.inspect_scheduled_job(scheduled_job_id=scheduled.id).suspend is True
    assert hub.trigger_scheduled_job(scheduled.id) is None
    api.resume_scheduled_job(scheduled_job_id=scheduled.id)
    by_client = api.trigger_scheduled_job(scheduled_job_id=scheduled.id)
    assert api.wait_for_job(by_client.id, poll_interval=0.1, timeout=30).status.stage == "COMPLETED"
    api.delete_scheduled_job(scheduled_job_id=scheduled.id)
    assert api.list_scheduled_jobs() == []
    with pytest.raises(HfHubHTTPError, match="404"):
        api.inspect_scheduled_job(scheduled_job_id=scheduled.id)


def test_a_scheduled_job_without_concurrency_does_not_overlap_itself(hub, api):
    scheduled = api.create_scheduled_job(image="python:3.12", schedule="@hourly",
                                         command=["python", "-c", "import time; time.sleep(60)"])
    first = hub.trigger_scheduled_job(scheduled.id)
    assert hub.trigger_scheduled_job(scheduled.id) is None
    with pytest.raises(HfHubHTTPError, match="409"):
        api.trigger_scheduled_job(scheduled_job_id=scheduled.id)
    api.cancel_job(job_id=first)


PRINT_EVENT = """
import hashlib, json, os, sys
def digest(name):
    return hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()
if "WEBHOOK_PAYLOAD" not in os.environ:
    sys.exit(print("no event"))
payload = json.loads(os.environ["WEBHOOK_PAYLOAD"])
print(payload["repo"]["name"], payload["repo"]["headSha"], os.environ["WEBHOOK_REPO_ID"],
      os.environ["WEBHOOK_REPO_TYPE"])
print("secret ok:", digest("WEBHOOK_SECRET") == os.environ["WEBHOOK_SECRET_SHA256"],
      "token ok:", digest("HF_TOKEN") == os.environ["TOKEN_SHA256"])
"""

EVENT = {"event": {"action": "update", "scope": "repo.content"},
         "repo": {"type": "model", "name": "bob/tiny-hubert", "headSha": "abc123"}}


def test_a_job_webhook_starts_exactly_one_copy_of_its_job_per_event(hub, api):
    expected = {"WEBHOOK_SECRET_SHA256": hashlib.sha256(b"hook-secret").hexdigest(),
                "TOKEN_SHA256": hashlib.sha256(b"hf_forTheJob").hexdigest()}
    source = python_job(api, PRINT_EVENT, env=expected, secrets={"SOURCE_ONLY": "not copied"})
    api.wait_for_job(source, poll_interval=0.1, timeout=30)
    assert hub.job_log(source) == ["no event"]
    webhook = api.create_webhook(job_id=source, watched=[{"type": "user", "name": "bob"}], domains=["repo"],
                                 secret="hook-secret", secrets={"HF_TOKEN": "hf_forTheJob"})
    assert webhook.url is None and webhook.job.command[-1] == PRINT_EVENT and webhook.job.secrets == ["HF_TOKEN"]
    assert api.get_webhook(webhook.id).job.docker_image == "python:3.12"
    assert b"hf_forTheJob" not in raw_get(hub, "/api/settings/webhooks")
    before = set(hub.jobs)
    fired = hub.emit_event(EVENT)
    assert list(fired) == [webhook.id] and set(hub.jobs) - before == {fired[webhook.id]}
    info = api.wait_for_job(fired[webhook.id], poll_interval=0.1, timeout=30)
    assert info.status.stage == "COMPLETED", hub.job_log(info.id)
    assert hub.job_log(info.id) == ["bob/tiny-hubert abc123 bob/tiny-hubert model", "secret ok: True token ok: True"]
    assert info.initiator.type == "webhook" and sorted(info.secrets) == ["HF_TOKEN", "WEBHOOK_SECRET"]
    assert json.loads(info.environment["WEBHOOK_PAYLOAD"]) == EVENT
    assert hub.emit_event({**EVENT, "repo": {"type": "model", "name": "carol/other"}}) == {}
    assert hub.emit_event({**EVENT, "event": {"action": "create", "scope": "discussion"}}) == {}
    api.disable_webhook(webhook.id)
    assert hub.emit_event(EVENT) == {}
    api.delete_webhook(webhook.id)
    assert api.list_webhooks() == [] and len(hub.jobs) == len(before) + 1


class Receiver(RecordingServer):
    """Records each POST's body."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def route(self, request: RecordedRequest, handler: _Handler) -> None:
        self.bodies.append(handler._body)
        self.respond(handler, 202)


def test_a_url_webhook_is_posted_the_payload_with_its_secret(hub, api):
    with Receiver() as receiver:
        webhook = api.create_webhook(url=f"{receiver.url}/hook", watched=[{"type": "model", "name": "bob/tiny-hubert"}],
                                     secret="hook-secret")
        assert hub.emit_event(EVENT) == {webhook.id: 202}
        [request] = receiver.requests
        assert request.path == "/hook" and request.headers["x-webhook-secret"] == "hook-secret"
        assert json.loads(receiver.bodies[0]) == EVENT
    assert hub.jobs == {}


def test_stopping_the_server_ends_every_running_job(tmp_path):
    hub = HubServer(tokens={TOKEN: USER}, data_dir=tmp_path / "data").start()
    try:
        job_id = python_job(HfApi(endpoint=hub.url, token=TOKEN), SLEEP_WITH_CHILD)
        [child_pid] = wait_for_log(hub, job_id, 1)
        leader_pid = hub.jobs[job_id].process.pid
    finally:
        hub.stop()
    assert process_is_gone(leader_pid) and process_is_gone(int(child_pid))
    assert hub.job_info(job_id)["status"]["stage"] == "ERROR"


def test_an_image_can_map_to_a_command_prefix(tmp_path):
    prefix = [sys.executable, "-c", "import sys; print('via image', sys.argv[1:])"]
    with HubServer(tokens={TOKEN: USER}, job_images={"speat/tiny:1": prefix}) as hub:
        api = HfApi(endpoint=hub.url, token=TOKEN)
        job_id = api.run_job(image="speat/tiny:1", command=["speat", "--version"]).id
        assert api.wait_for_job(job_id, poll_interval=0.1, timeout=30).status.stage == "COMPLETED"
        assert hub.job_log(job_id) == ["via image ['speat', '--version']"]
