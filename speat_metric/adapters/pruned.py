"""Pruned speech encoders: what is kept, how tensors are sliced, and how a pruned model is saved and loaded again.

Head and row (FFN) pruning physically shrink a model's tensors, so a pruned model no longer matches its
configuration: transformers' ``from_pretrained`` builds every layer with ``num_attention_heads`` heads and an
``intermediate_size`` FFN and refuses the smaller tensors. A `PrunedLayout` records, per layer, which of the
original attention heads remain and how wide the FFN is; it is saved with the model and rebuilt on load:

- transformers models (wav2vec2, HuBERT, WavLM, data2vec-audio): a ``save_pretrained`` directory whose
  ``config.json`` holds the layout under ``"speat_pruning"``. When every layer kept the same FFN width,
  ``intermediate_size`` is that width, so a row-pruned model also loads with plain ``from_pretrained``.
- MelHuBERT: the authors' checkpoint format (`speat_metric.adapters.melhubert`) with the layout under the extra key
  ``"speat_pruning"`` (and ``encoder_ffn_embed_dim`` set to a uniform FFN width, as the authors' row pruning does).

Load one in your own code with one call, `load_pruned_model` (a directory gives the transformers model, a file the
MelHuBERT model); ``speat evaluate`` loads both through its usual loaders.

Example:
    >>> from speat_metric.adapters.pruned import load_pruned_model
    >>> model = load_pruned_model("runs/heads/checkpoint-26000")          # doctest: +SKIP
    >>> hidden = model(waveforms, output_hidden_states=True).hidden_states  # doctest: +SKIP

Slicing heads only needs the query/key/value rows and the output-projection columns of the heads kept: wav2vec2,
HuBERT and data2vec-audio attention reshape by ``head_dim`` (which does not change), so the smaller projections run
as they are. WavLM's gated relative position bias is per head and shared from the first layer with all others, so a
head-pruned WavLM layer runs ``PrunedWavLMAttention`` (`pruned_wavlm_attention_class`), which selects its kept heads
from the full bias.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speat_metric.adapters.base import ModelLoadError

logger = logging.getLogger(__name__)

CONFIG_KEY = "speat_pruning"
"""Where a pruned model's `PrunedLayout` lives: a key of ``config.json`` or of a MelHuBERT checkpoint."""

PRUNABLE_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
"""transformers ``model_type`` values whose layers `transformer_layers` knows (plus our MelHuBERT)."""


@dataclass
class TransformerLayerParts:
    """The modules of one transformer layer that pruning touches.

    Attributes:
        attention: the self-attention module (its ``num_heads`` is kept up to date).
        query, key, value: the input projections; head h owns output rows ``h*head_dim:(h+1)*head_dim``.
        output: the output projection; head h owns those input columns.
        fc1, fc2: the feed-forward layers; FFN dimension i is row i of fc1 (and its bias) and column i of fc2.
        head_dim: width of one head.
    """

    attention: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    output: nn.Linear
    fc1: nn.Linear
    fc2: nn.Linear
    head_dim: int

    @property
    def num_heads(self) -> int:
        return self.query.out_features // self.head_dim

    @property
    def kept_heads(self) -> list[int]:
        """Indices, among the layer's original heads, of the heads still there."""
        return list(getattr(self.attention, "kept_heads", range(self.num_heads)))

    @property
    def linears(self) -> tuple[nn.Linear, ...]:
        """Every linear layer of the transformer layer (what weight pruning prunes)."""
        return self.query, self.key, self.value, self.output, self.fc1, self.fc2


def encoder_of(model: nn.Module) -> nn.Module:
    """The speech encoder inside a model: a transformers base model (also inside e.g. ``Wav2Vec2ForPreTraining``)
    or a `MelHuBERTModel`."""
    from transformers import PreTrainedModel

    return model.base_model if isinstance(model, PreTrainedModel) else model


