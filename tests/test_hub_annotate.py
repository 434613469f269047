"""speat_metric.hub.annotate and .hub: card PRs on the Hub test server, never duplicated, never reopened, no leaks."""

from __future__ import annotations

import inspect
import threading
import time

import pytest
import yaml
from http_servers import HubServer
from hub_testing import (
    FOREIGN_CARD,
    added_lines,
    as_hub_records,
    files_containing,
    hub_env,
    publish_tiny_model,
    run_speat,
    server_texts,
    tiny_model_files,
)
from huggingface_hub import HfApi
from tiny_models import save_tiny_model

from speat_metric.evaluation import EvaluationSettings, evaluate_models
from speat_metric.formatting import format_d
from speat_metric.hub import SPEAT_COMMIT_MARKER, is_speat_change
from speat_metric.hub.annotate import STATUSES, AnnotationOutcome, annotate_model, publish_records
from speat_metric.hub.campaign_policy import CampaignPolicy, OptOutList, parse_opt_out
from speat_metric.hub.card import BEGIN_MARKER, EVAL_RESULTS_PATH, CardError
from speat_metric.hub.hub import HubClient, HubError
from speat_metric.hub.source import SpeatSource
from speat_metric.results import load_records

BOT, OWNER = "hf_speatBotSECRET0123456789", "hf_ownerSECRET9876543210"
REPO = "owner/tiny"


@pytest.fixture
def server():
    with HubServer(tokens={BOT: "speat-bot-user", OWNER: "owner"}) as hub:
        yield hub


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    """Real records of a tiny local model (gender, demo stimuli), to publish as if evaluated from the Hub."""
    folder = tmp_path_factory.mktemp("annotate")
    model = save_tiny_model("wav2vec2", folder / "tiny")
    settings = EvaluationSettings(tests=("gender",), num_permutations=200, progress=False, cache_dir=folder / "cache")
    return evaluate_models([str(model)], settings)


def publish(server, records, **options):
    return publish_records(REPO, records, allow_synthetic=True, token=options.pop("token", BOT), endpoint=server.url,
                           **options)


def renumbered(records, shift):
    return [record.replace(speat=record.speat.replace(effect_size=record.speat.effect_size + shift))
            for record in records]


