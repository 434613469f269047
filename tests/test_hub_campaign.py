"""speat_metric.hub.campaign: annotate-many in shards on the test Hub's Jobs (real huggingface_hub client) and through
submitit's local executor; killed shards, a killed coordinator, the daily cap and the opt-out list."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from http_servers import HubServer
from hub_testing import SPEAT, hub_env, publish_tiny_model, run_speat, write_tone_test
from huggingface_hub import HfApi

from speat_metric.evaluation import EvaluationSettings
from speat_metric.hub.annotate import PR_TITLE
from speat_metric.hub.batch import load_state
from speat_metric.hub.campaign import (
    OUTCOME_PREFIX,
    JobsBackend,
    ShardTask,
    budget_shares,
    parse_outcomes,
    run_campaign,
    settings_to_dict,
)
from speat_metric.hub.jobs import JobRuntime

TOKEN = "hf_campaignBotSECRET42"
BOT = "speat-bot"
IMAGE = "speat/test-runner:1"  # the test Hub runs a Job's command as given (speat is on the Jobs' PATH)



def wait_for(condition, timeout: float = 120.0, what: str = "the campaign") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not get there in time")
        time.sleep(0.05)


def shard_jobs(hub: HubServer) -> dict[str, list[str]]:
    """Shard id -> the ids of the Jobs that ran it, oldest first."""
    jobs: dict[str, list[str]] = {}
    for job_id in list(hub.jobs):
        jobs.setdefault(hub.job_info(job_id)["labels"]["speat-shard"], []).append(job_id)
    return jobs


def pr_openings(hub: HubServer, model: str) -> int:
    """Commits that opened a pull request on `model`: a model annotated twice would have two."""
    return sum(message.startswith(PR_TITLE) for message in hub.commit_messages(model))


@contextlib.contextmanager
def coordinator_process(command: list[str], env: dict[str, str], cwd: Path, *, capture: bool = True):
    """A campaign's coordinator running in the background; killed on the way out if it is still running."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    process = subprocess.Popen([SPEAT, *command], cwd=cwd, env=env, stdout=output, stderr=output, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def campaign_command(tmp_path: Path, models: list[str], state: Path, *options: str) -> list[str]:
    (tmp_path / "models.txt").write_text("\n".join(models) + "\n")
    return ["hub", "annotate-many", "--models", str(tmp_path / "models.txt"), "--state", str(state), "--tests",
            str(write_tone_test(tmp_path / "tones")), "--permutations", "50", "--no-progress", "--poll-interval",
            "0.2", *options]


