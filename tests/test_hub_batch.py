"""speat_metric.hub.batch: annotate-many, killed and resumed; model lists and Hub search; the state file."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import transformers
from http_servers import HubServer
from hub_testing import SPEAT, hub_env, publish_tiny_model, run_speat, write_tone_test

from speat_metric.hub.batch import find_speech_models, load_state, read_model_list
from speat_metric.hub.hub import HubClient

TOKEN = "hf_batchBotSECRET42"
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
