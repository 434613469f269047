"""`speat hub webhook` end to end: the real service in a subprocess on 127.0.0.1, the test Hub serving tiny model repos,
speat_metric.hub.annotate opening the card PRs. One PR per commit, none for replays, our own commits or text models; a
real SIGKILL with one job running and one queued, then a restart on a new empty data directory that finishes both, once,
by reconciling with the Hub; two workers on ten jobs; no secret or token anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import transformers
from http_servers import HubServer
from hub_testing import FOREIGN_CARD, SPEAT, added_lines, files_containing, hub_env, publish_tiny_model, server_texts
from huggingface_hub import HfApi, ModelCard
from tiny_models import save_tiny_model

from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.hub import SPEAT_TITLE_PREFIX
from speat_metric.hub.card import BEGIN_MARKER, EVAL_RESULTS_PATH
from speat_metric.hub.webhook_events import content_update_payload

TOKEN, OWNER = "hf_webhookBotTOKEN0123456789abcdef", "hf_ownerTOKEN0123456789abcdef"
SECRET = "webhook-SECRET-9f8e7d6c5b4a3210"
BOT = "speat-bot-user"
WAIT = 240.0  # seconds a wait may take on a loaded machine before the test gives up
PERMUTATIONS = "100"

pytestmark = pytest.mark.slow  # a real service process evaluating real (tiny) models


def write_tone_test(folder: Path) -> Path:
    """A small custom test (4 short tones per group), so that each evaluation takes a moment."""
    groups = {}
    for offset, role in enumerate("xyab"):
        groups[role] = []
        for index in range(4):
            path = folder / role / f"{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            time_axis = np.arange(4800) / 16_000
            tone = 0.3 * np.sin(2 * np.pi * (220 + 90 * offset + 17 * index) * time_axis)
            soundfile.write(path, tone + np.random.default_rng(index + 10 * offset).normal(0, 0.02, 4800), 16_000)
            groups[role].append(f"{role}/{index}.wav")
    test = folder / "tones.json"
    test.write_text(json.dumps({"name": "tones", **groups, "group_names": ["low", "mid", "high", "top"]}))
    return test


class Service:
    """`speat hub webhook` in a subprocess; its stderr (JSON-lines logs) is collected as it comes."""

    def __init__(self, hub: HubServer, folder: Path, test: Path, *, workers: int = 1, watch: str | None = None,
                 options: Sequence[str] = ()) -> None:
        self.folder = folder
        self.env = hub_env(hub, folder, HF_TOKEN=TOKEN, SPEAT_WEBHOOK_SECRET=SECRET)
        self.arguments = [SPEAT, "hub", "webhook", "--port", "0", "--workers", str(workers), "--tests", str(test),
                          "--permutations", PERMUTATIONS, "--retry-delay", "0.2", "--max-attempts", "2",
                          *(["--watch", watch] if watch else []), *options]
        self.logs: list[str] = []
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Service:
        self.process = subprocess.Popen(self.arguments, cwd=self.folder, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        listening = threading.Event()

        def collect(stream):
            for line in stream:
                self.logs.append(line)
                if '"service.listening"' in line:
                    self.url = json.loads(line)["url"]
                    listening.set()

        for stream in (self.process.stdout, self.process.stderr):
            threading.Thread(target=collect, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + WAIT
        while not listening.wait(0.1):
            assert self.process.poll() is None and time.monotonic() < deadline, "".join(self.logs)
        return self

    def post(self, payload: dict) -> httpx.Response:
        return httpx.post(f"{self.url}/webhooks/speat", json=payload, headers={"X-Webhook-Secret": SECRET},
                          timeout=WAIT)

    def status(self) -> dict:
        return httpx.get(f"{self.url}/status", headers={"X-Webhook-Secret": SECRET}, timeout=WAIT).json()

    def job(self, job_id: int) -> dict:
        """Wait until job `job_id` is finished and return it."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for job in self.status()["recent"]:
                if job["id"] == job_id and job["state"] in ("done", "ignored", "failed", "superseded"):
                    return job
            assert self.process.poll() is None, "".join(self.logs)
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish:\n" + "".join(self.logs[-30:]))

    def reconciled(self) -> dict:
        """Wait until the start's reconciliation is over and return the status."""
        deadline = time.monotonic() + WAIT
        while (status := self.status())["reconciliation"]["state"] in ("pending", "running"):
            assert time.monotonic() < deadline and self.process.poll() is None, "".join(self.logs[-30:])
            time.sleep(0.2)
        return status

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(WAIT)


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN: BOT, OWNER: "alice"}) as server:
        yield server


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("webhook-service")


