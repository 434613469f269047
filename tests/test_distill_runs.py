"""`speat distill` end to end on tiny teachers (transformers and MelHuBERT): students, records, the chart, the
options' errors, students trained together against one after the other, a killed run resumed, and the same command
on two processes under `accelerate launch`."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers
from accelerate.tracking import GeneralTracker
from launching import accelerate_launch
from test_distill_parts import save_melhubert_teacher, save_teacher
from tiny_models import write_audio_folder, write_tone_test

from speat_metric.cli import main
from speat_metric.distill.train import learning_rate
from speat_metric.formatting import format_d
from speat_metric.results import load_records
from speat_metric.space.detail import model_detail
from speat_metric.space.rows import build_table

TINY = "training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: 0, save_state_every: null}\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distill")
    (root / "audio").mkdir()
    write_audio_folder(root / "audio")
    (root / "audio" / "broken.wav").write_bytes(b"RIFF not really")  # reported and skipped
    write_tone_test(root / "stimuli")
    save_teacher("wav2vec2", root / "wav2vec2")
    save_melhubert_teacher(root / "melhubert.ckpt")
    (root / "tiny.yaml").write_text(TINY)
    return root


def options(workspace: Path, *extra: str) -> list[str]:
    return ["--data", str(workspace / "audio"), "--config", str(workspace / "tiny.yaml"), "--tests",
            str(workspace / "stimuli" / "tone.json"), "--permutations", "20", "--no-progress", *extra]


def by_student(out: Path) -> dict[object, dict[int, list]]:
    found: dict[object, dict[int, list]] = {}
    for record in load_records(out / "results"):
        compression = record.compression or {}
        found.setdefault(compression.get("layers", "teacher"), {}).setdefault(compression.get("step", 0), []).append(
            record)
    return found


def test_a_transformers_teacher_gives_students_records_and_the_figure(workspace, capsys, caplog):
    out = workspace / "wav2vec2-run"
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), "--layers", "1,2", "--targets", "1,3",
                 "--max-steps", "4", "--checkpoint-every", "2", "--noise", "synthetic", "--mix-ratio", "0.3",
                 *options(workspace)]) == 0
    printed = capsys.readouterr()
    assert "| tone | " in printed.out and "base | 1 layer | 2 layers" in printed.out
    assert "broken.wav (unreadable" in caplog.text, "the unreadable training file is reported"
    records = by_student(out)
    assert sorted(records, key=str) == [1, 2, "teacher"]
    teacher = records["teacher"][0][0]
    assert teacher.checkpoint is None and teacher.compression is None
    for layers in (1, 2):
        assert sorted(records[layers]) == [2, 4]
        record = records[layers][4][0]
        compression = record.compression
        assert (compression["method"], compression["layers"], compression["targets"], compression["noise"],
                compression["mix_ratio"], compression["teacher"]) == ("distill", layers, [1, 3], "synthetic", 0.3,
                                                                       teacher.model.name)
        assert compression["snr_db"] == pytest.approx(20 * math.log10(0.7 / 0.3))  # the 0.3 mix's SNR, stated
        assert compression["parameters"] + compression["parameters_removed"] == compression["base_parameters"]
        assert compression["parameters_removed"] > 0 and compression["config"]["layers"] == [1, 2]
        assert record.checkpoint == {"name": "checkpoint-4", "step": 4}
        assert record.model.num_layers == layers + 1
        student = out / f"student-{layers}-layers" / "checkpoint-4"
        model = transformers.AutoModel.from_pretrained(student)
        assert model.config.num_hidden_layers == layers and len(model.encoder.layers) == layers
        saved = safetensors.torch.load_file(student / "model.safetensors")
        original = safetensors.torch.load_file(workspace / "wav2vec2" / "model.safetensors")
        assert not torch.equal(saved["encoder.layers.0.attention.q_proj.weight"],
                               original["encoder.layers.0.attention.q_proj.weight"]), "the student was trained"
    assert (records[1][4][0].speat.effect_size != records[2][4][0].speat.effect_size)
    for name in ("distill.png", "distill.csv", "distill.md", "config.yaml"):
        assert (out / name).stat().st_size > 0
    assert (out / "distill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = out / "state" / "step-000000002"  # the students trained together: one state holds both
    assert {"model.safetensors", "model_1.safetensors", "trainer_state.json"} <= {path.name for path in state.iterdir()}
    assert not (out / "student-1-layers" / "state").exists()
    table = (out / "distill.md").read_text()
    assert "SYNTHETIC" not in table  # a custom test on real files, not the demo set
    assert format_d(teacher.speat.effect_size) in next(line for line in table.splitlines() if line.startswith("| tone"))
    assert table.splitlines()[-1].startswith("| held-out loss | ")  # each student's, after the d table
    assert main(["evaluate", str(out / "student-2-layers"), "--tests", str(workspace / "stimuli" / "tone.json"),
                 "--permutations", "20", "--out", str(workspace / "again"), "--no-cache"]) == 0
    assert len(load_records(workspace / "again")) == 2  # the two checkpoints of the 2-layer student
    # what the Space shows of the run (`speat space --results RUN/results`): display names, no path of this machine
    table = build_table(load_records(out / "results"))
    shown = table.frame.astype(str).to_csv() + "".join(model_detail(table, run) for run in set(table.frame["run"]))
    assert str(workspace) not in shown and "/tmp" not in shown
    assert set(table.frame.loc[table.frame["method"] == "distill", "compression"]) == {
        "distilled: 1-layer student of wav2vec2", "distilled: 2-layer student of wav2vec2"}


def saved_weights(out: Path, layers: int, step: int) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(out / f"student-{layers}-layers" / f"checkpoint-{step}" / "model.safetensors")


def effect_sizes(out: Path) -> dict:
    return {(record.test, (record.compression or {}).get("layers"), (record.compression or {}).get("step")):
            record.speat.effect_size for record in load_records(out / "results")}


def assert_same_students(found: Path, expected: Path, steps: tuple[int, ...]) -> None:
    """The students of two runs equal at every step of `steps`, to float tolerance, and so their SpEAT."""
    for layers in (1, 2):
        for step in steps:
            weights, reference = saved_weights(found, layers, step), saved_weights(expected, layers, step)
            assert set(weights) == set(reference)
            for name, tensor in reference.items():
                assert float((weights[name] - tensor).abs().max()) <= 1e-6, (layers, step, name)
    assert effect_sizes(found) == pytest.approx(effect_sizes(expected), abs=1e-6)


def test_students_trained_together_equal_students_trained_one_after_the_other(workspace):
    """The first test's joint run (one teacher forward per batch for both students) against the same command with
    --no-joint: each student trained alone, from the same seed."""
    joint, sequential = workspace / "wav2vec2-run", workspace / "sequential-run"
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(sequential), "--layers", "1,2", "--targets",
                 "1,3", "--max-steps", "4", "--checkpoint-every", "2", "--noise", "synthetic", "--mix-ratio", "0.3",
                 "--no-joint", *options(workspace)]) == 0
    assert (sequential / "student-2-layers" / "state" / "step-000000002" / "trainer_state.json").is_file()
    assert not (sequential / "state").exists()
    assert len(effect_sizes(sequential)) == 5  # the teacher, and two checkpoints of each student
    assert_same_students(joint, sequential, steps=(2, 4))
    assert not torch.equal(saved_weights(joint, 2, 2)["encoder.layers.0.attention.q_proj.weight"],
                           saved_weights(joint, 2, 4)["encoder.layers.0.attention.q_proj.weight"])


def test_a_melhubert_teacher_gives_melhubert_students(workspace):
    out = workspace / "melhubert-run"
    assert main(["distill", f"melhubert:{workspace / 'melhubert.ckpt'}", "--out", str(out), "--layers", "1",
                 "--targets", "2,3", "--max-steps", "3", "--checkpoint-every", "2", *options(workspace)]) == 0
    records = by_student(out)
    assert sorted(records[1]) == [2, 3]
    assert records[1][3][0].model.kind == "melhubert" and records[1][3][0].model.num_layers == 2
    assert records[1][3][0].compression["noise"] is None
    assert (out / "student-1-layers" / "checkpoint-3.ckpt").is_file() and (out / "distill.png").is_file()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--layers", "2,9"], r"--layers 2,9: .* has 3 transformer layers, so 9 is out of range"),
    (["--mix-ratio", "0.5"], "--mix-ratio applies to denoising distillation: give --noise"),
    (["--snr-db", "6"], "--snr-db applies to denoising distillation: give --noise"),
    (["--noise", "synthetic", "--mix-ratio", "0.3", "--snr-db", "6"],
     r"noise.mix_ratio \(--mix-ratio\) and noise.snr_db \(--snr-db\) both set the noise level; give one"),
    (["--noise", "no-such-folder"], "--noise no-such-folder: no such folder"),
    (["--layers", "two"], "--layers must be comma-separated layer numbers, got 'two'"),
    (["--config", "no-such.yaml"], "--config no-such.yaml: no such file"),
])
def test_bad_options_fail_with_one_line_and_write_nothing(workspace, capsys, arguments, message):
    out = workspace / "refused"
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), *options(workspace), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("speat distill: error:")
    assert re.search(message, error), error
    assert not (out / "results").exists() and not (out / "config.yaml").exists()


def test_a_new_run_never_overwrites_one_and_a_resume_keeps_its_settings(workspace, capsys):
    out = workspace / "wav2vec2-run"  # made by the first test
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), *options(workspace)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), "--resume", "--layers", "1,2",
                 "--targets", "1,3", "--max-steps", "8", *options(workspace)]) == 2
    assert "training.max_steps: 4 in the run, 8 now" in capsys.readouterr().err
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), "--resume", "--no-joint",
                 *options(workspace)]) == 2
    assert "joint: True in the run, False now" in capsys.readouterr().err
    other = workspace / "sequential-run" / "student-1-layers" / "state" / "step-000000002"  # another run's state
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), "--resume", str(other), "--layers",
                 "1,2", "--targets", "1,3", "--max-steps", "4", "--checkpoint-every", "2", "--noise", "synthetic",
                 "--mix-ratio", "0.3", *options(workspace)]) == 2
    assert f"--resume {other}: not a state of this run's students (their states are in {out / 'state'})" in \
        capsys.readouterr().err


def test_a_state_saved_with_the_old_one_layer_heads_is_refused_with_one_line(workspace, capsys):
    """A run interrupted before the heads became S3PRL's two-layer MLPs: its 2-layer student's state (step 2) holds
    ``heads.heads.<n>.1.*`` (GELU then one linear layer per target), as such states did. Such runs trained their
    students one after the other, and their config.yaml has no ``joint``: they resume that way."""
    out = workspace / "old-heads"
    shutil.copytree(workspace / "sequential-run", out)  # students of 1 and 2 layers, one after the other, 4 steps
    config = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text("\n".join(line for line in config.splitlines() if not line.startswith("joint:")))
    for finished in (out / "results").glob("student-2-layers-step-4__*.json"):
        finished.unlink()
    shutil.rmtree(out / "student-2-layers" / "checkpoint-4")
    state = out / "student-2-layers" / "state" / "step-000000002"
    weights = safetensors.torch.load_file(state / "model.safetensors")
    heads = {name: tensor for name, tensor in weights.items() if name.startswith("heads.")}
    assert heads, "the state holds the heads"
    old = {name: tensor for name, tensor in weights.items() if name not in heads}
    for target in range(2):
        old[f"heads.heads.{target}.1.weight"] = torch.zeros(32, 32)
        old[f"heads.heads.{target}.1.bias"] = torch.zeros(32)
    safetensors.torch.save_file(old, state / "model.safetensors")
    records = sorted(path.name for path in (out / "results").iterdir())
    assert main(["distill", str(workspace / "wav2vec2"), "--out", str(out), "--resume", "--layers", "1,2",
                 "--targets", "1,3", "--max-steps", "4", "--checkpoint-every", "2", "--noise", "synthetic",
                 "--mix-ratio", "0.3", *options(workspace)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    assert re.fullmatch(rf"speat distill: error: --resume {re.escape(str(state))}: the state holds prediction heads "
                        r"of another layout \(heads\.heads\.0\.1\.bias, .*start a new run with another --out.*",
                        error[0]), error[0]
    assert sorted(path.name for path in (out / "results").iterdir()) == records, "nothing was written"


def _kill_resume_options(workspace: Path) -> list[str]:
    return [str(workspace / "wav2vec2"), "--layers", "1,2", "--targets", "1,3", "--max-steps", "6",
            "--checkpoint-every", "3", "--noise", "synthetic", *options(workspace)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--joint", "--no-joint"])
def test_a_killed_run_resumed_ends_with_the_same_students_as_an_uninterrupted_one(workspace, mode):
    """Killed midway (the joint run after its state of step 3, the sequential one in its second student), resumed,
    against an uninterrupted run with one student after the other."""
    uninterrupted, interrupted = workspace / "uninterrupted", workspace / f"interrupted{mode}"
    if not uninterrupted.exists():  # the reference of both modes
        assert main(["distill", *_kill_resume_options(workspace), "--no-joint", "--out", str(uninterrupted)]) == 0

    command = [sys.executable, "-m", "speat_metric.distill", *_kill_resume_options(workspace), mode, "--out",
               str(interrupted)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    midway = (interrupted / "state" if mode == "--joint" else interrupted / "student-2-layers" / "state") / \
        "step-000000003" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not midway.exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "student-2-layers" / "checkpoint-6").exists(), "the run must be killed before it ends"
    first_student = interrupted / "student-1-layers" / "checkpoint-6" / "model.safetensors"
    assert first_student.exists() == (mode == "--no-joint")
    finished = first_student.stat().st_mtime_ns if first_student.exists() else None

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    if finished is not None:
        assert first_student.stat().st_mtime_ns == finished, "the finished student is not trained again"
    assert len(effect_sizes(uninterrupted)) == 5  # the teacher, and two checkpoints of each student
    assert_same_students(interrupted, uninterrupted, steps=(3, 6))


@pytest.mark.slow
def test_accelerate_launch_on_two_cpu_processes_distils_end_to_end(workspace):
    out = workspace / "two-processes"
    completed = subprocess.run(
        accelerate_launch("-m", "speat_metric.distill", str(workspace / "wav2vec2"), "--out", str(out), "--layers",
                          "1,2", "--targets", "2", "--max-steps", "3", "--checkpoint-every", "2", "--batch-size", "1",
                          *options(workspace)),
        capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    records = by_student(out)
    assert sorted(records[1]) == sorted(records[2]) == [2, 3] and len(records["teacher"][0]) == 1
    state = sorted((out / "state").iterdir())[-1]  # both students, trained together, in one state
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors", "model_1.safetensors"} <= {
        path.name for path in state.iterdir()}
    assert completed.stdout.count("chart:") == 1, "only the main process reports"


class RecordingTracker(GeneralTracker):
    """An accelerate tracker that keeps what it is sent (accelerate's own extension point for trackers)."""

    name = "recording"
    requires_logging_directory = False

    def __init__(self) -> None:
        super().__init__()
        self.configuration: dict = {}
        self.logged: list[tuple[int, dict]] = []

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        self.configuration = dict(values)

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.logged.append((step, dict(values)))


def test_trackers_get_the_settings_each_steps_losses_and_each_checkpoints_d(workspace):
    from speat_metric.distill.config import load_config
    from speat_metric.distill.train import distill

    tracker = RecordingTracker()
    config = load_config(teacher=str(workspace / "wav2vec2"), out=workspace / "tracked", data=str(workspace / "audio"),
                         path=workspace / "tiny.yaml", overrides={
                             "layers": [1], "targets": [2, 3], "training.max_steps": 3, "checkpoint_every": 2,
                             "tracking.tests": [str(workspace / "stimuli" / "tone.json")],
                             "tracking.permutations": 20, "optimizer.warmup_proportion": 0.34})
    summary = distill(config, report_to=[tracker], progress=False)
    assert tracker.configuration["targets"] == "[2, 3]" and tracker.configuration["optimizer/lr"] == 2e-4
    losses = {step: values["student-1/train/loss"] for step, values in tracker.logged
              if "student-1/train/loss" in values}
    assert sorted(losses) == [1, 2, 3] and all(value > 0 for value in losses.values())
    rates = [values["student-1/train/lr"] for step, values in sorted(tracker.logged, key=lambda item: item[0])
             if "student-1/train/lr" in values]
    assert rates == pytest.approx([0.0, 2e-4, 1e-4])  # one warm-up step from 0, then linear decay to 0 at step 3
    assert rates == pytest.approx([learning_rate(step, peak=2e-4, warmup_steps=1, total_steps=3) for step in range(3)])
    key = "student-1/speat/tone/d"
    d = {step: values[key] for step, values in tracker.logged if key in values}
    assert d == pytest.approx({record.compression["step"]: record.speat.effect_size for record in summary.records
                               if record.compression})
