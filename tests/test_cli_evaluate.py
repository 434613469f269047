"""`speat evaluate` end to end, in subprocesses, as users run it: demo default, Hub models, checkpoints, errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import transformers
from tiny_models import save_tiny_model

from speat_metric.results import EvaluationRecord, load_records

SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"


def speat(*arguments: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SPEAT, *arguments], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_default_run_is_offline_on_the_demo_set(tmp_path):
    completed = speat("evaluate", "--permutations", "2000", "--no-progress", cwd=tmp_path,
                      HF_HOME=str(tmp_path / "hf"), SPEAT_CACHE=str(tmp_path / "cache"))
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement" in out
    for model in ("stft", "spectrogram", "mel_spectrogram", "mfcc", "random:melhubert-small"):
        assert model in out
    records = load_records(tmp_path / "results")
    assert len(records) == 15 and {record.test for record in records} == {"gender", "age", "native"}
    assert all("synthetic-stimuli" in record.labels for record in records)
    assert {record.model.name for record in records if "random-init" in record.labels} == {"random:melhubert-small"}
    assert all(record.speat.num_permutations == 2000 and record.speat.n_x == 12 for record in records)


def test_hub_model_records_its_revision_and_rerun_is_cached(tmp_path, hub_server):
    model_dir = save_tiny_model("wav2vec2", tmp_path / "model")
    hub_server.create_repo("speat-tester/tiny-w2v")
    commit = hub_server.commit("speat-tester/tiny-w2v", {path.name: path.read_bytes() for path in model_dir.iterdir()})
    env = dict(HF_ENDPOINT=hub_server.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"),
               SPEAT_CACHE=str(tmp_path / "cache"))
    arguments = ("evaluate", "speat-tester/tiny-w2v", "--tests", "gender", "--permutations", "500", "--format", "json",
                 "--no-progress")
    hub_server.clear_requests()
    completed = speat(*arguments, cwd=tmp_path, **env)
    assert completed.returncode == 0, completed.stderr
    record = EvaluationRecord.from_dict(json.loads(completed.stdout)[0])
    assert record.model.name == "speat-tester/tiny-w2v" and record.model.revision == commit
    # The model is checked once (one API request), and each of its files is asked for once at most.
    requests = [(request.method, request.path) for request in hub_server.requests]
    assert sum(path.startswith("/api/models/") for _, path in requests) == 1, requests
    downloads = [request for request in requests if not request[1].startswith("/api/")]
    assert len(downloads) == len(set(downloads)), sorted(downloads)
    assert record.test == "gender" and record.groups["X"] == "female"
    cached = list((tmp_path / "cache" / "embeddings").glob("*/*.npz"))
    assert len(cached) == 48  # 12 + 12 targets, 12 + 12 attributes
    mtimes = {path: path.stat().st_mtime_ns for path in cached}
    again = speat(*arguments, cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in cached} == mtimes
    assert EvaluationRecord.from_dict(json.loads(again.stdout)[0]).speat == record.speat


@pytest.mark.parametrize("arguments,message", [
    (("speat-tester/missing",), "the Hugging Face Hub has no model 'speat-tester/missing'"),
    (("--tests", "colour"), "colour"),
    (("--pooling", "layer"), "--pooling layer tests one layer: give it with --layer N"),
    (("--layer", "1"), "--layer 1 picks the layer of --pooling layer, but the pooling is 'mean'; add --pooling layer"),
    (("stft", "--permutations", "0"), "--permutations must be a whole number of at least 1, got 0"),
])
def test_plain_errors(tmp_path, hub_server, arguments, message):
    completed = speat("evaluate", *arguments, "--no-progress", cwd=tmp_path, HF_ENDPOINT=hub_server.url,
                      HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"))
    assert completed.returncode == 2
    assert message in completed.stderr and "Traceback" not in completed.stderr


def test_not_a_speech_encoder(tmp_path):
    transformers.BertModel(transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=8)).save_pretrained(tmp_path / "bert")
    completed = speat("evaluate", str(tmp_path / "bert"), cwd=tmp_path, HF_HOME=str(tmp_path / "hf"))
    assert completed.returncode == 2 and "is a 'bert' model, not a speech encoder" in completed.stderr


def test_a_directory_of_checkpoints_gives_one_result_per_checkpoint(tmp_path):
    for step, seed in ((100, 1), (20, 2), (3000, 3)):
        save_tiny_model("hubert", tmp_path / "run" / f"checkpoint-{step}", seed=seed)
    completed = speat("evaluate", str(tmp_path / "run"), "--tests", "age", "--permutations", "300", "--no-progress",
                      "--out", str(tmp_path / "curve"), cwd=tmp_path, HF_HOME=str(tmp_path / "hf"),
                      SPEAT_CACHE=str(tmp_path / "cache"))
    assert completed.returncode == 0, completed.stderr
    records = load_records(tmp_path / "curve")
    assert sorted(record.checkpoint["step"] for record in records) == [20, 100, 3000]
    assert len({record.model.weights_sha256 for record in records}) == 3
    assert completed.stdout.index("run @ step 20 ") < completed.stdout.index("run @ step 100 ") < \
        completed.stdout.index("run @ step 3000 ")
    assert {record.model.name for record in records} == {str(tmp_path / "run" / f"checkpoint-{step}")
                                                         for step in (20, 100, 3000)}  # the full path stays
    assert sorted(path.name for path in (tmp_path / "curve").iterdir()) == [
        f"run-step-{step}__age__mean-mean__demo.json" for step in (100, 20, 3000)]


def test_custom_test_and_per_layer_pooling(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    groups = {}
    for role, tone in (("x", 200), ("y", 300), ("a", 400), ("b", 500)):
        groups[role] = []
        for index in range(3):
            samples = 0.3 * np.sin(2 * np.pi * tone * (1 + index / 10) * np.arange(8000) / 16000)
            soundfile.write(audio / f"{role}{index}.wav", samples + rng.normal(0, 0.01, 8000), 16000)
            groups[role].append(f"audio/{role}{index}.wav")
    (tmp_path / "mine.json").write_text(json.dumps({"name": "tones", **groups,
                                                    "group_names": ["low", "mid", "high", "top"]}))
    model = save_tiny_model("wav2vec2", tmp_path / "model")
    completed = speat("evaluate", str(model), "--tests", str(tmp_path / "mine.json"), "--pooling", "per-layer",
                      "--format", "markdown", "--no-progress", "--out", str(tmp_path / "out"), cwd=tmp_path,
                      HF_HOME=str(tmp_path / "hf"), SPEAT_CACHE=str(tmp_path / "cache"))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("| model | test |")
    records = load_records(tmp_path / "out")
    assert sorted(record.pooling["layer"] for record in records) == [0, 1, 2]
    assert all(record.test == "tones" and record.groups["X"] == "low" and record.speat.exact for record in records)