@pytest.mark.slow
def test_a_campaign_in_three_job_shards_survives_a_killed_shard_and_keeps_the_cap_and_the_opt_out(tmp_path):
    models = [f"lab/m{number:02d}" for number in range(1, 12)] + ["shy/m12"]
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub", job_kill_grace=0.5) as hub:
        commits = {model: publish_tiny_model(hub, model, readme=f"# {model}\n") for model in models}
        (tmp_path / "opt-out.txt").write_text("shy  # asked by mail\n")
        state = tmp_path / "state.json"
        command = campaign_command(tmp_path, models, state, "--backend", "jobs", "--image", IMAGE, "--shard-size",
                                   "4", "--max-prs-per-day", "5", "--opt-out", "opt-out.txt", "--results-repo",
                                   f"{BOT}/results")
        held = f"/api/models/lab/m02/revision/{commits['lab/m02']}"
        hub.hold(held)  # the first shard stops at its second model, where its process is killed
        with coordinator_process(command, hub_env(hub, tmp_path, HF_TOKEN=TOKEN), tmp_path) as coordinator:
            wait_for(lambda: hub.count("GET", held) > 0)
            [first] = shard_jobs(hub)["s0001"]
            wait_for(lambda: parse_outcomes(hub.job_log(first)), what="the first outcome line")
            assert [outcome["model"] for outcome in parse_outcomes(hub.job_log(first))] == ["lab/m01"]
            os.killpg(hub.jobs[first].process.pid, signal.SIGKILL)
            hub.release(held)
            stdout, stderr = coordinator.communicate(timeout=240)
        assert coordinator.returncode == 0, stderr
        jobs = shard_jobs(hub)
        assert sorted(jobs) == ["s0001", "s0002", "s0003"] and [len(jobs[s]) for s in sorted(jobs)] == [2, 1, 1]
        assert "submitting it again" in stdout
        resubmitted = json.loads(hub.job_info(jobs["s0001"][1])["command"][-1])
        assert [model for model, _ in resubmitted["models"]] == ["lab/m02", "lab/m03", "lab/m04"]  # m01 was done
        assert resubmitted["pr_budget"] == 1  # its share of 2, less the pull request m01 opened

        assert sum(pr_openings(hub, model) for model in models) == 5  # the cap, over three parallel shards
        assert all(pr_openings(hub, model) <= 1 for model in models)  # no model annotated twice
        assert hub.commit_messages("shy/m12") == ["initial commit", "upload model"]
        assert not [r for r in hub.requests if "shy/m12" in r.path]  # opted out: never asked
        final = load_state(state)
        statuses = {model: entry["status"] for model, entry in final["models"].items()}
        opened = [model for model, status in statuses.items() if status == "opened-pr"]
        assert len(opened) == 5 and sorted(opened) == sorted(m for m in models if pr_openings(hub, m))
        deferred = sorted(model for model, status in statuses.items() if status == "deferred")
        assert len(deferred) == 6 and "shy/m12" not in statuses
        assert all("the next day begins" in final["models"][model]["reason"] for model in deferred)
        assert [len(repos) for repos in final["policy"]["opened"].values()] == [5]
        assert {shard["status"] for shard in final["campaign"]["shards"].values()} == {"done"}
        assert all(final["models"][model]["revision"] == commits[model] for model in opened)
        assert "5 models done, 1 skipped, 0 failed, 6 deferred" in stdout
        records = [path for path in hub.files(f"{BOT}/results", repo_type="dataset") if path.startswith("records/")]
        assert len(records) == 5  # one test per evaluated model, each pushed by its shard

        # the token: in each Job's secrets, and nowhere a reader of the Jobs, the logs or the state can see
        api = HfApi(endpoint=hub.url, token=TOKEN)
        for job_id in hub.jobs:
            info = api.inspect_job(job_id=job_id, namespace=BOT)
            assert info.secrets == ["HF_TOKEN"] and TOKEN not in repr(info) and TOKEN not in "\n".join(info.command)
            assert TOKEN not in json.dumps(info.environment) and TOKEN not in "\n".join(hub.job_log(job_id))
        assert TOKEN not in stdout + stderr + state.read_text()

        # run again the same UTC day: the deferred models wait for the next day, without a request or a Job
        again = run_speat(*command, env=hub_env(hub, tmp_path, HF_TOKEN=TOKEN), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        day_two = load_state(state)["models"]
        assert sum(pr_openings(hub, model) for model in models) == 5
        assert len(hub.jobs) == 4 and sorted(m for m, e in day_two.items() if e["status"] == "deferred") == deferred


@pytest.mark.slow
def test_a_killed_coordinator_resumes_without_re_running_finished_shards(tmp_path):
    models = [f"lab/k{number}" for number in range(1, 5)]
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub", job_kill_grace=0.5) as hub:
        commits = {model: publish_tiny_model(hub, model, readme=f"# {model}\n") for model in models}
        state = tmp_path / "state.json"
        hub.create_repo(f"{BOT}/stimuli", repo_type="dataset")
        hub.commit(f"{BOT}/stimuli", {"README.md": b"# private stimuli\n"}, repo_type="dataset")
        command = campaign_command(tmp_path, models, state, "--backend", "jobs", "--image", IMAGE, "--shard-size",
                                   "2", "--stimuli-dataset", f"{BOT}/stimuli", "--timeout", "10m", "--flavor",
                                   "cpu-upgrade")
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        held = f"/api/models/lab/k4/revision/{commits['lab/k4']}"
        hub.hold(held)  # the second shard keeps running while its coordinator is killed

        def shard_status(shard_id: str) -> str | None:
            try:
                return load_state(state)["campaign"]["shards"][shard_id]["status"]
            except (KeyError, ValueError):
                return None

        with coordinator_process(command, env, tmp_path, capture=False):
            wait_for(lambda: shard_status("s0001") == "done" and hub.count("GET", held) > 0)
            # leaving the block kills the coordinator mid-campaign
        assert shard_status("s0002") == "running"
        [running] = shard_jobs(hub)["s0002"]
        assert hub.job_info(running)["status"]["stage"] == "RUNNING"  # the Job outlives its coordinator
        info = HfApi(endpoint=hub.url, token=TOKEN).inspect_job(job_id=running, namespace=BOT)
        assert info.flavor == "cpu-upgrade" and hub.jobs[running].spec["timeoutSeconds"] == 600
        [volume] = info.volumes
        assert (volume.source, volume.mount_path, volume.read_only) == (f"{BOT}/stimuli", "/stimuli", True)
        assert json.loads(info.command[-1])["settings"]["stimuli"] == "/stimuli"

        with coordinator_process(command, env, tmp_path) as resumed:
            time.sleep(1.0)
            hub.release(held)
            stdout, stderr = resumed.communicate(timeout=240)
        assert resumed.returncode == 0, stderr
        assert f"shard s0002: re-attached to jobs {running}" in stdout
        assert {shard: len(ids) for shard, ids in shard_jobs(hub).items()} == {"s0001": 1, "s0002": 1}
        assert [pr_openings(hub, model) for model in models] == [1, 1, 1, 1]
        assert {entry["status"] for entry in load_state(state)["models"].values()} == {"opened-pr"}


@pytest.mark.slow
def test_a_shard_started_just_before_the_coordinator_was_killed_is_found_by_its_labels(tmp_path):
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub") as hub:
        commit = publish_tiny_model(hub, "lab/f1", readme="# lab/f1\n")
        settings = EvaluationSettings(tests=(str(write_tone_test(tmp_path / "tones")),), num_permutations=50,
                                      progress=False)
        api = HfApi(endpoint=hub.url, token=TOKEN)
        backend = JobsBackend(api, JobRuntime(image=IMAGE), token=TOKEN, campaign="state")
        backend.check()
        task = ShardTask(models=(("lab/f1", commit),), settings=settings_to_dict(settings))
        [started] = backend.submit([("s0001", task)])  # submitted, but the coordinator died before recording it
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"version": 1, "models": {}, "campaign": {"shards": {"s0001": {
            "models": [["lab/f1", commit]], "budget": None, "status": "submitting"}}}}))
        lines: list[str] = []
        summary = run_campaign(["lab/f1"], settings, backend, state_path=state, token=TOKEN, endpoint=hub.url,
                               poll_interval=0.1, report=lines.append)
        assert f"shard s0001: re-attached to jobs {started}" in lines
        assert list(hub.jobs) == [started] and list(summary.done) == ["lab/f1"] and pr_openings(hub, "lab/f1") == 1
        shard = load_state(state)["campaign"]["shards"]["s0001"]
        assert (shard["status"], shard["jobs"]) == ("done", [started])


