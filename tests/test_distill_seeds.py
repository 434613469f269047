"""Distillation's quality beside bias, and its seeds: every student checkpoint records its distillation loss on
held-out recordings (checked against the loss written out from the saved student, its saved heads and the teacher),
the held-out recordings are never trained on (the run trains exactly as a run on the folder without them), with
--noise the held-out student hears the same noisy crops at every checkpoint, and a 3-seed toy run's chart shows the
across-seed mean and min-max range of d and of the held-out loss, is drawn again from the records, and resumes
without training."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import transformers
from matplotlib.container import BarContainer
from test_distill_parts import save_teacher
from test_pruning_seeds import write_librispeech_folder
from tiny_models import write_tone_test

from speat_metric.cli import main
from speat_metric.distill.noise import NoiseSource
from speat_metric.distill.objective import DistillationBatches
from speat_metric.distill.report import REPLICATE_COLUMNS, replicate_report_rows, report_figure, write_run_report
from speat_metric.training.bias_tracking import HELD_OUT_FILE, HeldOutLoss
from speat_metric.training.checkpoints import REPLICATE_DONE
from speat_metric.training.config import HeldOutConfig
from speat_metric.training.data import RandomCrops, open_training_audio, run_held_out_split, split_held_out
from speat_metric.training.models import load_trainable_encoder
from speat_metric.training.plots import run_records

SEEDS = (0, 1, 2)
TARGETS = (1, 3)
TINY = """
training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: 0, save_state_every: null}
data: {held_out: {fraction: 0.2, seed: 7}}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distill-seeds")
    write_librispeech_folder(root / "audio")  # 5 speakers of 3 recordings: one speaker (3 recordings) held out
    write_tone_test(root / "stimuli")
    save_teacher("wav2vec2", root / "teacher")
    (root / "tiny.yaml").write_text(TINY)
    return root


def _distill(workspace: Path, out: str, *options: str, data: str = "audio", config: str = "tiny.yaml") -> int:
    return main(["distill", str(workspace / "teacher"), "--data", str(workspace / data), "--out", str(workspace / out),
                 "--config", str(workspace / config), "--targets", ",".join(map(str, TARGETS)), "--max-steps", "3",
                 "--checkpoint-every", "2", "--tests", str(workspace / "stimuli" / "tone.json"), "--permutations", "20",
                 "--no-progress", *options])


@pytest.fixture(scope="module")
def seeds_run(workspace: Path) -> Path:
    """Students of 1 and 2 layers, trained together, 3 steps, checkpoints at 2 and 3, for each of 3 seeds."""
    assert _distill(workspace, "run", "--layers", "1,2", "--seeds", ",".join(map(str, SEEDS))) == 0
    return workspace / "run"


def _written_out_loss(student: torch.nn.Module, heads: dict[str, torch.Tensor], teacher: torch.nn.Module,
                      inputs: torch.Tensor) -> float:
    """DistilHuBERT's loss written out: the heads (S3PRL's Linear -> GELU -> SplitLinear) on the student's last
    hidden state; per target, mean |prediction - target| + mean over frames of log(1 + exp(-cosine)); averaged."""
    with torch.no_grad():
        last = student(inputs, output_hidden_states=True).hidden_states[-1].double()
        wanted = teacher(inputs, output_hidden_states=True).hidden_states
    expanded = last @ heads["heads.expand.weight"].double().T + heads["heads.expand.bias"].double()
    hidden = 0.5 * expanded * (1 + torch.erf(expanded / math.sqrt(2)))
    width = last.shape[-1]
    losses = []
    for number, target in enumerate(TARGETS):
        prediction = (hidden[..., number * width:(number + 1) * width] @ heads["heads.split.weight"][number].double()
                      + heads["heads.split.bias"][number].double()).numpy()
        expected = wanted[target].double().numpy()
        cosine = (prediction * expected).sum(-1) / (np.linalg.norm(prediction, axis=-1)
                                                    * np.linalg.norm(expected, axis=-1))
        losses.append(np.abs(prediction - expected).mean() + np.log1p(np.exp(-cosine)).mean())
    return float(np.mean(losses))