@pytest.fixture(scope="module")
def tone_test(folder):
    return write_tone_test(folder / "stimuli")


@pytest.fixture(scope="module")
def service(hub, folder, tone_test):
    running = Service(hub, folder / "service", tone_test, workers=2)
    (folder / "service").mkdir()
    yield running.start()
    running.stop()
    # SIGTERM is a clean stop (uvicorn re-raises the signal once it has shut down)
    assert running.process.returncode in (0, -signal.SIGTERM), "".join(running.logs[-20:])
    assert any('"service.stopped"' in line for line in running.logs)


def pull_requests(hub: HubServer, repo_id: str) -> list:
    return [discussion for discussion in hub.discussions(repo_id) if discussion.is_pull_request]


def test_a_pushed_speech_encoder_gets_one_pr_at_that_commit(hub, service, folder, tone_test):
    commit = publish_tiny_model(hub, "alice/tiny-w2v")
    accepted = service.post(content_update_payload("alice/tiny-w2v", commit))
    assert accepted.status_code == 202 and accepted.json()["duplicate"] is False
    job = service.job(accepted.json()["job"])
    assert job["state"] == "done" and job["outcome"]["status"] == "opened-pr", job
    assert job["outcome"]["evaluated_revision"] == commit
    [pr] = pull_requests(hub, "alice/tiny-w2v")
    assert (pr.author, pr.status, pr.base_commit) == (BOT, "open", commit)
    assert pr.title.startswith(SPEAT_TITLE_PREFIX)
    files = hub.files("alice/tiny-w2v", revision=f"refs/pr/{pr.num}")
    readme = files["README.md"].decode()
    added_lines(FOREIGN_CARD, readme)  # the owner's card is untouched: only lines added
    assert BEGIN_MARKER in readme and f"at revision `{commit}`" in readme
    assert EVAL_RESULTS_PATH not in files  # the service was given no benchmark (test_hub_benchmark attaches one)
    # the card's d is the d of an independent evaluation of the same model at that commit
    model = save_tiny_model("wav2vec2", folder / "independent-model")
    [record] = evaluate_models([str(model)], EvaluationSettings(tests=(str(tone_test),), stimuli="speat",
                                                                 num_permutations=int(PERMUTATIONS), progress=False,
                                                                 cache_dir=folder / "independent-cache"))
    card_d = next(result.metric_value for result in ModelCard(readme).data.eval_results
                  if result.metric_type == "speat_d")
    assert card_d == pytest.approx(record.speat.effect_size, abs=1e-4)  # the card rounds d to 4 decimals

    replay = service.post(content_update_payload("alice/tiny-w2v", commit))
    assert replay.status_code == 202 and replay.json() == {**accepted.json(), "duplicate": True, "state": "done"}
    # the events our PR causes: its ref moving, then the owner merging it into main
    pr_head = hub.repos[("model", "alice/tiny-w2v")].branches[f"refs/pr/{pr.num}"]
    assert service.post(content_update_payload("alice/tiny-w2v", pr_head, ref=f"refs/pr/{pr.num}")
                        ).json()["accepted"] is False
    HfApi(endpoint=hub.url, token=OWNER).merge_pull_request("alice/tiny-w2v", pr.num)
    merged = hub.repos[("model", "alice/tiny-w2v")].branches["main"]
    merge_job = service.post(content_update_payload("alice/tiny-w2v", merged, base_revision=commit)).json()["job"]
    ignored = service.job(merge_job)
    assert ignored["state"] == "ignored" and ignored["reason"].startswith("only the model card changed")
    assert len(pull_requests(hub, "alice/tiny-w2v")) == 1


def test_a_text_model_is_acknowledged_and_ignored(hub, service):
    hub.create_repo("alice/tiny-bert")
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    commit = hub.commit("alice/tiny-bert", {"config.json": config.to_json_string().encode(),
                                            "model.safetensors": b"not speech"})
    accepted = service.post(content_update_payload("alice/tiny-bert", commit))
    assert accepted.status_code == 202
    job = service.job(accepted.json()["job"])
    assert job["state"] == "ignored" and "is a 'bert' model, not a speech encoder" in job["reason"]
    assert hub.discussions("alice/tiny-bert") == []
    assert any('"job.ignored"' in line and "alice/tiny-bert" in line for line in service.logs)  # logged, with why