@pytest.mark.slow
def test_the_slurm_backend_runs_shards_through_submitit_locally(tmp_path):
    models = ["lab/s1", "lab/s2", "lab/s3"]
    with HubServer(tokens={TOKEN: BOT}) as hub:
        for model in models:
            publish_tiny_model(hub, model, readme=f"# {model}\n")
        state = tmp_path / "state.json"  # a state file of the local backend, from before campaigns had shards
        state.write_text(json.dumps({"version": 1, "models": {}, "policy": {"opened": {}, "declined": {}}}))
        command = campaign_command(tmp_path, models, state, "--backend", "slurm", "--slurm-cluster", "local",
                                   "--shard-size", "2", "--results-repo", f"{BOT}/results")
        done = run_speat(*command, env=hub_env(hub, tmp_path, HF_TOKEN=TOKEN), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "3 models done, 0 skipped, 0 failed" in done.stdout
        assert [pr_openings(hub, model) for model in models] == [1, 1, 1]
        final = load_state(state)
        assert len(final["campaign"]["shards"]) == 2 and hub.jobs == {}
        records = [path for path in hub.files(f"{BOT}/results", repo_type="dataset") if path.startswith("records/")]
        assert len(records) == 3
        slurm_files = [path for path in (tmp_path / "state-slurm").rglob("*") if path.is_file()]
        assert slurm_files and not any(TOKEN.encode() in path.read_bytes() for path in slurm_files)
        again = run_speat(*command, env=hub_env(hub, tmp_path, HF_TOKEN=TOKEN), cwd=tmp_path)
        assert again.returncode == 0 and "0 models done, 3 skipped" in again.stdout
        assert len(load_state(state)["campaign"]["shards"]) == 2  # nothing left to shard


@pytest.mark.slow
def test_bad_campaign_options_are_one_line_errors_before_any_job_starts(tmp_path):
    with HubServer(tokens={TOKEN: BOT}) as hub:
        publish_tiny_model(hub, "lab/alpha")
        state = tmp_path / "state.json"
        base = campaign_command(tmp_path, ["lab/alpha"], state, "--backend", "jobs")
        cases = [
            (["--image", IMAGE, "--shard-size", "0"], "--shard-size must be 1 or more, not 0"),
            (["--image", IMAGE, "--max-attempts", "0"], "--max-attempts must be 1 or more, not 0"),
            (["--image", IMAGE, "--flavor", "gpu-huge"], "--flavor 'gpu-huge' is not a Jobs flavor"),
            (["--image", IMAGE, "--timeout", "soon"], "--timeout 'soon' is not a duration"),
            ([], "a Job needs speat: give --image IMAGE"),
            (["--image", "two words"], "--image 'two words' is not a Docker image name"),
            (["--image", IMAGE, "--results-repo", "no-owner"], "--results-repo"),
            (["--image", IMAGE, "--stimuli-dataset", "bad"], "--stimuli-dataset"),
            (["--image", IMAGE, "--dry-run"], "--dry-run and --out go with --backend local"),
            (["--image", IMAGE, "--poll-interval", "0"], "--poll-interval must be positive, not 0.0"),
        ]
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        for options, message in cases:
            done = run_speat(*base, *options, env=env, cwd=tmp_path)
            assert done.returncode == 2 and message in done.stderr, (options, done.stderr)
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        no_token = run_speat(*base, "--image", IMAGE, env=hub_env(hub, tmp_path), cwd=tmp_path)
        assert no_token.returncode == 2 and "needs a Hub token" in no_token.stderr
        assert hub.jobs == {} and not state.exists()


def test_outcome_lines_and_budget_shares():
    lines = ["===== Job started =====", OUTCOME_PREFIX + json.dumps({"model": "a/b", "status": "opened-pr"}),
             "noise", OUTCOME_PREFIX + '{"model": "a/c", "sta']  # the last one was cut short by a kill
    assert parse_outcomes(lines) == [{"model": "a/b", "status": "opened-pr"}]
    assert budget_shares(5, 3) == [2, 2, 1] and sum(budget_shares(7, 4)) == 7 and budget_shares(0, 2) == [0, 0]


@pytest.mark.parametrize(("image", "install", "expected_image", "installs"), [
    ("me/speat-runner", None, "me/speat-runner", False),  # an image with speat
    (None, "https://hub.test/spaces/me/speat/resolve/abc/speat.whl", "python:3.12", True),
    ("python:3.11", "https://hub.test/spaces/me/speat/resolve/abc/speat.whl", "python:3.11", True),
])
def test_every_job_runs_speat_from_its_image_or_installs_the_linked_wheel(image, install, expected_image, installs):
    import argparse

    from speat_metric.hub.jobs import add_job_options, job_runtime, speat_command

    parser = argparse.ArgumentParser()
    add_job_options(parser)
    args = parser.parse_args(["--image", image] if image else [])
    runtime = job_runtime(args, install)
    command = " ".join(speat_command(runtime, ["--version"]))
    assert runtime.image == expected_image and (install in command if installs else command == "speat --version")
    with pytest.raises(ValueError, match="a Job needs speat"):
        job_runtime(parser.parse_args([]), None)
