"""Pruned speech encoders: the transformers models' prunable layers, and how a pruned model is saved and loaded.

Head and row (FFN) pruning shrink a model's tensors (`speat_metric.training.slicing`), so a pruned model no longer
matches its configuration. Its `PrunedLayout` (the heads kept and the FFN width of each layer) is saved with it,
under ``"speat_pruning"`` in a transformers ``config.json`` or in a MelHuBERT checkpoint, and rebuilt on load.
`prunable` gives any trainable encoder's layers through one protocol (`PrunableEncoder`).

Example:
    >>> from speat_metric.adapters.pruned import load_pruned_model
    >>> model = load_pruned_model("runs/heads/checkpoint-26000")          # doctest: +SKIP
    >>> hidden = model(waveforms, output_hidden_states=True).hidden_states  # doctest: +SKIP

Details (formats, WavLM's per-head position bias): docs/adapters.md, "Pruned models".
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speat_metric.adapters.base import ModelLoadError
from speat_metric.training.slicing import (
    LAYOUT_KEY,
    PrunableEncoder,
    PrunableLayer,
    PrunedLayout,
    apply_layout,
    layout_of,
    sliced,
)

PRUNABLE_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
"""transformers ``model_type`` values whose layers `TransformersLayers` knows (plus our MelHuBERT)."""


def encoder_of(model: nn.Module) -> nn.Module:
    """The speech encoder inside a model: a transformers base model (also inside e.g. ``Wav2Vec2ForPreTraining``)
    or the model itself."""
    from transformers import PreTrainedModel

    return model.base_model if isinstance(model, PreTrainedModel) else model


def prunable(model: nn.Module) -> PrunableEncoder:
    """The `PrunableEncoder` of a model: `TransformersLayers` for a transformers model, else the model itself (as
    MelHuBERT's, which implements the protocol).

    Raises:
        ValueError: the model is of a kind that cannot be pruned.
    """
    from transformers import PreTrainedModel

    encoder = encoder_of(model)
    if isinstance(encoder, PreTrainedModel):
        return TransformersLayers(encoder)
    if not isinstance(encoder, PrunableEncoder):
        raise _not_prunable(type(encoder).__name__)
    return encoder


def _not_prunable(kind: str) -> ValueError:
    return ValueError(f"cannot prune a {kind!r} model; prunable: {', '.join(PRUNABLE_MODEL_TYPES)} and MelHuBERT")


class TransformersLayers:
    """`PrunableEncoder` of a transformers wav2vec2, HuBERT, WavLM or data2vec-audio base model.

    Raises:
        ValueError: a model of another ``model_type``.
    """

    def __init__(self, encoder: nn.Module) -> None:
        model_type = encoder.config.model_type
        if model_type not in PRUNABLE_MODEL_TYPES:
            raise _not_prunable(model_type)
        self.encoder = encoder

    def layers(self) -> list[PrunableLayer]:
        config = self.encoder.config
        head_dim = config.hidden_size // config.num_attention_heads
        on_keep_heads = _keep_wavlm_heads if config.model_type == "wavlm" else None
        return [PrunableLayer(layer.attention, layer.attention.q_proj, layer.attention.k_proj,
                              layer.attention.v_proj, layer.attention.out_proj, layer.feed_forward.intermediate_dense,
                              layer.feed_forward.output_dense, head_dim, on_keep_heads)
                for layer in self.encoder.encoder.layers]

    def original_sizes(self) -> tuple[int, int]:
        """The sizes the recorded layout was made from (a model pruned before), else the configuration's."""
        config = self.encoder.config
        layout = pruned_layout_of_config(config)
        if layout is None:
            return config.num_attention_heads, config.intermediate_size
        return layout.original_heads, layout.original_ffn_dim


class _PrunedWavLMAttentionMixin:
    """WavLM self-attention with some heads removed (see `pruned_wavlm_attention_class`)."""

    kept_heads: list[int]
    original_num_heads: int

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_bias: torch.Tensor | None = None, index: int = 0,
                **kwargs: Any) -> tuple[torch.Tensor, None, torch.Tensor]:
        batch, frames, _ = hidden_states.shape
        heads = self.original_num_heads
        if position_bias is None:
            position_bias = self.compute_bias(frames, frames).unsqueeze(0).repeat(batch, 1, 1, 1)
            position_bias = position_bias.view(batch * heads, frames, frames)
        kept = torch.as_tensor(self.kept_heads, device=hidden_states.device)
        bias = position_bias.view(batch, heads, frames, frames).index_select(1, kept)
        head_inputs = hidden_states.view(batch, frames, heads, self.head_dim).index_select(2, kept).transpose(1, 2)
        projected = self.gru_rel_pos_linear(head_inputs).view(batch, len(self.kept_heads), frames, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
        bias = (gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0) * bias
        if attention_mask is not None:
            bias = bias.masked_fill(attention_mask.ne(1)[:, None, None, :], float("-inf"))

        def split(linear: nn.Linear) -> torch.Tensor:
            return linear(hidden_states).view(batch, frames, len(self.kept_heads), self.head_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.q_proj), split(self.k_proj), split(self.v_proj),
                                                  attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        output = self.out_proj(attended.transpose(1, 2).reshape(batch, frames, -1))
        return output, None, position_bias


@functools.cache
def pruned_wavlm_attention_class() -> type[nn.Module]:
    """``PrunedWavLMAttention``, a ``WavLMAttention`` that runs with some heads removed.

    WavLM's first layer computes a relative position bias for every head and passes it to all later layers, so a
    pruned layer selects its kept heads (``kept_heads``, indices among the original ``original_num_heads``) from the
    full bias and from the input; with every head kept it computes what ``WavLMAttention`` computes (without
    attention weights). Made on first use, so that loading other models does not import WavLM's code.
    """
    from transformers.models.wavlm.modeling_wavlm import WavLMAttention

    return type("PrunedWavLMAttention", (_PrunedWavLMAttentionMixin, WavLMAttention), {})


def _keep_wavlm_heads(attention: nn.Module, positions: list[int]) -> None:
    """Before WavLM heads are sliced: make the attention a ``PrunedWavLMAttention`` in place (same parameters) and
    keep the per-head gate constants of the heads kept."""
    if type(attention).__name__ == "WavLMAttention":
        attention.__class__ = pruned_wavlm_attention_class()
        attention.original_num_heads = attention.num_heads
        attention.kept_heads = list(range(attention.num_heads))
    attention.gru_rel_pos_const = sliced(attention.gru_rel_pos_const, torch.tensor(positions), 1)


def save_pruned_model(model: nn.Module, path: str | Path, *, feature_extractor: Any = None, step: int = 0) -> Path:
    """Save a (possibly pruned) model so that `load_pruned_model` and ``speat evaluate`` load it; returns `path`.

    Args:
        model: a transformers wav2vec2-family base model or a `MelHuBERTModel` (weight masks already applied).
        path: a directory for a transformers model; a ``.ckpt`` file for MelHuBERT.
        feature_extractor: saved beside a transformers model (its input normalisation), when given.
        step: training step, recorded in a MelHuBERT checkpoint.
    """
    from transformers import PreTrainedModel

    path = Path(path)
    if not isinstance(model, PreTrainedModel):  # our other trainable family, whose checkpoints record the layout
        from speat_metric.adapters.melhubert import save_melhubert_checkpoint

        save_melhubert_checkpoint(model, path, step=step)
        return path
    layout = layout_of(prunable(model))
    config = model.config
    saved = {"intermediate_size": config.intermediate_size, LAYOUT_KEY: getattr(config, LAYOUT_KEY, None)}
    try:
        if layout.uniform_ffn_dim is not None:
            config.intermediate_size = layout.uniform_ffn_dim
        setattr(config, LAYOUT_KEY, layout.to_dict() if layout.is_pruned else None)
        if not layout.is_pruned:
            delattr(config, LAYOUT_KEY)
        model.save_pretrained(path)
    finally:
        for key, value in saved.items():
            setattr(config, key, value)
    if feature_extractor is not None:
        feature_extractor.save_pretrained(path)
    return path


def pruned_layout_of_config(config: Any) -> PrunedLayout | None:
    """The layout a transformers configuration records, or None for an unpruned model."""
    data = getattr(config, LAYOUT_KEY, None)
    return PrunedLayout.from_dict(data) if data else None


def load_pretrained(model_class: Any, name: str, *, revision: str | None = None, dtype: torch.dtype | None = None,
                    local_files_only: bool = False) -> nn.Module:
    """``model_class.from_pretrained(name)`` (e.g. of ``transformers.AutoModel`` or ``Wav2Vec2ForPreTraining``) that
    also rebuilds models saved by `save_pretrained` after pruning.

    Raises:
        ModelLoadError: a pruned model whose weights do not fit its recorded layout.
    """
    import transformers

    config = transformers.AutoConfig.from_pretrained(name, revision=revision, local_files_only=local_files_only)
    layout = pruned_layout_of_config(config)
    if layout is None:
        return model_class.from_pretrained(name, revision=revision, dtype=dtype, local_files_only=local_files_only)
    config.intermediate_size = layout.original_ffn_dim
    model = model_class.from_config(config) if model_class.__name__.startswith("Auto") else model_class(config)
    try:
        apply_layout(prunable(model), layout)
    except ValueError as error:
        raise ModelLoadError(f"{name!r}: its pruned layout does not fit its configuration ({error})") from None
    model.config.intermediate_size = layout.uniform_ffn_dim or layout.original_ffn_dim
    _load_weights(encoder_of(model), name, revision=revision, local_files_only=local_files_only)
    return model.to(dtype) if dtype is not None else model


def _load_weights(model: nn.Module, name: str, *, revision: str | None, local_files_only: bool) -> None:
    import safetensors.torch
    from transformers.utils import cached_file

    def fetch(filename: str) -> str | None:
        return cached_file(name, filename, revision=revision, local_files_only=local_files_only,
                           _raise_exceptions_for_missing_entries=False)

    index = fetch("model.safetensors.index.json")
    if index is not None:
        shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
        files = [fetch(shard) for shard in shards]
    else:
        files = [fetch("model.safetensors")]
    if None in files:
        raise ModelLoadError(f"{name!r} is a pruned model but its weights (model.safetensors) are missing")
    state_dict: dict[str, torch.Tensor] = {}
    for file in files:
        state_dict.update(safetensors.torch.load_file(file))
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    if prefix != "." and all(key.startswith(prefix) for key in state_dict):
        state_dict = {key.removeprefix(prefix): tensor for key, tensor in state_dict.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise ModelLoadError(f"{name!r}: the pruned weights lack {len(missing)} tensors ({', '.join(missing[:4])}...)")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise ModelLoadError(f"{name!r}: tensor {key!r} has shape {tuple(state_dict[key].shape)} but the recorded "
                                 f"pruned layout implies {tuple(tensor.shape)}")
    model.load_state_dict({key: state_dict[key] for key in expected})


def load_pruned_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model saved by ``speat prune`` (or any model `save_pruned_model` wrote), in eval mode.

    Args:
        path: a checkpoint directory (transformers: ``AutoModel``, e.g. ``Wav2Vec2Model``) or a MelHuBERT
            ``.ckpt`` file (a `MelHuBERTModel`).

    Raises:
        ModelLoadError: the path is neither, or its weights do not fit its recorded layout.
    """
    import transformers

    from speat_metric.adapters.melhubert import load_melhubert_checkpoint

    path = Path(path)
    if path.is_file():
        return load_melhubert_checkpoint(path, device=device)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{str(path)!r} is neither a checkpoint directory (with config.json) nor a MelHuBERT "
                             "checkpoint file")
    return load_pretrained(transformers.AutoModel, str(path)).to(device).eval()

