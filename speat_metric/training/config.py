"""Typed recipe configuration shared by ``speat prune`` and ``speat distill``: YAML defaults, a user's file, options.

A recipe is a frozen dataclass tree: `read_yaml`, `merge` (defaults, ``--config``, options), `build` (unknown keys
are errors) and the ``check_*`` functions; docs/pruning.md ("Configuration") tells more.

Example:
    >>> from dataclasses import field
    >>> @dataclass(frozen=True)
    ... class Recipe:
    ...     training: TrainingConfig = field(default_factory=TrainingConfig)
    >>> build(Recipe, merge({"training": {"seed": 1}}, {"training": {"max_steps": 9}}), where="x").training.max_steps
    9
    >>> build(Recipe, {"training": {"sead": 1}}, where="my.yaml")
    Traceback (most recent call last):
    ...
    speat_metric.training.config.ConfigError: my.yaml: training: unknown setting(s) sead; known here: batch_size, ...
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from speat_metric.defaults import NUM_PERMUTATIONS, PROFILE, STUDY_TESTS

if TYPE_CHECKING:
    from speat_metric.evaluation import EvaluationSettings

_FAMILY_SETTINGS = ("batch_size", "crop_seconds")
"""Settings that may differ by model family (``{melhubert: 4, default: 12}``): merged as values, not sections."""


AUTO_WORKERS = "auto"
"""``training.num_workers: auto``: as many dataloader workers as the machine's cores allow
(`speat_metric.training.data.default_num_workers`)."""


class ConfigError(ValueError):
    """A recipe setting is unknown or out of range; the message names it and its source."""


@dataclass(frozen=True)
class TrainingConfig:
    """Batches, crops, precision, seed, length and checkpointing of the training."""

    batch_size: int | dict[str, int] = 12
    gradient_accumulation_steps: int = 1
    crop_seconds: float | dict[str, float] = 15.625
    min_seconds: float = 2.0
    mixed_precision: str = "auto"
    num_workers: int | str = AUTO_WORKERS  # dataloader workers per process (data.default_num_workers)
    seed: int = 0
    max_steps: int | None = None
    save_state_every: int | None = 5000
    keep_states: int = 2
    seeds: tuple[int, ...] = ()  # --seeds: one run per seed in RUN_DIR/seed-<s>/ (checkpoints.run_replicates)

    def for_family(self, name: str, family: str) -> Any:
        """A setting that may differ by model family (``{melhubert: 4, default: 12}``), for `family`."""
        value = getattr(self, name)
        return value.get(family, value["default"]) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class HeldOutConfig:
    """The recordings kept out of training, whose objective loss is recorded beside d at every checkpoint
    (`speat_metric.training.data.split_held_out`): `fraction` of the usable recordings, at least one and at most
    `max_recordings` (whole speakers when the speakers are known), chosen with `seed` (not the training seed: every
    seed of a replicated run keeps out the same recordings, with the same crops). `fraction` 0: none, train on all."""

    fraction: float = 0.02
    max_recordings: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 <= self.fraction < 0.5:
            raise ConfigError(f"data.held_out.fraction must be a number from 0 (no held-out split) to below 0.5, "
                              f"got {self.fraction!r}")
        check_positive(self.max_recordings, "data.held_out.max_recordings")
        check_positive(self.seed, "data.held_out.seed", zero=True)


@dataclass(frozen=True)
class DataConfig:
    """Where the training audio comes from (``--data`` and how to read a datasets dataset), which column names a
    dataset's speakers (None: ``speaker_id`` or ``speaker`` when there is one), and the held-out split."""

    path: str | None = None
    audio_column: str | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    speaker_column: str | None = None
    held_out: HeldOutConfig = dataclasses.field(default_factory=HeldOutConfig)


@dataclass(frozen=True)
class TrackingConfig:
    """The SpEAT at every checkpoint (options of ``speat evaluate``)."""

    stimuli: str = "demo"
    tests: tuple[str, ...] = STUDY_TESTS
    permutations: int = NUM_PERMUTATIONS
    allow_missing: bool = False
    profile: str = PROFILE

    def settings(self, *, seed: int, mean_std: str | None = None, progress: bool = True) -> EvaluationSettings:
        """The `EvaluationSettings` of the bias tracker (the permutations seeded with the training seed)."""
        from speat_metric.evaluation import EvaluationSettings

        return EvaluationSettings(tests=self.tests, stimuli=self.stimuli, allow_missing=self.allow_missing,
                                  num_permutations=self.permutations, seed=seed, mean_std=mean_std,
                                  profile=self.profile, progress=progress)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file of settings (a mapping); `ConfigError` when it is missing, not YAML, or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`update`'s keys laid over `base`, section by section (a copy; per-family settings are replaced whole)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict) and key not in _FAMILY_SETTINGS:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build(cls: type, data: Any, *, where: str) -> Any:
    """The dataclass `cls` from a nested mapping: sections become their dataclasses, lists become tuples. A
    `ConfigError` names `where` (the file or "the configuration") and the unknown key or refused value."""
    try:
        return _build(cls, data, where)
    except (TypeError, KeyError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, got {data!r}")
    fields = {item.name: item for item in dataclasses.fields(cls)}
    if unknown := sorted(set(data) - set(fields)):
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known here: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value or {}, f"{where}: {name}")
        elif typing.get_origin(hint) is tuple:
            kind = typing.get_args(hint)[0]
            if isinstance(value, str) and kind in (str, int):
                try:
                    value = [kind(part.strip()) for part in value.split(",") if part.strip()]
                except ValueError:
                    raise ConfigError(f"{where}: {name} must be a comma-separated list of {kind.__name__}s, got "
                                      f"{value!r}") from None
            elif isinstance(value, int) and not isinstance(value, bool) and kind is int:
                value = [value]
            elif not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: {name} must be a list, got {value!r}")
            value = tuple(_build(kind, item, f"{where}: {name}[{index}]") if dataclasses.is_dataclass(kind) else item
                          for index, item in enumerate(value))
        values[name] = value
    return cls(**values)


