"""speat_metric.hub.batch: annotate-many, killed and resumed; model lists, tiers and Hub search; the state file;
the campaign's manners (daily cap on new pull requests, opt-out lists, closed pull requests)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import transformers
from http_servers import HubServer
from hub_testing import SPEAT, hub_env, publish_tiny_model, run_python, run_speat, tiny_model_files, write_tone_test
from huggingface_hub import HfApi

from speat_metric.hub.batch import BASE_ENCODERS, find_speech_models, load_state, read_model_list, select_models
from speat_metric.hub.campaign_policy import parse_opt_out
from speat_metric.hub.hub import HubClient

TOKEN = "hf_batchBotSECRET42"
OWNER_TOKEN = "hf_labOwnerSECRET77"
MODELS = ["owner/m1", "owner/m2", "owner/m3", "owner/not-speech", "owner/m5"]


def bert_files(folder) -> dict[str, bytes]:
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    transformers.BertModel(config).save_pretrained(folder)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the batch did not get there in time")
        time.sleep(0.05)


def test_a_killed_batch_resumes_without_doing_anything_twice(tmp_path):
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as server:
        for model in MODELS:
            if model == "owner/not-speech":
                server.create_repo(model)
                server.commit(model, bert_files(tmp_path / "bert"))
            else:
                publish_tiny_model(server, model, readme=f"# {model}\n")
        (tmp_path / "models.txt").write_text("# the batch\n" + "\n".join(MODELS) + "\n\nowner/m1  # again\n")
        state = tmp_path / "state.json"
        command = [SPEAT, "hub", "annotate-many", "--models", str(tmp_path / "models.txt"), "--state", str(state),
                   "--tests", str(write_tone_test(tmp_path / "tones")), "--permutations", "200", "--no-progress"]
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)
        third = "/api/models/owner/m3/revision/main"
        server.hold(third)  # the batch stops at the third model's first request...
        batch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: server.count("GET", third) > 0)
            batch.kill()  # ...where it is killed, for real
            batch.wait(30)
        finally:
            if batch.poll() is None:
                batch.kill()
        killed = load_state(state)["models"]
        assert sorted(killed) == ["owner/m1", "owner/m2"]
        assert {entry["status"] for entry in killed.values()} == {"opened-pr"}
        server.release(third)

        resumed = run_speat(*command[1:], env=env, cwd=tmp_path)
        assert resumed.returncode == 1, resumed.stderr  # one model failed
        summary = resumed.stdout
        assert "2 models done, 2 skipped, 1 failed" in summary
        assert "skipped  owner/m1: already annotated at revision" in summary
        assert "FAILED   owner/not-speech: 'owner/not-speech' is a 'bert' model, not a speech encoder" in summary
        for model in ("owner/m1", "owner/m2", "owner/m3", "owner/m5"):
            assert [(d.num, d.is_pull_request) for d in server.discussions(model)] == [(1, True)], model
        assert server.discussions("owner/not-speech") == []
        final = load_state(state)["models"]
        assert {model: entry["status"] for model, entry in final.items()} == {
            "owner/m1": "opened-pr", "owner/m2": "opened-pr", "owner/m3": "opened-pr", "owner/m5": "opened-pr",
            "owner/not-speech": "failed"}
        assert final["owner/m1"] == killed["owner/m1"]  # untouched by the resumed run
        assert final["owner/m3"]["revision"] == server.repos[("model", "owner/m3")].branches["main"]
        assert TOKEN not in resumed.stdout + resumed.stderr and TOKEN not in state.read_text()
        assert server.count("GET", "/api/whoami-v2") == 2  # once per run (whoami is rate-limited), not per model


def test_a_refused_token_stops_the_batch_at_the_first_model_and_revision_is_refused(tmp_path):
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as server:
        for model in ("owner/m1", "owner/m2", "owner/m3"):
            publish_tiny_model(server, model, readme=f"# {model}\n")
        (tmp_path / "models.txt").write_text("owner/m1\nowner/m2\nowner/m3\n")
        command = ["hub", "annotate-many", "--models", str(tmp_path / "models.txt"), "--state",
                   str(tmp_path / "state.json"), "--tests", str(write_tone_test(tmp_path / "tones")), "--permutations",
                   "200", "--no-progress"]
        refused = run_speat(*command, env=hub_env(server, tmp_path, HF_TOKEN="hf_notAKnownToken0123456789"),
                            cwd=tmp_path)
        assert refused.returncode == 2 and "the Hub refused the token" in refused.stderr
        assert "the batch stops at owner/m1" in refused.stderr and refused.stderr.count("\n") == 1
        assert list(load_state(tmp_path / "state.json")["models"]) == ["owner/m1"]
        assert server.count("GET", "/api/models/owner/m2/revision/main") == 0  # nothing more was asked
        revision = run_speat(*command, "--revision", "abc", env=hub_env(server, tmp_path, HF_TOKEN=TOKEN),
                             cwd=tmp_path)
        assert revision.returncode == 2 and "--revision does not apply: annotate-many" in revision.stderr


def test_search_keeps_speech_encoders_matching_every_filter(tmp_path):
    with HubServer() as server:
        publish_tiny_model(server, "lab/tiny-w2v", readme="---\ntags: [speech]\n---\n")
        publish_tiny_model(server, "lab/tiny-hubert", kind="hubert", readme="---\npipeline_tag: feature-extraction\n"
                           "---\n")
        publish_tiny_model(server, "other/tiny-w2v", readme=None)
        server.create_repo("lab/tiny-bert")
        server.commit("lab/tiny-bert", bert_files(tmp_path / "bert"))
        client = HubClient(endpoint=server.url)
        assert find_speech_models(client, search="tiny") == ["lab/tiny-hubert", "lab/tiny-w2v", "other/tiny-w2v"]
        assert find_speech_models(client, search="TINY", filters=["transformers", "speech"]) == ["lab/tiny-w2v"]
        assert find_speech_models(client, search="tiny", filters=["feature-extraction"]) == ["lab/tiny-hubert"]
        assert find_speech_models(client, search="w2v", limit=1) == ["lab/tiny-w2v"]
        searches = [request for request in server.requests if request.path == "/api/models"]
        assert searches and all(request.query.get("config") == ["true"] for request in searches)


def test_model_lists_and_state_files_are_checked_first(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("a/b\n\n# comment\nc/d  # trailing\na/b\n")
    assert read_model_list(listing) == ["a/b", "c/d"]
    listing.write_text("a/b\nnot a model\n")
    with pytest.raises(ValueError, match=r"models.txt:2: 'not a model' is not a Hub model id"):
        read_model_list(listing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_model_list(tmp_path / "missing.txt")
    state = tmp_path / "state.json"
    state.write_text("{not json")
    with pytest.raises(ValueError, match="is not a batch state file"):
        load_state(state)
    state.write_text(json.dumps({"version": 99, "models": {}}))
    with pytest.raises(ValueError, match="not a speat batch state file"):
        load_state(state)
    assert load_state(tmp_path / "new.json") == {"version": 1, "models": {}}


CAMPAIGN_DAY = """
from datetime import datetime
from pathlib import Path

