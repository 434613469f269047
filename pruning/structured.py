"""Head and row pruning: L1 scores, the lowest-scoring heads or FFN dimensions of every layer, physically removed.

Head score (Lin et al. 2024; the authors' ``hp_utils.get_layer_heads_norm``): the L1 norm of the head's query,
key and value weights and biases. Row score (``rp_utils.get_layer_rows_norm``): the L1 norm of the FFN dimension's
first-layer row and bias plus its second-layer column. Each pruning step removes the same number from every layer
("by layer"); the tensors are sliced by `speat_metric.training.slicing` (transformers 5 has no ``prune_heads``).
"""

from __future__ import annotations

import torch
from torch import nn

from speat_metric.adapters.pruned import prunable
from speat_metric.training.slicing import PrunableLayer, keep_ffn_dims, keep_heads


def head_scores(layer: PrunableLayer) -> torch.Tensor:
    """(num_heads,) L1 norms of each head's q, k and v weights and biases."""
    total = torch.zeros(layer.num_heads, dtype=torch.float64)
    with torch.no_grad():
        for linear in (layer.query, layer.key, layer.value):
            rows = linear.weight.abs().sum(dim=1) + (linear.bias.abs() if linear.bias is not None else 0.0)
            total += rows.double().cpu().view(layer.num_heads, layer.head_dim).sum(dim=1)
    return total


def row_scores(layer: PrunableLayer) -> torch.Tensor:
    """(ffn_dim,) L1 norm of the FFN's first-layer row and bias plus its second-layer column, per FFN dimension."""
    with torch.no_grad():
        scores = layer.intermediate.weight.abs().sum(dim=1) + layer.output.weight.abs().sum(dim=0)
        if layer.intermediate.bias is not None:
            scores = scores + layer.intermediate.bias.abs()
    return scores.double().cpu()


def lowest(scores: torch.Tensor, count: int) -> list[int]:
    """Indices of the `count` lowest scores (ties: the lower index first), ascending."""
    order = sorted(range(len(scores)), key=lambda index: (float(scores[index]), index))
    return sorted(order[:count])


def prune_heads(encoder: nn.Module, per_layer: int) -> list[list[int]]:
    """Remove the `per_layer` lowest-scoring heads of every layer.

    Returns:
        Per layer, the original indices of the heads removed.

    Raises:
        ValueError: a layer would be left without heads.
    """
    removed = []
    for number, layer in enumerate(prunable(encoder).layers()):
        if per_layer >= layer.num_heads:
            raise ValueError(f"layer {number} has {layer.num_heads} heads: removing {per_layer} would leave none")
        drop = lowest(head_scores(layer), per_layer)
        removed.append([layer.kept_heads[head] for head in drop])
        keep_heads(layer, [head for head in range(layer.num_heads) if head not in drop])
    return removed


def prune_rows(encoder: nn.Module, per_layer: int) -> list[int]:
    """Remove the `per_layer` lowest-scoring FFN dimensions of every layer.

    Returns:
        The FFN width of each layer afterwards.

    Raises:
        ValueError: a layer would be left without FFN dimensions.
    """
    widths = []
    for number, layer in enumerate(prunable(encoder).layers()):
        width = layer.ffn_dim
        if per_layer >= width:
            raise ValueError(f"layer {number} has {width} FFN dimensions: removing {per_layer} would leave none")
        drop = set(lowest(row_scores(layer), per_layer))
        keep_ffn_dims(layer, [row for row in range(width) if row not in drop])
        widths.append(width - per_layer)
    return widths
