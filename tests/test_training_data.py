"""Training audio: folders and datasets read undecoded, reproducible crops, bad recordings reported and skipped."""

from __future__ import annotations

import logging
import os

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile
import torch

from speat_metric.training.config import ConfigError, TrainingConfig, check_training
from speat_metric.training.data import (
    EpochSampler,
    RandomCrops,
    TrainingDataError,
    default_num_workers,
    make_dataloader,
    open_training_audio,
)


def _tone(path, seconds, rate, frequency=220.0, fmt=None):
    time = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32), rate, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "speech"
    (root / "nested").mkdir(parents=True)
    _tone(root / "a.wav", 1.0, 16_000)
    _tone(root / "nested" / "b.FLAC", 1.2, 44_100, 330.0, fmt="FLAC")
    _tone(root / "c.mp3", 1.5, 22_050, 440.0, fmt="MP3")
    (root / "notes.txt").write_text("not audio")
    return root


def test_a_folder_gives_every_audio_file_at_16_khz_whatever_its_rate(folder):
    audio = open_training_audio(folder)
    assert [name.removeprefix(str(folder)) for name in map(audio.name, range(len(audio)))] == [
        "/a.wav", "/c.mp3", "/nested/b.FLAC"]
    assert len(audio.read(2)) == pytest.approx(1.2 * 16_000, abs=2)
    assert audio.read(0).dtype == np.float32


def test_bad_and_short_files_are_reported_up_front_and_dropped(folder, caplog):
    (folder / "broken.wav").write_bytes(b"RIFF....WAVE")
    _tone(folder / "short.wav", 0.1, 16_000)
    with caplog.at_level(logging.WARNING):
        checked = open_training_audio(folder).check_files(min_seconds=0.5, progress=False)
    assert len(checked) == 3
    assert "skipping 2 of 5 training files" in caplog.text
    assert "broken.wav (unreadable" in caplog.text and "short.wav (0.10 s, shorter than 0.5 s)" in caplog.text
    with pytest.raises(TrainingDataError, match="none of its 5 audio files is usable"):
        open_training_audio(folder).check_files(min_seconds=10, progress=False)


def test_missing_or_empty_data_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match="has no .wav, .flac, .mp3 files"):
        open_training_audio(tmp_path / "empty")
    with pytest.raises(TrainingDataError, match="no such folder"):
        open_training_audio(tmp_path / "absent")
    for relative in ("absent/", "absent/sub/", "absent"):  # none of them a Hub dataset id owner/name
        with pytest.raises(TrainingDataError, match=f"--data {relative}: no such folder"):
            open_training_audio(relative)


def test_crops_are_fixed_length_and_reproducible_from_seed_epoch_and_index(folder):
    crops = RandomCrops(open_training_audio(folder), crop_seconds=0.5, min_seconds=0.25, seed=3)
    first = crops[(0, 1)]["waveform"]
    again = RandomCrops(open_training_audio(folder), crop_seconds=0.5, min_seconds=0.25, seed=3)[(0, 1)]["waveform"]
    assert first.shape == (8000,) and np.array_equal(first, again)
    assert not np.array_equal(first, crops[(1, 1)]["waveform"]), "another epoch, another crop"
    whole = RandomCrops(open_training_audio(folder), crop_seconds=5.0, min_seconds=0.25, seed=3)[(0, 0)]["waveform"]
    assert len(whole) == 16_000, "a recording shorter than the crop is used whole"


