"""The encoder a compression recipe trains (the model pruned, the teacher and student of a distillation): how it is
loaded (`load_trainable_encoder`, through the adapters, so its inputs are normalised as SpEAT's), what its inputs
are, how its hidden states come out, and how it is saved as a checkpoint ``speat evaluate`` reads
(docs/pruning.md, "Models").
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from speat_metric.adapters.base import ModelLoadError
from speat_metric.adapters.pruned import PRUNABLE_MODEL_TYPES, prunable, save_pruned_model
from speat_metric.results import ModelDescription
from speat_metric.training.slicing import PrunableLayer

MELHUBERT = "melhubert"

ModelInputs = Callable[[list[np.ndarray]], dict[str, torch.Tensor]]
"""Turns a batch of equal-length 16 kHz crops into a model's inputs, on the CPU (small and picklable: it runs in
dataloader workers)."""

# Training-time switches of transformers encoders: no LayerDrop (layer outputs must stay aligned for the teacher
# objective and for pruning), and SpecAugment only where the objective asks for it (the masks it passes).
_TRAINING_CONFIG = {"layerdrop": 0.0, "apply_spec_augment": False}


@dataclass
class TrainableEncoder:
    """A speech encoder a recipe trains (the "expert" of pruning, a distillation's teacher or student); one subclass
    per family (`TransformersTrainable`, `MelHuBERTTrainable`) says how it takes its inputs and makes a student.
    It is a `speat_metric.training.slicing.PrunableEncoder`.

    Attributes:
        spec: the model string the user gave.
        family: the transformers ``model_type`` or ``melhubert``.
        encoder: the module that is trained and saved (a transformers base model or a `MelHuBERTModel`).
        description: the loaded model's description (name, weights, parameter count) from its adapter.
        feature_extractor: a transformers model's feature extractor (None for MelHuBERT).
        mean, std: MelHuBERT's filter-bank statistics (None without ``--mean-std``).
    """

    spec: str
    family: str
    encoder: nn.Module
    description: ModelDescription
    feature_extractor: Any = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    checkpoint_suffix: ClassVar[str] = ""
    """Appended to ``checkpoint-<step>``: nothing for a directory, ``.ckpt`` for a file."""
    spec_prefix: ClassVar[str] = ""
    """What ``speat evaluate`` needs before a checkpoint's path."""

    @property
    def base_parameters(self) -> int:
        return self.description.num_parameters

    @property
    def inputs(self) -> ModelInputs:
        """Turns crops into this model's inputs."""
        raise NotImplementedError

    def hidden_states(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Every hidden state (input layer first) of `module` (this encoder, a copy, or its DDP wrapper)."""
        raise NotImplementedError

    def student_encoder(self, layers: int, *, init_from_teacher: bool) -> nn.Module:
        """A copy of the encoder (or one of its architecture, initialised at random) configured for `layers`
        transformer layers; the caller keeps its first `layers` layers."""
        raise NotImplementedError

    def layers(self) -> list[PrunableLayer]:
        return prunable(self.encoder).layers()

    def original_sizes(self) -> tuple[int, int]:
        return prunable(self.encoder).original_sizes()

    def frozen_copy(self) -> nn.Module:
        """A copy of the encoder as it is now, in eval mode, without gradients (the teacher, the label model)."""
        return copy.deepcopy(self.encoder).eval().requires_grad_(False)

    def checkpoint_path(self, run_dir: str | Path, step: int) -> Path:
        """Where the checkpoint of `step` goes: a directory (transformers) or a ``.ckpt`` file (MelHuBERT)."""
        return Path(run_dir) / f"checkpoint-{step}{self.checkpoint_suffix}"

    def checkpoint_spec(self, path: Path) -> str:
        """The model string ``speat evaluate`` (and `load_encoder`) reads a checkpoint with."""
        return f"{self.spec_prefix}{path}"

    def save(self, run_dir: str | Path, step: int) -> Path:
        """Save the encoder as it is now (pruned, masks applied) as the checkpoint of `step`, with the configuration
        it was loaded with (not the training switches of `training_config`)."""
        path = self.checkpoint_path(run_dir, step)
        config = getattr(self.encoder, "config", None)
        training = {key: getattr(config, key) for key in self._loaded_config}
        try:
            for key, value in self._loaded_config.items():
                setattr(config, key, value)
            return save_pruned_model(self.encoder, path, feature_extractor=self.feature_extractor, step=step)
        finally:
            for key, value in training.items():
                setattr(config, key, value)

    def training_config(self, *, spec_augment: bool = False) -> None:
        """Switch the encoder to training settings: no LayerDrop; SpecAugment only when the objective masks."""
        config = getattr(self.encoder, "config", None)
        for key, value in {**_TRAINING_CONFIG, "apply_spec_augment": spec_augment}.items():
            if key in self._loaded_config:
                setattr(config, key, value)

    def __post_init__(self) -> None:
        config = getattr(self.encoder, "config", None)
        self._loaded_config = {key: getattr(config, key) for key in _TRAINING_CONFIG if hasattr(config, key)}


class TransformersTrainable(TrainableEncoder):
    """A transformers wav2vec2, HuBERT, WavLM or data2vec-audio model: normalised waveforms in."""

    @property
    def inputs(self) -> ModelInputs:
        config = self.encoder.config
        return WaveformInputs(self.feature_extractor, tuple(zip(config.conv_kernel, config.conv_stride)))

    def hidden_states(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return list(module(batch["input_values"], output_hidden_states=True).hidden_states)

    def student_encoder(self, layers: int, *, init_from_teacher: bool) -> nn.Module:
        if init_from_teacher:
            encoder = copy.deepcopy(self.encoder)
            encoder.config.num_hidden_layers = layers
            return encoder
        config = copy.deepcopy(self.encoder.config)  # the teacher's architecture, as transformers initialises it
        config.num_hidden_layers = layers
        return type(self.encoder)(config)


class MelHuBERTTrainable(TrainableEncoder):
    """MelHuBERT: the authors' filter banks in (a ``.ckpt`` checkpoint, ``speat evaluate melhubert:RUN_DIR``)."""

    checkpoint_suffix = ".ckpt"
    spec_prefix = "melhubert:"

    @property
    def inputs(self) -> ModelInputs:
        return FilterBankInputs(self.encoder.config, self.mean, self.std)

    def hidden_states(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return module(batch["features"], batch["frame_mask"])

    def student_encoder(self, layers: int, *, init_from_teacher: bool) -> nn.Module:
        encoder = copy.deepcopy(self.encoder)
        encoder.config = dataclasses.replace(encoder.config, encoder_layers=layers)
        if not init_from_teacher:
            encoder._initialise()
        return encoder


@dataclass(frozen=True)
class WaveformInputs:
    """Waveforms normalised by a transformers model's feature extractor."""

    feature_extractor: Any
    conv_layers: tuple[tuple[int, int], ...] = ()

    def __call__(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        prepared = self.feature_extractor(waveforms, sampling_rate=16_000, return_tensors="pt")
        return {"input_values": prepared["input_values"]}

    def num_frames(self, num_samples: int) -> int:
        """Frames the encoder makes of `num_samples` samples (its CNN's kernels and strides)."""
        length = num_samples
        for kernel, stride in self.conv_layers:
            length = (length - kernel) // stride + 1
        return length


@dataclass(frozen=True)
class FilterBankInputs:
    """MelHuBERT's filter banks (the authors' front end) and a frame mask of real frames."""

    config: Any
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __call__(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        from speat_metric.adapters.melhubert import melhubert_features

        features = np.stack([melhubert_features(waveform, self.config, mean=self.mean, std=self.std)
                             for waveform in waveforms])
        return {"features": torch.from_numpy(features), "frame_mask": torch.ones(features.shape[:2], dtype=torch.bool)}


def load_trainable_encoder(spec: str, *, revision: str | None = None, mean_std: str | None = None,
                           command: str = "speat prune") -> TrainableEncoder:
    """Load the model to train from a model string (`revision` and `mean_std` as for ``speat evaluate``), on the CPU,
    in float32: a transformers wav2vec2, HuBERT, WavLM or data2vec-audio (a Hub id or directory, also one pruned
    before) or MelHuBERT (``melhubert:FILE`` or ``random:melhubert-small|slim|base[@SEED]``).

    `ModelLoadError` when it cannot be loaded, or is of a kind the recipes cannot train (naming `command`).
    """
    from speat_metric.adapters import load_encoder

    adapter = load_encoder(spec, revision=revision, mean_std_path=mean_std)
    description = adapter.description
    if description.kind == MELHUBERT:
        return MelHuBERTTrainable(spec, MELHUBERT, adapter.model, description, mean=adapter.mean, std=adapter.std)
    if description.kind == "transformers":
        model_type = adapter.model.config.model_type
        if model_type in PRUNABLE_MODEL_TYPES:
            return TransformersTrainable(spec, model_type, adapter.model, description,
                                         feature_extractor=adapter.extractor)
        kind = f"a {model_type!r} model"
    else:
        kind = f"a {description.kind} ({description.name})"
    raise ModelLoadError(f"{spec!r} is {kind}, which {command} cannot train; supported models: "
                         f"{', '.join(PRUNABLE_MODEL_TYPES)} (transformers) and MelHuBERT (melhubert:FILE, "
                         "random:melhubert-small|slim|base)")
