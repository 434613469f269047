"""Small neural-network building blocks shared by our own model definitions (MelHuBERT, M2D)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_heads: int,
                     allowed: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention over heads; `allowed` (batch, 1 or T, T) is True where a query may see a key.

    Args:
        query, key, value: (batch, time, num_heads * head_dim) projections.
        num_heads: number of heads.
        allowed: bool mask broadcastable to (batch, query time, key time).

    Returns:
        (batch, time, num_heads * head_dim) attention outputs, heads concatenated.
    """
    batch, time, width = query.shape

    def split(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(batch, tensor.shape[1], num_heads, width // num_heads).transpose(1, 2)

    output = F.scaled_dot_product_attention(split(query), split(key), split(value), attn_mask=allowed[:, None])
    return output.transpose(1, 2).reshape(batch, time, width)