def plain(value: Any) -> Any:
    """Dataclass dictionaries made JSON- and YAML-ready (tuples as lists)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def set_dotted(merged: dict[str, Any], key: str, value: Any) -> None:
    """Set ``section.name`` (or a top-level ``name``) in a recipe mapping, as a command-line option does."""
    section, _, name = key.partition(".")
    if name:
        merged.setdefault(section, {})[name] = value
    else:
        merged[section] = value


def with_run_settings(merged: dict[str, Any], settings: Mapping[str, Any], *, data: str | None,
                      overrides: Mapping[str, Any] | None,
                      override: Callable[[dict[str, Any], str, Any], None] = set_dotted) -> dict[str, Any]:
    """The recipe mapping with the run's own `settings` (model, out, ...), ``--data`` and the command line's
    `overrides` (dotted keys; None means not given), each set by `override`."""
    merged.update(settings)
    if data is not None:
        merged.setdefault("data", {})["path"] = str(data)
    for key, value in (overrides or {}).items():
        if value is not None:
            override(merged, key, value)
    return merged


class RunConfig:
    """What a run's recipe dataclass (`PruningConfig`, `DistillationConfig`) can do besides holding its values."""

    def to_dict(self) -> dict[str, Any]:
        """JSON- and YAML-ready (tuples as lists)."""
        return plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        """The YAML of ``RUN_DIR/config.yaml``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


def check_positive(value: Any, name: str, *, integer: bool = True, allow_none: bool = False,
                   zero: bool = False) -> None:
    """Raise a `ConfigError` naming `name` unless `value` is a positive (or, with `zero`, non-negative) number."""
    if value is None and allow_none:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or (value == 0 and not zero):
        kind = "whole number" if integer else "number"
        raise ConfigError(f"{name} must be a {'non-negative' if zero else 'positive'} {kind}, got {value!r}")


def check_training(training: TrainingConfig) -> None:
    """Every training setting in range (`ConfigError` naming the setting and its option)."""
    for name in _FAMILY_SETTINGS:
        value = getattr(training, name)
        if isinstance(value, Mapping) and "default" not in value:
            raise ConfigError(f"training.{name} {dict(value)} needs a 'default' entry besides the model families")
        for item in value.values() if isinstance(value, Mapping) else [value]:
            check_positive(item, f"training.{name} (--{name.replace('_', '-')})", integer=name == "batch_size")
    check_positive(training.min_seconds, "training.min_seconds", integer=False)
    check_positive(training.gradient_accumulation_steps, "training.gradient_accumulation_steps")
    if training.num_workers != AUTO_WORKERS:
        check_positive(training.num_workers, "training.num_workers (a number or auto)", zero=True)
    check_positive(training.seed, "training.seed (--seed)", zero=True)
    check_positive(training.max_steps, "training.max_steps (--max-steps)", allow_none=True)
    check_positive(training.save_state_every, "training.save_state_every", allow_none=True)
    check_positive(training.keep_states, "training.keep_states")
    check_seeds(training.seeds, "training.seeds")


def check_seeds(seeds: Any, option: str = "--seeds") -> None:
    """Replicate seeds: at least two distinct whole numbers >= 0 (`ConfigError` naming `option` otherwise)."""
    seeds = list(seeds)
    if not seeds:
        return
    if any(isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 for seed in seeds):
        raise ConfigError(f"{option} must be whole numbers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{option} lists a seed twice ({seeds!r}); give each replicate its own seed")
    if len(seeds) < 2:
        raise ConfigError(f"{option} needs at least two seeds for replicates, got {seeds!r}; use --seed for one run")


def check_tracking(tracking: TrackingConfig) -> None:
    """The bias tracking's settings in range (the tests themselves are checked when the tracker loads them)."""
    check_positive(tracking.permutations, "tracking.permutations (--permutations)")
    if not tracking.tests:
        raise ConfigError("tracking.tests (--tests) is empty; use gender, age, native or custom test files")


def differences(old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: set[str] = frozenset(),
                prefix: str = "") -> list[str]:
    """``key: old in the run, new now`` for every dotted key whose value differs (keys in `ignore` skipped)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping):
            changes += differences(old[key], new[key], ignore=ignore, prefix=f"{name}.")
        elif old.get(key) != new.get(key) and name not in ignore:
            changes.append(f"{name}: {old.get(key)!r} in the run, {new.get(key)!r} now")
    return changes