def test_two_workers_and_ten_queued_jobs_make_ten_prs_none_doubled(hub, service):
    repos = [f"alice/batch-{number}" for number in range(10)]
    commits = {repo: publish_tiny_model(hub, repo, readme=None, seed=number) for number, repo in enumerate(repos)}
    events = [content_update_payload(repo, commit) for repo, commit in commits.items()]
    with httpx.Client(timeout=WAIT) as client:  # every event twice, as fast as they go
        answers = [client.post(f"{service.url}/webhooks/speat", json=event, headers={"X-Webhook-Secret": SECRET})
                   for event in events + events]
    assert [answer.status_code for answer in answers] == [202] * 20
    assert [answer.json()["duplicate"] for answer in answers] == [False] * 10 + [True] * 10
    jobs = [service.job(answer.json()["job"]) for answer in answers[:10]]
    assert [job["outcome"]["status"] for job in jobs] == ["opened-pr"] * 10, jobs
    assert {job["worker"] for job in jobs} == {"worker-1", "worker-2"}
    for repo, commit in commits.items():
        [pr] = pull_requests(hub, repo)
        assert pr.base_commit == commit


def test_a_killed_service_restarted_on_an_empty_disk_finishes_its_work_once_by_reconciling(folder, tone_test):
    """SIGKILL while a job runs (its card pull request on its way to the Hub) and another waits; the restart has no
    file of the first run, and finds both commits again on the Hub: one PR each, with the records."""
    running_repo, queued_repo = "alice/killed-while-running", "alice/queued-meanwhile"

    class HoldingHub(HubServer):
        """Holds the first request for `held` until `release` is set, then answers 503 without acting on it."""

        held, arrived, release = f"/api/models/{running_repo}/commit/main", threading.Event(), threading.Event()

        def route(self, request, handler):
            if request.method == "POST" and request.path == self.held and not self.arrived.is_set():
                self.arrived.set()
                self.release.wait(WAIT)
                self.respond(handler, 503)
                return
            super().route(request, handler)

    with HoldingHub(tokens={TOKEN: BOT}) as hub:
        first_disk, second_disk, third_disk = (folder / name for name in ("run-1", "run-2", "run-3"))
        for disk in (first_disk, second_disk, third_disk):
            disk.mkdir()
        service = Service(hub, first_disk, tone_test, watch="user:alice").start()
        assert service.reconciled()["reconciliation"] == {"state": "done", "queued": 0}  # alice has no model yet
        commits = {repo: publish_tiny_model(hub, repo, seed=seed) for seed, repo in enumerate((running_repo,
                                                                                               queued_repo))}
        assert service.post(content_update_payload(running_repo, commits[running_repo])).status_code == 202
        assert hub.arrived.wait(WAIT), "".join(service.logs)  # evaluated; its pull request is being opened
        assert service.post(content_update_payload(queued_repo, commits[queued_repo])).status_code == 202
        status = service.status()
        assert (status["running"], status["queued"]) == (1, 1)
        service.kill()  # SIGKILL: no cleanup at all
        hub.release.set()
        assert pull_requests(hub, running_repo) == [] and pull_requests(hub, queued_repo) == []

        assert list(second_disk.iterdir()) == []
        restarted = Service(hub, second_disk, tone_test, watch="user:alice").start()
        try:
            assert restarted.reconciled()["reconciliation"] == {"state": "done", "queued": 2}
            jobs = [restarted.job(job_id) for job_id in (1, 2)]
        finally:
            restarted.stop()
        assert sorted((job["repo_id"], job["revision"], job["origin"], job["state"], job["attempts"],
                       job["outcome"]["status"]) for job in jobs) == sorted(
            (repo, commit, "reconciliation", "done", 1, "opened-pr") for repo, commit in commits.items())
        for repo, commit in commits.items():
            [pr] = pull_requests(hub, repo)
            assert (pr.author, pr.status, pr.base_commit) == (BOT, "open", commit)
            readme = hub.files(repo, revision=f"refs/pr/{pr.num}")["README.md"].decode()
            assert BEGIN_MARKER in readme and f"at revision `{commit}`" in readme
            assert any(result.metric_type == "speat_d" for result in ModelCard(readme).data.eval_results)
        assert len(hub.commit_messages(running_repo)) == 3  # initial, model, one card commit

        # A third start finds everything annotated: the pull requests are the record.
        again = Service(hub, third_disk, tone_test, watch="user:alice").start()
        try:
            assert again.reconciled()["reconciliation"] == {"state": "done", "queued": 0}
        finally:
            again.stop()
        assert all(len(pull_requests(hub, repo)) == 1 for repo in commits)


