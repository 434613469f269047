"""A webhook without a server: `speat hub webhook --register --job` makes a Hub webhook that starts a Job per event,
and the Job runs `speat hub on-event` (hub_scripts/on_event.py). The test Hub runs each Job as a local subprocess
with its env and secrets; the real huggingface_hub client registers, inspects and reads them."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from http_servers import HubServer
from hub_testing import hub_env, publish_tiny_model, run_speat, write_tone_test
from huggingface_hub import HfApi

from speat_metric.cli import build_parser, evaluation_settings, main
from speat_metric.hub import on_event
from speat_metric.hub.on_event import on_event_arguments
from speat_metric.hub.webhook_events import content_update_payload

TOKEN = "hf_onEventBotTOKEN0123456789"
SECRET = "on-event-SECRET-0123456789abc"
BOT = "speat-bot"


@pytest.fixture
def hub(tmp_path: Path):
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub-data", job_kill_grace=0.5) as server:
        yield server


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=TOKEN)


def register(hub: HubServer, tmp_path: Path, *options: str) -> str:
    """`speat hub webhook --register --job` in a subprocess (as an operator runs it); returns its output."""
    done = run_speat("hub", "webhook", "--register", "--job", "--image", "speat-test", "--watch", "user:alice",
                     "--watch", "user:carol", "--tests", str(write_tone_test(tmp_path / "tones")), "--permutations",
                     "200", "--no-progress", *options, env=hub_env(hub, tmp_path, HF_TOKEN=TOKEN,
                                                                    SPEAT_WEBHOOK_SECRET=SECRET), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for secret in (TOKEN, SECRET):
        assert secret not in done.stdout + done.stderr
    return done.stdout


def run_events(hub: HubServer, api: HfApi, payloads: dict[str, dict]) -> dict[str, dict]:
    """Emit the events (their Jobs run side by side); each starts exactly one Job; return the JSON line each Job
    printed last, by name."""
    started = {}
    for name, payload in payloads.items():
        before = set(hub.jobs)
        fired = hub.emit_event(payload)
        assert len(fired) == 1 and set(hub.jobs) - before == set(fired.values()), name
        [started[name]] = fired.values()
    outcomes = {}
    for name, job_id in started.items():
        info = api.wait_for_job(job_id, poll_interval=0.2, timeout=240)
        assert info.status.stage == "COMPLETED" and info.initiator.type == "webhook", hub.job_log(job_id)
        outcomes[name] = json.loads(hub.job_log(job_id)[-1])
    return outcomes


def run_event(hub: HubServer, api: HfApi, payload: dict) -> dict:
    return run_events(hub, api, {"event": payload})["event"]


def assert_no_secret_anywhere(hub: HubServer, api: HfApi) -> None:
    """No Job shows the token or the webhook secret in its env, command or log; they are secrets, by name only."""
    for job_id in hub.jobs:
        info = api.inspect_job(job_id=job_id)
        shown = json.dumps([info.command, info.environment, info.secrets]) + "\n".join(hub.job_log(job_id))
        assert TOKEN not in shown and SECRET not in shown, job_id
        assert "HF_TOKEN" in info.secrets
    assert TOKEN not in repr(api.list_webhooks())


def test_module_example():
    assert doctest.testmod(on_event).failed == 0


@pytest.mark.slow
def test_a_signed_event_starts_one_job_that_opens_one_pull_request_and_a_replay_opens_none(hub, api, tmp_path):
    commit = publish_tiny_model(hub, "alice/tiny-hubert")
    said = register(hub, tmp_path)
    [webhook] = api.list_webhooks()
    assert said.startswith(f"created webhook {webhook.id} (active): start a Job (speat hub on-event ")
    assert webhook.url is None and webhook.job.secrets == ["HF_TOKEN"] and webhook.domains == ["repo"]
    assert [(item.type, item.name) for item in webhook.watched] == [("user", "alice"), ("user", "carol")]
    assert hub.webhooks[webhook.id]["secret"] == SECRET
    [template] = hub.jobs
    assert api.wait_for_job(template, poll_interval=0.2, timeout=60).status.stage == "COMPLETED"
    assert json.loads(hub.job_log(template)[-1])["status"] == "template"

    first = run_event(hub, api, content_update_payload("alice/tiny-hubert", commit))
    [pull_request] = hub.discussions("alice/tiny-hubert")
    assert first == {"status": "opened-pr", "repo_id": "alice/tiny-hubert", "revision": commit,
                     "pr_url": f"{hub.url}/alice/tiny-hubert/discussions/{pull_request.num}",
                     "commit": first["commit"], "reason": None}
    card = hub.files("alice/tiny-hubert", revision=f"refs/pr/{pull_request.num}")["README.md"].decode()
    assert "Social bias (SpEAT)" in card and commit in card and pull_request.author == BOT

    replay = run_event(hub, api, content_update_payload("alice/tiny-hubert", commit))
    assert replay["status"] == "unchanged" and len(hub.discussions("alice/tiny-hubert")) == 1
    assert_no_secret_anywhere(hub, api)

    again = register(hub, tmp_path)  # registering again points the same webhook at a new template Job
    assert again.startswith(f"updated webhook {webhook.id} ") and len(api.list_webhooks()) == 1


@pytest.mark.slow
def test_events_the_filters_or_the_opt_out_list_refuse_open_nothing(hub, api, tmp_path):
    hub.create_repo("alice/tiny-bert")
    text_model = hub.commit("alice/tiny-bert", {"config.json": b'{"model_type": "bert"}'})
    first = publish_tiny_model(hub, "alice/tiny-hubert")
    card_only = hub.commit("alice/tiny-hubert", {"README.md": b"# merged card\n"})
    opted_out = publish_tiny_model(hub, "carol/tiny-hubert")
    (tmp_path / "opt-out.txt").write_text("carol  # asked by mail\n")
    register(hub, tmp_path, "--opt-out", str(tmp_path / "opt-out.txt"))
    events = {
        "text model": content_update_payload("alice/tiny-bert", text_model),
        "other branch": content_update_payload("alice/tiny-hubert", first, ref="refs/heads/dev"),
        "our pull request's branch": content_update_payload("alice/tiny-hubert", first, ref="refs/pr/1"),
        "card-only push (our merged card)": content_update_payload("alice/tiny-hubert", card_only,
                                                                  base_revision=first),
        "opted-out owner": content_update_payload("carol/tiny-hubert", opted_out),
    }
    outcomes = run_events(hub, api, events)
    assert {name: outcome["status"] for name, outcome in outcomes.items()} == {
        "text model": "ignored", "other branch": "ignored", "our pull request's branch": "ignored",
        "card-only push (our merged card)": "ignored", "opted-out owner": "opted-out"}
    assert "'bert'" in outcomes["text model"]["reason"]
    assert outcomes["other branch"]["reason"] == "the push updates refs/heads/dev, not the main branch"
    assert "only the model card changed (README.md)" in outcomes["card-only push (our merged card)"]["reason"]
    assert "owner 'carol' is on the opt-out list" in outcomes["opted-out owner"]["reason"]
    assert all(hub.discussions(repo) == [] for repo in ("alice/tiny-bert", "alice/tiny-hubert", "carol/tiny-hubert"))
    assert not any(request.path.startswith("/api/models/carol/") for request in hub.requests)  # not even screened
    assert_no_secret_anywhere(hub, api)


def fails(capsys, *arguments: str) -> str:
    assert main(["hub", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    return error


def test_a_missing_or_malformed_payload_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.delenv("WEBHOOK_PAYLOAD", raising=False)
    assert "$WEBHOOK_PAYLOAD is not set: `speat hub on-event` runs in the Job a Hub webhook starts" in fails(
        capsys, "on-event")
    monkeypatch.setenv("WEBHOOK_PAYLOAD", "{not json")
    assert "error: the body is not JSON" in fails(capsys, "on-event")
    monkeypatch.setenv("WEBHOOK_PAYLOAD", '{"event": {"action": "update", "scope": "repo.content"}}')
    assert "not a Hub webhook payload: repo: Field required" in fails(capsys, "on-event")
    monkeypatch.setenv("WEBHOOK_PAYLOAD", "  ")
    assert main(["hub", "on-event"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "template"


@pytest.mark.parametrize("arguments,message", [
    (("--job",), "--job goes with --register and without --target-url"),
    (("--register", "--job", "--target-url", "https://x.hf.space"), "--job goes with --register and without"),
    (("--register", "--job"), "a Job needs speat: give --image IMAGE"),
    (("--register", "--job", "--image", "x", "--stimuli", "demo"), "--stimuli demo is the embedded SYNTHETIC"),
    (("--register", "--job", "--image", "x", "--watch", "team:a"), "--watch 'team:a': expected user:NAME"),
    (("--register", "--job", "--image", "x", "--max-prs-per-day", "2"), "--max-prs-per-day and --ledger go together"),
    (("--max-prs-per-day", "2"), "--max-prs-per-day and --ledger go together"),  # the service, before it serves
    (("--register", "--job", "--image", "x", "--max-prs-per-day", "-1", "--ledger", "a/b"), "must be 0 or more"),
    (("--register", "--job", "--image", "x", "--max-prs-per-day", "1", "--ledger", "no-owner"), "--ledger"),
])
def test_bad_job_webhook_options_are_one_line_errors(capsys, monkeypatch, arguments, message):
    monkeypatch.setenv("SPEAT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert message in fails(capsys, "webhook", *arguments)


def test_the_job_runs_on_event_with_the_registering_commands_settings():
    parser = build_parser("hub")
    registering = parser.parse_args(["hub", "webhook", "--register", "--job", "--image", "x", "--tests", "age,career",
                                     "--permutations", "1234", "--seed", "7", "--pooling", "layer", "--layer", "3",
                                     "--trim-silence", "--allow-synthetic", "--opt-out", "acme/opt-out"])
    arguments = on_event_arguments(registering)
    assert arguments[:2] == ["hub", "on-event"] and "--image" not in arguments and "--register" not in arguments
    in_the_job = parser.parse_args(arguments)
    assert evaluation_settings(in_the_job) == evaluation_settings(registering)
    assert (in_the_job.allow_synthetic, in_the_job.opt_out, in_the_job.stimuli) == (True, "acme/opt-out", "speat")


def test_a_template_job_that_cannot_run_speat_makes_no_webhook(tmp_path):
    with HubServer(tokens={TOKEN: BOT}, data_dir=tmp_path / "hub-data", job_kill_grace=0.5,
                   job_images={"broken:latest": ["sh", "-c", "echo 'speat: command not found' >&2; exit 127", "--"]}
                   ) as hub:
        done = run_speat("hub", "webhook", "--register", "--job", "--image", "broken:latest", "--watch", "user:alice",
                         "--no-progress", env=hub_env(hub, tmp_path, HF_TOKEN=TOKEN, SPEAT_WEBHOOK_SECRET=SECRET),
                         cwd=tmp_path)
        assert done.returncode == 2
        [job_id] = hub.jobs
        assert done.stderr.strip().splitlines() == [
            f"speat hub webhook: error: the template Job {job_id} ended ERROR (Job failed with exit code: 127); its "
            "last line: 'speat: command not found': no webhook was made; check --image, --source-space and the "
            "options"]
        assert HfApi(endpoint=hub.url, token=TOKEN).list_webhooks() == []


def test_claims_on_a_shared_ledger_never_pass_the_cap_however_many_race(hub):
    """Eight processes' claims at once (threads with their own clients) on a cap of 3: exactly 3 are counted, each
    a commit on the head it read; the losers of a race read the new count and try again."""
    import threading

    from speat_metric.hub.campaign_policy import LEDGER_FILE, SharedLedger

    hub.create_repo(f"{BOT}/ledger", repo_type="dataset")
    hub.commit(f"{BOT}/ledger", {"README.md": b"# speat's pull-request ledger\n"}, repo_type="dataset")
    ledger, answers = SharedLedger(f"{BOT}/ledger", endpoint=hub.url), {}
    start = threading.Barrier(8)

    def claim(number: int) -> None:
        start.wait()
        answers[number] = ledger.claim(f"alice/m{number}", "2026-12-07", 3)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", TOKEN)
        threads = [threading.Thread(target=claim, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        counted = sorted(number for number, yes in answers.items() if yes)
        assert len(answers) == 8 and len(counted) == 3
        stored = json.loads(hub.files(f"{BOT}/ledger", repo_type="dataset")[LEDGER_FILE])
        assert sorted(stored["opened"]["2026-12-07"]) == sorted(f"alice/m{number}" for number in counted)
        assert ledger.claim("alice/late", "2026-12-08", 3)  # a new day, a new budget


@pytest.mark.slow
def test_the_daily_cap_holds_across_event_jobs_running_at_once(hub, api, tmp_path):
    models = [f"alice/tiny-hubert-{number}" for number in range(3)]
    commits = {model: publish_tiny_model(hub, model) for model in models}
    hub.create_repo(f"{BOT}/ledger", repo_type="dataset")
    hub.commit(f"{BOT}/ledger", {"README.md": b"# ledger\n"}, repo_type="dataset")
    register(hub, tmp_path, "--max-prs-per-day", "2", "--ledger", f"{BOT}/ledger")
    outcomes = run_events(hub, api, {model: content_update_payload(model, commits[model]) for model in models})
    statuses = sorted(outcome["status"] for outcome in outcomes.values())
    assert statuses == ["deferred", "opened-pr", "opened-pr"]
    [deferred] = [model for model, outcome in outcomes.items() if outcome["status"] == "deferred"]
    assert "today's cap of 2 new pull requests is reached" in outcomes[deferred]["reason"]
    assert [len(hub.discussions(model)) for model in models].count(1) == 2 and hub.discussions(deferred) == []
    assert_no_secret_anywhere(hub, api)