def test_every_student_checkpoint_records_a_held_out_loss_equal_to_the_loss_written_out(workspace, seeds_run):
    run = seeds_run / "seed-1"
    records = run_records(run)[None]
    students = {(record.compression["layers"], record.compression["step"]): record for record in records
                if record.compression}
    assert sorted(students) == [(1, 2), (1, 3), (2, 2), (2, 3)]
    assert all(record.compression["held_out_loss"] > 0 for record in students.values())
    assert [record.compression for record in records if not record.compression] == [None]  # the teacher: none
    splits = {json.dumps(record.compression["held_out"], sort_keys=True) for record in students.values()}
    assert len(splits) == 1 and json.loads(splits.pop())["speaker_disjoint"]

    listed = json.loads((run / HELD_OUT_FILE).read_text())
    audio = open_training_audio(workspace / "audio").check_files(min_seconds=0.3, progress=False)
    split = split_held_out(audio, fraction=0.2, max_recordings=200, seed=7)
    assert listed["held_out_recordings"] == [split.held_out.relative_name(index)
                                             for index in range(len(split.held_out))]
    assert len({name.split("/")[0] for name in listed["held_out_recordings"]}) == 1  # one whole speaker
    crops = RandomCrops(split.held_out, crop_seconds=0.5, min_seconds=0.3, seed=7)

    # the 2-layer student of step 2: its checkpoint (no heads) and the run's state of that step (the second model)
    student = transformers.AutoModel.from_pretrained(run / "student-2-layers" / "checkpoint-2").eval()
    state = safetensors.torch.load_file(run / "state" / "step-000000002" / "model_1.safetensors")
    saved = safetensors.torch.load_file(run / "student-2-layers" / "checkpoint-2" / "model.safetensors")
    assert all(torch.equal(state[f"student.{name}"], tensor) for name, tensor in saved.items()), "another student"
    teacher = transformers.Wav2Vec2Model.from_pretrained(workspace / "teacher").eval()
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(workspace / "teacher")
    per_crop = [_written_out_loss(student, state, teacher, extractor(
        crops[(0, index)]["waveform"], sampling_rate=16_000, return_tensors="pt")["input_values"])
        for index in range(len(crops))]
    assert students[2, 2].compression["held_out_loss"] == pytest.approx(np.mean(per_crop), rel=1e-4)


def test_the_held_out_recordings_are_never_trained_on(workspace, seeds_run):
    """Seed 1's 1-layer student equals the student of a run without a held-out split on the folder without the
    held-out recordings: the same data order, crops and steps, so nothing of those recordings reached training."""
    listed = json.loads((seeds_run / "seed-1" / HELD_OUT_FILE).read_text())["held_out_recordings"]
    shutil.copytree(workspace / "audio", workspace / "audio-trained",
                    ignore=lambda directory, names: [name for name in names if (Path(directory) / name).relative_to(
                        workspace / "audio").as_posix() in listed])
    (workspace / "all.yaml").write_text(TINY.replace("fraction: 0.2", "fraction: 0"))
    assert _distill(workspace, "without-held-out", "--layers", "1", "--seed", "1", data="audio-trained",
                    config="all.yaml") == 0
    assert not (workspace / "without-held-out" / HELD_OUT_FILE).exists()
    for step in (2, 3):
        found = safetensors.torch.load_file(seeds_run / "seed-1" / "student-1-layers" / f"checkpoint-{step}" /
                                            "model.safetensors")
        expected = safetensors.torch.load_file(workspace / "without-held-out" / "student-1-layers" /
                                               f"checkpoint-{step}" / "model.safetensors")
        assert set(found) == set(expected)
        for name, tensor in expected.items():
            assert float((found[name] - tensor).abs().max()) <= 1e-6, (step, name)


