"""Pruning recipes as typed configuration: YAML defaults (``pruning/configs``), a user's file, command-line options.

`load_config` merges ``configs/common.yaml``, the method's ``configs/<method>.yaml``, an optional ``--config`` file
(only the keys it changes) and the command-line overrides, then checks everything: an unknown key or a bad value is
a `ConfigError` naming where it came from and what is allowed.

Example:
    >>> config = load_config("rows", model="random:melhubert-small", data="speech/", out="runs/rows")
    >>> config.schedule.rows_per_step, config.optimizer.lr, config.training.for_family("batch_size", "melhubert")
    (128, 1e-05, 4)
"""

from __future__ import annotations

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
    set_dotted,
    with_run_settings,
)
from speat_metric.training.config import build as build_config

CONFIG_DIRECTORY = Path(__file__).parent / "configs"
METHODS = ("heads", "rows", "weights")
OBJECTIVES = ("auto", "native", "teacher")


@dataclass(frozen=True)
class Phase:
    """Prune every `every` steps while more than `until` remain (heads in the model, or FFN dims per layer)."""

    every: int
    until: int


@dataclass(frozen=True)
class SparsityStep:
    """Raise the sparsity by `increment` at each pruning step, up to `until`."""

    increment: float
    until: float


@dataclass(frozen=True)
class ScheduleConfig:
    """When to prune and how much (the fields used depend on the method; see ``configs/<method>.yaml``)."""

    warmup_steps: int = 0
    phases: tuple[Phase, ...] = ()
    heads_per_step: int | None = None
    rows_per_step: int | None = None
    final_steps: int | None = None
    check_every: int | None = None
    plateau_window: int | None = None
    plateau_tolerance: float | None = None
    ema_decay: float | None = None
    sparsity: tuple[SparsityStep, ...] = ()
    prune_at: tuple[int, ...] = ()


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam's settings (constant learning rate) and the gradient-norm clipping."""

    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    gradient_clipping: float | None = 10.0


@dataclass(frozen=True)
class TeacherSettings:
    l1_weight: float = 1.0
    cosine_weight: float = 1.0


@dataclass(frozen=True)
class Wav2Vec2Settings:
    mask_time_prob: float = 0.65
    mask_time_length: int = 10
    num_negatives: int = 100
    diversity_loss_weight: float = 0.1
    gumbel_temperature: float = 0.5


@dataclass(frozen=True)
class MelHuBERTSettings:
    """Masking, and the labels: the authors' files (`labels`), else k-means on `kmeans_features` (``log-mel`` or
    ``layer``: hidden states of `kmeans_layer`, None for the middle layer); see ``configs/common.yaml``."""

    mask_prob: float = 0.7
    mask_length: int = 5
    labels: str | None = None
    kmeans_features: str = "log-mel"
    kmeans_layer: int | None = None
    kmeans_frames: int = 100_000
    clusters: int | None = None


@dataclass(frozen=True)
class ObjectiveConfig:
    """The fine-tuning loss between pruning steps and its settings."""

    name: str = "auto"
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    wav2vec2: Wav2Vec2Settings = field(default_factory=Wav2Vec2Settings)
    melhubert: MelHuBERTSettings = field(default_factory=MelHuBERTSettings)


@dataclass(frozen=True)
class PruningConfig(RunConfig):
    """A whole pruning run: the model, the method, its schedule, the fine-tuning, the tracking.

    Attributes:
        method: ``heads``, ``rows`` or ``weights``.
        model: the model string (a transformers directory or Hub id, ``melhubert:FILE``, ``random:melhubert-*``).
        out: the run directory.
        revision: Hub revision of the model.
        mean_std: MelHuBERT's mean/std ``.npy``.
    """

    method: str
    model: str
    out: str
    revision: str | None = None
    mean_std: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        _check(self)



