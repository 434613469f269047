"""The fine-tuning losses between pruning steps (``--objective``), each in one readable function.

- ``teacher`` (every model; the default for HuBERT, WavLM and data2vec-audio): match the unpruned model's hidden
  states layer by layer, `hidden_state_loss` = mean over layers of L1 + (1 - cosine similarity).
- ``native`` for wav2vec2: ``Wav2Vec2ForPreTraining``'s contrastive + diversity loss (its quantizer comes from the
  checkpoint; masks and negatives are drawn per batch), per masked frame as fairseq normalises it.
- ``native`` for MelHuBERT: masked prediction, `masked_prediction_loss` = cross-entropy of ``final_proj`` on the
  masked frames against k-means labels. The k-means (scikit-learn ``MiniBatchKMeans``) is fitted by us on the
  unpruned model's hidden states of one layer over the first training batches, and saved with the run
  (``RUN_DIR/kmeans.npz``); frames are labelled with the unpruned model as training goes.

An objective gives the module to optimise (`trainable`), the batch preparation that runs in the dataloader
(`batch_preparer`: model inputs, plus mask positions drawn from the batch's seeded generator) and `loss`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speat_metric.adapters.pruned import pruned_layout_of_config
from speat_metric.files import atomic_open
from speat_metric.pruning.config import MelHuBERTSettings, TeacherSettings, Wav2Vec2Settings
from speat_metric.training.loop import numpy_seed
from speat_metric.training.models import MELHUBERT, ModelInputs, TrainableEncoder

logger = logging.getLogger(__name__)

KMEANS_FILE = "kmeans.npz"


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
    """MelHuBERT's masked cross-entropy on k-means labels of the unpruned model (`masked_prediction_loss`)."""

    name = "native"

    def __init__(self, target: TrainableEncoder, settings: MelHuBERTSettings, *, seed: int) -> None:
        self.target = target
        self.settings = settings
        self.seed = seed
        self.reference = target.frozen_copy()
        self.model = _MaskedPrediction(target.encoder)
        self.centroids: torch.Tensor | None = None
        layers = target.encoder.config.encoder_layers + 1
        if not -layers <= settings.kmeans_layer < layers:
            raise ValueError(f"objective.melhubert.kmeans_layer {settings.kmeans_layer} is not a layer of this model "
                             f"(0..{layers - 1}, or negative from the end)")

    @property
    def trainable(self) -> nn.Module:
        return self.model

    def batch_preparer(self) -> _Preparer:
        return _Preparer(self.target.inputs, MELHUBERT, self.settings.mask_prob, self.settings.mask_length)

    def to(self, device: torch.device) -> None:
        self.reference.to(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(device)

    def prepare_run(self, dataloader: Any, run_dir: Path, accelerator: Any, *, fit: bool) -> None:
        """Fit the label k-means on the main process (on the first training batches) and load it everywhere."""
        path = run_dir / KMEANS_FILE
        if fit and accelerator.is_main_process:
            dataloader.sampler.set_epoch(0)
            self.fit_clusters(iter(dataloader), path, device=accelerator.device)
        accelerator.wait_for_everyone()
        if not path.is_file():
            raise ValueError(f"{path} is missing: the run's k-means labels cannot be restored; start a new run")
        self.load_clusters(path)

    def fit_clusters(self, batches: Any, path: Path, *, device: torch.device | str = "cpu") -> None:
        """Fit the k-means on the reference model's frames of the first `batches`, and save it to `path`."""
        from sklearn.cluster import MiniBatchKMeans

        frames = []
        self.reference.to(device)
        with torch.no_grad():
            for batch in batches:
                batch = {key: value.to(device) for key, value in batch.items()}
                hidden = self.reference(batch["features"], batch["frame_mask"])[self.settings.kmeans_layer]
                frames.append(hidden[batch["frame_mask"]].float().cpu().numpy())
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
            np.savez(file, centroids=kmeans.cluster_centers_.astype(np.float32), layer=self.settings.kmeans_layer,
                     frames=len(frames), seed=self.seed)

    def load_clusters(self, path: Path) -> None:
        with np.load(path) as stored:
            self.centroids = torch.from_numpy(stored["centroids"])

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            reference = self.reference(batch["features"], batch["frame_mask"])[self.settings.kmeans_layer]
            centroids = self.centroids.to(reference.device, reference.dtype)
            labels = torch.cdist(reference, centroids[None].expand(len(reference), -1, -1)).argmin(dim=-1)
        logits = module(batch["features"], batch["frame_mask"], batch["mask"])
        return masked_prediction_loss(logits, labels, batch["mask"] & batch["frame_mask"])


def build_objective(name: str, target: TrainableEncoder, settings: Any, *, seed: int, revision: str | None = None):
    """The objective `name` (``auto``, ``native`` or ``teacher``) for `target`.

    Raises:
        ValueError: ``native`` for a model family that has no native objective here.
    """
    if name == "auto":
        name = "native" if target.family in ("wav2vec2", MELHUBERT) else "teacher"
    if name == "teacher":
        return TeacherObjective(target, settings.teacher)
    if target.family == "wav2vec2":
        return Wav2Vec2Objective(target, settings.wav2vec2, revision=revision)
    if target.family == MELHUBERT:
        return MelHuBERTObjective(target, settings.melhubert, seed=seed)
    raise ValueError(f"--objective native is available for wav2vec2 and MelHuBERT, not {target.family}; use "
                     "--objective teacher (match the unpruned model's hidden states)")
