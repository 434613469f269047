"""Training audio: recordings from a folder or a ``datasets`` dataset, cut into reproducible fixed-length crops.

`open_training_audio` reads ``--data`` (a folder of audio at any rate, or a dataset read undecoded); `RandomCrops`
draws one crop per recording and epoch from ``(seed, epoch, index)`` alone and replaces an unusable recording by the
next usable one; `make_dataloader` batches the crops. docs/pruning.md ("Training audio") tells more.

Example:
    >>> import tempfile, soundfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "a.wav", np.zeros(24_000, np.float32), 24_000)
    >>> audio = open_training_audio(folder)
    >>> crops = RandomCrops(audio, crop_seconds=0.5, min_seconds=0.25, seed=0)
    >>> len(audio), crops[(0, 0)]["waveform"].shape
    (1, (8000,))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speat_metric.adapters.preflight import first_line
from speat_metric.audio import DEFAULT_SAMPLING_RATE, AudioDecodeError, load_audio
from speat_metric.progress import ProgressBar

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")
SAMPLING_RATE = DEFAULT_SAMPLING_RATE


class TrainingDataError(ValueError):
    """The training data cannot be used; the message names the data and what to do."""


class TrainingAudio:
    """The recordings of a training set (made by `open_training_audio`), undecoded until `read`: audio files, or (with
    `column`) a dataset's rows. `name` says what to call one in messages. Picklable, for dataloader workers."""

    def __init__(self, description: str, items: Sequence[Any], column: str | None = None) -> None:
        self.description = description
        self.items = items
        self.column = column

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        return self.items[index] if self.column is None else f"{self.description} row {index}"

    def read(self, index: int) -> np.ndarray:
        """Decode recording `index` to mono float32 at 16 kHz (AudioDecodeError or OSError when it cannot be)."""
        source = self.items[index]
        if self.column is not None:
            value = source[self.column]
            source = (value.get("bytes") or value.get("path")) if isinstance(value, Mapping) else value
            if not source:
                raise AudioDecodeError(f"{self.name(index)}: the audio column holds neither bytes nor a path")
        return load_audio(source, sampling_rate=SAMPLING_RATE, name=self.name(index))

    def check_files(self, *, min_seconds: float, progress: bool = True) -> TrainingAudio:
        """For a folder: read every file's header, report the unreadable and the too short, and return this set
        without them (`TrainingDataError` when none is left). A dataset's bad rows are skipped during training.
        """
        if self.column is not None:
            return self
        import soundfile

        kept, problems = [], []
        with ProgressBar(len(self), unit="file", desc="checking training audio", enabled=progress) as bar:
            for name in self.items:
                try:
                    info = soundfile.info(name)
                    seconds = info.frames / info.samplerate if info.samplerate else 0.0
                except (RuntimeError, OSError) as error:  # soundfile's LibsndfileError is a RuntimeError
                    problems.append(f"{name} (unreadable: {first_line(error)})")
                else:
                    if seconds < min_seconds:
                        problems.append(f"{name} ({seconds:.2f} s, shorter than {min_seconds:g} s)")
                    else:
                        kept.append(name)
                bar.advance()
        if problems:
            shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
            logger.warning("skipping %d of %d training files: %s", len(problems), len(self), shown)
        if not kept:
            raise TrainingDataError(f"--data {self.description}: none of its {len(self)} audio files is usable "
                                    f"({problems[0] if problems else 'no files'})")
        return TrainingAudio(self.description, kept)


def open_training_audio(data: str | Path | Any, *, audio_column: str | None = None, config: str | None = None,
                        split: str = "train", revision: str | None = None) -> TrainingAudio:
    """The recordings of ``--data``: a folder of audio files, a ``save_to_disk`` dataset folder, a Hub dataset id, or a
    ``datasets.Dataset``.

    `audio_column` defaults to the one column of ``Audio`` type; `config`, `split` and `revision` choose a Hub
    dataset's part (``+`` joins several splits: ``train.clean.100+train.other.500``), `split` also a ``DatasetDict``'s.
    """
    import datasets

    if isinstance(data, (datasets.Dataset, datasets.DatasetDict)):
        return _from_dataset(data, "the dataset", audio_column, split)
    text = str(data)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _from_dataset(datasets.load_from_disk(str(path)), text, audio_column, split)
        files = sorted(str(file) for file in path.rglob("*") if file.suffix.lower() in AUDIO_SUFFIXES
                       and file.is_file())
        if not files:
            raise TrainingDataError(f"--data {text}: the folder has no {', '.join(AUDIO_SUFFIXES)} files (searched "
                                    "recursively); give a folder of audio or a datasets dataset")
        return TrainingAudio(text, files)
    if path.exists():
        raise TrainingDataError(f"--data {text} is a file; give a folder of audio files or a datasets dataset")
    owner, _, name = text.partition("/")
    if text.startswith((".", "/", "~")) or not owner or not name or "/" in name:  # not owner/name: a missing folder
        raise TrainingDataError(f"--data {text}: no such folder (and not a Hub dataset id owner/name)")
    try:
        dataset = datasets.load_dataset(text, config, split=split, revision=revision)
    except Exception as error:  # the Hub unreachable, no such dataset, config or split: one line, then stop
        raise TrainingDataError(f"--data {text}: could not load the dataset (config {config!r}, split {split!r}): "
                                f"{first_line(error)}") from None
    return _from_dataset(dataset, text, audio_column, split)


