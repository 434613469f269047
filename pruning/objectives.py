"""The fine-tuning losses between pruning steps (``--objective``), each in one readable function.

- ``teacher`` (every model; the default for HuBERT, WavLM and data2vec-audio): match the unpruned model's hidden
  states layer by layer, `hidden_state_loss` = mean over layers of L1 + (1 - cosine similarity).
- ``native`` for wav2vec2: ``Wav2Vec2ForPreTraining``'s contrastive + diversity loss (its quantizer comes from the
  checkpoint; masks and negatives are drawn per batch), per masked frame as fairseq normalises it.
- ``native`` for MelHuBERT: masked prediction, `masked_prediction_loss` = cross-entropy of ``final_proj`` on the
  masked frames against cluster labels, as the authors train (nervjack2/MelHuBERT ``dataset.py``, ``train.py``):
  the authors' own precomputed labels (``objective.melhubert.labels``, ``--labels``: `read_cluster_labels`), or
  k-means labels fitted by us (scikit-learn ``MiniBatchKMeans``, over the first training batches, saved with the run
  in ``RUN_DIR/kmeans.npz``) on the log-Mel filter banks themselves (``kmeans_features: log-mel``, the authors'
  stage-1 recipe) or on the unpruned model's hidden states of one layer (``kmeans_features: layer``, a stage-2-like
  recipe; frames are then labelled with the unpruned model as training goes).

An objective gives the module to optimise (`trainable`), the batch preparation that runs in the dataloader
(`batch_preparer`: model inputs, plus mask positions drawn from the batch's seeded generator) and `loss`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speat_metric.adapters.melhubert import FRAME_SHIFT_MS, MIN_SAMPLES
from speat_metric.adapters.pruned import pruned_layout_of_config
from speat_metric.files import atomic_open
from speat_metric.pruning.config import MelHuBERTSettings, TeacherSettings, Wav2Vec2Settings
from speat_metric.training.data import SAMPLING_RATE, RandomCrops, TrainingAudio
from speat_metric.training.loop import numpy_seed
from speat_metric.training.models import MELHUBERT, ModelInputs, TrainableEncoder

logger = logging.getLogger(__name__)

KMEANS_FILE = "kmeans.npz"
LOG_MEL, LAYER = "log-mel", "layer"
KMEANS_FEATURES = (LOG_MEL, LAYER)
HOP_SAMPLES = round(SAMPLING_RATE * FRAME_SHIFT_MS / 1000)
"""One Kaldi filter-bank frame every 10 ms: the authors' labels are one cluster id per such frame."""