def test_a_recording_that_fails_to_decode_during_training_is_skipped_once(folder, caplog):
    data = (folder / "a.wav").read_bytes()
    (folder / "a.wav").write_bytes(data[: len(data) // 2])  # truncated: the header reads, the samples do not
    crops = RandomCrops(open_training_audio(folder), crop_seconds=0.5, min_seconds=0.25, seed=0)
    with caplog.at_level(logging.WARNING):
        item = crops[(0, 0)]
        crops[(1, 0)]
    assert item["key"] == (0, 0) and len(item["waveform"]) == 8000  # the next recording stands in
    assert caplog.text.count("skipping training recording") == 1 and "a.wav" in caplog.text


def test_the_sampler_covers_every_recording_once_per_epoch_in_a_seeded_order():
    sampler = EpochSampler(10, seed=1)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(index for _, index in epoch0) == list(range(10)) and {epoch for epoch, _ in epoch1} == {1}
    assert [index for _, index in epoch0] != [index for _, index in epoch1]
    assert epoch0 == list(EpochSampler(10, seed=1))


def audio_dataset(column: str, values: list[dict], **other: list) -> datasets.Dataset:
    """A dataset with a decoding Audio column, built from Arrow (datasets 5 encodes audio only with torchcodec)."""
    features = datasets.Features({column: datasets.Audio(), **{name: datasets.Value("string") for name in other}})
    rows = [{column: value, **{name: items[index] for name, items in other.items()}}
            for index, value in enumerate(values)]
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    return datasets.Dataset(datasets.table.InMemoryTable(table), info=datasets.DatasetInfo(features=features))


def test_a_datasets_audio_column_is_read_undecoded_from_memory_disk_and_splits(folder, tmp_path):
    dataset = audio_dataset("speech", [{"path": str(folder / "a.wav"), "bytes": None},
                                       {"path": str(folder / "c.mp3"), "bytes": None}], text=["x", "y"])
    from_memory = open_training_audio(dataset)
    assert len(from_memory) == 2 and len(from_memory.read(1)) == pytest.approx(1.5 * 16_000, abs=2)
    embedded = audio_dataset("audio", [{"bytes": (folder / "a.wav").read_bytes(), "path": "a.wav"}])
    datasets.DatasetDict({"train": dataset, "extra": dataset}).save_to_disk(tmp_path / "saved")
    embedded.save_to_disk(tmp_path / "embedded")
    assert len(open_training_audio(tmp_path / "saved", split="train+extra")) == 4
    assert len(open_training_audio(tmp_path / "embedded").read(0)) == 16_000
    with pytest.raises(TrainingDataError, match="has splits train, extra, not dev"):
        open_training_audio(tmp_path / "saved", split="dev")
    with pytest.raises(TrainingDataError, match="no audio columns"):
        open_training_audio(datasets.Dataset.from_dict({"text": ["x"]}))
    with pytest.raises(TrainingDataError, match="--audio-column 'voice' is not a column"):
        open_training_audio(dataset, audio_column="voice")


def test_an_unreachable_hub_dataset_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(TrainingDataError, match=r"--data someone/no-such-set: could not load the dataset") as raised:
        open_training_audio("someone/no-such-set")
    assert "\n" not in str(raised.value)


def test_batches_are_cut_to_their_shortest_crop_and_prepared_with_a_seeded_generator(folder):
    seen = []

    def prepare(waveforms, generator):
        seen.append(generator.integers(1 << 30))
        return {"audio": torch.from_numpy(np.stack(waveforms))}

    crops = RandomCrops(open_training_audio(folder), crop_seconds=1.3, min_seconds=0.25, seed=0)
    loader = make_dataloader(crops, batch_size=3, prepare=prepare)
    batch = next(iter(loader))["audio"]
    assert batch.shape == (3, 16_000), "cut to the 1 s recording"
    again = next(iter(make_dataloader(crops, batch_size=3, prepare=prepare)))["audio"]
    assert torch.equal(batch, again) and seen[0] == seen[1]
    state = torch.random.get_rng_state()
    iter(loader)
    assert torch.equal(state, torch.random.get_rng_state()), "the dataloader must not draw from torch's generator"
    with pytest.raises(TrainingDataError, match="has 3 usable recordings, fewer than one batch of 2 on each of 2"):
        make_dataloader(crops, batch_size=2, prepare=prepare, num_processes=2)


def _batches(sampler: EpochSampler, batch_size: int, *, drop_last: bool) -> list[list[int]]:
    """The batches of recording indices a dataloader makes of `sampler`'s keys."""
    batching = torch.utils.data.BatchSampler(sampler, batch_size, drop_last=drop_last)
    return [[index for _, index in batch] for batch in batching]


def _audio_kept(batches: list[list[int]], crop_lengths: np.ndarray) -> tuple[float, float]:
    """Of the crops' audio (nominal), the share a batch keeps when cut to its shortest crop: over the epoch, and the
    mean over batches."""
    kept = np.array([len(batch) * crop_lengths[batch].min() for batch in batches], dtype=float)
    nominal = np.array([crop_lengths[batch].sum() for batch in batches], dtype=float)
    return kept.sum() / nominal.sum(), float(np.mean(kept / nominal))


def test_length_buckets_keep_the_audio_that_random_batches_cut_away():
    # LibriSpeech-like: 95% of utterances 10-35 s (longer than the 15.625 s crop), 5% short ones of 2-8 s.
    rng = np.random.default_rng(7)
    size, batch_size, crop = 1_010, 24, round(15.625 * 16_000)  # 1,010: an incomplete last batch
    seconds = np.where(rng.random(size) < 0.05, rng.uniform(2, 8, size), rng.uniform(10, 35, size))
    crop_lengths = np.minimum(np.round(seconds * 16_000).astype(int), crop)
    bucketed = EpochSampler(size, seed=3, lengths=crop_lengths, batch_size=batch_size)
    epoch0 = _batches(bucketed, batch_size, drop_last=False)
    overall, per_batch = _audio_kept(epoch0, crop_lengths)
    assert overall >= 0.95 and per_batch >= 0.95, (overall, per_batch)
    random_overall, random_per_batch = _audio_kept(_batches(EpochSampler(size, seed=3), batch_size, drop_last=True),
                                                   crop_lengths)
    assert random_overall < 0.7 and random_per_batch < 0.7, (random_overall, random_per_batch)
    # Every recording once per epoch, the incomplete batch last; the seed repeats the order, an epoch changes it.
    assert sorted(index for batch in epoch0 for index in batch) == list(range(size))
    assert [len(batch) for batch in epoch0] == [batch_size] * (size // batch_size) + [size % batch_size]
    assert epoch0 == _batches(EpochSampler(size, seed=3, lengths=crop_lengths, batch_size=batch_size), batch_size,
                              drop_last=False)
    bucketed.set_epoch(1)
    epoch1 = _batches(bucketed, batch_size, drop_last=False)
    assert epoch1 != epoch0 and sorted(index for batch in epoch1 for index in batch) == list(range(size))
    long_batches = [set(batch) for batch in epoch0 if crop_lengths[batch].min() == crop]
    assert long_batches and not all(set(batch) in long_batches for batch in epoch1), "new companions each epoch"
    with pytest.raises(ValueError, match="3 lengths for 4 recordings"):
        EpochSampler(4, seed=0, lengths=[1, 2, 3], batch_size=2)


def _stack_with_noise(waveforms, generator):
    """A recipe's batch function: the crops stacked, and a draw from the batch's generator (like mask positions)."""
    return {"audio": torch.from_numpy(np.stack(waveforms)), "draw": torch.from_numpy(generator.random(3))}


@pytest.fixture
def uneven_folder(tmp_path):
    """Twelve recordings: four of 0.6 s and eight of 1.2 s to 1.6 s, interleaved in name order."""
    root = tmp_path / "uneven"
    root.mkdir()
    for index in range(12):
        seconds = 0.6 if index % 3 == 0 else 1.2 + 0.1 * (index % 5)
        _tone(root / f"{index:02d}.wav", seconds, 16_000, 200.0 + 20 * index)
    return root


def test_the_dataloader_batches_recordings_of_similar_length_and_sees_each_once(uneven_folder):
    audio = open_training_audio(uneven_folder).check_files(min_seconds=0.25, progress=False)
    assert audio.lengths == [len(soundfile.read(name)[0]) for name in audio.items]
    crops = RandomCrops(audio, crop_seconds=1.0, min_seconds=0.25, seed=0)
    loader = make_dataloader(crops, batch_size=4, prepare=_stack_with_noise)
    epochs = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        epochs.append([tuple(batch["audio"].shape) for batch in loader])
    # Eight whole 1 s crops in two batches, the four 0.6 s recordings in the third: nothing cut.
    assert sorted(epochs[0]) == sorted(epochs[1]) == [(4, 9_600), (4, 16_000), (4, 16_000)]
    assert epochs[0] != epochs[1], "the batches' order changes with the epoch"
    assert sorted(index for _, index in loader.sampler) == list(range(12))
    random_batches = make_dataloader(RandomCrops(open_training_audio(uneven_folder), crop_seconds=1.0,
                                                 min_seconds=0.25, seed=0), batch_size=4, prepare=_stack_with_noise)
    nominal = 8 * 16_000 + 4 * 9_600
    assert sum(batch["audio"].numel() for batch in random_batches) < nominal, "random batches cut long crops"


def test_workers_give_the_batches_of_the_main_process(uneven_folder):
    audio = open_training_audio(uneven_folder).check_files(min_seconds=0.25, progress=False)
    crops = RandomCrops(audio, crop_seconds=1.0, min_seconds=0.25, seed=5)
    epochs = {}
    for workers in (0, 1):
        loader = make_dataloader(crops, batch_size=3, prepare=_stack_with_noise, num_workers=workers)
        assert loader.pin_memory == torch.cuda.is_available()
        epochs[workers] = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            epochs[workers] += list(loader)
    assert len(epochs[0]) == 8 and {batch["audio"].shape[0] for batch in epochs[0]} == {3}
    for main, worker in zip(epochs[0], epochs[1], strict=True):
        assert torch.equal(main["audio"], worker["audio"]) and torch.equal(main["draw"], worker["draw"])


def test_auto_workers_leave_a_core_to_each_training_process(uneven_folder, monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert 0 <= default_num_workers() <= min(max(cores - 1, 0), 8)
    assert (default_num_workers() > 0) == (cores > 2), "a worker only where a core is left besides the step's two"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))  # one process per core: no core left for workers
    assert default_num_workers(num_processes=1) == 0
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert default_num_workers(2) <= default_num_workers(1), "two processes share the cores"
    crops = RandomCrops(open_training_audio(uneven_folder), crop_seconds=1.0, min_seconds=0.25, seed=0)
    assert make_dataloader(crops, batch_size=2, prepare=_stack_with_noise, num_workers="auto").num_workers == (
        default_num_workers())
    with pytest.raises(ValueError, match="num_workers must be a whole number >= 0 or 'auto', got 'many'"):
        make_dataloader(crops, batch_size=2, prepare=_stack_with_noise, num_workers="many")
    check_training(TrainingConfig(num_workers="auto"))
    with pytest.raises(ConfigError, match=r"training.num_workers \(a number or auto\) must be a non-negative"):
        check_training(TrainingConfig(num_workers=-1))


def test_a_datasets_rows_are_measured_and_bad_rows_dropped_up_front(folder, caplog):
    dataset = audio_dataset("speech", [{"bytes": (folder / "a.wav").read_bytes(), "path": "a.wav"},
                                       {"bytes": b"RIFF....WAVE", "path": "broken.wav"},
                                       {"path": str(folder / "c.mp3"), "bytes": None}])
    with caplog.at_level(logging.WARNING):
        checked = open_training_audio(dataset).check_files(min_seconds=0.5, progress=False)
    assert "skipping 1 of 3 training rows" in caplog.text and "row 1 (unreadable" in caplog.text
    assert len(checked) == 2 and len(checked.read(1)) == pytest.approx(1.5 * 16_000, abs=2)
    assert checked.lengths[0] == 16_000 and checked.lengths[1] == pytest.approx(1.5 * 16_000, abs=1_200)