from speat_metric.evaluation import EvaluationSettings
from speat_metric.hub.batch import annotate_many, read_model_list

settings = EvaluationSettings(tests=({tests!r},), num_permutations=200, progress=False)
summary = annotate_many(read_model_list(Path({models!r})), settings, state_path=Path({state!r}), max_prs_per_day=3,
                        clock=lambda: datetime.fromisoformat({now!r}), report=lambda line: None)
print("\\n".join(summary.lines()))
"""


def test_a_daily_cap_opens_three_prs_a_day_and_leaves_the_rest_for_the_next_days(tmp_path):
    models = [f"lab/m{number}" for number in range(1, 10)]
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as server:
        for model in models:
            publish_tiny_model(server, model, readme=f"# {model}\n")
        (tmp_path / "models.txt").write_text("\n".join(models) + "\n")
        state = tmp_path / "state.json"
        tests = str(write_tone_test(tmp_path / "tones"))
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)

        def campaign_on(moment: str) -> str:
            done = run_python(CAMPAIGN_DAY.format(tests=tests, models=str(tmp_path / "models.txt"), state=str(state),
                                                  now=moment), env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            return done.stdout

        def with_pull_requests() -> list[str]:
            return [model for model in models if server.discussions(model)]

        def weights_fetched(model: str) -> bool:
            return any(r.path.startswith(f"/{model}/resolve/") and r.path.endswith(".safetensors")
                       for r in server.requests)

        first = campaign_on("2025-03-01T10:00:00+00:00")
        assert with_pull_requests() == models[:3]
        assert "3 models done, 0 skipped, 0 failed, 6 deferred" in first
        assert ("6 models deferred: today's cap of 3 new pull requests is reached; the next day begins 2025-03-02 "
                "00:00 UTC; run the same command then") in first
        statuses = {model: entry["status"] for model, entry in load_state(state)["models"].items()}
        assert statuses == {**dict.fromkeys(models[:3], "opened-pr"), **dict.fromkeys(models[3:], "deferred")}
        assert not any(weights_fetched(model) for model in models[3:])  # deferred before being evaluated

        commits = server.count("POST", prefix="/api/models/lab/")
        later = campaign_on("2025-03-01T23:59:00+00:00")  # the same UTC day
        assert with_pull_requests() == models[:3] and "0 models done, 3 skipped, 0 failed, 6 deferred" in later
        assert server.count("POST", prefix="/api/models/lab/") == commits  # nothing written

        next_day = campaign_on("2025-03-02T00:30:00+01:00")  # 23:30 UTC on the 1st: still the same day
        assert with_pull_requests() == models[:3] and "6 deferred" in next_day
        next_day = campaign_on("2025-03-02T09:00:00+00:00")
        assert with_pull_requests() == models[:6]
        assert "3 models done, 3 skipped, 0 failed, 3 deferred" in next_day
        assert "the next day begins 2025-03-03 00:00 UTC" in next_day
        final = load_state(state)
        assert final["policy"]["opened"] == {"2025-03-01": models[:3], "2025-03-02": models[3:6]}
        assert {final["models"][model]["status"] for model in models[6:]} == {"deferred"}
        assert all(len(server.discussions(model)) == 1 for model in models[:6])  # no model annotated twice


def test_opted_out_owners_are_never_touched_and_a_closed_pr_opts_its_repository_out(tmp_path):
    models = ["lab/alpha", "lab/beta", "shy/gamma", "other/delta"]
    with HubServer(tokens={TOKEN: "speat-bot-user", OWNER_TOKEN: "lab"}) as server:
        for model in models:
            publish_tiny_model(server, model, readme=f"# {model}\n")
        server.create_repo("operator/opt-out", repo_type="dataset")
        server.commit("operator/opt-out", {"opt-out.csv": b"repo,reason\nshy,asked by mail\nOther/Delta,\n"},
                      repo_type="dataset")
        (tmp_path / "models.txt").write_text("\n".join(models) + "\n")
        (tmp_path / "opt-out.txt").write_text("# who said no\nshy\nother/delta  # by mail\n")
        state = tmp_path / "state.json"
        command = ["hub", "annotate-many", "--models", "models.txt", "--state", str(state), "--tests",
                   str(write_tone_test(tmp_path / "tones")), "--permutations", "200", "--no-progress"]
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)

        def requests_to(model: str) -> list:
            return [r for r in server.requests if re.search(rf"/{re.escape(model)}(/|$)", r.path)]

        first = run_speat(*command, "--opt-out", "operator/opt-out", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "2 models done, 2 skipped, 0 failed" in first.stdout
        assert ("skipped  shy/gamma: owner 'shy' is on the opt-out list in datasets/operator/opt-out/opt-out.csv"
                in first.stdout)
        assert "skipped  other/delta: 'other/delta' is on the opt-out list" in first.stdout
        assert requests_to("shy/gamma") == [] and requests_to("other/delta") == []
        body = server.discussions("lab/alpha")[0].events[0]["data"]["latest"]["raw"]
        assert "automated" in body and "opt-out list, the Hub dataset `operator/opt-out`" in body

        # lab/alpha's owner declines; its model changes, so the next run looks at it again
        HfApi(endpoint=server.url, token=OWNER_TOKEN).change_discussion_status("lab/alpha", 1, "closed",
                                                                               comment="no bots, please")
        server.commit("lab/alpha", {"model.safetensors": tiny_model_files(seed=3)["model.safetensors"]},
                      message="retrained")
        second = run_speat(*command, "--opt-out", "opt-out.txt", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        closed = f"{server.url}/lab/alpha/discussions/1"
        assert f"opted out now: lab/alpha (its owner closed {closed}); later runs skip it" in second.stdout
        assert "skipped  shy/gamma: owner 'shy' is on the opt-out list in opt-out.txt" in second.stdout
        assert load_state(state)["policy"]["declined"]["lab/alpha"]["pr_url"] == closed
        assert [d.status for d in server.discussions("lab/alpha")] == ["closed"]

        server.clear_requests()
        third = run_speat(*command, "--opt-out", "opt-out.txt", env=env, cwd=tmp_path)  # lab/alpha: from the state
        assert third.returncode == 0, third.stderr
        assert f"skipped  lab/alpha: opted out: its owner closed speat's pull request {closed}" in third.stdout
        assert requests_to("lab/alpha") == []
        assert [d.status for d in server.discussions("lab/alpha")] == ["closed"]
        assert [len(server.discussions(model)) for model in models] == [1, 1, 0, 0]


def test_bad_opt_out_lists_caps_and_tiers_are_one_line_errors_before_any_work(tmp_path):
    with HubServer(tokens={TOKEN: "speat-bot-user"}) as server:
        publish_tiny_model(server, "lab/alpha")
        server.create_repo("operator/empty", repo_type="dataset")
        (tmp_path / "models.txt").write_text("lab/alpha\n")
        (tmp_path / "bad.txt").write_text("shy\nnot an owner!\n")
        state = tmp_path / "state.json"
        command = ["hub", "annotate-many", "--state", str(state), "--tests", str(write_tone_test(tmp_path / "tones")),
                   "--no-progress"]
        listed = ["--models", "models.txt"]
        cases = [
            ([*listed, "--max-prs-per-day", "-1"], "--max-prs-per-day must be 0 or more, not -1"),
            ([*listed, "--opt-out", "bad.txt"], "bad.txt:2: 'not an owner!' is neither an owner nor an OWNER/NAME"),
            ([*listed, "--opt-out", "missing.txt"], "--opt-out 'missing.txt' is neither a file nor a Hub dataset id"),
            ([*listed, "--opt-out", "nobody/none"], "--opt-out 'nobody/none' is no local file, and the Hub has no "),
            ([*listed, "--opt-out", "operator/empty"],
             "--opt-out dataset 'operator/empty' holds neither opt-out.txt nor opt-out.csv"),
            (["--tier", "requested"], "--tier requested takes the models of a list file: give --models FILE"),
            ([*listed, "--tier", "popular"], "--models goes with --tier requested, not --tier popular"),
            ([], "give the models: --models FILE, --search QUERY or --tier base|popular"),
        ]
        env = hub_env(server, tmp_path, HF_TOKEN=TOKEN)
        for options, message in cases:
            done = run_speat(*command, *options, env=env, cwd=tmp_path)
            assert done.returncode == 2 and message in done.stderr, (options, done.stderr)
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        one = run_speat("hub", "annotate", "lab/alpha", "--opt-out", "bad.txt", "--no-progress", env=env,
                        cwd=tmp_path)
        assert one.returncode == 2 and "bad.txt:2: 'not an owner!'" in one.stderr and one.stderr.count("\n") == 1
        (tmp_path / "good.txt").write_text("LAB\n")
        skipped = run_speat("hub", "annotate", "lab/alpha", "--opt-out", "good.txt", "--allow-synthetic",
                            "--no-progress", env=env, cwd=tmp_path)
        assert skipped.returncode == 0, skipped.stderr
        assert "lab/alpha: opted-out (owner 'lab' is on the opt-out list in good.txt)" in skipped.stdout
        assert not state.exists()
        assert not [request for request in server.requests if "lab/alpha" in request.path]


def test_tiers_select_base_popular_and_requested_models_in_one_place(tmp_path):
    with HubServer() as server:
        publish_tiny_model(server, "lab/tiny-w2v")
        publish_tiny_model(server, "lab/tiny-hubert", kind="hubert")
        server.create_repo("lab/tiny-bert")
        server.commit("lab/tiny-bert", bert_files(tmp_path / "bert"))
        client = HubClient(endpoint=server.url)
        base = select_models(client, tier="base")
        assert server.requests == []  # a constant: the Hub is not asked
        assert {"facebook/hubert-base-ls960", "microsoft/wavlm-large", "openai/whisper-tiny"} <= set(base)
        assert "facebook/w2v-bert-2.0" not in base and set(base) < dict(BASE_ENCODERS).keys()  # speat cannot read it
        assert select_models(client, tier="base", search="WavLM") == [
            "microsoft/wavlm-base", "microsoft/wavlm-base-plus", "microsoft/wavlm-large"]
        assert select_models(client, tier="base", limit=2) == base[:2]

        server.set_downloads("lab/tiny-hubert", 5)
        server.set_downloads("lab/tiny-w2v", 70)
        assert select_models(client, tier="popular") == ["lab/tiny-w2v", "lab/tiny-hubert"]  # most downloaded first
        server.set_downloads("lab/tiny-hubert", 900)
        assert select_models(client, tier="popular", limit=1) == ["lab/tiny-hubert"]
        searches = [request for request in server.requests if request.path == "/api/models"]
        assert searches and all(request.query.get("sort") == ["downloads"] for request in searches)
        assert {request.query["filter"][0] for request in searches} >= {"wav2vec2", "hubert"}  # one per model type
        assert len(select_models(client, tier="popular", limit=1)) == 1
        assert select_models(client, tier="popular", search="hubert") == ["lab/tiny-hubert"]
        assert select_models(client, search="tiny") == ["lab/tiny-hubert", "lab/tiny-w2v"]  # no tier: the search

        (tmp_path / "models.txt").write_text("a/b\nc/d\n")
        assert select_models(client, tier="requested", models_file=tmp_path / "models.txt") == ["a/b", "c/d"]
        assert select_models(client, models_file=tmp_path / "models.txt") == ["a/b", "c/d"]
        for options, message in (({"tier": "base", "filters": ["audio"]}, "--filter needs the Hub's search"),
                                 ({"tier": "base", "limit": 0}, "--limit must be 1 or more, not 0"),
                                 ({"tier": "base", "search": "conformer"}, "no base encoder's id contains"),
                                 ({"models_file": tmp_path / "models.txt", "search": "x"}, "not from --models"),
                                 ({"tier": "popular", "search": "nothing"}, "found no speech encoder")):
            with pytest.raises(ValueError, match=message):
                select_models(client, **options)


def test_opt_out_files_accept_owners_repositories_comments_and_a_csv_header():
    listing = parse_opt_out("# declined\nShy\n\nlab/Model  # by mail\n", where="opt-out.txt")
    assert (listing.owners, listing.repos) == ({"shy"}, {"lab/model"})
    assert listing.reason("shy/anything") == "owner 'shy' is on the opt-out list in opt-out.txt"
    assert listing.reason("LAB/model") and listing.reason("lab/other") is None
    table = parse_opt_out("repo,date\nshy,2025-01-01\n\"lab/model\",\n", where="o.csv", csv_format=True)
    assert (table.owners, table.repos) == ({"shy"}, {"lab/model"})
    with pytest.raises(ValueError, match=r"o.csv:3: 'a/b/c' is neither an owner nor an OWNER/NAME repository"):
        parse_opt_out("owner\nshy\na/b/c\n", where="o.csv", csv_format=True)
