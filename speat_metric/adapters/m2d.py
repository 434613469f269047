"""M2D / M2D-S adapter: a ViT encoder on log-mel spectrogram patches, with the authors' checkpoint formats.

Our own PyTorch encoder, read from the authors' ``nttcslab/m2d``: `load_m2d_checkpoint` takes their checkpoints (the
configuration from tensor shapes and folder name); `M2DEncoder` chunks long clips at the training length as they do.

Example:
    >>> import numpy as np
    >>> config = M2DConfig(input_size=(80, 16), patch_size=(80, 2), embed_dim=32, depth=2, num_heads=4)
    >>> encoder = M2DEncoder.from_config(config, seed=0)
    >>> output = encoder.encode([np.zeros(8_000, np.float32), np.zeros(3_000, np.float32)])
    >>> len(output.hidden_states), tuple(output.hidden_states[0].shape), output.frame_mask.sum(dim=1).tolist()
    (3, (2, 26, 32), [26, 10])

Details (architecture, long inputs, checkpoint formats, released checkpoints): docs/adapters.md, "M2D".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speat_metric import features
from speat_metric.adapters.base import (
    SAMPLING_RATE,
    EncoderOutput,
    ModelDescription,
    ModelLoadError,
    SpeechEncoder,
    count_parameters,
    join_windows,
    pad_batch,
    weights_sha256,
)
from speat_metric.adapters.checkpoints import check_state_dict, describe_keys, load_torch_checkpoint
from speat_metric.adapters.layers import masked_attention

logger = logging.getLogger(__name__)

DEFAULT_NORM_STATS = (-7.1, 4.2)
"""Mean and std of log-mel values the runtime uses when a checkpoint carries no ``norm_stats``."""

N_FFT = 400
HOP_LENGTH = 160
F_MIN = 50.0
F_MAX = 8_000.0
LOG_OFFSET = float(np.finfo(np.float32).eps)
"""``torch.finfo().eps`` added before the log in ``RuntimeM2D.to_feature``."""

HEAD_DIM = 64
_DROPPED_PREFIXES = ("target_", "decoder_", "mask_token", "offline_predictor.", "audio_proj.", "text_proj.", "head.")
_FOLDER_NAME = re.compile(r"^(?P<model>[^-]+)-(?P<mels>\d+)x(?P<frames>\d+)p(?P<patch_f>\d+)x(?P<patch_t>\d+)"
                          r"(?:p(?P<rate>\d+k))?(?:p[^-]*)?(?:-|$)")


@dataclass(frozen=True)
class M2DConfig:
    """M2D encoder geometry; the front end is fixed to the 16 kHz runtime (docs/adapters.md).

    Attributes:
        input_size: (mel bins, frames) of one training chunk; ``input_size[1]`` is the chunk length at runtime.
        patch_size: (mel bins, frames) of one patch: (80, 2) for M2D-S speech, (16, 16) for general M2D.
        embed_dim, depth, num_heads: transformer width, blocks and attention heads.
        mlp_ratio: MLP width over embed_dim.
        layer_norm_eps: LayerNorm epsilon (1e-6 in all M2D models).

    Example:
        >>> config = M2DConfig.m2d()
        >>> config.grid_size, config.frame_dim, config.frame_period_ms
        ((5, 38), 3840, 160)
    """

    input_size: tuple[int, int] = (80, 608)
    patch_size: tuple[int, int] = (80, 2)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(size) for size in self.input_size))
        object.__setattr__(self, "patch_size", tuple(int(size) for size in self.patch_size))
        if len(self.input_size) != 2 or len(self.patch_size) != 2 or min(self.input_size + self.patch_size) < 1:
            raise ValueError(f"input_size and patch_size must be two positive integers (mel bins, frames), got "
                             f"{self.input_size} and {self.patch_size}")
        if self.input_size[0] % self.patch_size[0] or self.input_size[1] % self.patch_size[1]:
            raise ValueError(f"input_size {self.input_size} must be a whole number of patches {self.patch_size}")
        for name in ("embed_dim", "depth", "num_heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.embed_dim % 4:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by 4 (2-D sine-cosine positions)")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio!r}")

    @property
    def n_mels(self) -> int:
        return self.input_size[0]

    @property
    def chunk_frames(self) -> int:
        """Spectrogram frames encoded together (the training input length)."""
        return self.input_size[1]

    @property
    def grid_size(self) -> tuple[int, int]:
        """(frequency patches, time patches) of a full chunk."""
        return self.input_size[0] // self.patch_size[0], self.input_size[1] // self.patch_size[1]

    @property
    def frame_dim(self) -> int:
        """Width of a frame-level feature: frequency patches x embed_dim."""
        return self.grid_size[0] * self.embed_dim

    @property
    def frame_period_ms(self) -> int:
        return self.patch_size[1] * HOP_LENGTH * 1000 // SAMPLING_RATE

    @property
    def mlp_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @classmethod
    def m2d_s(cls, *, chunk_frames: int = 608) -> M2DConfig:
        """M2D-S speech model: ViT-Base, 80x2 patches, 6.08 s chunks (``m2d_s_vit_base-80x608p80x2``)."""
        return cls(input_size=(80, chunk_frames), patch_size=(80, 2))

    @classmethod
    def m2d(cls, *, chunk_frames: int = 608) -> M2DConfig:
        """General-purpose M2D: ViT-Base, 16x16 patches (``m2d_vit_base-80x608p16x16``)."""
        return cls(input_size=(80, chunk_frames), patch_size=(16, 16))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"], data["patch_size"] = list(self.input_size), list(self.patch_size)
        return data


def parse_folder_name(name: str) -> dict[str, Any] | None:
    """Read the runtime's checkpoint-folder convention, e.g. ``m2d_s_vit_base-80x608p80x2-230220``.

    Returns:
        ``{"model", "input_size", "patch_size", "sample_rate"}``, or None when `name` does not follow it.

    Example:
        >>> parse_folder_name("m2d_vit_base-80x1001p16x16p32k-240301")["sample_rate"]
        32000
    """
    match = _FOLDER_NAME.match(name)
    if match is None:
        return None
    rate = match["rate"] or "16k"
    return {
        "model": match["model"],
        "input_size": (int(match["mels"]), int(match["frames"])),
        "patch_size": (int(match["patch_f"]), int(match["patch_t"])),
        "sample_rate": int(rate[:-1]) * 1000,
    }


def sincos_position_embedding(embed_dim: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """MAE's fixed 2-D sine-cosine position embedding with a zero [CLS] row: (1 + rows * cols, embed_dim).

    Patches are numbered row-major over (frequency rows, time columns); the first half of the channels encodes the
    column (time) index, the second half the row (frequency) index, each as [sin, cos] of position x 10000^(-k/q),
    k < q = embed_dim / 4.
    """
    rows, cols = grid_size
    quarter = embed_dim // 4
    frequencies = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)

    def encode(positions: np.ndarray) -> np.ndarray:
        phase = positions[:, None] * frequencies[None, :]
        return np.concatenate([np.sin(phase), np.cos(phase)], axis=1)

    row_index, col_index = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64),
                                       indexing="ij")
    table = np.concatenate([encode(col_index.reshape(-1)), encode(row_index.reshape(-1))], axis=1)
    table = np.concatenate([np.zeros((1, embed_dim)), table], axis=0)
    return torch.from_numpy(table).float()


class _Attention(nn.Module):
    def __init__(self, config: M2DConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv(x).chunk(3, dim=-1)
        return self.proj(masked_attention(query, key, value, self.num_heads, allowed))


class _Mlp(nn.Module):
    def __init__(self, config: M2DConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.embed_dim, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, config: M2DConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.attn = _Attention(config)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.mlp = _Mlp(config)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), allowed)
        return x + self.mlp(self.norm2(x))


class M2DEncoderModel(nn.Module):
    """The M2D online encoder (docs/adapters.md), returning frame-level features of every layer.

    Args:
        norm_stats: (mean, std) of log-mel values this model's inputs are normalised with; kept as the buffer
            ``norm_stats`` like the authors' newer checkpoints.

    ``pos_embed`` is a buffer (the authors use a frozen Parameter): it is fixed, so parameter counts leave it out
    (85.2M for ViT-Base with 80x2 or 16x16 patches) while the state dict and `weights_sha256` include it.

    Example:
        >>> model = M2DEncoderModel(M2DConfig(input_size=(80, 8), patch_size=(16, 4), embed_dim=16, depth=1,
        ...                                   num_heads=2))
        >>> layers = model(torch.zeros(1, 80, 8))
        >>> len(layers), tuple(layers[0].shape)
        (2, (1, 2, 80))
    """

    def __init__(self, config: M2DConfig, norm_stats: tuple[float, float] = DEFAULT_NORM_STATS) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = nn.ModuleDict({"proj": nn.Conv2d(1, config.embed_dim, kernel_size=config.patch_size,
                                                            stride=config.patch_size)})  # keys "patch_embed.proj.*"
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.register_buffer("pos_embed", sincos_position_embedding(config.embed_dim, config.grid_size)[None])
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.register_buffer("norm_stats", torch.tensor([float(value) for value in norm_stats]))
        self._initialise()

    def _initialise(self) -> None:
        """MAE/M2D pre-training initialisation (``initialize_weights``), i.e. a "step 0" model."""
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def num_hidden_states(self) -> int:
        return self.config.depth + 1

    def _frames(self, patches: torch.Tensor, time_patches: int) -> torch.Tensor:
        """(batch, f*t, D) frequency-major patches -> (batch, t, f*D) frame features."""
        return patches.unflatten(1, (self.config.grid_size[0], time_patches)).transpose(1, 2).flatten(2)

    def forward(self, spectrogram: torch.Tensor, time_patches: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Frame features of a batch of normalised log-mel chunks.

        Args:
            spectrogram: (batch, n_mels, frames); frames a multiple of the patch width, at most ``chunk_frames``.
            time_patches: (batch,) number of real time patches per chunk (the rest is padding, masked out of
                attention); None when all are real.

        Returns:
            ``depth + 1`` tensors of shape (batch, frames / patch width, frame_dim): patch embeddings plus positions,
            then each block's output (the last one after the final LayerNorm).
        """
        config = self.config
        batch, mels, frames = spectrogram.shape
        if mels != config.n_mels or frames % config.patch_size[1] or frames > config.chunk_frames:
            raise ValueError(f"spectrogram chunk of {mels} mel bins x {frames} frames: this model takes "
                             f"{config.n_mels} mel bins and a multiple of {config.patch_size[1]} frames up to "
                             f"{config.chunk_frames}")
        columns = frames // config.patch_size[1]
        x = self.patch_embed.proj(spectrogram[:, None]).flatten(2).transpose(1, 2)
        rows, full_columns = config.grid_size
        # Short chunks use the first columns of the position table (the runtime's adjust_short).
        table = self.pos_embed[:, 1:].reshape(1, rows, full_columns, -1)
        x = x + table[:, :, :columns].flatten(1, 2)
        layers = [self._frames(x, columns)]
        cls_token = (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)
        x = torch.cat([cls_token, x], dim=1)
        if time_patches is None:
            time_patches = torch.full((batch,), columns, device=x.device)
        real_columns = torch.arange(columns, device=x.device)[None, :] < time_patches.to(x.device)[:, None]
        allowed = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=x.device), real_columns.repeat(1, rows)],
                            dim=1)[:, None, :]
        for index, block in enumerate(self.blocks):
            x = block(x, allowed)
            output = self.norm(x) if index == len(self.blocks) - 1 else x
            layers.append(self._frames(output[:, 1:], columns))
        return layers


