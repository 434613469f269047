"""MelHuBERT adapter: a HuBERT-style transformer on log-mel filter banks, with its released checkpoint format.

MelHuBERT (Lin, Lee and Tang 2023, arXiv:2211.09944) feeds 40-bin Kaldi filter banks (two frames stacked per 20 ms
step for MelHuBERT-20ms) straight into a transformer; Lin et al. 2024 measure its bias at the sizes
`MelHuBERTConfig.small`, `.slim` and `.base`. Our own PyTorch definition, read from the authors' code.

Example:
    >>> import numpy as np
    >>> config = MelHuBERTConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
    ...                          encoder_attention_heads=4, conv_pos=8, conv_pos_groups=4)
    >>> encoder = MelHuBERTEncoder.from_config(config, seed=0)
    >>> output = encoder.encode([np.zeros(16_000, np.float32), np.zeros(8_000, np.float32)])
    >>> len(output.hidden_states), tuple(output.hidden_states[0].shape), output.frame_mask.sum(dim=1).tolist()
    (3, (2, 49, 32), [49, 24])

Details (architecture, checkpoint format, released checkpoints): docs/adapters.md, "MelHuBERT".
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speat_metric import features
from speat_metric.adapters.base import (
    SAMPLING_RATE,
    EncoderOutput,
    ModelDescription,
    ModelLoadError,
    SpeechEncoder,
    count_parameters,
    pad_batch,
    weights_sha256,
)
from speat_metric.adapters.checkpoints import check_state_dict, describe_keys, load_torch_checkpoint
from speat_metric.adapters.layers import masked_attention
from speat_metric.files import atomic_open
from speat_metric.training.slicing import LAYOUT_KEY, PrunableLayer, PrunedLayout, apply_layout, layout_of

logger = logging.getLogger(__name__)

KALDI_WAVEFORM_SCALE = 2.0**15
"""The authors scale [-1, 1] waveforms to 16-bit integer range before ``kaldi.fbank`` (``extract_feature.py``)."""

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
MIN_SAMPLES = int(SAMPLING_RATE * FRAME_LENGTH_MS / 1000)
"""Kaldi frames are not padded at the edges (snip_edges): a clip needs one full 25 ms window."""

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


@dataclass(frozen=True)
class MelHuBERTConfig:
    """MelHuBERT architecture and front end; field names follow the authors' model yaml where one exists.

    Attributes:
        num_mel_bins: Kaldi filter-bank bins per 10 ms frame (40 in all released models).
        frame_period_ms: 10 (one filter-bank frame per step) or 20 (two stacked frames per step).
        encoder_embed_dim, encoder_ffn_embed_dim: model and feed-forward widths.
        layer_norm_first: pre-LN when True, post-LN (the released models) when False.
        conv_pos, conv_pos_groups: kernel size and groups of the convolutional position embedding.
        activation_fn: ``"gelu"`` or ``"relu"``.
        attention_type: ``"original"`` (bidirectional) or ``"causal"``.
        num_cluster: outputs of the pre-training projection ``final_proj`` (k-means targets).

    Example:
        >>> MelHuBERTConfig.slim().feat_emb_dim, MelHuBERTConfig.slim(frame_period_ms=10).feat_emb_dim
        (80, 40)
    """

    num_mel_bins: int = 40
    frame_period_ms: int = 20
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    activation_fn: str = "gelu"
    attention_type: str = "original"
    num_cluster: int = 512

    def __post_init__(self) -> None:
        if self.frame_period_ms not in (10, 20):
            raise ValueError(f"frame_period_ms must be 10 or 20 (MelHuBERT-10ms / -20ms), got {self.frame_period_ms!r}")
        for name in ("num_mel_bins", "encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                     "encoder_attention_heads", "conv_pos", "conv_pos_groups", "num_cluster"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(f"encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by "
                             f"encoder_attention_heads ({self.encoder_attention_heads})")
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError(f"encoder_embed_dim ({self.encoder_embed_dim}) must be divisible by conv_pos_groups "
                             f"({self.conv_pos_groups})")
        if self.activation_fn not in _ACTIVATIONS:
            raise ValueError(f"activation_fn must be one of {sorted(_ACTIVATIONS)}, got {self.activation_fn!r}")
        if self.attention_type not in ("original", "causal"):
            raise ValueError(f"attention_type must be 'original' or 'causal', got {self.attention_type!r}")

    @property
    def frames_stacked(self) -> int:
        """Filter-bank frames concatenated into one model input frame."""
        return self.frame_period_ms // 10

    @property
    def feat_emb_dim(self) -> int:
        """Model input width: mel bins times stacked frames."""
        return self.num_mel_bins * self.frames_stacked

    @classmethod
    def small(cls, *, frame_period_ms: int = 20) -> MelHuBERTConfig:
        """Lin et al. 2024, Table 2 "small": 3 layers, width 640, FFN 2048, 8 heads."""
        return cls(frame_period_ms=frame_period_ms, encoder_layers=3, encoder_embed_dim=640,
                   encoder_ffn_embed_dim=2048, encoder_attention_heads=8)

    @classmethod
    def slim(cls, *, frame_period_ms: int = 20) -> MelHuBERTConfig:
        """Lin et al. 2024, Table 2 "slim": 12 layers, width 384, FFN 768, 8 heads."""
        return cls(frame_period_ms=frame_period_ms, encoder_layers=12, encoder_embed_dim=384,
                   encoder_ffn_embed_dim=768, encoder_attention_heads=8)

    @classmethod
    def base(cls, *, frame_period_ms: int = 20) -> MelHuBERTConfig:
        """Lin et al. 2024, Table 2 "base" (the released MelHuBERT): 12 layers, width 768, FFN 3072, 12 heads."""
        return cls(frame_period_ms=frame_period_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_upstream_config(self) -> dict[str, Any]:
        """The ``Upstream_Config["melhubert"]`` section the authors' training code writes for this model."""
        model = {name: value for name, value in asdict(self).items() if name not in ("num_mel_bins", "frame_period_ms")}
        return {"feat_emb_dim": self.feat_emb_dim, "pos_emb_type": "conv", "pos_conv_depth": 1, **model}

    @classmethod
    def from_upstream_config(cls, section: Mapping[str, Any], *, num_mel_bins: int = 40) -> MelHuBERTConfig:
        """Read the authors' ``Upstream_Config["melhubert"]`` section, with the authors' defaults for absent keys.

        Raises:
            ValueError: the section describes a variant this module does not implement.
        """
        if section.get("pos_emb_type", "conv") != "conv":
            raise ValueError(f"pos_emb_type {section['pos_emb_type']!r} is not supported (only 'conv')")
        if int(section.get("pos_conv_depth", 1)) != 1:
            raise ValueError(f"pos_conv_depth {section['pos_conv_depth']!r} is not supported (only 1)")
        feat_emb_dim = int(section.get("feat_emb_dim", 40))
        if feat_emb_dim not in (num_mel_bins, 2 * num_mel_bins):
            raise ValueError(f"feat_emb_dim {feat_emb_dim} is neither {num_mel_bins} (10 ms frames) nor "
                             f"{2 * num_mel_bins} (20 ms, two stacked frames of {num_mel_bins} mel bins)")
        # The authors' defaults are the fields' defaults, except a single encoder layer.
        defaults = {field.name: field.default for field in fields(cls)} | {"encoder_layers": 1}
        read = {name: type(default)(section.get(name, default)) for name, default in defaults.items()
                if name not in ("num_mel_bins", "frame_period_ms")}
        return cls(num_mel_bins=num_mel_bins, frame_period_ms=10 * feat_emb_dim // num_mel_bins, **read)


class _WeightNormConv1d(nn.Module):
    """Grouped Conv1d with weight normalisation over dim 2, stored as the legacy ``weight_g``/``weight_v`` pair."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))

    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel_size = self.weight_v.shape[-1]
        return F.conv1d(x, self.weight(), self.bias, padding=kernel_size // 2, groups=self.groups)


class _SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        attended = masked_attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.num_heads, allowed)
        return self.out_proj(attended)


class _EncoderLayer(nn.Module):
    def __init__(self, config: MelHuBERTConfig) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.layer_norm_first = config.layer_norm_first
        self.activation = _ACTIVATIONS[config.activation_fn]
        self.self_attn = _SelfAttention(width, config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, width)
        self.final_layer_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x), allowed)
            return x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x + self.self_attn(x, allowed))
        return self.final_layer_norm(x + self.fc2(self.activation(self.fc1(x))))


class MelHuBERTModel(nn.Module):
    """MelHuBERT: input projection, convolutional position embedding, transformer layers (docs/adapters.md).

    Example:
        >>> model = MelHuBERTModel(MelHuBERTConfig(encoder_layers=1, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
        ...                                        encoder_attention_heads=2, conv_pos=4, conv_pos_groups=2))
        >>> hidden = model(torch.zeros(1, 7, 80), torch.ones(1, 7, dtype=torch.bool))
        >>> len(hidden), tuple(hidden[-1].shape)
        (2, (1, 7, 16))
    """

    def __init__(self, config: MelHuBERTConfig) -> None:
        super().__init__()
        self.config = config
        width = config.encoder_embed_dim
        self.pre_extract_proj = nn.Linear(config.feat_emb_dim, width) if config.feat_emb_dim != width else None
        # A one-element Sequential keeps the released key names "encoder.pos_conv.0.*".
        self.encoder = nn.ModuleDict({
            "pos_conv": nn.Sequential(_WeightNormConv1d(width, config.conv_pos, config.conv_pos_groups)),
            "layers": nn.ModuleList(_EncoderLayer(config) for _ in range(config.encoder_layers)),
            "layer_norm": nn.LayerNorm(width),
        })
        self.final_proj = nn.Linear(width, config.num_cluster)
        self.pruned_by: dict[str, Any] | None = None  # how its checkpoint recorded a pruning, for pruning_summary
        self._initialise()

    def _initialise(self) -> None:
        """The authors' initialisation (fairseq ``init_bert_params`` on the encoder), i.e. a "step 0" model."""
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                nn.init.zeros_(module.bias)
        conv = self.encoder.pos_conv[0]
        width, kernel_size = self.config.encoder_embed_dim, self.config.conv_pos
        nn.init.normal_(conv.weight_v, mean=0.0, std=math.sqrt(4.0 / (kernel_size * width)))
        nn.init.zeros_(conv.bias)
        with torch.no_grad():  # weight norm starts at g = |v|, so the effective weight equals v
            conv.weight_g.copy_(conv.weight_v.norm(dim=(0, 1), keepdim=True))

    @property
    def num_hidden_states(self) -> int:
        return self.config.encoder_layers + 1

    def layers(self) -> list[PrunableLayer]:
        """The transformer layers as pruning sees them (`speat_metric.training.slicing.PrunableEncoder`)."""
        head_dim = self.config.encoder_embed_dim // self.config.encoder_attention_heads
        return [PrunableLayer(layer.self_attn, layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                              layer.self_attn.out_proj, layer.fc1, layer.fc2, head_dim)
                for layer in self.encoder.layers]

    def original_sizes(self) -> tuple[int, int]:
        """(attention heads, FFN width) of every layer before pruning: the configuration's."""
        return self.config.encoder_attention_heads, self.config.encoder_ffn_embed_dim

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states of a padded batch of normalised (and stacked) filter-bank frames.

        Args:
            features: (batch, frames, feat_emb_dim).
            frame_mask: (batch, frames) bool, True on real frames, False on padding.

        Returns:
            ``encoder_layers + 1`` tensors of shape (batch, frames, encoder_embed_dim): the input projection, then
            each transformer layer's output.
        """
        if features.shape[-1] != self.config.feat_emb_dim:
            raise ValueError(f"features have {features.shape[-1]} dims per frame; this model takes "
                             f"{self.config.feat_emb_dim} ({self.config.frame_period_ms} ms frames of "
                             f"{self.config.num_mel_bins} mel bins)")
        x = self.pre_extract_proj(features) if self.pre_extract_proj is not None else features
        x = x.masked_fill(~frame_mask[..., None], 0.0)
        hidden_states = [x]
        # "Same" padding for an even kernel leaves one extra frame at the end, which the authors drop (SamePad).
        position = self.encoder.pos_conv(x.transpose(1, 2))[..., :x.shape[1]]
        x = x + F.gelu(position).transpose(1, 2)
        if not self.config.layer_norm_first:
            x = self.encoder.layer_norm(x)
        allowed = frame_mask[:, None, :]
        if self.config.attention_type == "causal":
            frames = x.shape[1]
            allowed = allowed & torch.ones(1, frames, frames, dtype=torch.bool, device=x.device).tril()
        for layer in self.encoder.layers:
            x = layer(x, allowed)
            hidden_states.append(x)
        return hidden_states


def load_melhubert_checkpoint(path: str | Path, *, device: str | torch.device = "cpu",
                              trust_checkpoint: bool = False) -> MelHuBERTModel:
    """Load a checkpoint saved by the authors' MelHuBERT training code (docs/adapters.md), in eval mode: also one
    pruned by ``speat prune`` or by the authors' head, row or weight pruning, rebuilt to its pruned shapes, with how
    it was pruned in ``pruned_by`` (docs/adapters.md, "The authors' pruned checkpoints").

    `trust_checkpoint` allows arbitrary pickled objects (only for files from a trusted source).

    Raises:
        ModelLoadError: the file is missing, unreadable, not in the MelHuBERT format (the message names the missing
            or unexpected keys), its pruning record is malformed (the message names the entry), or its configuration
            and weights disagree.

    Example:
        >>> import tempfile
        >>> model = MelHuBERTModel(MelHuBERTConfig(encoder_layers=1, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
        ...                                        encoder_attention_heads=2, conv_pos=4, conv_pos_groups=2))
        >>> path = Path(tempfile.mkdtemp()) / "melhubert.ckpt"
        >>> save_melhubert_checkpoint(model, path)
        >>> load_melhubert_checkpoint(path).config == model.config
        True
    """
    states = load_torch_checkpoint(path, kind="MelHuBERT", trust_checkpoint=trust_checkpoint)
    if not isinstance(states, Mapping) or "model" not in states or "Upstream_Config" not in states:
        found = describe_keys([str(key) for key in states]) if isinstance(states, Mapping) else type(states).__name__
        raise ModelLoadError(f"{str(path)!r} is not a MelHuBERT checkpoint: expected a dict with 'model' and "
                             f"'Upstream_Config' (what MelHuBERT's training code saves), found {found}.")
    upstream = states["Upstream_Config"]
    section = upstream.get("melhubert", upstream.get("hubert")) if isinstance(upstream, Mapping) else None
    if not isinstance(section, Mapping):
        raise ModelLoadError(f"{str(path)!r}: 'Upstream_Config' has no 'melhubert' (or 'hubert') section with the "
                             "model configuration.")
    try:
        config = MelHuBERTConfig.from_upstream_config(section)
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f"{str(path)!r}: unsupported MelHuBERT configuration: {error}") from error
    # Newer PyTorch names the weight-norm parametrisation original0/1; the released files say weight_g/weight_v.
    # The learnable mask embedding (learnable_mask_emb: True) only replaces masked frames during pre-training.
    state_dict = {key.replace("parametrizations.weight.original0", "weight_g")
                  .replace("parametrizations.weight.original1", "weight_v"): tensor
                  for key, tensor in states["model"].items() if key != "mask_emb"}
    pruned_by: dict[str, Any] = {"recorded_in": []}  # what the record of this model says about its pruning
    if "Pruning" in states:  # the authors' weight pruning: fold its masks into the weights
        state_dict, pruned_by["sparsity"] = _fold_weight_masks(path, states["Pruning"], state_dict)
        pruned_by["recorded_in"].append("Pruning")
    layout, source = _checkpoint_layout(path, states, config)
    if layout is None:
        model = MelHuBERTModel(config)
    else:  # shrink the model to the heads and FFN widths the checkpoint records
        pruned_by["recorded_in"].append(source)
        try:
            model = MelHuBERTModel(replace(config, encoder_ffn_embed_dim=layout.original_ffn_dim))
            apply_layout(model, layout)
        except ValueError as error:
            raise ModelLoadError(f"{str(path)!r}: its pruned layout ({source!r}) does not fit its configuration "
                                 f"({error})") from None
    try:
        check_state_dict(model, state_dict, kind="MelHuBERT", path=path)
    except ModelLoadError as error:
        if not pruned_by["recorded_in"]:
            raise
        raise ModelLoadError(f"{error} (shapes pruned as its {' and '.join(pruned_by['recorded_in'])!r} entry "
                             "says)") from None
    model.load_state_dict(state_dict)
    model.pruned_by = pruned_by if pruned_by["recorded_in"] else None
    return model.to(device).eval()


def _checkpoint_layout(path: str | Path, states: Mapping[str, Any],
                       config: MelHuBERTConfig) -> tuple[PrunedLayout | None, str | None]:
    """The layout a checkpoint's tensors were pruned to, and the entry that says so: ``speat prune``'s
    ``speat_pruning``, the authors' head pruning (``Pruned_heads``) or row pruning (``Runner``); (None, None) when
    its shapes are the configuration's."""
    if LAYOUT_KEY in states and "Pruned_heads" in states:
        raise ModelLoadError(f"{str(path)!r} holds both {LAYOUT_KEY!r} and 'Pruned_heads', two records of its pruned "
                             "heads; re-save the model with speat or with the authors' code.")
    if LAYOUT_KEY in states:
        try:
            return PrunedLayout.from_dict(states[LAYOUT_KEY]), LAYOUT_KEY
        except ValueError as error:
            raise ModelLoadError(f"{str(path)!r}: its pruned layout ({LAYOUT_KEY!r}) is malformed ({error})") from None
    if "Pruned_heads" in states:
        layout = _authors_head_layout(path, states["Pruned_heads"], config)
        return (layout, "Pruned_heads") if layout.is_pruned else (None, None)
    layout = _authors_row_layout(path, states, config)
    return (layout, "Runner") if layout is not None and layout.is_pruned else (None, None)


def _is_index(value: Any, size: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def _authors_head_layout(path: str | Path, pruned_heads: Any, config: MelHuBERTConfig) -> PrunedLayout:
    """The heads kept by the authors' head pruning, as indices among each layer's original heads.

    Speech-SSL-Compression ``head_pruning/hp_utils.py`` (``HeadPruningTools.prune``, ``save_model``) saves
    ``"Pruned_heads"``: one ``{layer: [head, ...]}`` dict per pruning step so far, each head a position among the
    heads the layer still had at that step (``prune_layer_heads`` slices them out); the model yaml keeps the original
    head count. Their loaders (``extract_feature.py``, ``s3prl_upstream/expert.py``) only count the heads removed;
    replaying the steps also says which of the original heads remain.
    """
    def malformed(reason: str) -> ModelLoadError:
        return ModelLoadError(f"{str(path)!r}: its 'Pruned_heads' entry {reason}; the authors' head pruning saves a "
                              "list with one {layer: [head, ...]} dict per pruning step.")

    if not isinstance(pruned_heads, (list, tuple)):
        raise malformed(f"is a {type(pruned_heads).__name__}, not a list")
    kept = [list(range(config.encoder_attention_heads)) for _ in range(config.encoder_layers)]
    for step, removed_by_layer in enumerate(pruned_heads):
        if not isinstance(removed_by_layer, Mapping):
            raise malformed(f"has a {type(removed_by_layer).__name__} at step {step}, not a dict")
        for layer, removed in removed_by_layer.items():
            if not _is_index(layer, config.encoder_layers):
                raise malformed(f"names layer {layer!r} at step {step}; the model has layers 0..{len(kept) - 1}")
            left = len(kept[layer])
            if (not isinstance(removed, (list, tuple)) or not all(_is_index(head, left) for head in removed)
                    or len(set(removed)) != len(removed)):
                raise malformed(f"removes {removed!r} from layer {layer} at step {step}, not distinct heads among "
                                f"the {left} it had left (0..{left - 1})")
            if len(removed) == left:
                raise malformed(f"removes every head of layer {layer} at step {step}")
            kept[layer] = [head for position, head in enumerate(kept[layer]) if position not in removed]
    return PrunedLayout(heads=tuple(tuple(heads) for heads in kept),
                        ffn_dims=(config.encoder_ffn_embed_dim,) * config.encoder_layers,
                        original_heads=config.encoder_attention_heads,
                        original_ffn_dim=config.encoder_ffn_embed_dim)


def _authors_row_layout(path: str | Path, states: Mapping[str, Any],
                        config: MelHuBERTConfig) -> PrunedLayout | None:
    """The FFN widths of a checkpoint of the authors' row pruning, or None for any other checkpoint.

    Speech-SSL-Compression ``row_pruning/rp_utils.py`` (``RowPruningTools``) saves no pruning key: it writes the
    pruned width into the model yaml (``encoder_ffn_embed_dim``, so the shapes load as they are, as their
    ``extract_feature.py`` does) and saves before each pruning step (``runner.py``). The width before pruning is
    that plus ``num_rows_each_step`` per pruning step before ``Step``, the steps being ``warm_up`` plus each
    ``interval`` of the ``"Runner"`` ``prune`` section (``set_prune_interval``).
    """
    runner = states.get("Runner")
    prune = runner.get("prune") if isinstance(runner, Mapping) else None
    if not isinstance(prune, Mapping) or "num_rows_each_step" not in prune:
        return None
    try:
        rows, step, warm_up = int(prune["num_rows_each_step"]), int(states["Step"]), int(prune["warm_up"])
        interval = prune["interval"]
        prune_steps = ([warm_up + int(interval) * number for number in range(int(prune["total_steps"]))]
                       if isinstance(interval, int) else [warm_up + int(offset) for offset in interval])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{str(path)!r}: a row-pruned checkpoint (its 'Runner' prune section has "
                             f"num_rows_each_step) whose 'Runner' prune section or 'Step' cannot be read "
                             f"({type(error).__name__}: {error}); expected the authors' row-pruning runner "
                             "config.") from None
    width = config.encoder_ffn_embed_dim
    original = width + rows * sum(1 for prune_step in prune_steps if prune_step < step)
    layers = config.encoder_layers
    return PrunedLayout(heads=(tuple(range(config.encoder_attention_heads)),) * layers, ffn_dims=(width,) * layers,
                        original_heads=config.encoder_attention_heads, original_ffn_dim=original)


def _fold_weight_masks(path: str | Path, pruning: Any, state_dict: Mapping[str, torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], float]:
    """The weights of a checkpoint of the authors' weight pruning, masks applied, and the fraction masked.

    Speech-SSL-Compression ``weight_pruning/wp_utils.py`` saves ``"Pruning"`` (its loss-smoothing state) and a model
    reparametrised by their ``pytorch_code/prune.py``: every weight and bias of the q/k/v/out projections and of
    ``fc1``/``fc2`` as ``NAME_orig`` and a ``NAME_mask``; ``prune.remove`` makes ``NAME = NAME_orig`` with the
    masked entries zeroed, which is what their loaders do.
    """
    def malformed(reason: str) -> ModelLoadError:
        return ModelLoadError(f"{str(path)!r}: its 'Pruning' entry {reason}; the authors' weight pruning saves a dict "
                              "with the model's weights as NAME_orig and NAME_mask pairs.")

    if not isinstance(pruning, Mapping):
        raise malformed(f"is a {type(pruning).__name__}, not a dict")
    folded = {key: tensor for key, tensor in state_dict.items() if not key.endswith(("_orig", "_mask"))}
    masked = total = 0
    for key in state_dict:
        if not key.endswith(("_orig", "_mask")):
            continue
        name = key.removesuffix("_orig").removesuffix("_mask")
        original, mask = state_dict.get(f"{name}_orig"), state_dict.get(f"{name}_mask")
        if original is None or mask is None or mask.shape != original.shape:
            problem = ("no NAME_orig" if original is None else "no NAME_mask" if mask is None
                       else "a mask of another shape")
            raise malformed(f"is there but the weight {name!r} has {problem}")
        if key.endswith("_orig"):
            kept = mask.bool()
            folded[name] = original.masked_fill(~kept, 0)
            masked, total = masked + int((~kept).sum()), total + kept.numel()
    if total == 0:
        raise malformed("is there but no weight has a NAME_orig/NAME_mask pair")
    return folded, masked / total


def pruning_summary(model: MelHuBERTModel) -> dict[str, Any] | None:
    """What every record of a pruned model says (its description's ``settings["pruning"]``); None when unpruned.

    ``layout``: the heads kept (indices among the original heads) and FFN width of each layer, when its shapes were
    pruned; ``recorded_in``: the checkpoint entries that said so (``speat_pruning``, the authors' ``Pruned_heads``,
    ``Runner`` for their row pruning, ``Pruning`` for their weight pruning); ``sparsity``: the fraction of the
    authors' weight-pruning masks that is zero.
    """
    layout = layout_of(model)
    summary = {**(model.pruned_by or {}), **({"layout": layout.to_dict()} if layout.is_pruned else {})}
    return summary or None


def save_melhubert_checkpoint(model: MelHuBERTModel, path: str | Path, *, step: int = 0,
                              extra: Mapping[str, Any] | None = None) -> None:
    """Write `model` atomically in the authors' checkpoint format, readable by their code and ours; a pruned model's
    layout goes under the extra key ``speat_pruning``, from which `load_melhubert_checkpoint` rebuilds its shapes.
    `step` is recorded under ``"Step"``; `extra` holds more top-level entries."""
    layout = layout_of(model)
    states = {
        "model": {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()},
        "Upstream_Config": {"melhubert": model.config.to_upstream_config()},
        "Step": step,
        **({LAYOUT_KEY: layout.to_dict()} if layout.is_pruned else {}),
        **(extra or {}),
    }
    with atomic_open(path, "wb") as file:
        torch.save(states, file)


def load_mean_std(path: str | Path, *, num_mel_bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Read the authors' normalisation statistics: a ``.npy`` (2, num_mel_bins) array, row 0 mean, row 1 std.

    Raises:
        ModelLoadError: missing file, wrong shape, or non-positive / non-finite values.
    """
    path = Path(path)
    try:
        stats = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        # numpy says an unknown file "contains pickled data" and suggests allow_pickle: neither helps here
        reason = "not a NumPy .npy array" if "pickle" in str(error) else str(error)
        raise ModelLoadError(f"cannot read MelHuBERT mean/std file {str(path)!r} ({reason}); pass the .npy from the "
                             "MelHuBERT repository's example/ folder (e.g. libri-960-mean-std.npy).") from error
    stats = np.asarray(stats, dtype=np.float64).reshape(2, -1) if np.size(stats) == 2 * num_mel_bins else stats
    if np.shape(stats) != (2, num_mel_bins):
        raise ModelLoadError(f"MelHuBERT mean/std file {str(path)!r} has shape {np.shape(stats)}; expected "
                             f"(2, {num_mel_bins}): row 0 the mean, row 1 the standard deviation of each mel bin.")
    mean, std = stats[0].astype(np.float32), stats[1].astype(np.float32)
    if not (np.all(np.isfinite(stats)) and np.all(std > 0)):
        raise ModelLoadError(f"MelHuBERT mean/std file {str(path)!r} has non-finite values or a standard deviation "
                             "that is not positive.")
    return mean, std


def melhubert_features(waveform: np.ndarray, config: MelHuBERTConfig, *, mean: np.ndarray | None = None,
                       std: np.ndarray | None = None) -> np.ndarray:
    """The authors' front end for one clip: scaled Kaldi filter banks, normalised, frame pairs stacked for 20 ms.

    Args:
        waveform: mono 16 kHz float waveform in [-1, 1], at least 400 samples (one 25 ms window).
        mean, std: per-bin normalisation statistics (`load_mean_std`); both None for no normalisation.

    Returns:
        (frames, config.feat_emb_dim) float32.
    """
    filter_banks = features.kaldi_fbank(
        np.asarray(waveform, dtype=np.float32) * KALDI_WAVEFORM_SCALE, num_mel_bins=config.num_mel_bins,
        sampling_rate=SAMPLING_RATE, window_type="hamming", frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS)
    if mean is not None and std is not None:
        filter_banks = (filter_banks - mean) / std
    if config.frames_stacked == 2:  # frame pairs, a missing last odd frame being zeros
        filter_banks = np.pad(filter_banks, ((0, len(filter_banks) % 2), (0, 0)))
        filter_banks = filter_banks.reshape(len(filter_banks) // 2, 2 * filter_banks.shape[1])
    return np.ascontiguousarray(filter_banks, dtype=np.float32)


class MelHuBERTEncoder(SpeechEncoder):
    """SpEAT adapter around a `MelHuBERTModel`: filter banks per clip, padded batch, key-padding masks.

    Args:
        model: the model (moved to `device` and `dtype`, put in eval mode).
        name: what the description calls the model (checkpoint path, or a label for a random model).
        mean, std: per-bin filter-bank statistics (`load_mean_std`); None for none. The released models were
            trained with LibriSpeech statistics: use them, or the features will be off-scale.
        revision: version string of the weights, when there is one.

    Raises:
        ValueError: only one of mean/std given, or their shape does not match the model's mel bins.
    """

    supports_padding = True

    def __init__(self, model: MelHuBERTModel, *, name: str, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, revision: str | None = None) -> None:
        config = model.config
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std (the authors' mean-std.npy rows), or neither")
        if mean is not None:
            mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
            if mean.shape != (config.num_mel_bins,) or std.shape != (config.num_mel_bins,):
                raise ValueError(f"mean and std must each have {config.num_mel_bins} values (one per mel bin), got "
                                 f"shapes {mean.shape} and {std.shape}")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.mean, self.std = mean, std
        self.dtype = dtype
        normalisation = None if mean is None else hashlib.sha256(np.stack([mean, std]).tobytes()).hexdigest()
        if mean is None:  # never silently: records say so too (speat_metric.profiles.UNNORMALISED_INPUT)
            logger.warning("MelHuBERT %s: no --mean-std given, so the filter banks are NOT normalised; the authors "
                           "always normalise with LibriSpeech mean/std (released models expect it), so its records "
                           "are labelled unnormalised-input and are not comparable with Lin et al. 2024", name)
        self.description = ModelDescription(
            name=name, kind="melhubert", revision=revision, weights_sha256=weights_sha256(self.model),
            num_parameters=count_parameters(self.model), num_layers=model.num_hidden_states,
            settings={
                "architecture": config.to_dict(), "dtype": str(dtype).removeprefix("torch."),
                "front_end": {"kind": "kaldi_fbank", "num_mel_bins": config.num_mel_bins, "window": "hamming",
                              "frame_length_ms": FRAME_LENGTH_MS, "frame_shift_ms": FRAME_SHIFT_MS,
                              "waveform_scale": KALDI_WAVEFORM_SCALE, "frames_stacked": config.frames_stacked},
                "normalisation_sha256": normalisation,
                **({"pruning": pruning} if (pruning := pruning_summary(model)) else {}),
            })

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, mean_std_path: str | Path | None = None,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        revision: str | None = None, trust_checkpoint: bool = False) -> MelHuBERTEncoder:
        """An adapter for a released checkpoint, normalised with the authors' statistics file when given.

        Raises:
            ModelLoadError: see `load_melhubert_checkpoint` and `load_mean_std`.
        """
        model = load_melhubert_checkpoint(path, trust_checkpoint=trust_checkpoint)
        mean, std = (load_mean_std(mean_std_path, num_mel_bins=model.config.num_mel_bins) if mean_std_path is not None
                     else (None, None))
        return cls(model, name=str(path), mean=mean, std=std, device=device, dtype=dtype, revision=revision)

    @classmethod
    def from_config(cls, config: MelHuBERTConfig, *, seed: int = 0, mean_std_path: str | Path | None = None,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                    name: str | None = None) -> MelHuBERTEncoder:
        """A randomly initialised model (the study's "step 0" point), reproducible from `seed`."""
        with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
            torch.manual_seed(seed)
            model = MelHuBERTModel(config)
        mean, std = (load_mean_std(mean_std_path, num_mel_bins=config.num_mel_bins) if mean_std_path is not None
                     else (None, None))
        return cls(model, name=name or f"melhubert-random-seed{seed}", mean=mean, std=std, device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        """Encode mono 16 kHz waveforms of any lengths (each at least 400 samples).

        Raises:
            ValueError: an empty batch, or a clip shorter than one 25 ms window.
        """
        if len(waveforms) == 0:
            raise ValueError("encode needs at least one waveform")
        for index, waveform in enumerate(waveforms):
            if np.ndim(waveform) != 1 or len(waveform) < MIN_SAMPLES:
                raise ValueError(f"waveform {index} has shape {np.shape(waveform)}; MelHuBERT needs a mono clip of at "
                                 f"least {MIN_SAMPLES} samples (one 25 ms window at 16 kHz)")
        batch, mask = pad_batch([melhubert_features(waveform, self.model.config, mean=self.mean, std=self.std)
                                 for waveform in waveforms])
        mask = mask.to(self.device)
        with torch.inference_mode():
            hidden_states = self.model(batch.to(device=self.device, dtype=self.dtype), mask)
        return EncoderOutput(hidden_states=hidden_states, frame_mask=mask)