def test_with_noise_the_held_out_student_hears_the_same_noisy_crops_at_the_set_level(workspace):
    audio = open_training_audio(workspace / "audio").check_files(min_seconds=0.3, progress=False)
    split = split_held_out(audio, fraction=0.2, max_recordings=200, seed=7)
    teacher = load_trainable_encoder(str(workspace / "teacher"))
    held_out = HeldOutLoss(split, crop_seconds=0.5, min_seconds=0.3, batch_size=2,
                           prepare=DistillationBatches(teacher.inputs, NoiseSource.from_setting("synthetic"), 0.2))
    first, again = list(held_out.batches()), list(held_out.batches())
    assert sum(count for count, _ in first) == len(split.held_out)
    for (_, batch), (_, same) in zip(first, again):
        noisy, speech = batch["student"]["input_values"].double(), batch["teacher"]["input_values"].double()
        assert torch.equal(batch["student"]["input_values"], same["student"]["input_values"])  # every checkpoint
        noise = noisy - 0.8 * speech  # (1 - alpha) x speech + alpha x noise at the speech's RMS
        snr = 20 * torch.log10((0.8 * speech).norm(dim=-1) / noise.norm(dim=-1))
        assert snr.numpy() == pytest.approx(20 * math.log10(0.8 / 0.2), abs=1e-3)  # 12.04 dB, each crop


def _bars(axes) -> list[BarContainer]:
    """The bar groups of a matplotlib axes (its containers also list each group's error bars)."""
    return [container for container in axes.containers if isinstance(container, BarContainer)]


def _error_bar_ranges(container) -> list[float]:
    """The bottom and top of each error bar of a matplotlib bar container, one bar after the other."""
    segments = container.errorbar.lines[2][0].get_segments()
    return [float(end[1]) for segment in segments for end in (segment[0], segment[1])]


def test_a_three_seed_run_draws_d_and_the_held_out_loss_with_spread_and_reloads(workspace, seeds_run):
    by_seed = run_records(seeds_run)
    assert sorted(by_seed) == list(SEEDS)
    assert all((seeds_run / f"seed-{seed}" / REPLICATE_DONE).is_file() for seed in SEEDS)
    for seed, records in by_seed.items():
        assert {record.compression["config"]["training"]["seed"] for record in records if record.compression} == {seed}

    with open(seeds_run / "distill.csv") as file:
        reader = csv.DictReader(file)
        table = list(reader)
    assert tuple(reader.fieldnames) == REPLICATE_COLUMNS
    assert [(row["test"], row["model"], row["seeds"]) for row in table] == [
        ("tone", "base", "3"), ("tone", "1 layer", "3"), ("tone", "2 layers", "3")]
    for row in table:
        layers = int(row["layers"]) if row["layers"] else None
        final = [record for records in by_seed.values() for record in records
                 if (record.compression or {}).get("layers") == layers
                 and (layers is None or record.compression["step"] == 3)]
        d = [record.speat.effect_size for record in final]
        assert len(d) == 3 and float(row["d_mean"]) == pytest.approx(np.mean(d))
        assert (float(row["d_min"]), float(row["d_max"])) == pytest.approx((min(d), max(d)))
        assert float(row["d_sd"]) == pytest.approx(np.std(d, ddof=1), abs=1e-12)
        if layers is None:
            assert row["held_out_loss_mean"] == ""  # the teacher has none
            continue
        losses = [record.compression["held_out_loss"] for record in final]
        assert float(row["held_out_loss_mean"]) == pytest.approx(np.mean(losses))
        assert (float(row["held_out_loss_min"]), float(row["held_out_loss_max"])) == pytest.approx(
            (min(losses), max(losses)))
        assert max(losses) > min(losses), "no spread over the seeds"
    assert float(table[2]["d_max"]) > float(table[2]["d_min"]), "the seeds' students differ"
    markdown = (seeds_run / "distill.md").read_text()
    assert "mean over 3 seeds" in markdown and "| held-out loss |" in markdown and "SYNTHETIC" not in markdown

    figure = report_figure(replicate_report_rows(by_seed), replicated=True)
    d_axes, loss_axes = figure.axes
    for container, row in zip(_bars(d_axes), table):  # base, 1 layer, 2 layers: the bar is the mean, its
        assert container[0].get_height() == pytest.approx(float(row["d_mean"]))  # error bar the seeds' range
        assert _error_bar_ranges(container) == pytest.approx([float(row["d_min"]), float(row["d_max"])])
    (losses,) = _bars(loss_axes)
    assert [bar.get_height() for bar in losses] == pytest.approx([float(row["held_out_loss_mean"])
                                                                 for row in table[1:]])
    assert _error_bar_ranges(losses) == pytest.approx([float(row[f"held_out_loss_{end}"]) for row in table[1:]
                                                       for end in ("min", "max")])
    assert loss_axes.get_ylabel() == "distillation loss on held-out recordings"
    assert (seeds_run / "distill.png").read_bytes()[:4] == b"\x89PNG"

    # reloading: the records read again give the same report, and the finished run resumed trains nothing
    before = {name: (seeds_run / name).read_text() for name in ("distill.csv", "distill.md")}
    for name in before:
        (seeds_run / name).unlink()
    write_run_report(seeds_run)
    assert {name: (seeds_run / name).read_text() for name in before} == before
    states = sorted(str(path) for path in seeds_run.glob("seed-*/state/*"))
    assert _distill(workspace, "run", "--layers", "1,2", "--seeds", ",".join(map(str, SEEDS)), "--resume") == 0
    assert {name: (seeds_run / name).read_text() for name in before} == before
    assert sorted(str(path) for path in seeds_run.glob("seed-*/state/*")) == states