def test_annotate_twice_opens_one_pr_updates_it_and_leaks_no_token(tmp_path, server):
    """The CLI end to end: evaluate at main's commit, PR; new numbers update that PR; same numbers change nothing."""
    commit = publish_tiny_model(server, REPO)
    env = hub_env(server, tmp_path, HF_TOKEN=BOT)
    command = ("hub", "annotate", REPO, "--evaluate", "--stimuli", "demo", "--allow-synthetic", "--tests", "gender",
               "--no-progress", "--out", str(tmp_path / "records"))
    first = run_speat(*command, "--permutations", "200", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"{REPO}: opened-pr {server.url}/{REPO}/discussions/1" in first.stdout
    second = run_speat(*command, "--permutations", "300", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"{REPO}: updated-pr {server.url}/{REPO}/discussions/1" in second.stdout
    third = run_speat(*command, "--permutations", "300", env=env, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert f"{REPO}: unchanged {server.url}/{REPO}/discussions/1" in third.stdout

    [pull_request] = server.discussions(REPO)
    assert pull_request.is_pull_request and pull_request.status == "open" and pull_request.author == "speat-bot-user"
    assert is_speat_change(pull_request.title) and is_speat_change(pull_request.events[0]["data"]["latest"]["raw"])
    assert [event["type"] for event in pull_request.events] == ["comment", "commit", "commit"]
    assert server.files(REPO)["README.md"].decode() == FOREIGN_CARD  # main untouched
    proposed = server.files(REPO, revision="refs/pr/1")
    readme = proposed["README.md"].decode()
    added_lines(FOREIGN_CARD, readme)  # every line of the owner's card is still there, unchanged, in order
    assert readme.count(BEGIN_MARKER) == 1 and commit in readme and "300 random partitions" in readme
    assert EVAL_RESULTS_PATH not in proposed  # attached to no benchmark (test_hub_benchmark.py attaches one)
    assert all(SPEAT_COMMIT_MARKER in message for message in server.commit_messages(REPO)[2:])
    assert {record.model.revision for record in load_records(tmp_path / "records")} == {commit}

    outputs = [run.stdout + run.stderr for run in (first, second, third)]
    assert not [text for text in outputs + server_texts(server) if BOT in text]
    assert files_containing(tmp_path, BOT) == []


def test_dry_run_prints_the_diff_and_pushes_nothing(tmp_path, server, local_records):
    commit = publish_tiny_model(server, REPO)
    for record in as_hub_records(local_records, REPO, commit):
        record.save(tmp_path / "results")
    requests_before = len(server.commit_messages(REPO))
    completed = run_speat("hub", "annotate", REPO, "--results", str(tmp_path / "results"), "--dry-run",
                          "--allow-synthetic", env=hub_env(server, tmp_path, HF_TOKEN=BOT), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert out.startswith("--- a/README.md\n+++ b/README.md\n") and f"+{BEGIN_MARKER}" in out
    assert EVAL_RESULTS_PATH not in out and f"{REPO}: dry-run" in out
    assert len(server.commit_messages(REPO)) == requests_before and server.discussions(REPO) == []
    assert server.count("POST", f"/api/models/{REPO}/commit/main") == 0


def test_an_eval_results_file_that_names_no_benchmark_is_removed(server, local_records):
    """Earlier speat versions wrote .eval_results naming datasets that do not exist: without a benchmark it goes."""
    commit = publish_tiny_model(server, REPO)
    server.commit(REPO, {EVAL_RESULTS_PATH: b"- dataset: {id: speat/speat-stimuli, task_id: gender}\n  value: 0.1\n"})
    outcome = publish(server, as_hub_records(local_records, REPO, commit))
    assert outcome.status == "opened-pr"
    assert EVAL_RESULTS_PATH in server.files(REPO) and EVAL_RESULTS_PATH not in server.files(REPO,
                                                                                               revision="refs/pr/1")


def test_an_owner_closed_pr_is_never_reopened_and_force_opens_a_new_one(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    assert publish(server, records).status == "opened-pr"
    HfApi(endpoint=server.url, token=OWNER).change_discussion_status(REPO, 1, "closed", comment="no, thanks")
    skipped = publish(server, renumbered(records, 0.3))
    assert (skipped.status, skipped.pr_number, skipped.commit) == ("skipped-owner-closed", 1, None)
    assert [(d.num, d.status) for d in server.discussions(REPO)] == [(1, "closed")]
    forced = publish(server, renumbered(records, 0.3), force=True)
    assert (forced.status, forced.pr_number) == ("opened-pr", 2)
    again = publish(server, renumbered(records, 0.3))  # our open PR #2 is found despite the declined #1
    assert (again.status, again.pr_number, again.commit) == ("unchanged", 2, None)
    assert [(d.num, d.status) for d in server.discussions(REPO)] == [(1, "closed"), (2, "open")]
    HfApi(endpoint=server.url, token=OWNER).merge_pull_request(REPO, 2)  # accepted since: the refusal is over
    assert publish(server, renumbered(records, 0.6)).pr_number == 3


def test_a_pr_closed_by_anyone_declines_as_its_body_says_but_a_duplicate_close_does_not(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    publish(server, records)
    assert "Closing it without merging declines" in server.discussions(REPO)[0].events[0]["data"]["latest"]["raw"]
    HfApi(endpoint=server.url, token=BOT).change_discussion_status(REPO, 1, "closed")  # the bot's own account
    assert publish(server, renumbered(records, 0.3)).status == "skipped-owner-closed"
    second = publish(server, renumbered(records, 0.3), force=True)
    assert second.status == "opened-pr" and second.pr_number == 2
    HubClient(token=BOT, endpoint=server.url).close_duplicate(REPO, 2, kept=1)  # speat's own housekeeping
    assert publish(server, renumbered(records, 0.4)).status == "skipped-owner-closed"  # #1 still declines
    assert HubClient(token=BOT, endpoint=server.url).speat_pull_requests(REPO).declined.number == 1


def test_two_annotations_at_once_leave_one_open_pull_request(tmp_path, server, local_records):
    """Both look, find nothing, evaluate, and create a pull request at the same moment (held at the Hub until both
    are there): the newer is closed as a duplicate and its results go to the older; a later run updates that one."""
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    gate = server.hold(f"/api/models/{REPO}/preupload/main")  # every PR creation waits here
    outcomes = []
    runs = [threading.Thread(target=lambda shift=shift: outcomes.append(publish(server, renumbered(records, shift))))
            for shift in (0.1, 0.2)]
    for run in runs:
        run.start()
    deadline = time.monotonic() + 60
    while server.count("POST", f"/api/models/{REPO}/preupload/main") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.release(f"/api/models/{REPO}/preupload/main")
    for run in runs:
        run.join(60)
    assert gate is not None and len(outcomes) == 2
    pull_requests = server.discussions(REPO)
    assert [(pr.num, pr.status) for pr in pull_requests] == [(1, "open"), (2, "closed")]
    assert {outcome.pr_number for outcome in outcomes} == {1}
    assert any("speat-bot:duplicate" in event["data"].get("latest", {}).get("raw", "")
               for event in pull_requests[1].events)
    assert publish(server, renumbered(records, 0.5)).status == "updated-pr"


def test_after_the_owner_merges_a_rerun_is_unchanged_until_the_model_changes(tmp_path, server):
    """No merge churn: main's head is then the merge commit, whose only change is the card; annotating again (as a
    scheduled batch does) evaluates nothing and opens nothing. New weights do get a new pull request."""
    commit = publish_tiny_model(server, REPO)
    env = hub_env(server, tmp_path, HF_TOKEN=BOT)
    command = ("hub", "annotate", REPO, "--stimuli", "demo", "--allow-synthetic", "--tests", "gender",
               "--permutations", "200", "--no-progress")
    assert run_speat(*command, env=env, cwd=tmp_path).returncode == 0
    HfApi(endpoint=server.url, token=OWNER).merge_pull_request(REPO, 1)
    merged = server.repos[("model", REPO)].branches["main"]
    assert merged != commit
    again = run_speat(*command, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{REPO}: unchanged" in again.stdout and len(server.discussions(REPO)) == 1
    server.commit(REPO, {"model.safetensors": tiny_model_files(seed=3)["model.safetensors"]}, message="retrained")
    retrained = run_speat(*command, env=env, cwd=tmp_path)
    assert f"{REPO}: opened-pr" in retrained.stdout and len(server.discussions(REPO)) == 2


def test_merged_results_make_no_new_pr_and_new_numbers_do(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    publish(server, records)
    HfApi(endpoint=server.url, token=OWNER).merge_pull_request(REPO, 1)
    assert BEGIN_MARKER in server.files(REPO)["README.md"].decode()
    assert publish(server, records).status == "unchanged"
    assert publish(server, renumbered(records, 0.2)).pr_number == 2


def test_commit_mode_writes_main_once_and_a_stale_parent_is_refused(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    committed = publish(server, records, create_pr=False, token=OWNER)
    assert committed.status == "committed" and committed.commit == server.repos[("model", REPO)].branches["main"]
    assert is_speat_change(server.commit_messages(REPO)[-1])
    assert publish(server, records, create_pr=False, token=OWNER).status == "unchanged"
    # someone commits to main between our read of the card and our commit: ours is refused, theirs kept
    path = f"/api/models/{REPO}/preupload/main"
    seen = server.count("POST", path)
    server.hold(path)
    errors = []
    pushing = threading.Thread(target=lambda: errors.append(_catch(lambda: publish(
        server, renumbered(records, 0.4), create_pr=False, token=OWNER))))
    pushing.start()
    while server.count("POST", path) == seen:
        threading.Event().wait(0.01)
    theirs = server.commit(REPO, {"NOTES.md": b"theirs"}, message="owner edit")
    server.release(path)
    pushing.join(60)
    assert isinstance(errors[0], HubError) and "changed while we were writing" in str(errors[0])
    assert server.repos[("model", REPO)].branches["main"] == theirs


def _catch(function):
    try:
        return function()
    except Exception as error:  # the test inspects it
        return error


def test_our_pr_is_found_beyond_the_first_page_of_discussions(server, local_records):
    server.DISCUSSIONS_PER_PAGE = 2
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    publish(server, records)
    owner = HfApi(endpoint=server.url, token=OWNER)
    for number in range(3):
        owner.create_discussion(REPO, title=f"question {number}", description="?")
    updated = publish(server, renumbered(records, 0.1))
    assert (updated.status, updated.pr_number) == ("updated-pr", 1)
    assert sum(d.is_pull_request for d in server.discussions(REPO)) == 1


def test_a_card_that_cannot_be_merged_stops_before_any_push(server, local_records):
    publish_tiny_model(server, REPO, readme="---\nlicense: [mit\n---\nBroken header.\n")
    records = as_hub_records(local_records, REPO, server.repos[("model", REPO)].branches["main"])
    with pytest.raises(CardError, match=r"owner/tiny \(main\): README.md has invalid YAML metadata"):
        publish(server, records)
    assert server.discussions(REPO) == [] and server.count("POST", f"/api/models/{REPO}/commit/main") == 0


def test_cli_refuses_a_broken_card_before_evaluating(tmp_path, server):
    publish_tiny_model(server, REPO, readme=f"# Model\n\n{BEGIN_MARKER}\nhalf a section\n")
    completed = run_speat("hub", "annotate", REPO, "--stimuli", "demo", "--allow-synthetic", "--no-progress",
                          env=hub_env(server, tmp_path, HF_TOKEN=BOT), cwd=tmp_path)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "speat hub annotate: error: owner/tiny (main): README.md has a broken speat section" in completed.stderr
    assert not (tmp_path / "speat-cache" / "embeddings").exists()  # no model was evaluated
    assert server.discussions(REPO) == []


def test_synthetic_stimuli_are_refused_before_any_work():
    with pytest.raises(CardError, match="--stimuli demo is the embedded SYNTHETIC demo set"):
        annotate_model(REPO, revision="main", settings=EvaluationSettings())


BASE = "owner/base"
TESTS = ("--stimuli", "demo", "--allow-synthetic", "--tests", "gender", "--permutations", "200", "--no-progress")


def fine_tune_card(base: str) -> str:
    """The owner's card of a fine-tune, naming its base model in its metadata."""
    return FOREIGN_CARD.replace("license: apache-2.0\n", f"license: apache-2.0\nbase_model: {base}\n", 1)


def local_record(tmp_path, name, seed, **settings):
    """The gender record of the tiny model of `seed`, evaluated here from a local copy of the Hub repository's files
    (the same weights and stimuli: its cosines are the Hub evaluation's)."""
    model = save_tiny_model("wav2vec2", tmp_path / name, seed=seed)
    [record] = evaluate_models([str(model)], EvaluationSettings(tests=("gender",), num_permutations=200,
                                                                progress=False, cache_dir=tmp_path / "cache",
                                                                **settings))
    return record


@pytest.mark.slow  # three CLI runs that each evaluate two tiny Hub models (about 10 s each)
def test_a_fine_tune_card_states_its_delta_d_against_its_base_with_a_paired_interval(tmp_path, server):
    from speat_metric.comparison import compare_records

    base_commit = publish_tiny_model(server, BASE, readme=None, seed=1)
    publish_tiny_model(server, REPO, readme=fine_tune_card(BASE))
    env = hub_env(server, tmp_path, HF_TOKEN=BOT)
    command = ("hub", "annotate", REPO, *TESTS, "--out", str(tmp_path / "records"))
    first = run_speat(*command, env=env, cwd=tmp_path)
    assert first.returncode == 0 and f"{REPO}: opened-pr" in first.stdout, first.stderr
    readme = server.files(REPO, revision="refs/pr/1")["README.md"].decode()
    [tuned] = load_records(tmp_path / "records")  # only the fine-tune's records are the annotation's
    expected = compare_records(tuned, local_record(tmp_path, "base", 1), seed=tuned.speat.seed)
    [line] = [line for line in readme.splitlines() if line.startswith("- On gender, this model has")]
    assert line.startswith(f"- On gender, this model has d = {tuned.speat.effect_size:+.2f} and its base {BASE} "
                           f"(commit {base_commit[:7]}) d = {expected.effect_sizes[1]:+.2f}: Δd = "
                           f"{expected.difference:+.2f} (95% CI [{expected.ci_low:+.2f}, {expected.ci_high:+.2f}])")
    assert f"commit `{base_commit}`" in readme
    metadata = yaml.safe_load(readme.split("---\n")[1])
    ours = [metric["value"] for result in metadata["model-index"][0]["results"] for metric in result["metrics"]
            if metric["type"] == "speat_d"]
    assert ours == [round(tuned.speat.effect_size, 4)]  # the base's d is in no evaluation result

    again = run_speat(*command, env=env, cwd=tmp_path)
    assert f"{REPO}: unchanged" in again.stdout, again.stderr
    server.commit(BASE, {"model.safetensors": tiny_model_files(seed=2)["model.safetensors"]}, message="new base")
    rebased = run_speat(*command, env=env, cwd=tmp_path)  # a new base commit: compared again, same pull request
    assert f"{REPO}: updated-pr" in rebased.stdout, rebased.stderr
    new_base = server.repos[("model", BASE)].branches["main"]
    assert f"commit `{new_base}`" in server.files(REPO, revision="refs/pr/1")["README.md"].decode()


@pytest.mark.slow  # two CLI runs evaluating a tiny Hub model per layer (about 10 s each)
def test_a_per_layer_run_commits_its_figure_with_the_card_and_a_missing_base_is_one_line(tmp_path, server):
    from speat_metric.diagnostics import layer_profile, layer_sentence
    from speat_metric.hub.card import FIGURE_PATH
    from speat_metric.pooling import LayerPooling

    publish_tiny_model(server, REPO, readme=fine_tune_card("owner/deleted-base"))
    env = hub_env(server, tmp_path, HF_TOKEN=BOT)
    command = ("hub", "annotate", REPO, *TESTS, "--pooling", "per-layer", "--out", str(tmp_path / "records"))
    first = run_speat(*command, env=env, cwd=tmp_path)
    assert first.returncode == 0 and f"{REPO}: opened-pr" in first.stdout, first.stderr
    assert "its base model owner/deleted-base could not be evaluated" in first.stderr  # the log warns
    api = HfApi(endpoint=server.url, token=BOT)
    [ours, *_] = api.list_repo_commits(REPO, revision="refs/pr/1")
    client = HubClient(token=BOT, endpoint=server.url)
    changed = client.changed_paths(REPO, server.repos[("model", REPO)].branches["main"], ours.commit_id)
    assert changed == {"README.md", FIGURE_PATH}  # the figure and the card that shows it: one commit
    proposed = server.files(REPO, revision="refs/pr/1")
    assert proposed[FIGURE_PATH].startswith(b"\x89PNG")
    readme = proposed["README.md"].decode()
    assert f"]({FIGURE_PATH})" in readme
    per_layer = [record for record in load_records(tmp_path / "records") if record.pooling["layer"] is not None]
    assert f"- {layer_sentence('gender', layer_profile(per_layer))}" in readme
    assert ("This card names `owner/deleted-base` as its base model (`base_model`), which could not be evaluated: "
            in readme)
    mean = local_record(tmp_path, "tuned", 0, layer_pooling=LayerPooling("mean"))
    assert f"| gender | female vs male | mean of all layers | {format_d(mean.speat.effect_size)} |" in readme

    commits = len(server.commit_messages(REPO))
    again = run_speat(*command, env=env, cwd=tmp_path)
    assert f"{REPO}: unchanged" in again.stdout, again.stderr
    assert len(server.commit_messages(REPO)) == commits


def test_records_of_another_model_or_without_a_revision_are_refused(server, local_records):
    with pytest.raises(CardError, match="carry no Hub revision"):
        publish_records(REPO, as_hub_records(local_records, REPO, None), allow_synthetic=True)
    with pytest.raises(CardError, match="not of 'owner/tiny'"):
        publish_records(REPO, as_hub_records(local_records, "other/model", "a" * 40), allow_synthetic=True)
    with pytest.raises(HubError, match="the Hub has no model 'owner/tiny'"):
        publish(server, as_hub_records(local_records, REPO, "a" * 40))


def test_a_repository_without_weights_or_with_a_card_that_is_not_utf8_is_one_line(tmp_path, server):
    server.create_repo("owner/config-only")
    server.commit("owner/config-only", {"config.json": tiny_model_files()["config.json"]})
    publish_tiny_model(server, "owner/latin-1-card", readme=None)
    server.commit("owner/latin-1-card", {"README.md": "---\nlicense: mit\n---\nCaf\xe9\n".encode("latin-1")})
    env = hub_env(server, tmp_path, HF_TOKEN=BOT)
    for model, message in (("owner/config-only", "'owner/config-only' has no weights at revision"),
                           ("owner/latin-1-card", "README.md of model 'owner/latin-1-card' at ")):
        done = run_speat("hub", "annotate", model, "--stimuli", "demo", "--allow-synthetic", "--tests", "gender",
                         "--permutations", "100", "--no-progress", env=env, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert "is not UTF-8 text" in done.stderr


def test_the_webhook_interface_is_as_documented():
    parameters = inspect.signature(annotate_model).parameters
    assert list(parameters) == ["repo_id", "revision", "settings", "create_pr", "force", "allow_synthetic",
                                "dry_run", "token", "endpoint", "source", "policy"]
    assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in list(parameters)[1:])
    assert {name: parameters[name].default for name in list(parameters)[3:]} == {
        "create_pr": True, "force": False, "allow_synthetic": False, "dry_run": False, "token": None,
        "endpoint": None, "source": SpeatSource(), "policy": None}
    assert set(STATUSES) == {"opened-pr", "updated-pr", "committed", "unchanged", "skipped-owner-closed", "dry-run",
                             "deferred", "opted-out"}
    fields = {field for field in AnnotationOutcome.__dataclass_fields__}
    assert {"status", "pr_url", "pr_number", "commit", "evaluated_revision", "diff"} <= fields
    assert AnnotationOutcome.__dataclass_params__.frozen


def test_the_pr_body_says_it_is_automated_what_speat_measures_and_how_to_opt_out(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    policy = CampaignPolicy(opt_out=OptOutList(dataset="operator/speat-opt-out"))
    assert publish(server, records, policy=policy).status == "opened-pr"
    body = server.discussions(REPO)[0].events[0]["data"]["latest"]["raw"]
    assert "**This pull request is automated**" in body and "SpEAT measures whether a speech model's" in body
    assert "**To opt out**, close this pull request." in body
    assert "add your account to their opt-out list, the Hub dataset `operator/speat-opt-out`." in body
    assert body.index("Nothing else in the card changes.") < body.index("automated")  # the change comes first
    other = "owner/other"
    publish_tiny_model(server, other)
    publish_records(other, as_hub_records(local_records, other, server.repos[("model", other)].branches["main"]),
                    allow_synthetic=True, token=BOT, endpoint=server.url)  # no policy: no dataset to name
    plain = server.discussions(other)[0].events[0]["data"]["latest"]["raw"]
    assert plain.rstrip().endswith("add your account to their opt-out list.") and "Hub dataset" not in plain


def test_an_opted_out_repository_gets_no_request_and_a_cap_defers_before_any_push(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    for listed in ("owner  # the whole account", "OWNER/Tiny"):  # owners and repositories, in any case
        opted_out = publish(server, records, policy=CampaignPolicy(opt_out=parse_opt_out(listed, where="list.txt")))
        assert opted_out.status == "opted-out" and "on the opt-out list in list.txt" in opted_out.summary
    assert not [request for request in server.requests if REPO in request.path]
    capped = CampaignPolicy(max_prs_per_day=0)
    deferred = publish(server, records, policy=capped)
    assert deferred.status == "deferred" and "today's cap of 0 new pull requests is reached" in deferred.reason
    assert server.discussions(REPO) == [] and server.count("POST", f"/api/models/{REPO}/commit/main") == 0
    one = CampaignPolicy(max_prs_per_day=1)
    assert publish(server, records, policy=one).status == "opened-pr" and one.opened_today() == 1
    assert publish(server, renumbered(records, 0.2), policy=one).status == "updated-pr"  # an update is not counted
    assert one.opened_today() == 1 and list(one.ledger.opened.values()) == [[REPO]]


def test_a_closed_pr_is_remembered_as_an_opt_out_that_force_overrides(server, local_records):
    records = as_hub_records(local_records, REPO, publish_tiny_model(server, REPO))
    policy = CampaignPolicy()
    publish(server, records, policy=policy)
    HfApi(endpoint=server.url, token=OWNER).change_discussion_status(REPO, 1, "closed")
    assert publish(server, renumbered(records, 0.1), policy=policy).status == "skipped-owner-closed"
    assert policy.ledger.declined[REPO]["pr_url"] == f"{server.url}/{REPO}/discussions/1"
    server.clear_requests()
    again = publish(server, renumbered(records, 0.2), policy=policy)
    assert again.status == "opted-out" and "its owner closed speat's pull request" in again.reason
    assert server.requests == []
    forced = publish(server, renumbered(records, 0.2), policy=policy, force=True)
    assert forced.status == "opened-pr" and REPO not in policy.ledger.declined  # asked again, deliberately