def transformer_layers(model: nn.Module) -> list[TransformerLayerParts]:
    """The prunable parts of every transformer layer of a wav2vec2-family model or a MelHuBERT model.

    Raises:
        ValueError: the model is of another kind.
    """
    from speat_metric.adapters.melhubert import MelHuBERTModel

    encoder = encoder_of(model)
    if isinstance(encoder, MelHuBERTModel):
        head_dim = encoder.config.encoder_embed_dim // encoder.config.encoder_attention_heads
        return [TransformerLayerParts(layer.self_attn, layer.self_attn.q_proj, layer.self_attn.k_proj,
                                      layer.self_attn.v_proj, layer.self_attn.out_proj, layer.fc1, layer.fc2, head_dim)
                for layer in encoder.encoder.layers]
    model_type = getattr(getattr(encoder, "config", None), "model_type", None)
    if model_type not in PRUNABLE_MODEL_TYPES:
        raise ValueError(f"cannot prune a {model_type or type(encoder).__name__!r} model; prunable: "
                         f"{', '.join(PRUNABLE_MODEL_TYPES)} and MelHuBERT")
    config = encoder.config
    head_dim = config.hidden_size // config.num_attention_heads
    return [TransformerLayerParts(layer.attention, layer.attention.q_proj, layer.attention.k_proj,
                                  layer.attention.v_proj, layer.attention.out_proj,
                                  layer.feed_forward.intermediate_dense, layer.feed_forward.output_dense, head_dim)
            for layer in encoder.encoder.layers]


# --------------------------------------------------------------------------------------------------------------
# Slicing
# --------------------------------------------------------------------------------------------------------------


def _sliced(parameter: nn.Parameter, index: torch.Tensor, dim: int) -> nn.Parameter:
    data = parameter.detach().index_select(dim, index.to(parameter.device)).clone()
    return nn.Parameter(data, requires_grad=parameter.requires_grad)


