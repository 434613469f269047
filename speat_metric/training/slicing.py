"""Slicing transformer layers of any model family: what a prunable encoder exposes, and what remains after pruning.

A leaf (torch only), so that every adapter can use it: `PrunableEncoder`, `keep_heads`, `keep_ffn_dims`, and the
`PrunedLayout` a fresh model is shrunk to again (docs/pruning.md, "Slicing").

Example:
    >>> from torch import nn
    >>> attention = nn.Module()
    >>> q, k, v, out = (nn.Linear(8, 8) for _ in range(4))
    >>> layer = PrunableLayer(attention, q, k, v, out, nn.Linear(8, 6), nn.Linear(6, 8), head_dim=2)
    >>> keep_heads(layer, [3, 1]); keep_ffn_dims(layer, [0, 5])
    >>> layer.num_heads, layer.kept_heads, q.weight.shape[0], out.weight.shape[1], layer.ffn_dim
    (2, [1, 3], 4, 4, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

LAYOUT_KEY = "speat_pruning"
"""Where a pruned model's `PrunedLayout` is saved: a key of ``config.json`` or of a MelHuBERT checkpoint."""


def keep_rows(linear: nn.Linear, index: torch.Tensor) -> None:
    """Keep only the output rows `index` of a linear layer (and of its bias)."""
    linear.weight = sliced(linear.weight, index, 0)
    if linear.bias is not None:
        linear.bias = sliced(linear.bias, index, 0)
    linear.out_features = len(index)


def keep_columns(linear: nn.Linear, index: torch.Tensor) -> None:
    """Keep only the input columns `index` of a linear layer."""
    linear.weight = sliced(linear.weight, index, 1)
    linear.in_features = len(index)


def sliced(parameter: nn.Parameter, index: torch.Tensor, dim: int) -> nn.Parameter:
    """A new parameter of the entries `index` along `dim` (its ``requires_grad`` kept)."""
    data = parameter.detach().index_select(dim, index.to(parameter.device)).clone()
    return nn.Parameter(data, requires_grad=parameter.requires_grad)


@dataclass
class PrunableLayer:
    """The parts of one transformer layer that pruning touches.

    Head h owns output rows ``h*head_dim:(h+1)*head_dim`` of `query`, `key` and `value` and those input columns of
    `out`; ``num_heads`` and ``kept_heads`` are set on `attention` when heads are removed. FFN dimension i is row i
    of `intermediate` (and its bias) and column i of `output`. `on_keep_heads` is called with the attention and the
    positions kept before the projections are sliced, for a family whose attention holds more per-head state (WavLM's
    gated position bias).
    """

    attention: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    out: nn.Linear
    intermediate: nn.Linear
    output: nn.Linear
    head_dim: int
    on_keep_heads: Callable[[nn.Module, list[int]], None] | None = None

    @property
    def num_heads(self) -> int:
        return self.query.out_features // self.head_dim

    @property
    def kept_heads(self) -> list[int]:
        """Indices, among the layer's original heads, of the heads still there."""
        return list(getattr(self.attention, "kept_heads", range(self.num_heads)))

    @property
    def ffn_dim(self) -> int:
        return self.intermediate.out_features

    @property
    def linears(self) -> tuple[nn.Linear, ...]:
        """Every linear layer of the transformer layer (what weight pruning prunes): q, k, v, out, FFN in, FFN out."""
        return self.query, self.key, self.value, self.out, self.intermediate, self.output


@runtime_checkable
class PrunableEncoder(Protocol):
    """An encoder whose transformer layers pruning, distillation and pruned saving reach (MelHuBERT's model
    implements it; transformers models through `speat_metric.adapters.pruned.prunable`)."""

    def layers(self) -> list[PrunableLayer]:
        """Every transformer layer, input side first."""

    def original_sizes(self) -> tuple[int, int]:
        """(attention heads, FFN width) of every layer before pruning."""


def keep_heads(layer: PrunableLayer, keep: Sequence[int]) -> None:
    """Physically keep only some heads of a layer (`keep`: positions among its current heads): slice the q/k/v rows
    and the output-projection columns."""
    positions = sorted(set(int(head) for head in keep))
    if not positions or positions[0] < 0 or positions[-1] >= layer.num_heads:
        raise ValueError(f"keep must name 1 to {layer.num_heads} of the layer's heads (0..{layer.num_heads - 1}), "
                         f"got {list(keep)}")
    original = layer.kept_heads
    if layer.on_keep_heads is not None:
        layer.on_keep_heads(layer.attention, positions)
    index = torch.cat([torch.arange(head * layer.head_dim, (head + 1) * layer.head_dim) for head in positions])
    for linear in (layer.query, layer.key, layer.value):
        keep_rows(linear, index)
    keep_columns(layer.out, index)
    layer.attention.num_heads = len(positions)
    layer.attention.kept_heads = [original[head] for head in positions]