def _encoder_state_dict(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    """The online-encoder tensors of any accepted format, prefixes removed and training-only parts dropped."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(key, str) for key in state):
        raise ModelLoadError(f"{str(path)!r} is not an M2D checkpoint: expected a state dict, or a dict with a "
                             f"'model' state dict, found {type(state if state is not None else checkpoint).__name__}.")
    anchors = [key[: -len("patch_embed.proj.weight")] for key in state if key.endswith("patch_embed.proj.weight")]
    if not anchors:
        raise ModelLoadError(f"{str(path)!r} is not an M2D checkpoint: no 'patch_embed.proj.weight' tensor among its "
                             f"keys ({describe_keys(list(state))}).")
    prefix = min(anchors, key=len)
    encoder = {key[len(prefix):]: tensor for key, tensor in state.items() if key.startswith(prefix)}
    dropped = {key for key in encoder if key.startswith(_DROPPED_PREFIXES)}
    outside = len(state) - len(encoder)
    logger.info("M2D %s: encoder tensors under prefix %r; dropped %d training-only tensors and %d outside the encoder",
                path, prefix, len(dropped), outside)
    return {key: tensor for key, tensor in encoder.items() if key not in dropped}


def _config_from_tensors(state: Mapping[str, torch.Tensor], path: Path, num_heads: int | None) -> M2DConfig:
    """Infer the geometry from tensor shapes, checked against the folder name when it follows the convention."""
    missing = [key for key in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight") if key not in state]
    if missing:
        raise ModelLoadError(f"{str(path)!r} is not an M2D checkpoint: missing keys {', '.join(missing)}.")
    embed_dim, channels, patch_mels, patch_frames = state["patch_embed.proj.weight"].shape
    if channels != 1:
        raise ModelLoadError(f"{str(path)!r}: patch embedding takes {channels} input channels; an audio M2D takes 1.")
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
    mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    num_patches = state["pos_embed"].shape[1] - 1
    named = parse_folder_name(path.parent.name) or parse_folder_name(path.stem)
    n_mels = named["input_size"][0] if named else 80
    if named and named["sample_rate"] != SAMPLING_RATE:
        raise ModelLoadError(f"{str(path)!r} is a {named['sample_rate'] // 1000} kHz M2D model (folder name); this "
                             "toolkit runs the 16 kHz front end only. Use a 16 kHz checkpoint.")
    if n_mels % patch_mels or num_patches % (n_mels // patch_mels):
        raise ModelLoadError(f"{str(path)!r}: {num_patches} position embeddings cannot tile {n_mels} mel bins in "
                             f"patches of {patch_mels}.")
    chunk_frames = num_patches // (n_mels // patch_mels) * patch_frames
    if named is None:
        logger.info("M2D %s: folder name does not follow '<model>-<mels>x<frames>p<f>x<t>-...'; geometry from tensor "
                    "shapes only (80 mel bins assumed)", path)
    elif named["input_size"] != (n_mels, chunk_frames) or named["patch_size"] != (patch_mels, patch_frames):
        raise ModelLoadError(f"{str(path)!r}: the folder name says input {named['input_size']} and patches "
                             f"{named['patch_size']}, but the tensors imply input {(n_mels, chunk_frames)} and patches "
                             f"{(patch_mels, patch_frames)}. Rename the folder or check the file.")
    if num_heads is None and embed_dim % HEAD_DIM:
        raise ModelLoadError(f"{str(path)!r}: embed dim {embed_dim} is not a multiple of the {HEAD_DIM}-dim heads of "
                             "the released M2D models, so the number of heads is unknown; pass num_heads=.")
    heads = num_heads if num_heads is not None else embed_dim // HEAD_DIM
    try:
        return M2DConfig(input_size=(n_mels, chunk_frames), patch_size=(patch_mels, patch_frames),
                         embed_dim=embed_dim, depth=depth, num_heads=heads, mlp_ratio=mlp_ratio)
    except ValueError as error:
        raise ModelLoadError(f"{str(path)!r}: unsupported M2D geometry: {error}") from error


def load_m2d_checkpoint(path: str | Path, *, num_heads: int | None = None, device: str | torch.device = "cpu",
                        trust_checkpoint: bool = False) -> M2DEncoderModel:
    """Load the online encoder of an M2D / M2D-S checkpoint in any of the authors' formats (docs/adapters.md).

    Args:
        path: the ``.pth`` file, ideally still in its release folder (the folder name is checked).
        num_heads: attention heads, when not ``embed_dim // 64``.
        trust_checkpoint: allow arbitrary pickled objects (only for files from a trusted source).

    Returns:
        The encoder in eval mode, its ``norm_stats`` from the file or the runtime default (-7.1, 4.2).

    Raises:
        ModelLoadError: missing or unreadable file, not an M2D checkpoint (the message names the missing or
            unexpected keys), a 32 kHz model, or a folder name that contradicts the tensors.
    """
    path = Path(path)
    checkpoint = load_torch_checkpoint(path, kind="M2D", trust_checkpoint=trust_checkpoint)
    state = _encoder_state_dict(checkpoint, path)
    config = _config_from_tensors(state, path, num_heads)
    if "norm_stats" not in state:  # older files: the runtime falls back to its defaults
        logger.info("M2D %s has no norm_stats; using the runtime default %s", path, DEFAULT_NORM_STATS)
        state["norm_stats"] = torch.tensor(DEFAULT_NORM_STATS)
    model = M2DEncoderModel(config)
    check_state_dict(model, state, kind="M2D", path=path)
    model.load_state_dict(state)
    return model.to(device).eval()


class M2DEncoder(SpeechEncoder):
    """SpEAT adapter around an `M2DEncoderModel`: per-clip log-mel, chunking, and masked batching of chunks.

    Args:
        model: the encoder (moved to `device` and `dtype`, put in eval mode).
        name: what the description calls the model.
        norm_stats: (mean, std) to use instead of the model's ``norm_stats`` buffer (left unchanged), e.g.
            statistics of your own data.
        revision: version string of the weights, when there is one.

    Raises:
        ValueError: `norm_stats` is not two finite numbers with a positive std.
    """

    supports_padding = True

    def __init__(self, model: M2DEncoderModel, *, name: str, norm_stats: tuple[float, float] | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 revision: str | None = None) -> None:
        if norm_stats is None:
            # The buffer is float32, as in the authors' files; keep its shortest decimal form (-7.1, not -7.0999999).
            norm_stats = tuple(float(str(np.float32(value))) for value in model.norm_stats.float())
        if len(norm_stats) != 2 or not all(math.isfinite(float(value)) for value in norm_stats) \
                or float(norm_stats[1]) <= 0:
            raise ValueError(f"norm_stats must be (mean, std) with a positive std, got {norm_stats!r}")
        mean, std = float(norm_stats[0]), float(norm_stats[1])
        self.norm_stats = (mean, std)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.dtype = dtype
        config = model.config
        self.description = ModelDescription(
            name=name, kind="m2d", revision=revision, weights_sha256=weights_sha256(self.model),
            num_parameters=count_parameters(self.model), num_layers=model.num_hidden_states,
            settings={
                "architecture": config.to_dict(), "dtype": str(dtype).removeprefix("torch."),
                "front_end": {"kind": "log_mel", "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": config.n_mels,
                              "f_min": F_MIN, "f_max": F_MAX, "log_offset": LOG_OFFSET},
                "norm_stats": [mean, std],
                "chunk_frames": config.chunk_frames,
            })

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, norm_stats: tuple[float, float] | None = None,
                        num_heads: int | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, revision: str | None = None,
                        trust_checkpoint: bool = False) -> M2DEncoder:
        """An adapter for a released checkpoint (see `load_m2d_checkpoint`)."""
        model = load_m2d_checkpoint(path, num_heads=num_heads, trust_checkpoint=trust_checkpoint)
        return cls(model, name=str(path), norm_stats=norm_stats, device=device, dtype=dtype, revision=revision)

    @classmethod
    def from_config(cls, config: M2DConfig, *, seed: int = 0, norm_stats: tuple[float, float] | None = None,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> M2DEncoder:
        """A randomly initialised encoder (pre-training step 0), reproducible from `seed`."""
        with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
            torch.manual_seed(seed)
            model = M2DEncoderModel(config)
        return cls(model, name=f"m2d-random-seed{seed}", norm_stats=norm_stats, device=device, dtype=dtype)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        """Normalised log-mel spectrogram of one clip, (n_mels, frames) float32, as the runtime computes it."""
        log_mel = features.log_mel_spectrogram(
            np.asarray(waveform, dtype=np.float32), sampling_rate=SAMPLING_RATE, n_mels=self.model.config.n_mels,
            n_fft=N_FFT, hop_length=HOP_LENGTH, f_min=F_MIN, f_max=F_MAX, window="hann", center=True,
            pad_mode="reflect", power=2.0, mel_scale="slaney", norm="slaney", log_offset=LOG_OFFSET)
        mean, std = self.norm_stats
        return ((log_mel - mean) / std).T.astype(np.float32)

    def encode(self, waveforms: Sequence[np.ndarray]) -> EncoderOutput:
        """Encode mono 16 kHz waveforms of any lengths (each longer than half an FFT window, 200 samples).

        Raises:
            ValueError: an empty batch, or a clip too short for the centred STFT.
        """
        if len(waveforms) == 0:
            raise ValueError("encode needs at least one waveform")
        for index, waveform in enumerate(waveforms):
            if np.ndim(waveform) != 1 or len(waveform) <= N_FFT // 2:
                raise ValueError(f"waveform {index} has shape {np.shape(waveform)}; M2D needs a mono clip of more than "
                                 f"{N_FFT // 2} samples (the centred STFT reflects half a window at each edge)")
        config = self.model.config
        patch_frames, chunk_frames = config.patch_size[1], config.chunk_frames
        chunks: list[np.ndarray] = []
        owners: list[int] = []  # the clip of each chunk; a clip's chunks follow each other in time order
        for index, waveform in enumerate(waveforms):
            spectrogram = self.log_mel(waveform)
            padded_frames = -(-spectrogram.shape[1] // patch_frames) * patch_frames
            spectrogram = np.pad(spectrogram, ((0, 0), (0, padded_frames - spectrogram.shape[1])))
            for start in range(0, padded_frames, chunk_frames):
                chunks.append(spectrogram[:, start: start + chunk_frames])
                owners.append(index)
        batch = pad_batch([chunk.T for chunk in chunks])[0].transpose(1, 2)  # (chunks, n_mels, widest chunk)
        time_patches = [chunk.shape[1] // patch_frames for chunk in chunks]
        with torch.inference_mode():
            layers = self.model(batch.to(device=self.device, dtype=self.dtype), torch.tensor(time_patches))
            return join_windows(layers, time_patches, owners, len(waveforms))
