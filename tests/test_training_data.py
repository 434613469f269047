"""Training audio: folders and datasets read undecoded, reproducible crops, bad recordings reported and skipped."""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pyarrow as pa
import pytest
import soundfile
import torch

from speat_metric.training.data import (
    EpochSampler,
    RandomCrops,
    TrainingDataError,
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