def hidden_state_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], *, l1_weight: float = 1.0,
                      cosine_weight: float = 1.0) -> torch.Tensor:
    """Mean over layers of ``l1_weight * mean |s - t| + cosine_weight * mean over frames (1 - cos(s, t))``.

    Args:
        student, teacher: hidden states, one (batch, frames, dim) tensor per layer, the same layers in both.
    """
    if len(student) != len(teacher):
        raise ValueError(f"the student has {len(student)} hidden states and the teacher {len(teacher)}")
    losses = [l1_weight * F.l1_loss(s, t) + cosine_weight * (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
              for s, t in zip(student, teacher)]
    return torch.stack(losses).mean()


def masked_prediction_loss(logits: torch.Tensor, labels: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the frame logits (batch, frames, clusters) against labels (batch, frames), over the masked
    frames only (MelHuBERT's ``pred_masked_weight: 1``, ``pred_nomask_weight: 0``)."""
    return F.cross_entropy(logits[masked].float(), labels[masked])


@dataclass(frozen=True)
class _Preparer:
    """Model inputs plus, for native objectives, the mask positions (and negatives) of the batch (picklable)."""

    inputs: ModelInputs
    masking: str | None = None  # None, "wav2vec2" or "melhubert"
    mask_prob: float = 0.0
    mask_length: int = 1
    num_negatives: int = 0

    def __call__(self, waveforms: list[np.ndarray], generator: np.random.Generator) -> dict[str, torch.Tensor]:
        from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

        batch = self.inputs(waveforms)
        if self.masking is None:
            return batch
        frames = batch["features"].shape[1] if self.masking == MELHUBERT else self.inputs.num_frames(len(waveforms[0]))
        shape = (len(waveforms), frames)
        if frames <= self.mask_length:
            raise ValueError(f"training crops of {len(waveforms[0])} samples give {frames} frames, too few for masks "
                             f"of {self.mask_length} frames; use longer crops (--crop-seconds)")
        with numpy_seed(int(generator.integers(2**32))):  # transformers draws masks from np.random
            mask = _compute_mask_indices(shape, self.mask_prob, self.mask_length, min_masks=2)
            if self.masking == "wav2vec2":
                batch["sampled_negative_indices"] = torch.from_numpy(
                    _sample_negative_indices(shape, self.num_negatives, mask))
        batch["mask"] = torch.from_numpy(mask)
        return batch


class _Objective:
    """What every objective does unless it says otherwise: nothing to move or fit before training."""

    def to(self, device: torch.device) -> None:
        """Move the frozen parts (not the trainable module, which ``accelerator.prepare`` places) to `device`."""

    def prepare_run(self, dataloader: Any, run_dir: Path, accelerator: Any, *, fit: bool) -> None:
        """Fit (a new run, `fit`) or restore what the loss needs beyond the model, before training starts."""

    def record_fields(self) -> dict[str, Any]:
        """What the records' compression field says of the objective beyond its name (the labels it trains on)."""
        return {}

    def with_labels(self, collate: Any, crops: RandomCrops) -> Any:
        """`collate` (a collate function of `crops`' items), adding what the loss needs of each crop beyond its
        audio: nothing here; the authors' cluster labels for MelHuBERT with ``--labels``."""
        return collate


class TeacherObjective(_Objective):
    """Match the unpruned model's hidden states, every layer (`hidden_state_loss`)."""

    name = "teacher"

    def __init__(self, target: TrainableEncoder, settings: TeacherSettings) -> None:
        self.target = target
        self.settings = settings
        self.teacher = target.frozen_copy()
        target.training_config(spec_augment=False)

    @property
    def trainable(self) -> nn.Module:
        return self.target.encoder

    def batch_preparer(self) -> _Preparer:
        return _Preparer(self.target.inputs)

    def to(self, device: torch.device) -> None:
        self.teacher.to(device)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        student = self.target.hidden_states(module, batch)
        with torch.no_grad():
            teacher = self.target.hidden_states(self.teacher, batch)
        return hidden_state_loss(student, teacher, l1_weight=self.settings.l1_weight,
                                 cosine_weight=self.settings.cosine_weight)


class Wav2Vec2Objective(_Objective):
    """wav2vec 2.0's own pre-training loss (``Wav2Vec2ForPreTraining``), per masked frame."""

    name = "native"

    def __init__(self, target: TrainableEncoder, settings: Wav2Vec2Settings, *, revision: str | None = None) -> None:
        import transformers
        from transformers import AutoConfig, Wav2Vec2ForPreTraining

        self.target = target
        self.settings = settings
        name = target.description.name
        config = AutoConfig.from_pretrained(name, revision=revision)
        if pruned_layout_of_config(config) is None:
            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()  # its load report; the warning below says what matters
            try:
                self.model, info = Wav2Vec2ForPreTraining.from_pretrained(name, revision=revision,
                                                                          output_loading_info=True)
            finally:
                transformers.logging.set_verbosity(verbosity)
            untrained = [key for key in info["missing_keys"] if key.startswith(("quantizer", "project_"))]
        else:  # saved by speat prune: the encoder only
            self.model, untrained = Wav2Vec2ForPreTraining(config), ["quantizer"]
        if untrained:
            logger.warning("%s has no pre-training head (%s...): the contrastive loss starts from a random quantizer; "
                           "--objective teacher does not need one", name, untrained[0])
        self.model.wav2vec2 = target.encoder  # the (possibly pruned) encoder being pruned, not a copy
        self.model.set_gumbel_temperature(settings.gumbel_temperature)
        self.model.config.diversity_loss_weight = settings.diversity_loss_weight
        target.training_config(spec_augment=True)

    @property
    def trainable(self) -> nn.Module:
        return self.model

    def batch_preparer(self) -> _Preparer:
        return _Preparer(self.target.inputs, "wav2vec2", self.settings.mask_time_prob, self.settings.mask_time_length,
                         self.settings.num_negatives)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        output = module(batch["input_values"], mask_time_indices=batch["mask"],
                        sampled_negative_indices=batch["sampled_negative_indices"])
        return output.loss / batch["mask"].sum().clamp(min=1)


class LabelError(ValueError):
    """The cluster labels (``--labels``) cannot be used with the training audio; the message names the recording."""


@dataclass(frozen=True)
class ClusterLabels:
    """Cluster-label sequences by recording key, as `read_cluster_labels` found them (nothing checked yet).

    Attributes:
        source: ``--labels`` as given.
        entries: key -> a ``.npy`` label file as written (CSV, folder) or the labels themselves (``.km`` line).
        folder: where a CSV's relative or moved label files are looked for (the CSV's folder); None otherwise.
    """

    source: str
    entries: Mapping[str, str | np.ndarray]
    folder: Path | None = None

    def label_file(self, written: str) -> Path | None:
        """A CSV's ``label_path`` on this machine: as written (relative to the CSV), or moved with the CSV's folder
        (``<folder>/cluster/KEY.npy``, ``<folder>/KEY.npy``: their paths are absolute on the authors' machine)."""
        path, folder = Path(written), self.folder or Path(".")
        for candidate in (folder / path, folder / path.parent.name / path.name, folder / path.name):
            if candidate.is_file():
                return candidate
        return None


def read_cluster_labels(path: str | Path) -> ClusterLabels:
    """Read the authors' cluster labels: one label (an integer cluster id) per 10 ms filter-bank frame of each
    recording (or per 20 ms frame), filed under the recording's key, its file name without extension (LibriSpeech's
    utterance id, e.g. ``1001-134707-0000``). Three layouts:

    - a CSV ``file_path,label_path,length`` (nervjack2/MelHuBERT ``preprocess/tidy_libri360_kaldi_data.py`` writes it;
      its ``dataset.py`` reads it): ``label_path`` a ``.npy`` of int labels, the key the name of ``file_path``;
    - a folder of ``KEY.npy`` label files (the ``cluster/`` folder those scripts write; searched recursively);
    - a fairseq ``SPLIT.km`` file (one line of space-separated labels per recording) beside its manifest
      ``SPLIT.tsv`` (a root folder line, then ``relative/path<TAB>samples`` in the same order), which the authors'
      ``LoadFairseqDataset`` reads (nervjack2/Speech-SSL-Compression ``dataset.py``).

    Raises:
        LabelError: no such file or folder, or not one of these layouts.
    """
    path = Path(path)
    if path.is_dir():
        entries: dict[str, str | np.ndarray] = {}
        for file in sorted(path.rglob("*.npy")):
            if (earlier := entries.setdefault(file.stem, str(file))) != str(file):
                raise LabelError(f"--labels {path}: two label files for {file.stem!r} ({earlier} and {file})")
        if not entries:
            raise LabelError(f"--labels {path}: the folder has no .npy label files (searched recursively)")
        return ClusterLabels(str(path), entries)
    if not path.is_file():
        raise LabelError(f"--labels {path}: no such file or folder")
    if path.suffix == ".csv":
        return _labels_of_csv(path)
    if path.suffix == ".km":
        return _labels_of_km(path)
    raise LabelError(f"--labels {path}: give the authors' CSV (file_path,label_path,length), a folder of KEY.npy "
                     "label files, or a fairseq .km file beside its .tsv manifest")


def _labels_of_csv(path: Path) -> ClusterLabels:
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows or not {"file_path", "label_path"} <= set(rows[0]):
        raise LabelError(f"--labels {path}: expected the authors' columns file_path,label_path,length, got "
                         f"{','.join(rows[0]) if rows else 'no rows'}")
    entries: dict[str, str | np.ndarray] = {}
    for row in rows:
        key = Path(row["file_path"]).stem
        if (earlier := entries.setdefault(key, row["label_path"])) != row["label_path"]:
            raise LabelError(f"--labels {path}: two label files for {key!r} ({earlier} and {row['label_path']})")
    return ClusterLabels(str(path), entries, folder=path.parent)


def _labels_of_km(path: Path) -> ClusterLabels:
    manifest = path.with_suffix(".tsv")
    if not manifest.is_file():
        raise LabelError(f"--labels {path}: a .km file needs its fairseq manifest {manifest.name} beside it (the "
                         "recordings its lines label, in order)")
    recordings = [line.split("\t")[0] for line in manifest.read_text().splitlines()[1:] if line.strip()]
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != len(recordings):
        raise LabelError(f"--labels {path} has {len(lines)} lines but {manifest.name} lists {len(recordings)} "
                         "recordings")
    try:
        entries = {Path(name).stem: np.array(line.split(), dtype=np.int64) for name, line in zip(recordings, lines)}
    except ValueError as error:
        raise LabelError(f"--labels {path}: a line is not space-separated integers ({error})") from None
    return ClusterLabels(str(path), entries)


def recording_key(audio: TrainingAudio, index: int) -> str:
    """The key the labels of training recording `index` are filed under: its file name without extension (a
    dataset row's audio path)."""
    if audio.column is None:
        return Path(audio.items[index]).stem
    value = audio.items[index][audio.column]
    name = value.get("path") if isinstance(value, Mapping) else value if isinstance(value, str) else None
    if not name:
        raise LabelError(f"--labels: {audio.name(index)} has no file name to find its labels by (its audio column "
                         "holds no path)")
    return Path(name).stem


def filter_bank_frames(num_samples: int) -> int:
    """Kaldi filter-bank frames of 10 ms in `num_samples` samples at 16 kHz (25 ms windows, edges not padded)."""
    return 0 if num_samples < MIN_SAMPLES else 1 + (num_samples - MIN_SAMPLES) // HOP_SAMPLES


@dataclass(frozen=True)
class RecordingLabels:
    """The labels of each training recording (`align_labels`), cut to crops by `crop`.

    Attributes:
        sources: per recording, its ``.npy`` label file or its labels.
        frames_per_label: per recording, 10 ms filter-bank frames per label: 1 (10 ms labels, the authors'
            stage-1 files) or 2 (20 ms labels).
        description: what the records say the labels were.
    """

    sources: tuple[str | np.ndarray, ...]
    frames_per_label: tuple[int, ...]
    description: str

    def labels(self, index: int) -> np.ndarray:
        source = self.sources[index]
        return np.load(source) if isinstance(source, str) else source

    def crop(self, index: int, start: int, frames: int, frames_stacked: int) -> np.ndarray:
        """The labels of `frames` model frames of recording `index` cropped from sample `start` on, each model frame
        taking the label of its first 10 ms frame (the authors' ``label[::2]`` for 20 ms frames, ``dataset.py``).

        The crop starts at any sample, the authors' at a frame: its frames are matched to the recording's nearest
        10 ms frame, at most 5 ms (80 samples) away.
        """
        labels = self.labels(index)
        first = round(start / HOP_SAMPLES)
        positions = (first + frames_stacked * np.arange(frames)) // self.frames_per_label[index]
        return labels[np.minimum(positions, len(labels) - 1)]


def align_labels(labels: ClusterLabels, audio: TrainingAudio, *, clusters: int) -> RecordingLabels:
    """Find the labels of every training recording and check that they fit it, before training starts.

    Raises:
        LabelError (one line, naming the first offending recording): a recording without labels, two recordings
            with one name, labels whose count fits neither the recording's 10 ms nor its 20 ms frames, or cluster
            ids outside ``0 .. clusters - 1`` (the model's ``final_proj`` outputs).
    """
    if audio.lengths is None:
        raise ValueError("align_labels needs the recordings' lengths (TrainingAudio.check_files)")
    sources: list[str | np.ndarray] = []
    frames_per_label: list[int] = []
    seen: dict[str, str] = {}
    for index in range(len(audio)):
        key, name = recording_key(audio, index), audio.name(index)
        if (other := seen.setdefault(key, name)) != name:
            raise LabelError(f"--labels {labels.source}: training recordings {other} and {name} share the name "
                             f"{key!r}, and labels are found by name")
        entry = labels.entries.get(key)
        if entry is None:
            raise LabelError(f"--labels {labels.source} has no labels for training recording {name} (looked for "
                             f"{key!r}; {len(labels.entries)} recordings are labelled)")
        if isinstance(entry, str):
            if (file := labels.label_file(entry) if labels.folder else Path(entry)) is None:
                raise LabelError(f"--labels {labels.source}: the label file {entry} of {name} is missing")
            entry = str(file)
            sequence = np.load(file)
        else:
            sequence = entry
        frames = filter_bank_frames(audio.lengths[index])
        # one frame of slack: a resampled recording's header may round its length differently from the decoder
        if abs(len(sequence) - frames) <= 1:
            frames_per_label.append(1)
        elif abs(len(sequence) - (frames + 1) // 2) <= 1:
            frames_per_label.append(2)
        else:
            raise LabelError(f"--labels {labels.source}: {name} has {len(sequence)} labels, but its "
                             f"{audio.lengths[index] / SAMPLING_RATE:.2f} s make {frames} filter-bank frames of 10 ms "
                             f"({(frames + 1) // 2} of 20 ms): the labels are not of this recording")
        if sequence.ndim != 1 or not np.issubdtype(sequence.dtype, np.integer) or len(sequence) == 0 \
                or sequence.min() < 0 or sequence.max() >= clusters:
            raise LabelError(f"--labels {labels.source}: the labels of {name} must be integer cluster ids from 0 to "
                             f"{clusters - 1} (the model's final_proj outputs), got {sequence.dtype} "
                             f"{sequence.min() if sequence.size else ''}..{sequence.max() if sequence.size else ''}")
        sources.append(entry)
    return RecordingLabels(tuple(sources), tuple(frames_per_label), f"file {labels.source}")


def crop_position(item: Mapping[str, Any], crops: RandomCrops) -> tuple[int, int]:
    """(recording index, first sample) of a `RandomCrops` item.

    Raises:
        LabelError: the crop is not of the length its recording's header promised (the recording decoded to
            another length, or was replaced by the next one because it could not be decoded).
    """
    if "start" in item:  # RandomCrops items that say where they were cut (the hook asked for in issue 25)
        return item["recording"], item["start"]
    epoch, index = item["key"]
    length = crops.audio.lengths[index]
    if len(item["waveform"]) != min(length, crops.crop_samples):
        raise LabelError(f"training recording {crops.audio.name(index)}: its crop has {len(item['waveform'])} "
                         f"samples, not the {min(length, crops.crop_samples)} its header promised, so its labels "
                         "cannot be aligned (was it replaced by the next recording because it did not decode?)")
    # RandomCrops' own draw (speat_metric/training/data.py), repeated here until its items carry their start
    excess = max(length - crops.crop_samples, 0)
    return index, int(np.random.default_rng([crops.seed, epoch, index]).integers(excess + 1))


class LabelledBatches:
    """A dataloader's collate function, plus the labels of each crop as ``batch["labels"]`` (batch, frames);
    picklable, for dataloader workers."""

    def __init__(self, collate: Any, crops: RandomCrops, labels: RecordingLabels, frames_stacked: int) -> None:
        self.collate = collate
        self.crops = crops
        self.labels = labels
        self.frames_stacked = frames_stacked

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate(items)  # every crop cut to the batch's shortest, from its start: the labels likewise
        frames = batch["features"].shape[1]
        labels = [self.labels.crop(*crop_position(item, self.crops), frames, self.frames_stacked) for item in items]
        batch["labels"] = torch.from_numpy(np.stack(labels).astype(np.int64))
        return batch


def nearest_centroid(frames: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centroid (Euclidean) of every frame: (batch, frames, dim) -> (batch, frames)."""
    centroids = centroids.to(frames.device, frames.dtype)
    return torch.cdist(frames, centroids[None].expand(len(frames), -1, -1)).argmin(dim=-1)


class _MaskedPrediction(nn.Module):
    """MelHuBERT with its masked frames zeroed (``mask_before_proj``, no learnable mask embedding), returning the
    ``final_proj`` logits of every frame: one forward, so that DDP sees every parameter used."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(features.masked_fill(mask[..., None], 0.0), frame_mask)[-1]
        return self.model.final_proj(hidden)


class MelHuBERTObjective(_Objective):
    """MelHuBERT's masked cross-entropy (`masked_prediction_loss`) on the authors' labels (`settings.labels`) or on
    k-means labels of the log-Mel filter banks or of one layer of the unpruned model (`settings.kmeans_features`)."""

    name = "native"

    def __init__(self, target: TrainableEncoder, settings: MelHuBERTSettings, *, seed: int) -> None:
        self.target = target
        self.settings = settings
        self.seed = seed
        self.model = _MaskedPrediction(target.encoder)
        self.centroids: torch.Tensor | None = None
        config = target.encoder.config
        self.num_mel_bins, self.frames_stacked = config.num_mel_bins, config.frames_stacked
        # the labels are read now, so that a bad --labels fails before the audio is checked
        self.cluster_labels = read_cluster_labels(settings.labels) if settings.labels else None
        self.layer = config.encoder_layers // 2 if settings.kmeans_layer is None else settings.kmeans_layer
        uses_layer = self.cluster_labels is None and settings.kmeans_features == LAYER
        layers = config.encoder_layers + 1
        if uses_layer and not -layers <= self.layer < layers:
            raise ValueError(f"objective.melhubert.kmeans_layer {self.layer} is not a layer of this model "
                             f"(0..{layers - 1}, or negative from the end)")
        self.reference = target.frozen_copy() if uses_layer else None  # only the layer k-means labels with it

    @property
    def trainable(self) -> nn.Module:
        return self.model

    @property
    def labels_description(self) -> str:
        """Which labels the loss uses, for the records: ``file PATH``, ``kmeans log-mel k=K``, ``kmeans layer L k=K``.
        """
        if self.cluster_labels is not None:
            return f"file {self.cluster_labels.source}"
        clusters = (len(self.centroids) if self.centroids is not None
                    else self.settings.clusters or self.target.encoder.config.num_cluster)
        features = LOG_MEL if self.settings.kmeans_features == LOG_MEL else f"{LAYER} {self.layer}"
        return f"kmeans {features} k={clusters}"

    def record_fields(self) -> dict[str, Any]:
        return {"labels": self.labels_description}

    def batch_preparer(self) -> _Preparer:
        return _Preparer(self.target.inputs, MELHUBERT, self.settings.mask_prob, self.settings.mask_length)

    def to(self, device: torch.device) -> None:
        if self.reference is not None:
            self.reference.to(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(device)

    def prepare_run(self, dataloader: Any, run_dir: Path, accelerator: Any, *, fit: bool) -> None:
        """The authors' labels: match them to the training recordings and add each crop's to its batch. K-means:
        fit it on the main process (on the first training batches) and load it everywhere."""
        if self.cluster_labels is not None:
            # collate_fn, unlike the dataset and sampler, may be replaced; accelerator.prepare copies it
            dataloader.collate_fn = self.with_labels(dataloader.collate_fn, dataloader.dataset)
            return
        path = run_dir / KMEANS_FILE
        if fit and accelerator.is_main_process:
            dataloader.sampler.set_epoch(0)
            self.fit_clusters(iter(dataloader), path, device=accelerator.device)
        accelerator.wait_for_everyone()
        if not path.is_file():
            raise ValueError(f"{path} is missing: the run's k-means labels cannot be restored; start a new run")
        self.load_clusters(path)

    def with_labels(self, collate: Any, crops: RandomCrops) -> Any:
        """With ``--labels``: `collate` adding each crop's labels (``batch["labels"]``), once they are matched to
        `crops`' recordings (`align_labels`: a LabelError naming the first that has none or does not fit)."""
        if self.cluster_labels is None:
            return collate
        labels = align_labels(self.cluster_labels, crops.audio, clusters=self.target.encoder.config.num_cluster)
        return LabelledBatches(collate, crops, labels, self.frames_stacked)

    def cluster_frames(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the k-means clusters and labels, (batch, frames, dim): the log-Mel filter banks of each model frame's
        first 10 ms frame (the authors' stage-1 labels, 10 ms, taken as ``label[::2]`` at 20 ms), or the unpruned
        model's hidden states of `layer`."""
        if self.reference is None:
            return batch["features"][..., : self.num_mel_bins]
        with torch.no_grad():
            return self.reference(batch["features"], batch["frame_mask"])[self.layer]

    def fit_clusters(self, batches: Any, path: Path, *, device: torch.device | str = "cpu") -> None:
        """Fit the k-means on the `cluster_frames` of the first `batches`, and save it to `path`."""
        from sklearn.cluster import MiniBatchKMeans

        frames = []
        if self.reference is not None:
            self.reference.to(device)
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            frames.append(self.cluster_frames(batch)[batch["frame_mask"]].float().cpu().numpy())
            if sum(len(part) for part in frames) >= self.settings.kmeans_frames:
                break
        frames = np.concatenate(frames)[: self.settings.kmeans_frames]
        clusters = self.settings.clusters or self.target.encoder.config.num_cluster
        if len(frames) < clusters:
            logger.warning("k-means: %d frames for %d clusters; fitting %d clusters", len(frames), clusters,
                           len(frames))
            clusters = len(frames)
        kmeans = MiniBatchKMeans(n_clusters=clusters, random_state=self.seed, n_init=3, batch_size=4096).fit(frames)
        with atomic_open(path, "wb") as file:
            np.savez(file, centroids=kmeans.cluster_centers_.astype(np.float32), features=self.settings.kmeans_features,
                     layer=self.layer, frames=len(frames), seed=self.seed)

    def load_clusters(self, path: Path) -> None:
        with np.load(path) as stored:
            features = str(stored["features"]) if "features" in stored else LAYER  # saved before log-mel existed
            if features != self.settings.kmeans_features:
                raise ValueError(f"{path} holds a k-means of {features} features, but objective.melhubert."
                                 f"kmeans_features is {self.settings.kmeans_features}; start a new run")
            self.centroids = torch.from_numpy(stored["centroids"])

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "labels" in batch:
            labels = batch["labels"]
        elif self.cluster_labels is not None:
            raise ValueError("a batch without its --labels: make its collate function with the objective's "
                             "with_labels")
        else:
            with torch.no_grad():
                labels = nearest_centroid(self.cluster_frames(batch), self.centroids)
        logits = module(batch["features"], batch["frame_mask"], batch["mask"])
        return masked_prediction_loss(logits, labels, batch["mask"] & batch["frame_mask"])


def build_objective(name: str, target: TrainableEncoder, settings: Any, *, seed: int, revision: str | None = None):
    """The objective `name` (``auto``, ``native`` or ``teacher``) for `target`.

    Raises:
        ValueError: ``native`` for a model family that has no native objective here.
    """
    if name == "auto":
        name = "native" if target.family in ("wav2vec2", MELHUBERT) else "teacher"
    labels = settings.melhubert.labels
    if labels and (name == "teacher" or target.family != MELHUBERT):
        raise ValueError(f"--labels {labels}: cluster labels are for MelHuBERT's native objective (masked "
                         f"prediction), not --objective {name} on {target.family}")
    if name == "teacher":
        return TeacherObjective(target, settings.teacher)
    if target.family == "wav2vec2":
        return Wav2Vec2Objective(target, settings.wav2vec2, revision=revision)
    if target.family == MELHUBERT:
        return MelHuBERTObjective(target, settings.melhubert, seed=seed)
    raise ValueError(f"--objective native is available for wav2vec2 and MelHuBERT, not {target.family}; use "
                     "--objective teacher (match the unpruned model's hidden states)")
