"""`speat hub schedule` (hub_scripts/schedule.py): annotate-many as a scheduled Hugging Face Job whose state lives
in a writable bucket, created, listed, triggered and deleted through the real huggingface_hub client against the
test Hub (which runs each Job as a local subprocess)."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest
from http_servers import HubServer
from hub_testing import hub_env, publish_tiny_model, run_speat, write_tone_test
from huggingface_hub import HfApi

from speat_metric.cli import main
from speat_metric.hub import schedule
from speat_metric.hub.schedule import STATE_FILE, annotate_many_arguments, check_cron

TOKEN = "hf_scheduleBotTOKEN0123456789"
BOT = "speat-bot"
BUCKET = f"{BOT}/campaign-state"


def test_module_example():
    assert doctest.testmod(schedule).failed == 0


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 0-6 1,15 * mon-fri", "@daily", "@hourly"])
def test_cron_lines_and_macros_are_accepted(cron):
    assert check_cron(cron) == cron


@pytest.mark.parametrize("cron", ["", "0 3 * *", "every night", "@nightly", "0 3 * * * *"])
def test_other_schedules_are_refused_naming_the_value(cron):
    with pytest.raises(ValueError, match=re.escape(f"--cron {cron!r} is not a schedule")):
        check_cron(cron)


def test_the_annotate_many_options_are_checked_by_its_parser():
    assert annotate_many_arguments(["--tier", "base"]) == ["hub", "annotate-many", "--tier", "base", "--state",
                                                          STATE_FILE]
    with pytest.raises(ValueError, match="--state is not an option here"):
        annotate_many_arguments(["--tier", "base", "--state", "x.json"])
    with pytest.raises(ValueError, match="annotate-many refuses the options after --: '--tier everything'"):
        annotate_many_arguments(["--tier", "everything"])


def fails(capsys, *arguments: str) -> str:
    assert main(["hub", "schedule", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


@pytest.mark.parametrize("arguments,message", [
    ((), "give --cron CRON to create a scheduled Job"),
    (("--cron", "0 3 * * *"), "--state-bucket OWNER/NAME is needed"),
    (("--cron", "nightly", "--state-bucket", BUCKET), "--cron 'nightly' is not a schedule"),
    (("--cron", "@daily", "--state-bucket", BUCKET), "a Job needs speat: give --image IMAGE"),
    (("--cron", "@daily", "--state-bucket", "no-slash", "--image", "x"), "--state-bucket"),
    (("--list", "--state-bucket", BUCKET), "--list and --delete take no annotate-many options"),
    (("--cron", "@daily", "--state-bucket", BUCKET, "--image", "x", "--flavor", "h100-mega"),
     "--flavor 'h100-mega' is not a Jobs flavor"),
    (("--cron", "@daily", "--state-bucket", BUCKET, "--image", "x", "--timeout", "soon"),
     "--timeout 'soon' is not a duration"),
    (("--cron", "@daily", "--state-bucket", BUCKET, "--image", "x", "--", "--tier", "all"),
     "annotate-many refuses the options after --: '--tier all' (argument --tier: invalid choice: 'all'"),
])
def test_bad_schedules_are_one_line_errors(capsys, monkeypatch, arguments, message):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert message in fails(capsys, *arguments)


@pytest.mark.slow
def test_a_scheduled_campaign_annotates_keeps_its_state_in_the_bucket_and_is_deleted(tmp_path):
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub-data") as hub:
        commit = publish_tiny_model(hub, "alice/tiny-hubert")
        (tmp_path / "models.txt").write_text("alice/tiny-hubert\n")
        env = hub_env(hub, tmp_path, HF_TOKEN=TOKEN)
        created = run_speat("hub", "schedule", "--cron", "0 3 * * *", "--state-bucket", BUCKET, "--image",
                            "speat-test", "--", "--models", str(tmp_path / "models.txt"), "--tests",
                            str(write_tone_test(tmp_path / "tones")), "--permutations", "200", "--no-progress",
                            "--max-prs-per-day", "5", env=env, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        api = HfApi(endpoint=hub.url, token=TOKEN)
        [scheduled] = api.list_scheduled_jobs(namespace=BOT)
        assert created.stdout.startswith(f"created scheduled Job {scheduled.id} '0 3 * * *' (active; last Job none")
        spec = scheduled.job_spec
        assert spec.command[:3] == ["speat", "hub", "annotate-many"] and spec.command[-2:] == ["--state", STATE_FILE]
        assert spec.secrets == ["HF_TOKEN"] and TOKEN not in json.dumps([spec.command, spec.environment])
        assert [(volume.type, volume.source, volume.mount_path, volume.read_only) for volume in spec.volumes] == [
            ("bucket", BUCKET, "/state", None)]
        listed = run_speat("hub", "schedule", "--list", env=env, cwd=tmp_path)
        assert listed.returncode == 0 and listed.stdout.startswith(f"{scheduled.id} '0 3 * * *' (active")

        logs = []
        for _ in range(2):  # two nights: the second resumes from the state the first left in the bucket
            job_id = hub.trigger_scheduled_job(scheduled.id)
            info = api.wait_for_job(job_id, poll_interval=0.2, timeout=240)
            assert info.status.stage == "COMPLETED", hub.job_log(job_id)
            assert info.initiator.type == "scheduled-job"
            logs.append("\n".join(hub.job_log(job_id)))
            assert TOKEN not in logs[-1]
        state = (hub.bucket_dir(BUCKET) / Path(STATE_FILE).name).read_text()
        assert "alice/tiny-hubert" in state and commit in state and "opened-pr" in state
        assert "1 model done, 0 skipped" in logs[0]
        assert "0 models done, 1 skipped" in logs[1] and "already annotated at revision" in logs[1]
        [pull_request] = hub.discussions("alice/tiny-hubert")
        card = hub.files("alice/tiny-hubert", revision=f"refs/pr/{pull_request.num}")["README.md"].decode()
        assert "Social bias (SpEAT)" in card and commit in card

        deleted = run_speat("hub", "schedule", "--delete", scheduled.id, env=env, cwd=tmp_path)
        assert deleted.returncode == 0 and deleted.stdout == f"deleted scheduled Job {scheduled.id}\n"
        assert api.list_scheduled_jobs(namespace=BOT) == []
