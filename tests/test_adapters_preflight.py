"""Checking model strings before loading (speat_metric.adapters.preflight): every local form offline, and the Hub
forms against the test Hub in a subprocess (huggingface_hub reads HF_ENDPOINT when it is imported)."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_testing import hub_env, publish_tiny_model, tiny_model_files
from huggingface_hub import constants
from tiny_models import save_tiny_model

from speat_metric.adapters.preflight import (
    SUPPORTED_MODEL_TYPES,
    WEIGHT_FILE,
    check_model,
    check_model_type,
    hidden_state_count,
)
from speat_metric.errors import ModelLoadError
from speat_metric.model_spec import FEATURES, ModelSpec


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No request leaves the test: offline mode (huggingface_hub reads the variable at import, hence the constant too)
    and an empty Hub cache of our own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model("wav2vec2", tmp_path_factory.mktemp("models") / "tiny-w2v")


def _one_line_error(model, **kwargs) -> str:
    with pytest.raises(ModelLoadError) as raised:
        check_model(model, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", FEATURES)
def test_a_classical_feature_has_one_layer(name):
    check = check_model(name)
    assert (check.kind, check.num_layers, check.spec) == ("feature", 1, ModelSpec.parse(name))
    assert not check.local_files_only and check.config is None and check.commit is None


def test_a_random_model_keeps_its_seed():
    check = check_model("random:melhubert-slim@4")
    assert (check.kind, check.spec.target, check.spec.seed, check.num_layers) == ("random", "slim", 4, None)
    assert check_model(ModelSpec.parse("random:melhubert-small")).spec.text == "random:melhubert-small"
    with pytest.raises(ModelLoadError, match=r"^unknown random model 'random:melhubert-huge'"):
        check_model("random:melhubert-huge")


@pytest.mark.parametrize("kind", ["melhubert", "m2d"])
def test_a_research_checkpoint_must_exist_but_is_not_read(tmp_path, kind):
    missing = tmp_path / "absent.ckpt"
    assert _one_line_error(f"{kind}:{missing}") == (
        f"{kind} checkpoint {str(missing)!r} does not exist; give the path of the authors' released checkpoint file "
        f"(see speat_metric/adapters/{kind}.py for where to get it)")
    garbage = tmp_path / "present.ckpt"
    garbage.write_bytes(b"not read by the preflight")
    check = check_model(f"{kind}:{garbage}")
    assert (check.kind, check.spec.target) == (kind, str(garbage))


def test_a_local_transformers_directory(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    check = check_model(str(tiny_dir))
    assert (check.kind, check.model_type, check.local_files_only) == ("local", "wav2vec2", False)
    assert check.num_layers == config["num_hidden_layers"] + 1 == 3
    assert check.config == config
    assert check.commit is None and check.files is None


def test_a_home_relative_directory_is_expanded(tiny_dir, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(tiny_dir, home / "models" / "tiny")
    monkeypatch.setenv("HOME", str(home))
    check = check_model("~/models/tiny")
    assert check.kind == "local" and check.spec.text == "~/models/tiny"


def test_a_directory_without_weights_is_named(tiny_dir, tmp_path):
    bare = tmp_path / "no-weights"
    shutil.copytree(tiny_dir, bare)
    (bare / "model.safetensors").unlink()
    assert _one_line_error(str(bare)) == (
        f"{str(bare)!r} has a config.json but no weights (no model.safetensors or pytorch_model.bin, whole or "
        "sharded): there is nothing to evaluate")
    (bare / "model-00001-of-00002.safetensors").write_bytes(b"")  # a shard is enough for the preflight
    assert check_model(str(bare)).kind == "local"


@pytest.mark.parametrize(("name", "matches"), [
    ("model.safetensors", True), ("pytorch_model.bin", True), ("model-00002-of-00003.safetensors", True),
    ("pytorch_model.bin.index.json", True), ("model.safetensors.index.json", True), ("weights.safetensors", False),
    ("model.ckpt", False), ("model.safetensors.tmp", False), ("tf_model.h5", False),
])
def test_weight_file_names(name, matches):
    assert bool(WEIGHT_FILE.match(name)) is matches


def test_a_directory_of_checkpoints(tiny_dir, tmp_path):
    series = tmp_path / "series"
    for step in (100, 200):
        shutil.copytree(tiny_dir, series / f"checkpoint-{step}")
    (series / "notes.txt").write_text("not a checkpoint")
    check = check_model(str(series))
    assert check.kind == "checkpoints" and check.num_layers is None

    ckpts = tmp_path / "melhubert-run"
    ckpts.mkdir()
    (ckpts / "states-1000.ckpt").write_bytes(b"")
    assert check_model(str(ckpts)).kind == "checkpoints"


def test_a_checkpoint_of_another_model_type_is_named(tiny_dir, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(tiny_dir, series / "checkpoint-1")
    (series / "checkpoint-2").mkdir()
    (series / "checkpoint-2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert _one_line_error(str(series)).startswith(f"{str(series / 'checkpoint-2')!r} is a 'gpt2' model, not a speech")


def test_a_non_speech_model_is_refused(tmp_path):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 12}))
    (bert / "model.safetensors").write_bytes(b"dummy")
    assert _one_line_error(str(bert)) == (
        f"{str(bert)!r} is a 'bert' model, not a speech encoder speat can read; supported model types: "
        f"{', '.join(SUPPORTED_MODEL_TYPES)}")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_an_unreadable_config_is_named(tmp_path, text):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(text)
    assert _one_line_error(str(broken)).startswith(
        f"{str(broken / 'config.json')!r} is not a readable JSON model configuration (")


def test_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    assert _one_line_error(str(tmp_path / "empty")).startswith(
        f"{str(tmp_path / 'empty')!r} is a directory but not a model: it has no config.json")


def test_a_file_is_not_a_model(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    assert _one_line_error(str(file)).startswith(f"{str(file)!r} is a file, not a model: give a transformers model")


@pytest.mark.parametrize("path", ["/no/such/model", "./missing-model", "~/no-such-model-here", "a/b/c", "bad name!"])
def test_a_path_that_does_not_exist(path):
    assert _one_line_error(path) == f"model directory {path!r} does not exist"


@pytest.mark.parametrize(("typed", "meant"), [("mfc", "mfcc"), ("spectogram", "spectrogram"),
                                              ("mel-spectrogram", "mel_spectrogram")])
def test_a_misspelt_builtin_gets_a_suggestion(typed, meant):
    assert _one_line_error(typed) == (f"{typed!r} is not a model speat knows, nor a local directory; did you mean "
                                      f"{meant!r}? (a Hub model is named OWNER/NAME)")


def test_offline_a_hub_id_needs_the_local_cache():
    assert _one_line_error("someone/some-model") == (
        "HF_HUB_OFFLINE is set, and 'someone/some-model' is not in the local Hugging Face cache; connect to the Hub "
        "once to download it, or pass a local model directory")
    assert "did you mean" not in _one_line_error("wavlm")  # a bare word far from every built-in goes to the Hub


def test_offline_a_cached_hub_model_is_used_from_the_cache(tiny_dir):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(tiny_dir / "config.json", repo / "snapshots" / commit / "config.json")
    check = check_model("someone/tiny")
    assert (check.kind, check.local_files_only, check.commit, check.model_type) == ("hub", True, commit, "wav2vec2")
    assert check.config == json.loads((tiny_dir / "config.json").read_text()) and check.num_layers == 3
    assert check_model("someone/tiny", revision=commit).commit == commit
    with pytest.raises(ModelLoadError, match="is not in the local Hugging Face cache"):
        check_model("someone/tiny", revision="v2")


def test_hidden_state_count():
    assert hidden_state_count({"model_type": "hubert", "num_hidden_layers": 12}) == 13
    assert hidden_state_count({"model_type": "whisper", "encoder_layers": 4, "num_hidden_layers": 9}) == 5
    assert hidden_state_count({"model_type": "whisper", "num_hidden_layers": 9}) is None
    for layers in (None, "12", 12.0, True):
        assert hidden_state_count({"model_type": "wavlm", "num_hidden_layers": layers}) is None
    assert hidden_state_count({}) is None


def test_hidden_state_count_agrees_with_a_real_model(tiny_dir):
    import torch
    import transformers

    model = transformers.AutoModel.from_pretrained(tiny_dir).eval()
    with torch.no_grad():
        output = model(torch.zeros(1, 1600), output_hidden_states=True)
    assert len(output.hidden_states) == hidden_state_count(model.config.to_dict())


def test_check_model_type():
    for model_type in SUPPORTED_MODEL_TYPES:
        assert check_model_type(model_type, "x") is None
    with pytest.raises(ModelLoadError, match=r"^'org/m' is a None model, not a speech encoder"):
        check_model_type(None, "org/m")


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


_CHECK_ALL = """
import json, sys
from speat_metric.adapters.preflight import check_model
for model, revision in json.loads(sys.argv[1]):
    try:
        check = check_model(model, revision=revision)
        print(json.dumps({"kind": check.kind, "commit": check.commit, "num_layers": check.num_layers,
                          "local": check.local_files_only, "files": check.files}))
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
"""


def _check_in_subprocess(models, env) -> list[dict]:
    completed = subprocess.run([sys.executable, "-c", _CHECK_ALL, json.dumps(models)], env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


@pytest.mark.slow  # two subprocesses importing torch: about 4 s
def test_hub_models_against_the_test_hub_then_unreachable(hub_server, tmp_path):
    commit = publish_tiny_model(hub_server, "speat-tester/tiny")
    hub_server.create_repo("speat-tester/bert")
    hub_server.commit("speat-tester/bert", {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"x"})
    hub_server.create_repo("speat-tester/no-weights")
    hub_server.commit("speat-tester/no-weights", {"config.json": tiny_model_files()["config.json"]})
    models = [("speat-tester/tiny", None), ("speat-tester/absent", None), ("speat-tester/bert", None),
              ("speat-tester/no-weights", None), ("speat-tester/tiny", "no-such-branch")]
    env = hub_env(hub_server, tmp_path, HF_HUB_OFFLINE="0")
    found, absent, bert, no_weights, no_revision = _check_in_subprocess(models, env)

    files = found.pop("files")
    assert found == {"kind": "hub", "commit": commit, "num_layers": 3, "local": False}
    assert sorted(files) == sorted(hub_server.files("speat-tester/tiny")) and "model.safetensors" in files
    assert absent["error"] == ("the Hugging Face Hub has no model 'speat-tester/absent' (check the spelling; for a "
                               "private model set HF_TOKEN)")
    assert bert["error"].startswith("'speat-tester/bert' is a 'bert' model, not a speech encoder")
    assert no_weights["error"] == ("the Hugging Face Hub model 'speat-tester/no-weights' has no weights at its main "
                                   "branch (no model.safetensors or pytorch_model.bin, whole or sharded): there is "
                                   "nothing to evaluate")
    assert no_revision["error"] == "the Hugging Face Hub model 'speat-tester/tiny' has no revision 'no-such-branch'"

    # the Hub gone: the model fetched above comes from the cache, at the same commit; another is named
    url = _closed_port_url()
    cached, unknown = _check_in_subprocess([("speat-tester/tiny", None), ("speat-tester/absent", None)],
                                           {**env, "HF_ENDPOINT": url})
    assert cached == {"kind": "hub", "commit": commit, "num_layers": 3, "local": True, "files": None}
    assert unknown["error"].startswith(f"the Hub could not be reached at {url} (")
    assert unknown["error"].endswith("and 'speat-tester/absent' is not in the local Hugging Face cache; connect to "
                                     "the Hub once to download it, or pass a local model directory")


def test_a_checkpoint_without_weights_is_refused_as_a_model_would_be(tiny_dir, tmp_path):
    series = tmp_path / "run"
    shutil.copytree(tiny_dir, series / "checkpoint-1")
    shutil.copytree(tiny_dir, series / "checkpoint-2")
    for weights in (series / "checkpoint-2").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelLoadError, match=r"checkpoint-2' has a config.json but no weights"):
        check_model(str(series))
