"""Quality beside bias, and seeds: a held-out split that is speaker-disjoint and never trained on, its loss recorded
at every checkpoint (checked against an independent recomputation), and a 3-seed toy run whose curve shows the
across-seed mean and spread of d and of the held-out loss, and is drawn again from the run's records."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import transformers
from test_training_data import audio_dataset
from tiny_models import save_prunable_model, write_tone_test

from speat_metric.adapters import checkpoint_series
from speat_metric.adapters.pruned import load_pruned_model
from speat_metric.cli import main
from speat_metric.training.bias_tracking import HELD_OUT_FILE
from speat_metric.training.checkpoints import REPLICATE_DONE
from speat_metric.training.data import EpochSampler, RandomCrops, open_training_audio, split_held_out
from speat_metric.training.plots import (
    REPLICATE_COLUMNS,
    curve_rows,
    replicate_figure,
    replicate_rows,
    run_records,
    write_run_curve,
)

SEEDS = (0, 1, 2)
TINY = """
training: {batch_size: 2, crop_seconds: 0.5, min_seconds: 0.3, num_workers: 0, save_state_every: null}
data: {held_out: {fraction: 0.2, seed: 7}}
"""


def write_librispeech_folder(root: Path, *, speakers: int = 5, utterances: int = 3) -> Path:
    """Noisy tones laid out as LibriSpeech (SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTTERANCE.flac), 16 kHz."""
    rng = np.random.default_rng(0)
    for speaker in range(100, 100 + speakers):
        chapter = root / str(speaker) / "7"
        chapter.mkdir(parents=True)
        for utterance in range(utterances):
            time = np.arange(int((0.6 + 0.05 * utterance) * 16_000)) / 16_000
            noise = 0.05 * rng.standard_normal(len(time))
            wave = 0.3 * np.sin(2 * np.pi * (2 * speaker + 7 * utterance) * time) + noise
            soundfile.write(chapter / f"{speaker}-7-{utterance:04d}.flac", wave.astype(np.float32), 16_000)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seeds")
    write_librispeech_folder(root / "audio")
    write_tone_test(root / "stimuli")
    save_prunable_model("hubert", root / "hubert")
    (root / "tiny.yaml").write_text(TINY)
    return root


def _prune(workspace: Path, out: str, *options: str) -> int:
    return main(["prune", "heads", str(workspace / "hubert"), "--data", str(workspace / "audio"), "--out",
                 str(workspace / out), "--config", str(workspace / "tiny.yaml"), "--objective", "teacher",
                 "--steps-per-prune", "1", "--warmup-steps", "1", "--min-heads", "4", "--tests",
                 str(workspace / "stimuli" / "tone.json"), "--permutations", "20", "--no-progress", *options])


@pytest.fixture(scope="module")
def seeds_run(workspace: Path) -> Path:
    """The 3-seed toy run: heads pruned at steps 1 and 2, the end at 3; checkpoints at 0 (unpruned), 2 and 3."""
    assert _prune(workspace, "run", "--seeds", ",".join(map(str, SEEDS))) == 0
    return workspace / "run"


def test_the_held_out_split_is_speaker_disjoint_and_never_trained_on(workspace, tmp_path):
    audio = open_training_audio(workspace / "audio").check_files(min_seconds=0.3, progress=False)
    speakers = audio.speakers()
    assert speakers == [str(speaker) for speaker in range(100, 105) for _ in range(3)]  # from the folder names
    split = split_held_out(audio, fraction=0.3, max_recordings=100, seed=7)
    held = set(split.indices)
    assert len(held) >= round(0.3 * len(audio)) and split.speakers is not None
    assert {speakers[index] for index in held} == set(split.speakers)
    assert not {speakers[index] for index in held} & {speakers[index] for index in range(len(audio)) if
                                                       index not in held}, "a speaker on both sides"
    names = [audio.name(index) for index in range(len(audio))]
    assert [split.held_out.name(index) for index in range(len(split.held_out))] == [names[index] for index in
                                                                                   sorted(held)]
    # every key the training sampler gives, over several epochs, is a training recording
    sampler = EpochSampler(len(split.train), seed=3, lengths=split.train.lengths, batch_size=2)
    trained = set()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        trained |= {split.train.name(index) for _, index in sampler}
    assert trained == set(names) - {names[index] for index in held}
    assert split_held_out(audio, fraction=0.3, max_recordings=100, seed=7).indices == split.indices  # seeded
    assert split_held_out(audio, fraction=0.0, max_recordings=100, seed=7) is None

    # a dataset's speaker column, and a flat folder (speakers unknown: recordings one by one)
    dataset = audio_dataset("audio", [{"path": name, "bytes": None} for name in names],
                            speaker_id=[f"s{index % 4}" for index in range(len(names))])
    rows = open_training_audio(dataset).check_files(min_seconds=0.3, progress=False)
    by_rows = split_held_out(rows, fraction=0.2, max_recordings=100, seed=1)
    held_speakers = {f"s{index % 4}" for index in by_rows.indices}
    assert held_speakers == set(by_rows.speakers) and set(by_rows.train.speakers()).isdisjoint(held_speakers)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in names[:6]:
        (flat / Path(name).name).write_bytes(Path(name).read_bytes())
    loose = split_held_out(open_training_audio(flat).check_files(min_seconds=0.3, progress=False), fraction=0.2,
                           max_recordings=100, seed=0)
    assert loose.speakers is None and loose.description()["speaker_disjoint"] is False and len(loose.indices) == 1
    with pytest.raises(ValueError, match=r"takes 1 of its 2 speakers, 3 of 6 recordings: too few left"):
        split_held_out(open_training_audio(dataset.select(range(6)).map(
            lambda row, index: {"speaker_id": f"s{index // 3}"}, with_indices=True)).check_files(
            min_seconds=0.3, progress=False), fraction=0.1, max_recordings=100, seed=0)


def _teacher_loss(student: torch.nn.Module, teacher: torch.nn.Module, inputs: torch.Tensor) -> float:
    """The teacher objective written out: mean over layers of mean |s - t| + mean over frames (1 - cos(s, t))."""
    with torch.no_grad():
        ours = student(inputs, output_hidden_states=True).hidden_states
        theirs = teacher(inputs, output_hidden_states=True).hidden_states
    losses = []
    for s, t in zip(ours, theirs):
        s, t = s.double(), t.double()
        cosine = (s * t).sum(-1) / (s.norm(dim=-1) * t.norm(dim=-1))
        losses.append(float((s - t).abs().mean() + (1 - cosine).mean()))
    return float(np.mean(losses))


def test_the_held_out_loss_equals_an_independent_recomputation_at_a_saved_checkpoint(workspace, seeds_run):
    run = seeds_run / "seed-1"
    listed = json.loads((run / HELD_OUT_FILE).read_text())
    audio = open_training_audio(workspace / "audio").check_files(min_seconds=0.3, progress=False)
    split = split_held_out(audio, fraction=0.2, max_recordings=200, seed=7)
    assert listed["held_out_recordings"] == [split.held_out.relative_name(index)
                                             for index in range(len(split.held_out))]
    crops = RandomCrops(split.held_out, crop_seconds=0.5, min_seconds=0.3, seed=7)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(workspace / "hubert")
    teacher = transformers.HubertModel.from_pretrained(workspace / "hubert").eval()
    records = {record.compression["step"]: record for record in run_records(run)[None]}
    assert sorted(records) == [0, 2, 3]
    for step in (2, 3):
        student = load_pruned_model(run / f"checkpoint-{step}").eval()
        assert sum(map(len, student.config.speat_pruning["heads"])) < 8  # pruned
        per_crop = [_teacher_loss(student, teacher, extractor(crops[(0, index)]["waveform"], sampling_rate=16_000,
                                                              return_tensors="pt")["input_values"])
                    for index in range(len(crops))]
        assert records[step].compression["held_out_loss"] == pytest.approx(np.mean(per_crop), rel=1e-4)
    assert records[0].compression["held_out_loss"] == pytest.approx(0.0, abs=1e-6)  # the unpruned model is its teacher


def test_a_three_seed_run_draws_d_and_the_held_out_loss_with_spread_and_reloads(seeds_run):
    by_seed = run_records(seeds_run)
    assert sorted(by_seed) == list(SEEDS) and all((seeds_run / f"seed-{seed}" / REPLICATE_DONE).is_file()
                                                  for seed in SEEDS)
    for seed, records in by_seed.items():
        assert {record.compression["config"]["training"]["seed"] for record in records} == {seed}
        # each seed is an ordinary run: speat evaluate RUN_DIR/seed-<s> reads its checkpoints
        series = checkpoint_series(str(seeds_run / f"seed-{seed}"))
        assert [entry["name"] for _, entry in series] == ["checkpoint-2", "checkpoint-3"]
    # and speat evaluate RUN_DIR reads every seed's checkpoints, seed by seed
    assert [entry["name"] for _, entry in checkpoint_series(str(seeds_run))] == [
        f"seed-{seed}/checkpoint-{step}" for seed in SEEDS for step in (2, 3)]
    splits = {json.dumps(record.compression["held_out"], sort_keys=True) for records in by_seed.values()
              for record in records}
    assert len(splits) == 1 and json.loads(splits.pop())["speaker_disjoint"]  # every seed: the same held-out crops

    with open(seeds_run / "curve.csv") as file:
        reader = csv.DictReader(file)
        table = list(reader)
    assert tuple(reader.fieldnames) == REPLICATE_COLUMNS
    assert [(row["prune_steps"], row["seeds"]) for row in table] == [("0", "3"), ("1", "3"), ("2", "3")]
    for row in table:
        steps = [record for records in by_seed.values() for record in records
                 if record.compression["prune_steps"] == int(row["prune_steps"])]
        d = [record.speat.effect_size for record in steps]
        losses = [record.compression["held_out_loss"] for record in steps]
        assert float(row["d_mean"]) == pytest.approx(np.mean(d)) and float(row["d_min"]) == pytest.approx(min(d))
        assert float(row["held_out_loss_max"]) == pytest.approx(max(losses))
        assert float(row["held_out_loss_sd"]) == pytest.approx(np.std(losses, ddof=1), abs=1e-12)
    trained = [row for row in table if row["prune_steps"] != "0"]
    assert all(float(row["held_out_loss_max"]) > float(row["held_out_loss_min"]) for row in trained), "no spread"
    markdown = (seeds_run / "curve.md").read_text()
    assert "| tone | 3 |" in markdown and "mean 95% CI width" in markdown and "SYNTHETIC" not in markdown

    rows = replicate_rows({seed: curve_rows(records) for seed, records in by_seed.items()})
    figure = replicate_figure(rows)
    d_axes, loss_axes = figure.axes
    assert len(d_axes.collections) == 1 and len(loss_axes.collections) == 1  # a min-max band in each panel
    assert loss_axes.get_ylabel().startswith("objective's loss on held-out")
    assert (seeds_run / "curve.png").read_bytes()[:4] == b"\x89PNG"

    # reloading: the run's records read again give the same curve, and a resumed finished run trains nothing
    before = (seeds_run / "curve.csv").read_text()
    (seeds_run / "curve.csv").unlink()
    write_run_curve(seeds_run)
    assert (seeds_run / "curve.csv").read_text() == before
    states = sorted(str(path) for path in seeds_run.glob("seed-*/state/*"))
    assert _prune(seeds_run.parent, "run", "--seeds", "0,1,2", "--resume") == 0  # the same command, resumed
    assert (seeds_run / "curve.csv").read_text() == before
    assert sorted(str(path) for path in seeds_run.glob("seed-*/state/*")) == states


@pytest.mark.parametrize(("seeds", "message"), [
    ("3", r"--seeds needs at least two seeds for replicates, got \[3\]; use --seed for one run"),
    ("0,0", r"--seeds lists a seed twice \(\[0, 0\]\)"),
    ("0,x", r"--seeds must be comma-separated seed numbers, got '0,x'"),
    ("-1,2", r"--seeds must be whole numbers >= 0, got \[-1, 2\]"),
    (",", r"--seeds must be whole numbers >= 0, got \[','\]"),
])
def test_bad_seeds_are_one_line_errors_before_any_work(workspace, capsys, seeds, message):
    assert _prune(workspace, "bad", f"--seeds={seeds}") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and re.search(message, error), error
    assert not (workspace / "bad").exists()


def test_seeds_and_seed_together_are_refused(workspace, capsys):
    assert _prune(workspace, "bad", "--seed", "1", "--seeds", "0,1") == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("--seed 1 and --seeds 0,1: give one (--seeds runs one run per seed)"), error