def keep_ffn_dims(layer: PrunableLayer, keep: Sequence[int]) -> None:
    """Physically keep only some FFN dimensions of a layer: rows of ``intermediate`` (and its bias), columns of
    ``output``."""
    rows = sorted(set(int(row) for row in keep))
    width = layer.ffn_dim
    if not rows or rows[0] < 0 or rows[-1] >= width:
        raise ValueError(f"keep must name 1 to {width} FFN dimensions (0..{width - 1}), got {len(rows)} values")
    index = torch.tensor(rows)
    keep_rows(layer.intermediate, index)
    keep_columns(layer.output, index)


@dataclass(frozen=True)
class PrunedLayout:
    """What remains of each transformer layer after head and row pruning: per layer, the indices (among the
    `original_heads` of every layer before pruning) of the attention heads kept, and the FFN width.

    Example:
        >>> layout = PrunedLayout(heads=((0, 2), (1,)), ffn_dims=(64, 48), original_heads=4, original_ffn_dim=64)
        >>> layout.num_heads, layout.is_pruned, PrunedLayout.from_dict(layout.to_dict()) == layout
        (3, True, True)
    """

    heads: tuple[tuple[int, ...], ...]
    ffn_dims: tuple[int, ...]
    original_heads: int
    original_ffn_dim: int

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.ffn_dims):
            raise ValueError(f"a layout needs heads and ffn_dims for every layer, got {len(self.heads)} and "
                             f"{len(self.ffn_dims)} layers")
        for layer, kept in enumerate(self.heads):
            if not kept or len(set(kept)) != len(kept) or not all(0 <= h < self.original_heads for h in kept):
                raise ValueError(f"layer {layer}: kept heads {list(kept)} must be 1 to {self.original_heads} distinct "
                                 f"indices in 0..{self.original_heads - 1}")
        for layer, width in enumerate(self.ffn_dims):
            if not 1 <= width <= self.original_ffn_dim:
                raise ValueError(f"layer {layer}: FFN width {width} must be 1 to {self.original_ffn_dim}")

    @property
    def num_heads(self) -> int:
        """Heads left in the whole model."""
        return sum(len(kept) for kept in self.heads)

    @property
    def heads_per_layer(self) -> list[int]:
        return [len(kept) for kept in self.heads]

    @property
    def is_pruned(self) -> bool:
        return (any(len(kept) != self.original_heads for kept in self.heads)
                or any(width != self.original_ffn_dim for width in self.ffn_dims))

    @property
    def uniform_ffn_dim(self) -> int | None:
        """The FFN width when every layer has the same one, else None."""
        return self.ffn_dims[0] if len(set(self.ffn_dims)) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {"heads": [list(kept) for kept in self.heads], "ffn_dims": list(self.ffn_dims),
                "original_heads": self.original_heads, "original_ffn_dim": self.original_ffn_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrunedLayout:
        try:
            return cls(heads=tuple(tuple(int(h) for h in kept) for kept in data["heads"]),
                       ffn_dims=tuple(int(width) for width in data["ffn_dims"]),
                       original_heads=int(data["original_heads"]), original_ffn_dim=int(data["original_ffn_dim"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a pruned-model layout ({error!r}): expected heads, ffn_dims, original_heads and "
                             "original_ffn_dim") from None


def layout_of(encoder: PrunableEncoder) -> PrunedLayout:
    """The current layout of a (possibly pruned) encoder."""
    layers = encoder.layers()
    heads, ffn_dim = encoder.original_sizes()
    return PrunedLayout(heads=tuple(tuple(layer.kept_heads) for layer in layers),
                        ffn_dims=tuple(layer.ffn_dim for layer in layers), original_heads=heads,
                        original_ffn_dim=ffn_dim)


def apply_layout(encoder: PrunableEncoder, layout: PrunedLayout) -> None:
    """Shrink a freshly built (unpruned) encoder to `layout`, so that the pruned weights load into it (ValueError when
    the layout does not fit it)."""
    layers = encoder.layers()
    if len(layers) != len(layout.heads):
        raise ValueError(f"the layout has {len(layout.heads)} layers but the model has {len(layers)}")
    for number, (layer, kept, width) in enumerate(zip(layers, layout.heads, layout.ffn_dims)):
        if layer.num_heads != layout.original_heads or layer.ffn_dim < width:
            raise ValueError(f"layer {number} has {layer.num_heads} heads and FFN width {layer.ffn_dim}; the "
                             f"layout was made from {layout.original_heads} heads and FFN width "
                             f"{layout.original_ffn_dim}")
        if len(kept) != layer.num_heads:
            keep_heads(layer, kept)
        if width != layer.ffn_dim:
            keep_ffn_dims(layer, range(width))