def test_a_replicated_run_of_students_one_after_the_other_resumes_a_seed_from_its_students_states(workspace):
    """With --no-joint a seed's states are in its students' directories: a seed without replicate.json (killed
    after its last state) resumes from them, and ends without training again."""
    out = workspace / "sequential"
    assert _distill(workspace, "sequential", "--layers", "1", "--no-joint", "--seeds", "0,1") == 0
    assert not (out / "seed-1" / "state").exists() and (out / "seed-1" / "student-1-layers" / "state").is_dir()
    (out / "seed-1" / REPLICATE_DONE).unlink()
    checkpoint = out / "seed-1" / "student-1-layers" / "checkpoint-3" / "model.safetensors"
    finished = checkpoint.stat().st_mtime_ns
    assert _distill(workspace, "sequential", "--layers", "1", "--no-joint", "--seeds", "0,1", "--resume") == 0
    assert (out / "seed-1" / REPLICATE_DONE).is_file() and checkpoint.stat().st_mtime_ns == finished


def test_a_resumed_run_keeps_the_held_out_split_it_began_with(workspace):
    """A run that began without a split (saved before splits existed, or saved ``"held_out": None`` since) goes on
    without one however often it is resumed; a run with one keeps it, and refuses data that no longer gives it."""
    audio = open_training_audio(workspace / "audio").check_files(min_seconds=0.3, progress=False)
    settings = HeldOutConfig(fraction=0.2, seed=7)
    assert run_held_out_split(audio, settings, resumed_recipe={"students": [1]}) is None
    assert run_held_out_split(audio, settings, resumed_recipe={"students": [1], "held_out": None}) is None
    split = run_held_out_split(audio, settings)
    assert run_held_out_split(audio, settings, resumed_recipe={"held_out": split.description()}).indices == \
        split.indices
    with pytest.raises(ValueError, match=r"the held-out recordings of --data .* differ from those the run began with"):
        run_held_out_split(audio.subset(range(12)), settings, resumed_recipe={"held_out": split.description()})
