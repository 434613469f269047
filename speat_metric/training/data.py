"""Training audio: recordings from a folder or a ``datasets`` dataset, cut into reproducible fixed-length crops.

`open_training_audio` reads ``--data`` (a folder of audio at any rate, or a dataset read undecoded) and
`TrainingAudio.check_files` measures every recording from its header; `RandomCrops` draws one crop per recording and
epoch from ``(seed, epoch, index)`` alone and replaces an unusable recording by the next usable one; `EpochSampler`
orders the recordings so that each batch holds recordings of similar length (S3PRL's and MelHuBERT's bucketing);
`make_dataloader` batches the crops and prepares the model inputs in worker processes. docs/pruning.md ("Training
audio") tells more.

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

import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speat_metric.adapters.preflight import first_line
from speat_metric.audio import DEFAULT_SAMPLING_RATE, AudioDecodeError, load_audio
from speat_metric.progress import ProgressBar
from speat_metric.training.config import AUTO_WORKERS

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")
SPEAKER_COLUMNS = ("speaker_id", "speaker")
"""A dataset's speaker column, unless ``data.speaker_column`` names another (LibriSpeech and VCTK on the Hub: the
first)."""
SAMPLING_RATE = DEFAULT_SAMPLING_RATE


class TrainingDataError(ValueError):
    """The training data cannot be used; the message names the data and what to do."""


class TrainingAudio:
    """The recordings of a training set (made by `open_training_audio`), undecoded until `read`: audio files, or (with
    `column`) a dataset's rows, with its `speaker_column` if it has one. `name` says what to call one in messages.
    `lengths` (samples at 16 kHz, from the headers) is known once `check_files` has run, None before. Picklable, for
    dataloader workers."""

    def __init__(self, description: str, items: Sequence[Any], column: str | None = None,
                 lengths: Sequence[int] | None = None, speaker_column: str | None = None) -> None:
        self.description = description
        self.items = items
        self.column = column
        self.lengths = lengths
        self.speaker_column = speaker_column

    def subset(self, indices: Sequence[int]) -> TrainingAudio:
        """These recordings only (with their lengths), in the order given."""
        items = [self.items[index] for index in indices] if self.column is None else self.items.select(indices)
        lengths = None if self.lengths is None else [self.lengths[index] for index in indices]
        return TrainingAudio(self.description, items, self.column, lengths, self.speaker_column)

    def speakers(self) -> list[str] | None:
        """Each recording's speaker: a dataset's `speaker_column`, or the SPEAKER of a folder laid out as LibriSpeech
        (``SPEAKER/CHAPTER/FILE``, or deeper with LibriSpeech's file names ``SPEAKER-CHAPTER-*``); None when unknown
        (a folder of another layout)."""
        if self.column is not None:
            return [str(value) for value in self.items[self.speaker_column]] if self.speaker_column else None
        root = Path(self.description).expanduser()
        speakers = []
        for item in self.items:
            parts = Path(item).relative_to(root).parts
            if len(parts) >= 3 and parts[-1].startswith(f"{parts[-3]}-{parts[-2]}-"):
                speakers.append(parts[-3])
            elif len(parts) == 3:
                speakers.append(parts[0])
            else:
                return None
        return speakers

    def relative_name(self, index: int) -> str:
        """`name`, a file's relative to the ``--data`` folder (what a list of recordings in a run directory says)."""
        if self.column is not None:
            return self.name(index)
        return Path(self.items[index]).relative_to(Path(self.description).expanduser()).as_posix()

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        return self.items[index] if self.column is None else f"{self.description} row {index}"

    def source(self, index: int) -> str | bytes:
        """What `load_audio` decodes for recording `index`: a path, or a dataset row's bytes (or path)."""
        source = self.items[index]
        if self.column is not None:
            value = source[self.column]
            source = (value.get("bytes") or value.get("path")) if isinstance(value, Mapping) else value
            if not source:
                raise AudioDecodeError(f"{self.name(index)}: the audio column holds neither bytes nor a path")
        return source

    def read(self, index: int) -> np.ndarray:
        """Decode recording `index` to mono float32 at 16 kHz (AudioDecodeError or OSError when it cannot be)."""
        return load_audio(self.source(index), sampling_rate=SAMPLING_RATE, name=self.name(index))

    def check_files(self, *, min_seconds: float, progress: bool = True) -> TrainingAudio:
        """Read every recording's header (a dataset's rows are read, not decoded), report the unreadable and the too
        short, and return this set without them and with its `lengths` (`TrainingDataError` when none is left).
        """
        import soundfile

        unit = "file" if self.column is None else "row"
        kept, lengths, problems = [], [], []
        with ProgressBar(len(self), unit=unit, desc="checking training audio", enabled=progress) as bar:
            for index in range(len(self)):
                try:
                    source = self.source(index)
                    info = soundfile.info(io.BytesIO(source) if isinstance(source, bytes) else source)
                    seconds = info.frames / info.samplerate if info.samplerate else 0.0
                except (RuntimeError, OSError, AudioDecodeError) as error:  # LibsndfileError is a RuntimeError
                    problems.append(f"{self.name(index)} (unreadable: {first_line(error)})")
                else:
                    if seconds < min_seconds:
                        problems.append(f"{self.name(index)} ({seconds:.2f} s, shorter than {min_seconds:g} s)")
                    else:
                        kept.append(index)
                        lengths.append(round(seconds * SAMPLING_RATE))
                bar.advance()
        if problems:
            shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
            logger.warning("skipping %d of %d training %ss: %s", len(problems), len(self), unit, shown)
        if not kept:
            raise TrainingDataError(f"--data {self.description}: none of its {len(self)} audio {unit}s is usable "
                                    f"({problems[0] if problems else 'no files'})")
        checked = self.subset(kept)
        checked.lengths = lengths
        return checked


def open_training_audio(data: str | Path | Any, *, audio_column: str | None = None, config: str | None = None,
                        split: str = "train", revision: str | None = None,
                        speaker_column: str | None = None) -> TrainingAudio:
    """The recordings of ``--data``: a folder of audio files, a ``save_to_disk`` dataset folder, a Hub dataset id, or a
    ``datasets.Dataset``.

    `audio_column` defaults to the one column of ``Audio`` type; `config`, `split` and `revision` choose a Hub
    dataset's part (``+`` joins several splits: ``train.clean.100+train.other.500``), `split` also a ``DatasetDict``'s.
    A dataset's `speaker_column` (default: ``speaker_id`` or ``speaker``, when it has one) is kept, for a
    speaker-disjoint held-out split (`split_held_out`).
    """
    import datasets

    if isinstance(data, (datasets.Dataset, datasets.DatasetDict)):
        return _from_dataset(data, "the dataset", audio_column, split, speaker_column)
    text = str(data)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return _from_dataset(datasets.load_from_disk(str(path)), text, audio_column, split,
                                 speaker_column)
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
    return _from_dataset(dataset, text, audio_column, split, speaker_column)


def _from_dataset(dataset: Any, description: str, audio_column: str | None, split: str,
                  speaker_column: str | None = None) -> TrainingAudio:
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
    if speaker_column is None:
        speaker_column = next((name for name in SPEAKER_COLUMNS if name in dataset.column_names), None)
    elif speaker_column not in dataset.column_names:
        raise TrainingDataError(f"data.speaker_column {speaker_column!r} is not a column of {description} (columns: "
                                f"{', '.join(dataset.column_names)})")
    kept = [audio_column, *([speaker_column] if speaker_column else [])]
    undecoded = dataset.select_columns(kept).cast_column(audio_column, datasets.Audio(decode=False))
    return TrainingAudio(description, undecoded, audio_column, speaker_column=speaker_column)


@dataclass(frozen=True)
class HeldOutSplit:
    """The recordings of ``--data`` split into those trained on and those held out (`split_held_out`).

    Attributes:
        train, held_out: the two parts (`TrainingAudio`), no recording in both.
        indices: the held-out recordings' indices in the audio that was split, ascending.
        speakers: the held-out speakers (whole speakers are held out), or None when the speakers are unknown (then
            recordings are held out one by one).
        seed, fraction: what chose them (``data.held_out``).
    """

    train: TrainingAudio
    held_out: TrainingAudio
    indices: tuple[int, ...]
    speakers: tuple[str, ...] | None
    seed: int
    fraction: float

    def description(self) -> dict[str, Any]:
        """What a record's ``compression["held_out"]`` says about the split (JSON-ready); its ``digest`` (of the
        split's size and the held-out indices) tells two runs' splits apart."""
        import hashlib

        text = json.dumps([len(self.train) + len(self.held_out), list(self.indices)])
        return {"recordings": len(self.held_out), "training_recordings": len(self.train),
                "speaker_disjoint": self.speakers is not None,
                "speakers": None if self.speakers is None else len(self.speakers), "seed": self.seed,
                "fraction": self.fraction, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def split_held_out(audio: TrainingAudio, *, fraction: float, max_recordings: int, seed: int) -> HeldOutSplit | None:
    """Hold out `fraction` of the recordings (at least one, at most `max_recordings`), or None when `fraction` is 0.

    When the speakers are known (`TrainingAudio.speakers`), whole speakers are held out, in an order drawn from `seed`,
    until there are enough recordings (the split is speaker-disjoint: a speaker is trained on or held out, never
    both); otherwise recordings are drawn one by one. The split depends on `seed` and the recordings alone, not on
    the training seed. `TrainingDataError` when it would hold out half of the recordings or more (too few speakers).
    """
    if fraction == 0:
        return None
    target = min(max_recordings, max(1, round(fraction * len(audio))))
    speakers = audio.speakers()
    groups: dict[Any, list[int]] = {}
    for index in range(len(audio)):
        groups.setdefault(speakers[index] if speakers is not None else index, []).append(index)
    order = list(groups)
    held: list[int] = []
    chosen = []
    for position in np.random.default_rng(seed).permutation(len(order)):
        if len(held) >= target:
            break
        chosen.append(order[position])
        held.extend(groups[order[position]])
    if 2 * len(held) >= len(audio):
        what = f"{len(chosen)} of its {len(groups)} speakers" if speakers is not None else f"{len(held)} recordings"
        raise TrainingDataError(f"--data {audio.description}: a held-out split of {fraction:g} takes {what}, "
                                f"{len(held)} of {len(audio)} recordings: too few left to train on; add recordings "
                                "(or speakers) or set data.held_out.fraction: 0 (no held-out loss)")
    held_set = set(held)
    return HeldOutSplit(train=audio.subset([index for index in range(len(audio)) if index not in held_set]),
                        held_out=audio.subset(sorted(held)), indices=tuple(sorted(held)),
                        speakers=None if speakers is None else tuple(sorted(chosen)), seed=seed, fraction=fraction)


def run_held_out_split(audio: TrainingAudio, settings: Any, *,
                       resumed_recipe: Mapping[str, Any] | None = None) -> HeldOutSplit | None:
    """The held-out split of a run (`split_held_out` with `settings`, a ``data.held_out`` section). A resumed run
    (`resumed_recipe`: its ``TrainerState.recipe``, where the recipe saves ``{"held_out": split.description()}``)
    keeps the split it began with: none for a run saved before held-out splits existed or that began without one
    (``"held_out": None``, which it saves again: a run resumed twice still agrees); ValueError when the recordings
    no longer give the same one (its held-out loss would not compare)."""
    if resumed_recipe is not None and not resumed_recipe.get("held_out"):
        logger.info("the run began without a held-out split: it goes on training on every recording")
        return None
    split = split_held_out(audio, fraction=settings.fraction, max_recordings=settings.max_recordings,
                           seed=settings.seed)
    if resumed_recipe is not None:
        began, now = resumed_recipe["held_out"], split.description() if split else {}
        if began.get("digest") != now.get("digest"):
            raise TrainingDataError(f"--resume: the held-out recordings of --data {audio.description} differ from "
                                    "those the run began with (the data changed?); start a new run")
    return split


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

    def crop_lengths(self) -> list[int] | None:
        """The samples each recording's crop will have (its length, at most the crop's); None while the recordings'
        lengths are unknown (before `TrainingAudio.check_files`)."""
        if self.audio.lengths is None:
            return None
        return [min(length, self.crop_samples) for length in self.audio.lengths]

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
    """Keys ``(epoch, index)`` over every recording, in an order drawn from ``(seed, epoch)``; with the crops'
    `lengths`, an order whose consecutive runs of `batch_size` keys are batches of recordings of similar length.

    The bucketing is S3PRL's (s3prl/s3prl ``s3prl/pretrain/bucket_dataset.py``, which MelHuBERT's ``dataset.py``
    copies; fairseq's ``batch_by_size`` groups by size the same way): sort by length, longest first, cut into
    batches, and shuffle the batches. A batch is cut to its shortest crop (`CropCollator`), so a random batch with
    one short recording loses most of its audio. Two differences: recordings of equal crop length (every recording
    at least a crop long) are sorted in a random order drawn each epoch, so they meet new batch companions every
    epoch where S3PRL's buckets are fixed; and the incomplete batch of the shortest recordings comes last, so a
    dataloader that keeps it (``drop_last=False``) sees every recording once per epoch.

    Call `set_epoch` before iterating (accelerate's prepared dataloader forwards its ``set_epoch`` here).

    Example:
        >>> sampler = EpochSampler(4, seed=0)
        >>> first = list(sampler); sampler.set_epoch(1)
        >>> sorted(index for _, index in first), first == list(EpochSampler(4, seed=0)), first == list(sampler)
        ([0, 1, 2, 3], True, False)
        >>> bucketed = EpochSampler(5, seed=0, lengths=[9, 2, 9, 3, 9], batch_size=2)
        >>> [index for _, index in bucketed][-1], sorted(index for _, index in bucketed)[-1]  # shortest last
        (1, 4)
    """

    def __init__(self, size: int, *, seed: int, lengths: Sequence[int] | None = None, batch_size: int = 1) -> None:
        if lengths is not None and len(lengths) != size:
            raise ValueError(f"{len(lengths)} lengths for {size} recordings")
        self.size = size
        self.seed = seed
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.batch_size = batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = np.random.default_rng([self.seed, self.epoch])
        order = generator.permutation(self.size)
        if self.lengths is not None and self.batch_size > 1:
            longest_first = order[np.argsort(-self.lengths[order], kind="stable")]  # ties stay in random order
            whole = self.size - self.size % self.batch_size
            batches = longest_first[:whole].reshape(-1, self.batch_size)
            order = np.concatenate([batches[generator.permutation(len(batches))].ravel(), longest_first[whole:]])
        for index in order:
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


MAX_AUTO_WORKERS = 8
"""More workers than this rarely help: eight feed a GPU step of 24 MelHuBERT crops of 15 s (benchmarks/
training_loader.py) and each worker holds a copy of the dataset and its prefetched batches."""


def default_num_workers(num_processes: int = 1) -> int:
    """Dataloader workers per training process (``num_workers: auto``): the process's cores but one, which is left to
    its training step, at most `MAX_AUTO_WORKERS`; none when a process has at most 2 cores.

    Why none on 2 cores: the step needs a core (its threads on a CPU, launching kernels on a GPU), so one worker
    shares the other core with it and costs a process, shared memory and the pickling of every batch. On this
    project's 2-core machine (shared, so noisy) one worker made filter banks no faster than the main process, and a
    training loop fed by one worker ran at 0.98x the steps per second of one without (a CPU step) and at 0.85x to
    1.09x over three runs (a short GPU-like step): no gain beyond the noise (benchmarks/training_loader.py, parts 1
    and 4); set ``num_workers: 1`` to try it on such a machine. The processes of one machine (``LOCAL_WORLD_SIZE``,
    set by ``accelerate launch`` and torchrun, else `num_processes`) share its cores.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", num_processes)), 1)
    per_process = cores // local_processes
    return 0 if per_process <= 2 else min(MAX_AUTO_WORKERS, per_process - 1)


def seed_worker(worker_id: int) -> None:
    """Seed a worker's numpy and `random` generators from its torch seed (which the dataloader draws from its own
    seeded generator), so that code drawing from them in a worker repeats from run to run. Our crops and batches
    draw only from generators seeded by their keys, whatever the worker."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_dataloader(crops: RandomCrops, *, batch_size: int, prepare: BatchPreparer, num_workers: int | str = 0,
                    num_processes: int = 1) -> torch.utils.data.DataLoader:
    """A dataloader of prepared batches, ready for ``accelerator.prepare``.

    With the recordings' lengths known (`TrainingAudio.check_files`), each batch holds crops of similar length
    (`EpochSampler`), and the last batch of an epoch holds the remaining shortest recordings (smaller than
    `batch_size`, so every recording is seen once per epoch); without them, batches are random. `num_workers`
    processes (``"auto"``: `default_num_workers`) decode the crops and run `prepare` (the features), each keeping
    two batches ready ahead; batches go to pinned memory when CUDA is available, for fast copies to the GPU.

    Its random generator is its own, so creating an iterator (e.g. when resuming) leaves torch's global generator,
    and so dropout and the rest of training, untouched.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if num_workers == AUTO_WORKERS:
        num_workers = default_num_workers(num_processes)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a whole number >= 0 or {AUTO_WORKERS!r}, got {num_workers!r}")
    if len(crops) < batch_size * num_processes:
        raise TrainingDataError(f"--data {crops.audio.description} has {len(crops)} usable recordings, fewer than one "
                                f"batch of {batch_size} on each of {num_processes} process(es); add recordings or "
                                "lower --batch-size")
    sampler = EpochSampler(len(crops), seed=crops.seed, lengths=crops.crop_lengths(), batch_size=batch_size)
    workers = {"prefetch_factor": 2, "persistent_workers": True, "worker_init_fn": seed_worker} if num_workers else {}
    return torch.utils.data.DataLoader(
        crops, batch_size=batch_size, sampler=sampler, drop_last=sampler.lengths is None,
        collate_fn=CropCollator(prepare, crops.seed), num_workers=num_workers, pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(crops.seed), **workers)
