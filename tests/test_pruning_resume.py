"""A pruning run killed (SIGKILL) after a pruning step and resumed ends where an uninterrupted run ends; and the
same command runs on two processes under `accelerate launch` on the CPU."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
from launching import accelerate_launch
from test_pruning_cli import TINY
from tiny_models import save_prunable_model, write_audio_folder, write_tone_test

from speat_metric.cli import main
from speat_metric.results import load_records

pytestmark = pytest.mark.slow  # whole pruning runs, killed and resumed, and on two processes


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "audio").mkdir()
    write_audio_folder(root / "audio")
    write_tone_test(root / "stimuli")
    save_prunable_model("wav2vec2", root / "wav2vec2")
    save_prunable_model("hubert", root / "hubert")
    (root / "tiny.yaml").write_text(TINY)
    return root


def _options(workspace: Path) -> list[str]:
    # 8 heads, 2 per pruning step: prune at 2 and 5 (to 4 heads), end at 8; checkpoints at 5 and 8
    return ["heads", str(workspace / "wav2vec2"), "--objective", "native", "--data", str(workspace / "audio"),
            "--config", str(workspace / "tiny.yaml"), "--steps-per-prune", "3", "--warmup-steps", "2", "--min-heads",
            "4", "--tests", str(workspace / "stimuli" / "tone.json"), "--permutations", "20", "--no-progress"]


def test_a_killed_run_resumed_ends_with_the_same_pruned_model_as_an_uninterrupted_one(workspace):
    """The killed run is also moved before it is resumed: it continues where it is now, not where it started."""
    uninterrupted, started, interrupted = workspace / "uninterrupted", workspace / "started", workspace / "moved"
    assert main(["prune", *_options(workspace), "--out", str(uninterrupted)]) == 0

    command = [sys.executable, "-m", "speat_metric.pruning", *_options(workspace), "--out"]
    process = subprocess.Popen([*command, str(started)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after_second_pruning_step = started / "state" / "step-000000005" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not after_second_pruning_step.exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (started / "checkpoint-8").exists(), "the run must be killed before it ends"
    shutil.copytree(started, interrupted)
    saved_before = (interrupted / "checkpoint-5" / "model.safetensors").stat().st_mtime_ns

    resumed = subprocess.run([*command, str(interrupted), "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (started / "checkpoint-8").exists(), "the resumed run wrote into the folder it was copied from"

    assert (interrupted / "checkpoint-5" / "model.safetensors").stat().st_mtime_ns == saved_before, \
        "the resumed run must continue from step 5, not start again"
    expected = safetensors.torch.load_file(uninterrupted / "checkpoint-8" / "model.safetensors")
    found = safetensors.torch.load_file(interrupted / "checkpoint-8" / "model.safetensors")
    assert {name: tuple(tensor.shape) for name, tensor in found.items()} == {
        name: tuple(tensor.shape) for name, tensor in expected.items()}
    assert found["encoder.layers.0.attention.q_proj.weight"].shape == (16, 32)  # 2 of 4 heads left
    for name, tensor in expected.items():
        assert float((found[name] - tensor).abs().max()) <= 1e-6, name
    effect = {(record.test, record.compression["step"]): record.speat.effect_size
              for record in load_records(uninterrupted / "results")}
    assert {(record.test, record.compression["step"]): record.speat.effect_size
            for record in load_records(interrupted / "results")} == pytest.approx(effect, abs=1e-6)


def test_accelerate_launch_on_two_cpu_processes_runs_a_method_end_to_end(workspace):
    out = workspace / "two-processes"
    completed = subprocess.run(
        accelerate_launch("-m", "speat_metric.pruning", "rows", str(workspace / "hubert"), "--data",
         str(workspace / "audio"), "--out", str(out), "--config", str(workspace / "tiny.yaml"), "--batch-size", "1",
         "--steps-per-prune", "2", "--warmup-steps", "1", "--rows-per-step", "16", "--min-rows", "32", "--tests",
         str(workspace / "stimuli" / "tone.json"), "--permutations", "20", "--no-progress"),
        capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    records = load_records(out / "results")
    assert sorted(record.compression["step"] for record in records) == [0, 3, 5]
    assert [record.compression["ffn_dims_per_layer"] for record in records if record.compression["step"] == 5] == [
        [32, 32]]
    state = sorted((out / "state").iterdir())[-1]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {path.name for path in state.iterdir()}
    assert completed.stdout.count("checkpoints in") == 1, "only the main process reports"
    assert (out / "curve.png").is_file() and (out / "checkpoint-5" / "config.json").is_file()