def _from_dataset(dataset: Any, description: str, audio_column: str | None, split: str) -> TrainingAudio:
    """The audio column of a dataset, or of the `split` (``+`` joins several) of a ``DatasetDict``."""
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        names = split.split("+")
        if missing := [name for name in names if name not in dataset]:
            raise TrainingDataError(f"--data {description} has splits {', '.join(dataset)}, not {', '.join(missing)}; "
                                    "choose one with --data-split")
        dataset = datasets.concatenate_datasets([dataset[name] for name in names])
    audio_columns = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Audio)]
    if audio_column is None:
        if len(audio_columns) != 1:
            found = ", ".join(audio_columns) if audio_columns else "columns: " + ", ".join(dataset.column_names)
            raise TrainingDataError(f"--data {description}: {'several' if audio_columns else 'no'} audio columns "
                                    f"({found}); name one with --audio-column")
        audio_column = audio_columns[0]
    elif audio_column not in dataset.column_names:
        raise TrainingDataError(f"--audio-column {audio_column!r} is not a column of {description} (columns: "
                                f"{', '.join(dataset.column_names)})")
    if len(dataset) == 0:
        raise TrainingDataError(f"--data {description} has no rows")
    undecoded = dataset.select_columns([audio_column]).cast_column(audio_column, datasets.Audio(decode=False))
    return TrainingAudio(description, undecoded, audio_column)


class RandomCrops(torch.utils.data.Dataset):
    """One random crop of ``crop_seconds`` per recording, keyed by ``(epoch, index)`` (see `EpochSampler`), as items
    ``{"waveform": float32 array, "key": (epoch, index)}``.

    A recording shorter than the crop is used whole. An unusable recording (undecodable, or shorter than
    ``min_seconds``) is reported once and the next usable one (index + 1, + 2, ...) is used in its place.
    """

    def __init__(self, audio: TrainingAudio, *, crop_seconds: float, min_seconds: float, seed: int) -> None:
        if not crop_seconds > 0 or not 0 < min_seconds <= crop_seconds:
            raise ValueError(f"crop_seconds ({crop_seconds}) must be positive and min_seconds ({min_seconds}) between "
                             "0 and crop_seconds")
        self.audio = audio
        self.crop_samples = round(crop_seconds * SAMPLING_RATE)
        self.min_samples = round(min_seconds * SAMPLING_RATE)
        self.seed = seed
        self._unusable: set[int] = set()

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        for offset in range(len(self.audio)):
            candidate = (index + offset) % len(self.audio)
            if candidate in self._unusable or (waveform := self._usable_waveform(candidate)) is None:
                continue
            excess = max(len(waveform) - self.crop_samples, 0)  # 0: the whole recording, from its start
            start = int(np.random.default_rng([self.seed, epoch, index]).integers(excess + 1))
            return {"waveform": np.ascontiguousarray(waveform[start:start + self.crop_samples]), "key": (epoch, index)}
        raise TrainingDataError(f"--data {self.audio.description}: no recording could be decoded (see the warnings)")

    def _usable_waveform(self, index: int) -> np.ndarray | None:
        try:
            waveform = self.audio.read(index)
        except (AudioDecodeError, OSError, ValueError, RuntimeError) as error:
            reason = first_line(error)
        else:
            if len(waveform) >= self.min_samples:
                return waveform
            reason = f"{len(waveform) / SAMPLING_RATE:.2f} s, shorter than {self.min_samples / SAMPLING_RATE:g} s"
        self._unusable.add(index)
        logger.warning("skipping training recording %s: %s", self.audio.name(index), reason)
        return None


class EpochSampler(torch.utils.data.Sampler):
    """Keys ``(epoch, index)`` over every recording, in an order drawn from ``(seed, epoch)``.

    Call `set_epoch` before iterating (accelerate's prepared dataloader forwards its ``set_epoch`` here).

    Example:
        >>> sampler = EpochSampler(4, seed=0)
        >>> first = list(sampler); sampler.set_epoch(1)
        >>> sorted(index for _, index in first), first == list(EpochSampler(4, seed=0)), first == list(sampler)
        ([0, 1, 2, 3], True, False)
    """

    def __init__(self, size: int, *, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        for index in np.random.default_rng([self.seed, self.epoch]).permutation(self.size):
            yield (self.epoch, int(index))


BatchPreparer = Callable[[list[np.ndarray], np.random.Generator], dict[str, torch.Tensor]]
"""A recipe's batch function: crops of one length and a seeded generator in, model inputs out."""


class CropCollator:
    """Cut a batch's crops to the shortest one, then call the recipe's `BatchPreparer` with a generator seeded from
    ``(seed, the batch's keys)`` (picklable, so it runs in dataloader workers)."""

    def __init__(self, prepare: BatchPreparer, seed: int) -> None:
        self.prepare = prepare
        self.seed = seed

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = min(len(item["waveform"]) for item in items)
        waveforms = [item["waveform"][:length] for item in items]
        generator = np.random.default_rng([self.seed, *(part for item in items for part in item["key"])])
        return self.prepare(waveforms, generator)


def make_dataloader(crops: RandomCrops, *, batch_size: int, prepare: BatchPreparer, num_workers: int = 0,
                    num_processes: int = 1) -> torch.utils.data.DataLoader:
    """A dataloader of prepared batches (last incomplete batch dropped), ready for ``accelerator.prepare``.

    Its random generator is its own, so creating an iterator (e.g. when resuming) leaves torch's global generator,
    and so dropout and the rest of training, untouched.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if len(crops) < batch_size * num_processes:
        raise TrainingDataError(f"--data {crops.audio.description} has {len(crops)} usable recordings, fewer than one "
                                f"batch of {batch_size} on each of {num_processes} process(es); add recordings or "
                                "lower --batch-size")
    return torch.utils.data.DataLoader(
        crops, batch_size=batch_size, sampler=EpochSampler(len(crops), seed=crops.seed), drop_last=True,
        collate_fn=CropCollator(prepare, crops.seed), num_workers=num_workers,
        generator=torch.Generator().manual_seed(crops.seed))