def _keep_outputs(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight = _sliced(linear.weight, index, 0)
    if linear.bias is not None:
        linear.bias = _sliced(linear.bias, index, 0)
    linear.out_features = len(index)


def _keep_inputs(linear: nn.Linear, index: torch.Tensor) -> None:
    linear.weight = _sliced(linear.weight, index, 1)
    linear.in_features = len(index)


def keep_heads(layer: TransformerLayerParts, keep: Sequence[int]) -> None:
    """Physically keep only some heads of a layer: slice the q/k/v rows and the output-projection columns.

    Args:
        layer: the layer's parts (`transformer_layers`).
        keep: positions, among the layer's current heads, of the heads to keep (at least one).

    Raises:
        ValueError: no head kept, or a position out of range.
    """
    positions = sorted(set(int(head) for head in keep))
    if not positions or positions[0] < 0 or positions[-1] >= layer.num_heads:
        raise ValueError(f"keep must name 1 to {layer.num_heads} of the layer's heads (0..{layer.num_heads - 1}), "
                         f"got {list(keep)}")
    original = layer.kept_heads
    _make_wavlm_prunable(layer.attention)
    index = torch.cat([torch.arange(head * layer.head_dim, (head + 1) * layer.head_dim) for head in positions])
    for linear in (layer.query, layer.key, layer.value):
        _keep_outputs(linear, index)
    _keep_inputs(layer.output, index)
    if isinstance(layer.attention, _PrunedWavLMAttentionMixin):
        layer.attention.gru_rel_pos_const = _sliced(layer.attention.gru_rel_pos_const, torch.tensor(positions), 1)
    layer.attention.num_heads = len(positions)
    layer.attention.kept_heads = [original[head] for head in positions]


def keep_ffn_dims(layer: TransformerLayerParts, keep: Sequence[int]) -> None:
    """Physically keep only some FFN dimensions of a layer: rows of fc1 (and its bias), columns of fc2.

    Raises:
        ValueError: nothing kept, or an index out of range.
    """
    rows = sorted(set(int(row) for row in keep))
    width = layer.fc1.out_features
    if not rows or rows[0] < 0 or rows[-1] >= width:
        raise ValueError(f"keep must name 1 to {width} FFN dimensions (0..{width - 1}), got {len(rows)} values")
    index = torch.tensor(rows)
    _keep_outputs(layer.fc1, index)
    _keep_inputs(layer.fc2, index)


# --------------------------------------------------------------------------------------------------------------
# WavLM
# --------------------------------------------------------------------------------------------------------------


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

    WavLM's first layer computes a relative position bias for every head and passes it to all later layers, each
    head gating its own bias with its slice of the layer input. So a pruned layer keeps the first layer's full
    ``rel_attn_embed`` (when it has one) and selects its kept heads (``kept_heads``, indices among the original
    ``original_num_heads``) from the bias and from the input. With every head kept it computes what
    ``WavLMAttention`` computes (attention weights are not returned). Made on first use, so that loading other
    models does not import WavLM's code.
    """
    from transformers.models.wavlm.modeling_wavlm import WavLMAttention

    return type("PrunedWavLMAttention", (_PrunedWavLMAttentionMixin, WavLMAttention), {})


def _make_wavlm_prunable(attention: nn.Module) -> None:
    """Turn a ``WavLMAttention`` into a ``PrunedWavLMAttention`` in place (same parameters); others stay as they are."""
    if type(attention).__name__ == "WavLMAttention":
        attention.__class__ = pruned_wavlm_attention_class()
        attention.original_num_heads = attention.num_heads
        attention.kept_heads = list(range(attention.num_heads))


# --------------------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedLayout:
    """What remains of each transformer layer after head and row pruning.

    Attributes:
        heads: per layer, the indices (among the ``original_heads``) of the attention heads kept.
        ffn_dims: per layer, the FFN width.
        original_heads: attention heads per layer before pruning.
        original_ffn_dim: FFN width before pruning.

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


def original_sizes(model: nn.Module) -> tuple[int, int]:
    """(attention heads, FFN width) of every layer as the model's configuration describes them (before pruning)."""
    from speat_metric.adapters.melhubert import MelHuBERTModel

    encoder = encoder_of(model)
    if isinstance(encoder, MelHuBERTModel):
        return encoder.config.encoder_attention_heads, encoder.config.encoder_ffn_embed_dim
    layout = getattr(encoder.config, CONFIG_KEY, None)
    if layout is not None:
        layout = PrunedLayout.from_dict(layout)
        return layout.original_heads, layout.original_ffn_dim
    return encoder.config.num_attention_heads, encoder.config.intermediate_size


def layout_of(model: nn.Module) -> PrunedLayout:
    """The current layout of a (possibly pruned) model."""
    layers = transformer_layers(model)
    heads, ffn_dim = original_sizes(model)
    return PrunedLayout(heads=tuple(tuple(layer.kept_heads) for layer in layers),
                        ffn_dims=tuple(layer.fc1.out_features for layer in layers),
                        original_heads=heads, original_ffn_dim=ffn_dim)


def apply_layout(model: nn.Module, layout: PrunedLayout) -> None:
    """Shrink a freshly built (unpruned) model to `layout`, so that the pruned weights load into it.

    Raises:
        ValueError: the layout does not fit the model (layer count or original sizes).
    """
    layers = transformer_layers(model)
    if len(layers) != len(layout.heads):
        raise ValueError(f"the layout has {len(layout.heads)} layers but the model has {len(layers)}")
    for number, (layer, kept, width) in enumerate(zip(layers, layout.heads, layout.ffn_dims)):
        if layer.num_heads != layout.original_heads or layer.fc1.out_features < width:
            raise ValueError(f"layer {number} has {layer.num_heads} heads and FFN width {layer.fc1.out_features}; the "
                             f"layout was made from {layout.original_heads} heads and FFN width "
                             f"{layout.original_ffn_dim}")
        if len(kept) != layer.num_heads:
            keep_heads(layer, kept)
        if width != layer.fc1.out_features:
            keep_ffn_dims(layer, range(width))


# --------------------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------------------


def save_pruned_model(model: nn.Module, path: str | Path, *, feature_extractor: Any = None, step: int = 0) -> Path:
    """Save a (possibly pruned) model so that `load_pruned_model` and ``speat evaluate`` load it.

    Args:
        model: a transformers wav2vec2-family base model or a `MelHuBERTModel` (weight masks already applied).
        path: a directory for a transformers model; a ``.ckpt`` file for MelHuBERT.
        feature_extractor: saved beside a transformers model (its input normalisation), when given.
        step: training step, recorded in a MelHuBERT checkpoint.

    Returns:
        The directory or file written.
    """
    from speat_metric.adapters.melhubert import MelHuBERTModel, save_melhubert_checkpoint

    layout = layout_of(model)
    path = Path(path)
    if isinstance(model, MelHuBERTModel):
        save_melhubert_checkpoint(model, path, step=step, extra={CONFIG_KEY: layout.to_dict()} if layout.is_pruned
                                  else None)
        return path
    config = model.config
    saved = {"intermediate_size": config.intermediate_size, CONFIG_KEY: getattr(config, CONFIG_KEY, None)}
    try:
        if layout.uniform_ffn_dim is not None:
            config.intermediate_size = layout.uniform_ffn_dim
        setattr(config, CONFIG_KEY, layout.to_dict() if layout.is_pruned else None)
        if not layout.is_pruned:
            delattr(config, CONFIG_KEY)
        model.save_pretrained(path)
    finally:
        for key, value in saved.items():
            setattr(config, key, value)
    if feature_extractor is not None:
        feature_extractor.save_pretrained(path)
    return path


def pruned_layout_of_config(config: Any) -> PrunedLayout | None:
    """The layout a transformers configuration records, or None for an unpruned model."""
    data = getattr(config, CONFIG_KEY, None)
    return PrunedLayout.from_dict(data) if data else None


def load_pretrained(model_class: Any, name: str, *, revision: str | None = None, dtype: torch.dtype | None = None,
                    local_files_only: bool = False) -> nn.Module:
    """``model_class.from_pretrained(name)`` that also rebuilds models saved by `save_pretrained` after pruning.

    Args:
        model_class: e.g. ``transformers.AutoModel`` or ``transformers.Wav2Vec2ForPreTraining``.
        name: local directory or Hub id.
        revision, dtype, local_files_only: as for ``from_pretrained``.

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
        apply_layout(model, layout)
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


def melhubert_with_layout(config: Any, layout: Mapping[str, Any], path: str | Path) -> nn.Module:
    """A `MelHuBERTModel` of `config`, shrunk to a recorded layout (for `load_melhubert_checkpoint`).

    Raises:
        ModelLoadError: the layout is malformed or does not fit the configuration.
    """
    from speat_metric.adapters.melhubert import MelHuBERTModel

    try:
        layout = PrunedLayout.from_dict(layout)
        model = MelHuBERTModel(replace(config, encoder_ffn_embed_dim=layout.original_ffn_dim))
        apply_layout(model, layout)
    except ValueError as error:
        raise ModelLoadError(f"{str(path)!r}: its pruned layout ({CONFIG_KEY!r}) does not fit its configuration "
                             f"({error})") from None
    return model


def load_pruned_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model saved by ``speat prune`` (or any model `save_pruned_model` wrote), in eval mode.

    Args:
        path: a checkpoint directory (transformers: ``AutoModel``, e.g. ``Wav2Vec2Model``) or a MelHuBERT
            ``.ckpt`` file (a `MelHuBERTModel`).
        device: where to put the model.

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


def __getattr__(name: str) -> Any:
    # ``PrunedWavLMAttention`` is made on first use; this lets pickle and imports find it by name.
    if name == "PrunedWavLMAttention":
        return pruned_wavlm_attention_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
