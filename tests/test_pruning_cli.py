"""`speat prune` end to end on tiny models, on the CPU: every method with each objective, a few steps each."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import safetensors.torch
import torch
from tiny_models import save_melhubert, save_prunable_model, write_audio_folder, write_tone_test

from speat_metric.adapters import load_encoder
from speat_metric.adapters.pruned import prunable
from speat_metric.cli import main
from speat_metric.results import load_records
from speat_metric.training.slicing import layout_of

TINY = """
training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: 0, save_state_every: null}
objective:
  wav2vec2: {num_negatives: 5, mask_time_length: 4}
  melhubert: {mask_length: 3, kmeans_frames: 400}
"""
WEIGHTS = TINY + """
schedule:
  warmup_steps: 2
  check_every: 2
  plateau_window: 1
  plateau_tolerance: 1000.0   # every check is a plateau: prune at 2 and 4, end at 6
  sparsity: [{increment: 0.25, until: 0.5}]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prune")
    (root / "audio").mkdir()
    write_audio_folder(root / "audio")
    (root / "audio" / "broken.wav").write_bytes(b"RIFF not really")  # reported and skipped
    write_tone_test(root / "stimuli")
    for kind in ("wav2vec2", "hubert", "wavlm", "data2vec-audio"):
        save_prunable_model(kind, root / kind)
    save_melhubert(root / "melhubert.ckpt")
    (root / "tiny.yaml").write_text(TINY)
    (root / "weights.yaml").write_text(WEIGHTS)
    return root


def prune(workspace: Path, method: str, model: str, run: str, *options: str) -> Path:
    out = workspace / run
    config = "weights.yaml" if method == "weights" else "tiny.yaml"
    schedule = [] if method == "weights" else ["--steps-per-prune", "2", "--warmup-steps", "1"]
    code = main(["prune", method, model, "--data", str(workspace / "audio"), "--out", str(out), "--config",
                 str(workspace / config), *schedule, "--tests", str(workspace / "stimuli" / "tone.json"),
                 "--permutations", "20", "--no-progress", *options])
    assert code == 0
    return out


def checkpoint_records(out: Path) -> dict[int, list]:
    by_step: dict[int, list] = {}
    for record in load_records(out / "results"):
        by_step.setdefault(record.compression["step"], []).append(record)
    return by_step


def check_run(out: Path, *, method: str, objective: str, steps: list[int], melhubert: bool = False) -> dict:
    by_step = checkpoint_records(out)
    assert sorted(by_step) == [0, *steps]
    removed = [by_step[step][0].compression["parameters_removed"] for step in sorted(by_step)]
    assert removed[0] == 0 and all(later > earlier for earlier, later in zip(removed, removed[1:]))
    for step in steps:
        record = by_step[step][0]
        compression = record.compression
        assert (compression["method"], compression["objective"], compression["config"]["method"]) == (
            method, objective, method)
        assert compression["parameters"] + compression["parameters_removed"] == compression["base_parameters"]
        assert 0 < compression["sparsity"] < 1 and record.checkpoint == {
            "name": f"checkpoint-{step}" + (".ckpt" if melhubert else ""), "step": step}
        path = out / record.checkpoint["name"]
        encoder = load_encoder(f"melhubert:{path}" if melhubert else str(path))
        layout = layout_of(prunable(encoder.model))
        assert layout.heads_per_layer == compression["heads_per_layer"]
        assert list(layout.ffn_dims) == compression["ffn_dims_per_layer"]
        # structured pruning shrinks the tensors; weight pruning zeroes entries of tensors of the same size
        sized = compression["base_parameters"] if method == "weights" else compression["parameters"]
        assert encoder.description.num_parameters == sized
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "curve.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == [0, *steps] and {row["test"] for row in rows} == {"tone"}
    assert "| tone |" in (out / "curve.md").read_text()
    return by_step


def test_heads_with_wav2vec2s_own_objective(workspace):
    out = prune(workspace, "heads", str(workspace / "wav2vec2"), "heads-native", "--objective", "native",
                "--min-heads", "4")
    by_step = check_run(out, method="heads", objective="native", steps=[3, 5])
    assert by_step[5][0].compression["heads_per_layer"] == [2, 2]
    assert by_step[5][0].compression["pruned_at"] == [1, 3] and by_step[5][0].compression["prune_steps"] == 2
    # speat evaluate RUN_DIR: one result per checkpoint, in step order
    assert main(["evaluate", str(out), "--tests", str(workspace / "stimuli" / "tone.json"), "--permutations", "20",
                 "--no-progress", "--out", str(workspace / "again"), "--format", "json"]) == 0
    assert [record.checkpoint["step"] for record in load_records(workspace / "again")] == [3, 5]