def test_a_failing_job_is_retried_then_failed_with_a_reason(hub, service):
    broken_card = "---\nlicense: [unclosed\n---\n# my model\n"
    commit = publish_tiny_model(hub, "alice/broken-card", readme=broken_card)
    job = service.job(service.post(content_update_payload("alice/broken-card", commit)).json()["job"])
    assert job["state"] == "failed" and job["attempts"] == 2
    assert "alice/broken-card" in job["reason"] and job["reason"].endswith("(attempt 2 of 2)")
    assert hub.discussions("alice/broken-card") == []
    assert any(error["job"] == job["id"] for error in service.status()["last_errors"])


def test_the_secret_and_the_token_appear_nowhere(hub, service, folder):
    """Run last in this module: everything the service printed, stored or pushed so far."""
    texts = ["".join(service.logs), json.dumps(service.status()), httpx.get(f"{service.url}/").text,
             *server_texts(hub)]
    assert service.logs and any('"job.done"' in line for line in service.logs)
    for secret in (SECRET, TOKEN):
        assert not [text for text in texts if secret in text]
        assert files_containing(folder, secret) == []  # caches, downloads
    assert not any(secret in " ".join(service.arguments) for secret in (SECRET, TOKEN))  # nothing in `ps`


def test_the_opt_out_list_keeps_events_and_reconciliation_away_from_a_repository(hub, folder, tone_test):
    disk = folder / "opted-out"
    disk.mkdir()
    (disk / "opt-out.txt").write_text("carol  # asked by mail\n")
    commit = publish_tiny_model(hub, "carol/tiny-encoder", seed=7)
    publish_tiny_model(hub, "dave/tiny-encoder", seed=8)
    service = Service(hub, disk, tone_test, watch="user:carol", options=["--opt-out", str(disk / "opt-out.txt")])
    try:
        seen = len(hub.requests)
        assert service.start().reconciled()["reconciliation"] == {"state": "done", "queued": 0}
        answer = service.post(content_update_payload("carol/tiny-encoder", commit))
        assert answer.status_code == 200 and answer.json() == {
            "accepted": False, "reason": "owner 'carol' is on the opt-out list in " + str(disk / "opt-out.txt")}
        assert not [request for request in hub.requests[seen:] if "carol/tiny-encoder" in request.path]
        assert any('"reconcile.opted-out"' in line and "carol/tiny-encoder" in line for line in service.logs)
        assert pull_requests(hub, "carol/tiny-encoder") == []
    finally:
        service.stop()


def test_the_daily_cap_defers_what_is_over_it_and_survives_a_restart(hub, folder, tone_test):
    disk = folder / "capped"
    disk.mkdir()
    models = ["erin/tiny-a", "erin/tiny-b"]
    for seed, model in enumerate(models, start=20):
        publish_tiny_model(hub, model, seed=seed)
    hub.create_repo(f"{BOT}/ledger", repo_type="dataset")
    hub.commit(f"{BOT}/ledger", {"README.md": b"# ledger\n"}, repo_type="dataset")
    options = ["--max-prs-per-day", "1", "--ledger", f"{BOT}/ledger"]
    for start in ("first", "restart"):  # the count lives in the ledger dataset: a restart keeps the cap
        service = Service(hub, disk, tone_test, watch="user:erin", options=options).start()
        try:
            assert service.reconciled()["reconciliation"]["queued"] == (2 if start == "first" else 1)
            deadline = time.monotonic() + WAIT
            while not (waiting := [job for job in service.status()["recent"]
                                   if job["state"] == "queued" and "cap of 1" in (job["reason"] or "")]):
                assert time.monotonic() < deadline, "".join(service.logs[-20:])
                time.sleep(0.2)
            [waiting] = waiting
            assert waiting["attempts"] == 0 and "the next day begins" in waiting["reason"]
            assert sum(len(pull_requests(hub, model)) for model in models) == 1
            assert pull_requests(hub, waiting["repo_id"]) == []
        finally:
            service.stop()
