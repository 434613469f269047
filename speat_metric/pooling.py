"""From per-layer frame features to one embedding per clip.

Two steps, as in SpEAT and Lin et al. (2024):

1. frame pooling, per layer: the mean over a clip's valid (unpadded) frames (``"mean"``, the studies' choice) or
   their maximum (``"max"``), giving a (layers, dim) array per clip. This is what the embedding cache stores.
2. layer pooling: the mean over all layers, input embedding layer included (``"mean"``, the studies' default), the
   last layer (``"last"``), one layer by index (``"layer"`` with ``layer=N``; negative counts from the end), or every
   layer separately (``"per-layer"``, one SpEAT per layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where frames are pooled, so the CLI starts without it
    from speat_metric.adapters.base import EncoderOutput

FRAME_POOLINGS = ("mean", "max")
LAYER_POOLINGS = ("mean", "last", "layer", "per-layer")


class NoFramesError(ValueError):
    """Clips of a batch gave no frames (they are shorter than the model's receptive field); `indices` says which."""

    def __init__(self, indices: list[int]) -> None:
        super().__init__(f"clip(s) {indices} of the batch gave no frames: shorter than the model's receptive field")
        self.indices = indices


def pool_frames(output: EncoderOutput, frame_pooling: str = "mean") -> np.ndarray:
    """Pool each layer over each clip's valid frames: float32 (batch, layers, dim); NoFramesError if one has none."""
    if frame_pooling not in FRAME_POOLINGS:
        raise ValueError(f"frame pooling must be one of {', '.join(FRAME_POOLINGS)}, got {frame_pooling!r}")
    import torch

    mask = output.frame_mask[:, :, None]
    empty = (~output.frame_mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise NoFramesError(empty)
    pooled = []
    for layer in output.hidden_states:
        layer = layer.float()
        if frame_pooling == "mean":
            pooled.append((layer * mask).sum(dim=1) / mask.sum(dim=1))
        else:
            pooled.append(layer.masked_fill(~mask, -torch.inf).amax(dim=1))
    return torch.stack(pooled, dim=1).numpy().astype(np.float32)


@dataclass(frozen=True)
class LayerPooling:
    """How per-layer clip embeddings become the vectors a SpEAT compares.

    Attributes:
        mode: ``"mean"``, ``"last"``, ``"layer"`` or ``"per-layer"``.
        layer: the layer index for ``mode="layer"`` (0 = input embedding layer; negative counts from the end).
    """

    mode: str = "mean"
    layer: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in LAYER_POOLINGS:
            raise ValueError(f"layer pooling must be one of {', '.join(LAYER_POOLINGS)}, got {self.mode!r}")
        if self.mode == "layer" and self.layer is None:
            raise ValueError("--pooling layer tests one layer: give it with --layer N (0 = the input embedding layer; "
                             "negative counts from the end)")
        if self.mode != "layer" and self.layer is not None:
            raise ValueError(f"--layer {self.layer} picks the layer of --pooling layer, but the pooling is "
                             f"{self.mode!r}; add --pooling layer")

    def views(self, per_layer: np.ndarray) -> list[tuple[int | None, np.ndarray]]:
        """The (layer, embeddings) pairs to test, from an (stimuli, layers, dim) array; layer None means all pooled."""
        num_layers = per_layer.shape[1]
        if self.mode == "mean":
            return [(None, per_layer.mean(axis=1))]
        if self.mode == "per-layer":
            return [(index, per_layer[:, index]) for index in range(num_layers)]
        index = num_layers - 1 if self.mode == "last" else self.layer_index(num_layers)
        return [(index, per_layer[:, index])]

    def layer_index(self, num_layers: int, model: str = "the model") -> int | None:
        """The index of the one layer tested in a model of `num_layers` hidden-state layers (None unless the mode is
        ``"layer"``); evaluation calls it before the first forward pass, once the layer count is known. A layer that
        `model` does not have is a ValueError naming both.

        Example:
            >>> LayerPooling("layer", layer=-1).layer_index(13)
            12
        """
        if self.mode != "layer":
            return None
        if not -num_layers <= self.layer < num_layers:
            raise ValueError(f"--layer {self.layer}: {model} has {num_layers} layers (0..{num_layers - 1}, 0 being the "
                             "input embedding layer; negative counts from the end)")
        return self.layer % num_layers