def test_heads_with_the_teacher_objective_on_wavlm(workspace):
    out = prune(workspace, "heads", str(workspace / "wavlm"), "heads-teacher", "--min-heads", "6")
    by_step = check_run(out, method="heads", objective="teacher", steps=[3])
    assert by_step[3][0].compression["heads_per_layer"] == [3, 3]


def test_rows_with_melhuberts_own_objective(workspace):
    out = prune(workspace, "rows", f"melhubert:{workspace / 'melhubert.ckpt'}", "rows-native", "--rows-per-step",
                "16", "--min-rows", "32")
    by_step = check_run(out, method="rows", objective="native", steps=[3, 5], melhubert=True)
    assert by_step[5][0].compression["ffn_dims_per_layer"] == [32, 32]
    assert (out / "kmeans.npz").is_file()


def test_rows_with_the_teacher_objective_on_hubert(workspace):
    out = prune(workspace, "rows", str(workspace / "hubert"), "rows-teacher", "--rows-per-step", "32", "--min-rows",
                "32")
    by_step = check_run(out, method="rows", objective="teacher", steps=[3])
    assert by_step[3][0].compression["ffn_dims_per_layer"] == [32, 32]


def test_weights_with_wav2vec2s_own_objective_saves_the_masks_as_zeros(workspace):
    out = prune(workspace, "weights", str(workspace / "wav2vec2"), "weights-native")
    by_step = check_run(out, method="weights", objective="native", steps=[4, 6])
    for step, sparsity in ((4, 0.25), (6, 0.5)):
        weights = safetensors.torch.load_file(out / f"checkpoint-{step}" / "model.safetensors")
        pruned = [tensor for name, tensor in weights.items() if ".layers." in name and (
            "_proj." in name or "_dense." in name)]
        zeros = sum(int((tensor == 0).sum()) for tensor in pruned)
        total = sum(tensor.numel() for tensor in pruned)
        assert zeros == round(sparsity * total)
        assert by_step[step][0].compression["sparsity"] == pytest.approx(sparsity, abs=1 / total)


def test_weights_with_the_teacher_objective_on_data2vec_audio(workspace):
    out = prune(workspace, "weights", str(workspace / "data2vec-audio"), "weights-teacher", "--max-steps", "3")
    check_run(out, method="weights", objective="teacher", steps=[3])


def test_errors_before_any_training(workspace, capsys):
    common = ["--data", str(workspace / "audio"), "--config", str(workspace / "tiny.yaml"), "--tests",
              str(workspace / "stimuli" / "tone.json"), "--rows-per-step", "16", "--min-rows", "32"]
    hubert = str(workspace / "hubert")
    assert main(["prune", "heads", hubert, "--objective", "native", "--out", str(workspace / "e1"), "--min-heads",
                 "2", *common[:6]]) == 2
    assert "--objective native is available for wav2vec2 and MelHuBERT, not hubert" in capsys.readouterr().err
    assert main(["prune", "rows", "mfcc", "--out", str(workspace / "e2"), *common]) == 2
    assert "which speat prune cannot train" in capsys.readouterr().err
    assert main(["prune", "rows", hubert, "--out", str(workspace / "e3"), *common, "--tests", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["prune", "rows", hubert, "--out", str(workspace / "e4"), "--report-to", "tensorboard", *common]) == 2
    assert "--report-to tensorboard: the tensorboard package is not installed" in capsys.readouterr().err
    assert main(["prune", "rows", hubert, "--out", str(workspace / "e5"), *common, "--data",
                 str(workspace / "stimuli" / "tone.json")]) == 2
    assert "is a file; give a folder of audio files or a datasets dataset" in capsys.readouterr().err
    (workspace / "e6" / "state" / "step-000000004").mkdir(parents=True)
    (workspace / "e6" / "state" / "step-000000004" / "trainer_state.json").write_text("{}")
    assert main(["prune", "rows", hubert, "--out", str(workspace / "e6"), *common]) == 2
    assert "already holds a run (saved states up to step-000000004); pass --resume" in capsys.readouterr().err
    assert not list(workspace.glob("e*/checkpoint-*")) and not list(workspace.glob("e[1-5]/state"))


def test_the_unpruned_model_is_untouched(workspace):
    before = safetensors.torch.load_file(workspace / "wav2vec2" / "model.safetensors")
    assert all(tensor.dtype == torch.float32 for tensor in before.values())
    assert before["encoder.layers.0.attention.q_proj.weight"].shape == (32, 32)
