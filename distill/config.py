"""The distillation recipe as typed configuration: YAML defaults (``distill/configs``), a user's file, options.

`load_config` merges ``configs/common.yaml`` (DistilHuBERT), an optional ``--config`` (a YAML file, or the name of a
bundled one: ``study`` is Lin et al. 2024's 4th/12th-layer targets with 2, 4 and 6-layer students) and the
command-line overrides, then checks every value (`speat_metric.training.config`).

Example:
    >>> config = load_config(teacher="facebook/hubert-base-ls960", data="speech/", out="runs/distill")
    >>> config.layers, config.targets, config.optimizer.lr, config.training.batch_size
    ((2,), (4, 8, 12), 0.0002, 24)
    >>> load_config(teacher="t", data="d", out="o", path="study").targets
    (4, 12)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speat_metric.training.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    TrackingConfig,
    TrainingConfig,
    check_positive,
    check_tracking,
    check_training,
    merge,
    read_yaml,
    with_run_settings,
)
from speat_metric.training.config import build as build_config

CONFIG_DIRECTORY = Path(__file__).parent / "configs"
BUNDLED_CONFIGS = ("study",)
NOISE_SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class StudentConfig:
    """How the student starts: copied from the teacher (DistilHuBERT) or at random."""

    init_from_teacher: bool = True


@dataclass(frozen=True)
class LossConfig:
    """Weights of the two terms of `speat_metric.distill.objective.distillation_loss`."""

    l1_weight: float = 1.0
    cosine_weight: float = 1.0


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with a linear warm-up over `warmup_proportion` of the run, then a linear decay to 0; `weight_decay` on
    every parameter but the biases, as S3PRL's parameter groups (``speat_metric.distill.train.parameter_groups``)."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    warmup_proportion: float = 0.07
    gradient_clipping: float | None = 5.0


@dataclass(frozen=True)
class NoiseConfig:
    """Denoising distillation: None (off), ``synthetic`` or a folder of noise recordings; how loud the noise is,
    as the mixing ratio alpha or, when `snr_db` is set (it wins), as the mix's signal-to-noise ratio in dB
    (`speat_metric.distill.noise.noise_mix_ratio`)."""

    source: str | None = None
    mix_ratio: float = 0.2
    snr_db: float | None = None


@dataclass(frozen=True)
class DistillationConfig(RunConfig):
    """A whole distillation run: the teacher, the students, the loss, the training, the bias tracking.

    Attributes:
        teacher: the teacher's model string (a transformers directory or Hub id, ``melhubert:FILE``,
            ``random:melhubert-*``).
        out: the run directory.
        layers: the students' depths (one student per entry).
        joint: train every student at once, on one teacher forward per batch (`speat_metric.distill.train`); False:
            one after the other. Each student's training is the same either way; runs saved before the setting
            existed trained one after the other (`read_run_config`).
        targets: the teacher layers each student predicts (1 = the first transformer layer's output).
        checkpoint_every: steps between student checkpoints (each with its SpEAT); the last step always has one.
        revision, mean_std: as for ``speat evaluate``.
    """

    teacher: str
    out: str
    layers: tuple[int, ...] = (2,)
    joint: bool = True
    targets: tuple[int, ...] = (4, 8, 12)
    checkpoint_every: int = 50_000
    revision: str | None = None
    mean_std: str | None = None
    student: StudentConfig = field(default_factory=StudentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        _check(self)

    @property
    def max_steps(self) -> int:
        return self.training.max_steps

    @property
    def warmup_steps(self) -> int:
        return round(self.optimizer.warmup_proportion * self.training.max_steps)

    def checkpoint_steps(self) -> list[int]:
        """The steps with a student checkpoint and its SpEAT: every `checkpoint_every`, and the last."""
        steps = list(range(self.checkpoint_every, self.max_steps, self.checkpoint_every))
        return [*steps, self.max_steps]


def load_config(*, teacher: str, out: str | Path, data: str | None = None, path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, revision: str | None = None,
                mean_std: str | None = None) -> DistillationConfig:
    """The resolved configuration of a run.

    Args:
        teacher: the teacher's model string.
        out: the run directory.
        data: ``--data`` (a folder or dataset).
        path: ``--config``: a YAML file whose keys replace the defaults, or a bundled config's name (``study``).
        overrides: dotted keys from the command line, e.g. ``{"optimizer.lr": 1e-4, "layers": [2, 4]}``.
        revision, mean_std: as for ``speat evaluate``.

    Raises:
        ConfigError: an unknown key or a bad value (named with its source).
    """
    merged = read_yaml(CONFIG_DIRECTORY / "common.yaml")
    where = "the configuration"
    if path is not None:
        file = CONFIG_DIRECTORY / f"{path}.yaml" if str(path) in BUNDLED_CONFIGS else Path(path)
        close = difflib.get_close_matches(str(path), BUNDLED_CONFIGS, n=1, cutoff=0.75)
        if not file.exists() and close:
            raise ConfigError(f"--config {path}: no such file; did you mean {close[0]!r} (the bundled settings)?")
        user = read_yaml(file)
        _noise_level_given(user.get("noise"), where=f"--config {path}")
        merged = merge(merged, user)
        where = str(path)
    settings = {"teacher": teacher, "out": str(out), "revision": revision, "mean_std": mean_std}
    given = {key.removeprefix("noise."): value for key, value in (overrides or {}).items() if key.startswith("noise.")}
    merged = with_run_settings(merged, settings, data=data, overrides=overrides)
    if _noise_level_given(given, where="the options") == "mix_ratio" and isinstance(merged.get("noise"), dict):
        merged["noise"]["snr_db"] = None  # --mix-ratio replaces a config file's snr_db, which would otherwise win
    return build(merged, where=where)


def _noise_level_given(noise: Any, *, where: str) -> str | None:
    """Which of ``noise.mix_ratio`` and ``noise.snr_db`` (two ways to give the noise level) one source gives.

    Raises:
        ConfigError: it gives both.
    """
    given = [key for key in ("mix_ratio", "snr_db") if isinstance(noise, Mapping) and noise.get(key) is not None]
    if len(given) == 2:
        raise ConfigError(f"{where}: noise.mix_ratio (--mix-ratio) and noise.snr_db (--snr-db) both set the noise "
                          "level; give one (SNR = 20 log10((1 - mix_ratio) / mix_ratio) dB)")
    return given[0] if given else None


def read_run_config(path: str | Path) -> DistillationConfig:
    """The configuration a run saved (``RUN_DIR/config.yaml``). A run saved before ``joint`` existed trained its
    students one after the other, each with its own states: it resumes that way."""
    return build({"joint": False, **read_yaml(Path(path))}, where=str(path))


def build(data: Mapping[str, Any], *, where: str) -> DistillationConfig:
    """A `DistillationConfig` from a nested mapping; unknown keys and bad values are ConfigErrors naming `where`."""
    return build_config(DistillationConfig, data, where=where)


def _check(config: DistillationConfig) -> None:
    """Every value in range (the targets against the teacher's depth are checked when the teacher is loaded)."""
    for name in ("layers", "targets"):
        values = getattr(config, name)
        if not values:
            raise ConfigError(f"{name} (--{name}) is empty; give at least one layer number")
        for value in values:
            check_positive(value, f"{name} (--{name}) entry")
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} (--{name}) repeats a layer: {', '.join(map(str, values))}")
    if not isinstance(config.joint, bool):
        raise ConfigError(f"joint (--joint, --no-joint) must be true or false, got {config.joint!r}")
    check_positive(config.checkpoint_every, "checkpoint_every (--checkpoint-every)")
    if config.training.max_steps is None:
        raise ConfigError("training.max_steps (--max-steps) must be set: the learning-rate schedule follows it")
    check_training(config.training)
    check_tracking(config.tracking)
    optimizer = config.optimizer
    check_positive(optimizer.lr, "optimizer.lr (--lr)", integer=False)
    check_positive(optimizer.eps, "optimizer.eps", integer=False)
    check_positive(optimizer.weight_decay, "optimizer.weight_decay", integer=False, zero=True)
    check_positive(optimizer.gradient_clipping, "optimizer.gradient_clipping", integer=False, allow_none=True)
    if not (isinstance(optimizer.warmup_proportion, (int, float)) and 0 <= optimizer.warmup_proportion < 1):
        raise ConfigError(f"optimizer.warmup_proportion must be in [0, 1), got {optimizer.warmup_proportion!r}")
    if len(optimizer.betas) != 2 or not all(isinstance(beta, (int, float)) and 0 <= beta < 1
                                            for beta in optimizer.betas):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {list(optimizer.betas)!r}")
    for name in ("l1_weight", "cosine_weight"):
        check_positive(getattr(config.loss, name), f"loss.{name}", integer=False, zero=True)
    if config.loss.l1_weight == 0 and config.loss.cosine_weight == 0:
        raise ConfigError("loss.l1_weight and loss.cosine_weight are both 0: nothing would be learned")
    ratio = config.noise.mix_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ConfigError(f"noise.mix_ratio (--mix-ratio) must be between 0 and 1 (exclusive), got {ratio!r}")
    snr = config.noise.snr_db
    if snr is not None and (isinstance(snr, bool) or not isinstance(snr, (int, float)) or not -100 <= snr <= 100):
        # beyond +-100 dB one part of the mix is below float32's resolution: the mix would be pure speech or noise
        raise ConfigError(f"noise.snr_db (--snr-db) must be a number of dB between -100 and 100, got {snr!r}")
