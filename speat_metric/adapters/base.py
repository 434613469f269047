"""The one interface every model adapter implements: 16 kHz waveforms in, per-layer frame features out.

An adapter hides how a model or a feature extractor is loaded and called. The embedding pipeline only sees
`SpeechEncoder.encode`, which returns an `EncoderOutput`: one (batch, frames, dim) tensor per layer and a
(batch, frames) mask of the frames that belong to real audio rather than padding. Pooling works from those two.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from speat_metric.audio import DEFAULT_SAMPLING_RATE
from speat_metric.defaults import DTYPES
from speat_metric.errors import ModelLoadError  # noqa: F401 (adapters raise it from here)
from speat_metric.results import ModelDescription

SAMPLING_RATE = DEFAULT_SAMPLING_RATE
"""Every adapter takes mono float32 waveforms at this rate, in [-1, 1] (what `load_audio` returns by default)."""

TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for ``"float32"``, ``"float16"`` or ``"bfloat16"``; anything else is a ValueError."""
    if name not in TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {name!r}")
    return TORCH_DTYPES[name]


@dataclass
class EncoderOutput:
    """Per-layer frame features of a batch.

    Attributes:
        hidden_states: one tensor per layer, each (batch, frames, dim), all layers the same shape.
        frame_mask: (batch, frames) bool, True where a frame comes from real audio (not padding).
    """

    hidden_states: list[torch.Tensor]
    frame_mask: torch.Tensor


class SpeechEncoder(abc.ABC):
    """Base class of model adapters."""

    description: ModelDescription

    supports_padding: bool = True
    """True when a clip padded inside a batch gives the same valid frames as the clip alone (the model takes an
    attention mask, or has no cross-frame normalisation). When False the pipeline never pads: it batches only
    clips of equal length."""

    profile: str = "hf"
    """The extraction profile this adapter runs under (`speat_metric.profiles`): it picks the layers of transformers
    models and, for every adapter, the resampler the pipeline decodes audio with. Part of every cache key and
    record. Adapters with one extraction in every profile (MelHuBERT, M2D, classical features) take it as given."""

    @abc.abstractmethod
    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        """Encode a batch of mono 16 kHz float32 waveforms (possibly of different lengths)."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def pad_batch(waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad waveforms (or (frames, dim) features) with zeros to (batch, samples[, dim]) float32, with a
    (batch, samples) bool mask of the real samples."""
    lengths = [len(waveform) for waveform in waveforms]
    batch = torch.zeros(len(waveforms), max(lengths), *np.shape(waveforms[0])[1:], dtype=torch.float32)
    mask = torch.zeros(len(waveforms), max(lengths), dtype=torch.bool)
    for row, waveform in enumerate(waveforms):
        batch[row, : len(waveform)] = torch.as_tensor(waveform, dtype=torch.float32)
        mask[row, : len(waveform)] = True
    return batch, mask


def frames_mask(num_frames: Iterable[int], total_frames: int) -> torch.Tensor:
    """A (batch, total_frames) bool mask whose row i is True for its first num_frames[i] frames."""
    counts = torch.as_tensor(list(num_frames), dtype=torch.long)
    return torch.arange(total_frames)[None, :] < counts[:, None]


def join_windows(layers: Sequence[Sequence[torch.Tensor]], valid: Sequence[int], owners: Sequence[int],
                 count: int) -> EncoderOutput:
    """Concatenate, for each of `count` clips, the first `valid` frames of each window it owns (`owners`, in order).

    `layers` holds per layer the windows' (frames, dim) features (a (windows, frames, dim) tensor or a list); the
    result is zero-padded, on the device and in the dtype of `layers`.
    """
    per_clip_frames = [sum(frames for frames, owner in zip(valid, owners) if owner == index) for index in range(count)]
    total = max(per_clip_frames)
    hidden_states = []
    for layer in layers:
        stacked = layer[0].new_zeros(count, total, layer[0].shape[-1])
        filled = [0] * count
        for window, owner, frames in zip(layer, owners, valid):
            stacked[owner, filled[owner]:filled[owner] + frames] = window[:frames]
            filled[owner] += frames
        hidden_states.append(stacked)
    return EncoderOutput(hidden_states, frames_mask(per_clip_frames, total).to(layers[0][0].device))


def padding_is_harmless(encoder: SpeechEncoder, *, tolerance: float = 1e-4) -> bool:
    """Check empirically that a clip padded inside a batch keeps its valid frames' features (to `tolerance`).

    Some models leak padding into real frames even with an attention mask (e.g. stacked positional convolutions
    with normalisation, as in data2vec-audio), so the config alone cannot tell.
    """
    noise = np.random.default_rng(0)
    long_clip = noise.normal(0, 0.1, SAMPLING_RATE).astype(np.float32)
    short_clip = noise.normal(0, 0.1, SAMPLING_RATE * 6 // 10).astype(np.float32)
    batched, alone = encoder.encode([long_clip, short_clip]), encoder.encode([short_clip])
    valid = int(alone.frame_mask[0].sum())
    if int(batched.frame_mask[1].sum()) != valid:
        return False
    for in_batch, by_itself in zip(batched.hidden_states, alone.hidden_states):
        scale = float(by_itself[0, :valid].abs().max()) or 1.0
        if float((in_batch[1, :valid] - by_itself[0, :valid]).abs().max()) > tolerance * max(scale, 1.0):
            return False
    return True


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and values), in a stable order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