def load_config(method: str, *, model: str, out: str | Path, data: str | None = None, path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, revision: str | None = None,
                mean_std: str | None = None) -> PruningConfig:
    """The resolved configuration of a run.

    Args:
        method: ``heads``, ``rows`` or ``weights``.
        model: the model string.
        out: the run directory.
        data: ``--data`` (a folder or dataset).
        path: a YAML file whose keys replace the defaults (``--config``).
        overrides: dotted keys from the command line, e.g. ``{"optimizer.lr": 1e-4, "schedule.until": 12}``;
            ``schedule.every`` sets every phase's interval and ``schedule.until`` the last phase's limit (and is
            a floor for the others).
        revision, mean_std: as for ``speat evaluate``.

    Raises:
        ConfigError: an unknown method or key, or a bad value.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown pruning method {method!r}; use one of {', '.join(METHODS)}")
    merged = merge(read_yaml(CONFIG_DIRECTORY / "common.yaml"), read_yaml(CONFIG_DIRECTORY / f"{method}.yaml"))
    if path is not None:
        user = read_yaml(Path(path))
        if user.get("method", method) != method:
            raise ConfigError(f"--config {path} is a {user['method']!r} recipe, not {method!r}")
        merged = merge(merged, user)
    settings = {"method": method, "model": model, "out": str(out), "revision": revision, "mean_std": mean_std}
    merged = with_run_settings(merged, settings, data=data, overrides=overrides, override=_override)
    return build(merged, where=str(path) if path else "the configuration")


def read_run_config(path: str | Path) -> PruningConfig:
    """The configuration a run saved (``RUN_DIR/config.yaml``)."""
    return build(read_yaml(Path(path)), where=str(path))


def build(data: Mapping[str, Any], *, where: str) -> PruningConfig:
    """A `PruningConfig` from a nested mapping; unknown keys and bad values are ConfigErrors naming `where`."""
    return build_config(PruningConfig, data, where=where)


def _override(merged: dict[str, Any], key: str, value: Any) -> None:
    section, _, name = key.partition(".")
    if (section, name) == ("schedule", "every"):
        schedule = merged.setdefault("schedule", {})
        if "phases" in schedule:
            schedule["phases"] = [{**phase, "every": value} for phase in schedule["phases"]]
            schedule["final_steps"] = None  # a new interval: the run ends one interval after the last step
        else:
            schedule["check_every"] = value
        return
    if (section, name) == ("schedule", "until"):
        phases = merged.setdefault("schedule", {}).get("phases") or []
        if not phases:
            raise ConfigError("--min-heads / --min-rows apply to the heads and rows methods only")
        phases = [{**phase, "until": max(phase["until"], value)} for phase in phases]
        phases[-1]["until"] = value
        merged["schedule"]["phases"] = phases
        return
    if name.count(".") == 1:  # objective.melhubert.labels and the other --labels/--kmeans-* options
        subsection, _, name = name.partition(".")
        merged.setdefault(section, {}).setdefault(subsection, {})[name] = value
        return
    set_dotted(merged, key, value)


def _check(config: PruningConfig) -> None:
    """Every value in range, and the method's schedule complete."""
    schedule, training, optimizer = config.schedule, config.training, config.optimizer
    if config.method not in METHODS:
        raise ConfigError(f"unknown pruning method {config.method!r}; use one of {', '.join(METHODS)}")
    check_positive(schedule.warmup_steps, "schedule.warmup_steps (--warmup-steps)", zero=True)
    if config.method in ("heads", "rows"):
        per_step = "heads_per_step" if config.method == "heads" else "rows_per_step"
        flag = "--heads-per-step" if config.method == "heads" else "--rows-per-step"
        check_positive(getattr(schedule, per_step), f"schedule.{per_step} ({flag})")
        if not schedule.phases:
            raise ConfigError(f"schedule.phases is empty: the {config.method} method needs at least one phase "
                              "{every, until}")
        for index, phase in enumerate(schedule.phases):
            check_positive(phase.every, f"schedule.phases[{index}].every (--steps-per-prune)")
            check_positive(phase.until, f"schedule.phases[{index}].until (--min-{config.method})")
        check_positive(schedule.final_steps, "schedule.final_steps", allow_none=True)
    else:
        check_positive(schedule.check_every, "schedule.check_every (--steps-per-prune)")
        check_positive(schedule.plateau_window, "schedule.plateau_window")
        if schedule.plateau_window >= schedule.check_every:
            raise ConfigError(f"schedule.plateau_window ({schedule.plateau_window}) must be shorter than "
                              f"schedule.check_every ({schedule.check_every}, --steps-per-prune): the smoothed loss "
                              "is marked plateau_window steps before each check, within the interval since the "
                              "previous check")
        check_positive(schedule.plateau_tolerance, "schedule.plateau_tolerance", integer=False, zero=True)
        if not (isinstance(schedule.ema_decay, float) and 0 < schedule.ema_decay < 1):
            raise ConfigError(f"schedule.ema_decay must be between 0 and 1, got {schedule.ema_decay!r}")
        if not schedule.sparsity:
            raise ConfigError("schedule.sparsity is empty: the weights method needs at least one {increment, until}")
        steps = list(schedule.prune_at)
        if steps and (any(not isinstance(step, int) or step < 1 for step in steps) or steps != sorted(set(steps))):
            raise ConfigError(f"schedule.prune_at must list increasing positive steps, got {steps!r}")
        for index, step in enumerate(schedule.sparsity):
            if not (0 < step.increment <= 1 and 0 < step.until < 1):
                raise ConfigError(f"schedule.sparsity[{index}]: increment must be in (0, 1] and until in (0, 1), "
                                  f"got {step.increment!r} and {step.until!r}")
    if config.method == "weights" and schedule.final_steps is not None:
        raise ConfigError("schedule.final_steps applies to the heads and rows methods only (weights ends at a check)")
    for name in ("heads_per_step", "rows_per_step"):
        if getattr(schedule, name) is not None and name[:4] != config.method[:4]:
            raise ConfigError(f"schedule.{name} (--{name.replace('_', '-')}) does not apply to the {config.method} "
                              "method")
    check_positive(optimizer.lr, "optimizer.lr (--lr)", integer=False)
    check_positive(optimizer.gradient_clipping, "optimizer.gradient_clipping", integer=False, allow_none=True)
    check_training(training)
    if config.objective.name not in OBJECTIVES:
        raise ConfigError(f"objective.name (--objective) must be one of {', '.join(OBJECTIVES)}, got "
                          f"{config.objective.name!r}")
    _check_melhubert(config.objective.melhubert)
    check_tracking(config.tracking)


def _check_melhubert(settings: MelHuBERTSettings) -> None:
    """MelHuBERT's labels: an existing --labels, or k-means settings in range (the layer is checked with the model)."""
    if settings.labels is not None and not Path(settings.labels).exists():
        raise ConfigError(f"objective.melhubert.labels (--labels) {settings.labels}: no such file or folder")
    if settings.kmeans_features not in ("log-mel", "layer"):
        raise ConfigError(f"objective.melhubert.kmeans_features (--kmeans-features) must be log-mel or layer, got "
                          f"{settings.kmeans_features!r}")
    if settings.kmeans_layer is not None and (isinstance(settings.kmeans_layer, bool)
                                              or not isinstance(settings.kmeans_layer, int)):
        raise ConfigError(f"objective.melhubert.kmeans_layer (--kmeans-layer) must be a layer number or null, got "
                          f"{settings.kmeans_layer!r}")
    check_positive(settings.kmeans_frames, "objective.melhubert.kmeans_frames")
    check_positive(settings.clusters, "objective.melhubert.clusters", allow_none=True)
