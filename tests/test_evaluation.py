"""`speat evaluate` checks every input before the first forward pass: one line, no traceback, nothing written.

Run as users run it (subprocesses of the installed ``speat``), against the Hub-compatible test server, a closed port
(an unreachable Hub) and local directories.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from tiny_models import save_tiny_model

from speat_metric.evaluation import EvaluationSettings, resolve_device
from speat_metric.files import check_writable_directory
from speat_metric.results import load_records

SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"


def speat(*arguments: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SPEAT, *arguments], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "0", "HF_HOME": str(cwd / "hf"),
                               "SPEAT_CACHE": str(cwd / "cache"), **env})


def one_error_line(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    return lines[0]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    return save_tiny_model("wav2vec2", tmp_path_factory.mktemp("model") / "tiny-w2v")


def test_a_bad_second_model_is_reported_before_the_first_is_evaluated(tmp_path, hub_server):
    line = one_error_line(speat("evaluate", "mfcc", "speat-tester/missing", "--out", "out", "--no-progress",
                                cwd=tmp_path, HF_ENDPOINT=hub_server.url))
    assert line == ("speat evaluate: error: the Hugging Face Hub has no model 'speat-tester/missing' (check the "
                    "spelling; for a private model set HF_TOKEN)")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "cache" / "embeddings").exists()  # mfcc was never embedded


def test_a_directory_that_is_not_a_model_says_so_without_the_hub(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    line = one_error_line(speat("evaluate", "mfcc", "notes", "--out", "out", cwd=tmp_path))
    assert "'notes' is a directory but not a model: it has no config.json" in line
    assert "Hub" not in line and not (tmp_path / "out").exists()
    line = one_error_line(speat("evaluate", "./no/such/model", cwd=tmp_path))
    assert line == "speat evaluate: error: model directory './no/such/model' does not exist"


def test_out_that_is_a_file_is_refused_up_front(tmp_path):
    (tmp_path / "results.txt").write_text("mine")
    started = time.monotonic()
    line = one_error_line(speat("evaluate", "--out", "results.txt", "--no-progress", cwd=tmp_path))
    assert line == ("speat evaluate: error: --out 'results.txt' is a file, not a directory; give a directory for "
                    "the results")
    assert (tmp_path / "results.txt").read_text() == "mine"
    assert not (tmp_path / "cache" / "embeddings").exists()
    assert time.monotonic() - started < 60  # no model ran (the default job takes much longer on a cold cache)


@pytest.mark.parametrize("device,message", [
    ("bogus", "--device 'bogus' is not a torch device; use cpu, cuda, cuda:N or mps"),
    ("cuda", "--device 'cuda': CUDA is not available on this machine"),
])
def test_devices_that_do_not_exist_here(tmp_path, device, message):
    if device == "cuda" and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = one_error_line(speat("evaluate", "mfcc", "--device", device, cwd=tmp_path))
    assert message in line


def test_an_unreachable_hub_fails_fast_with_one_line(tmp_path):
    started = time.monotonic()
    line = one_error_line(speat("evaluate", "org/model", "--no-progress", cwd=tmp_path, HF_ENDPOINT=closed_port_url()))
    elapsed = time.monotonic() - started
    assert line.startswith("speat evaluate: error: the Hub could not be reached at http://127.0.0.1:")
    assert "'org/model' is not in the local Hugging Face cache" in line
    assert elapsed < 20, elapsed  # no retries: before, this took 27 s and printed 24 retry lines


def test_hf_hub_offline_is_honoured(tmp_path, hub_server):
    line = one_error_line(speat("evaluate", "speat-tester/tiny", cwd=tmp_path, HF_ENDPOINT=hub_server.url,
                                HF_HUB_OFFLINE="1"))
    assert "HF_HUB_OFFLINE is set, and 'speat-tester/tiny' is not in the local Hugging Face cache" in line
    assert hub_server.count() == 0


def test_a_failing_hub_is_asked_once(tmp_path, hub_server):
    hub_server.create_repo("speat-tester/tiny")
    hub_server.fail("/api/models/speat-tester/tiny", 503, times=10)
    line = one_error_line(speat("evaluate", "speat-tester/tiny", cwd=tmp_path, HF_ENDPOINT=hub_server.url))
    assert "the Hub could not be reached" in line
    assert hub_server.count(prefix="/api/models/speat-tester/tiny") == 1


def test_a_cached_hub_model_runs_when_the_hub_is_gone(tmp_path, hub_server, tiny_wav2vec2):
    hub_server.create_repo("speat-tester/tiny-w2v")
    commit = hub_server.commit("speat-tester/tiny-w2v", {p.name: p.read_bytes() for p in tiny_wav2vec2.iterdir()})
    arguments = ("evaluate", "speat-tester/tiny-w2v", "--tests", "gender", "--permutations", "200", "--no-progress")
    assert speat(*arguments, cwd=tmp_path, HF_ENDPOINT=hub_server.url).returncode == 0
    offline = speat(*arguments, "--out", "again", cwd=tmp_path, HF_ENDPOINT=closed_port_url())
    assert offline.returncode == 0, offline.stderr
    assert "the Hub could not be reached" in offline.stderr and "using the cached copy" in offline.stderr
    assert load_records(tmp_path / "again")[0].model.revision == commit


def test_no_progress_silences_every_bar(tmp_path, tiny_wav2vec2):
    completed = speat("evaluate", str(tiny_wav2vec2), "--tests", "gender", "--permutations", "200", "--no-progress",
                      cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "1 result written to results/\n"  # the status line alone: no bar of any library


def test_progress_bars_end_full_and_draw_their_last_line_once(tmp_path, tiny_wav2vec2):
    completed = speat("evaluate", str(tiny_wav2vec2), "--tests", "gender,age", "--permutations", "200", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    lines = [line.strip() for line in completed.stderr.replace("\r", "\n").splitlines() if line.strip()]
    permutation_lines = [line for line in lines if line.startswith("SpEAT of ")]
    assert permutation_lines[-1].split("|")[0].endswith("100%") and "2/2" in permutation_lines[-1]
    assert sum("2/2" in line for line in permutation_lines) == 1
    embedding = [line for line in lines if line.startswith("embedding with")]
    total = embedding[-1].split("|")[2].split("[")[0].strip()
    done, whole = total.split("/")
    assert done == whole and "." not in whole  # whole seconds, ended full
    assert sum(f"{whole}/{whole}" in line for line in embedding) == 1


def test_verbose_says_what_came_from_the_cache(tmp_path):
    arguments = ("-v", "evaluate", "mfcc", "--tests", "gender", "--permutations", "200", "--no-progress")
    speat(*arguments, cwd=tmp_path)
    again = speat(*arguments, cwd=tmp_path)
    assert "INFO 48 of 48 clips from the cache, no forward pass" in again.stderr


def test_a_clip_too_short_for_the_model_names_the_file(tmp_path, tiny_wav2vec2):
    rng = np.random.default_rng(0)
    groups = {}
    for role in "xyab":
        groups[role] = []
        for index in range(3):
            seconds = 0.001 if (role, index) == ("y", 1) else 0.5  # 16 samples: under the tiny CNN's 30
            soundfile.write(tmp_path / f"{role}{index}.wav", rng.normal(0, 0.1, int(16000 * seconds)), 16000)
            groups[role].append(f"{role}{index}.wav")
    (tmp_path / "mine.json").write_text(json.dumps({"name": "tones", **groups}))
    line = one_error_line(speat("evaluate", str(tiny_wav2vec2), "--tests", "mine.json", "--no-progress",
                                "--out", "out", cwd=tmp_path))
    assert "stimulus custom/y1 (" in line and "y1.wav, 0.001 s): too short for" in line
    assert not (tmp_path / "out").exists()


def test_settings_check_their_values():
    with pytest.raises(ValueError, match=r"--permutations must be a whole number of at least 1, got 0"):
        EvaluationSettings(num_permutations=0)
    with pytest.raises(ValueError, match=r"--batch-seconds must be positive, got -1"):
        EvaluationSettings(batch_seconds=-1)
    with pytest.raises(ValueError, match=r"no tests given"):
        EvaluationSettings(tests="")
    assert EvaluationSettings(tests="gender, age").tests == ("gender", "age")
    assert resolve_device("cpu") == "cpu"


def test_output_directory_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"'.*file' is a file, so the directory cannot be created"):
        check_writable_directory(tmp_path / "file" / "results", "--out", "the results")
    check_writable_directory(tmp_path / "new" / "results", "--out", "the results")  # creatable, and not created
    assert not (tmp_path / "new").exists()


def test_a_plain_directory_of_melhubert_checkpoints_is_a_series(tmp_path):
    import torch

    from speat_metric.adapters.melhubert import MelHuBERTConfig, MelHuBERTModel, save_melhubert_checkpoint
    from speat_metric.evaluation import plan_models

    config = MelHuBERTConfig.small()
    config = type(config)(**{**config.__dict__, "encoder_layers": 1, "encoder_embed_dim": 16,
                             "encoder_ffn_embed_dim": 16, "encoder_attention_heads": 2})
    for step in (200, 50):
        torch.manual_seed(step)
        save_melhubert_checkpoint(MelHuBERTModel(config), tmp_path / "run" / f"checkpoint-{step}.ckpt", step=step)
    runs = plan_models([str(tmp_path / "run")])
    assert [(run.model, run.checkpoint["step"]) for run in runs] == [
        (f"melhubert:{tmp_path / 'run' / 'checkpoint-50.ckpt'}", 50),
        (f"melhubert:{tmp_path / 'run' / 'checkpoint-200.ckpt'}", 200)]
