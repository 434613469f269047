"""Typed, versioned result records, serialised to JSON.

Every consumer (the ``evaluate`` module, the CLI, model cards, the Space, compression sweeps) reads these records
rather than re-deriving anything. A record carries the evidence behind its numbers: sizes, how many permutations,
whether the p-value is exact, the seed that reproduces it, and the package version that made it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from speat_metric.defaults import PROFILE
from speat_metric.errors import ModelLoadError
from speat_metric.files import atomic_write_text
from speat_metric.model_spec import CHECKPOINT_KINDS, ModelSpec

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1
"""Version of the JSON layout of `SpeatResult`; bumped whenever a field changes meaning or is removed."""

RECORD_SCHEMA_VERSION = 4
"""Version of the JSON layout of `EvaluationRecord`. Version 2 added ``profile``, ``compression`` and
``association_scores``; version 3 added ``fingerprint`` (which audio made the result); version 4 added ``cosines``
(the test's cosine matrix, for comparisons). Older records still load (as profile ``hf``, no compression, no
per-stimulus scores, no fingerprint, no cosines)."""

READABLE_RECORD_VERSIONS = (1, 2, 3, 4)

DEFAULT_PROFILE = PROFILE

MIN_TARGETS = 10
"""Fewer target speakers than this in X or Y: a result is labelled ``small-groups`` (the interval is too wide, and
single speakers weigh too heavily, to support a conclusion about the model)."""

# Cohen's conventions, as used by Caliskan et al. (2017) and Lin et al. (2024): |d| >= 0.2 small, 0.5 medium, 0.8 large.
_EFFECT_SIZE_THRESHOLDS = ((0.8, "large"), (0.5, "medium"), (0.2, "small"))


def effect_size_label(effect_size: float) -> str:
    """Name the magnitude of an effect size d after Cohen: ``negligible``, ``small``, ``medium`` or ``large``.

    The label describes |d| only; the sign says the direction (negative d: the association runs from Y, not X,
    towards A).

    Example:
        >>> effect_size_label(-0.93), effect_size_label(0.5), effect_size_label(0.19)
        ('large', 'medium', 'negligible')
    """
    if math.isnan(effect_size):
        raise ValueError("effect_size is NaN; a SpEAT effect size is always a number")
    for threshold, label in _EFFECT_SIZE_THRESHOLDS:
        if abs(effect_size) >= threshold:
            return label
    return "negligible"


@dataclass(frozen=True)
class SpeatResult:
    """The outcome of one SpEAT: effect size, p-value, confidence interval and how they were computed.

    Attributes:
        effect_size: d = (mean_X s - mean_Y s) / std_{X u Y}(s).
        p_value: permutation p-value of the statistic ``sum_X s - sum_Y s`` under re-partitions of X u Y.
        ci_low, ci_high: the bootstrap confidence interval for d (None when no bootstrap was run).
        n_x: number of target stimuli in X (likewise ``n_y``, ``n_a``, ``n_b``).
        num_permutations: partitions actually evaluated (all of them when ``exact``).
        exact: True when every partition of X u Y was enumerated, so ``p_value`` is exact.
        seed: the seed that reproduces the permutations and the bootstrap bit for bit.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"``.
        test_statistic: the observed ``sum_X s - sum_Y s``.
        confidence: coverage of the confidence interval, e.g. 0.95.
        n_bootstrap: bootstrap resamples drawn for the interval.
        paired: True when matched X/Y pairs were resampled together.
        ddof: delta degrees of freedom of the standard deviation in d (1: sample std, SpEAT; 0: WEFE).
        speat_version: version of the package that computed the result.
        schema_version: version of this record's JSON layout.
    """

    effect_size: float
    p_value: float
    ci_low: float | None
    ci_high: float | None
    n_x: int
    n_y: int
    n_a: int
    n_b: int
    num_permutations: int
    exact: bool
    seed: int
    alternative: str
    test_statistic: float
    confidence: float
    n_bootstrap: int
    paired: bool
    ddof: int
    speat_version: str
    schema_version: int = SCHEMA_VERSION
    scores: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    """s(w) of every target, X then Y, as `speat_test` computed them; not serialised (a record keeps them by
    stimulus in ``association_scores``)."""

    @property
    def effect_size_label(self) -> str:
        """Cohen's name for |d|: negligible, small, medium or large."""
        return effect_size_label(self.effect_size)

    def replace(self, **changes: Any) -> SpeatResult:
        """A copy with some fields changed (results are frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """All fields plus the derived ``effect_size_label``, as plain JSON-ready values."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "scores"}
        return {**values, "effect_size_label": self.effect_size_label}

    def to_json(self, **json_kwargs: Any) -> str:
        """Serialise to strict JSON (no NaN or Infinity literals)."""
        return json.dumps(self.to_dict(), allow_nan=False, **json_kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeatResult:
        """Rebuild a result from `to_dict` output; derived keys are ignored, unknown or missing keys are errors."""
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"SpeatResult schema_version {version!r} is not supported by this speat (reads version "
                f"{SCHEMA_VERSION}); upgrade speat to read newer results"
            )
        field_names = {field.name for field in dataclasses.fields(cls)} - {"scores"}
        unknown = set(data) - field_names - {"effect_size_label"}
        missing = {name for name in field_names if name != "schema_version"} - set(data)
        if unknown or missing:
            raise ValueError(
                f"not a SpeatResult record: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        return cls(**{name: value for name, value in data.items() if name in field_names})

    @classmethod
    def from_json(cls, text: str) -> SpeatResult:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ModelDescription:
    """What a result was computed with; part of every result record and of every embedding-cache key.

    Attributes:
        name: model id on the Hub, local path, or feature name (e.g. ``"mfcc"``).
        kind: adapter family: ``"transformers"``, ``"melhubert"``, ``"m2d"`` or ``"feature"``.
        revision: Hub commit the weights came from, when known.
        weights_sha256: SHA-256 over the weights (parameter names, shapes and values) when there is no revision,
            e.g. a local or randomly initialised model; None for parameter-free features.
        num_parameters: number of parameters (0 for classical features).
        num_layers: number of hidden-state layers `encode` returns (input embedding layer included).
        settings: every adapter option that changes the output (dtype, frame parameters, ...), JSON-ready.
    """

    name: str
    kind: str
    revision: str | None
    weights_sha256: str | None
    num_parameters: int
    num_layers: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDescription:
        return cls(**data)


@dataclass(frozen=True)
class EvaluationRecord:
    """One SpEAT of one model on one test: the record that the CLI writes and model cards, the Space and
    compression sweeps read. A results directory holds one JSON file per record (`save`, `load_records`).

    Attributes:
        test: test name (``gender``, ``age``, ``native`` or a custom name).
        groups: group name of each role, e.g. ``{"X": "female", "Y": "male", "A": "pleasant", "B": "unpleasant"}``.
        model: the `ModelDescription` of the encoder (name, revision or weight hash, parameters, layers, settings).
        speat: the statistics (`SpeatResult`).
        pooling: ``frame_pooling`` (per layer, over frames), ``layer_pooling`` and ``layer`` (the layer tested, None
            when layers were averaged).
        stimuli: provenance of the stimuli (source, whether synthetic, selection versions, dropped ids).
        environment: versions of speat, Python and the libraries that computed it.
        created: ISO 8601 UTC timestamp.
        labels: plain-language flags a reader must see, e.g. ``synthetic-stimuli``, ``random-init``.
        checkpoint: for per-checkpoint curves, the checkpoint's name and training step (None otherwise).
        profile: the embedding-extraction profile (``hf``, the default; see ``speat_metric.profiles``).
        compression: for pruned or distilled models, how the model was made: method, step (0: the uncompressed
            model), base model, sizes and settings (README.md, "Results"; docs/pruning.md); None for other models.
        association_scores: per-stimulus association scores s(w) of the targets that gave d:
            ``{"X": [{"id": stimulus id, "s": score}, ...], "Y": [...]}`` (None in version-1 records).
        fingerprint: which audio made the result (`speat_metric.stimuli.fingerprints`: ``test``, ``clips`` and,
            with a benchmark, ``reference``); None in records older than version 3.
        cosines: the test's cosine matrix, targets by attributes, with their stimulus ids
            (`speat_metric.cosines.Cosines.to_dict`), from which comparisons resample; None before version 4.
        schema_version: version of this record's JSON layout (`RECORD_SCHEMA_VERSION`).
    """

    test: str
    groups: dict[str, str]
    model: ModelDescription
    speat: SpeatResult
    pooling: dict[str, Any]
    stimuli: dict[str, Any]
    environment: dict[str, str]
    created: str
    labels: tuple[str, ...] = ()
    checkpoint: dict[str, Any] | None = None
    profile: str = DEFAULT_PROFILE
    compression: dict[str, Any] | None = None
    association_scores: dict[str, list[dict[str, Any]]] | None = None
    fingerprint: dict[str, Any] | None = None
    cosines: dict[str, Any] | None = dataclasses.field(default=None, repr=False)
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def model_label(self) -> str:
        """How tables and file names call the model: a local model by its file or folder name (the full path stays
        in ``model.name``), a checkpoint of a run (always local) as ``run @ step N``."""
        name = self.model.name
        if self.checkpoint is None:
            return display_name(name)
        spec = _spec(name)
        path = PurePath(spec.target if spec is not None and spec.kind in CHECKPOINT_KINDS else name)
        run = path.parent.name or path.name
        step = self.checkpoint.get("step")
        return f"{run} @ step {step}" if step is not None else f"{run} @ {self.checkpoint.get('name')}"

    @property
    def stimuli_kind(self) -> str:
        """``synthetic`` for the embedded demo set, else the kind of source (``download``, ``local``, ``hub``)."""
        if self.stimuli.get("synthetic"):
            return "synthetic"
        source = self.stimuli.get("source")
        return str(source.get("kind", "real")) if isinstance(source, dict) else "real"

    @property
    def stimulus_fingerprint(self) -> str | None:
        """The fingerprint of the audio that made the result (None for records older than version 3)."""
        return self.fingerprint.get("test") if self.fingerprint else None

    @property
    def key(self) -> tuple[str, str | None, str, str, str, str, bool]:
        """What makes a record distinct: model (with checkpoint), revision or weight hash, test, layer view,
        frame pooling, profile, and whether the stimuli were synthetic. Two records with one key describe the same
        measurement (a re-run)."""
        layer = self.pooling.get("layer")
        view = f"layer{layer}" if layer is not None else f"{self.pooling.get('layer_pooling', 'mean')}"
        return (self.model_label, self.model.revision or self.model.weights_sha256, self.test, view,
                self.pooling.get("frame_pooling", "mean"), self.profile, self.stimuli_kind == "synthetic")

    @property
    def file_name(self) -> str:
        """``<model>__<test>__<pooling>[__<profile>][__demo].json``, safe on every file system: a run on the
        synthetic demo set never overwrites the same model's run on real stimuli."""
        model, _, test, view, frame_pooling, profile, synthetic = self.key
        suffix = ("" if profile == DEFAULT_PROFILE else f"__{_slug(profile)}") + ("__demo" if synthetic else "")
        return f"{_slug(model)}__{_slug(test)}__{view}-{frame_pooling}{suffix}.json"

    def to_dict(self) -> dict[str, Any]:
        """Every field, in declaration order after ``schema_version``, as plain JSON-ready values."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values.update(groups=dict(self.groups), model=self.model.to_dict(), speat=self.speat.to_dict(),
                      pooling=dict(self.pooling), environment=dict(self.environment), labels=list(self.labels))
        return {"schema_version": values.pop("schema_version"), **values}

    def to_json(self, **json_kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **json_kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationRecord:
        """Rebuild a record from `to_dict` output of this or an older schema version."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        if "schema_version" not in data:
            raise ValueError("it has no schema_version: another tool's JSON, not a speat evaluation record")
        version = data.get("schema_version")
        if version not in READABLE_RECORD_VERSIONS:
            raise ValueError(
                f"evaluation record schema_version {version!r} is not supported by this speat (reads versions "
                f"{', '.join(map(str, READABLE_RECORD_VERSIONS))}); upgrade speat to read newer records"
            )
        try:
            return cls(
                test=data["test"], groups=dict(data["groups"]), model=ModelDescription.from_dict(data["model"]),
                speat=SpeatResult.from_dict(data["speat"]), pooling=dict(data["pooling"]), stimuli=data["stimuli"],
                environment=dict(data["environment"]), created=data["created"], labels=tuple(data.get("labels", ())),
                profile=data.get("profile") or DEFAULT_PROFILE,
                **{name: data.get(name) for name in ("checkpoint", "compression", "association_scores", "fingerprint",
                                                  "cosines")},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a speat evaluation record: {error!r}") from None

    @classmethod
    def from_json(cls, text: str) -> EvaluationRecord:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> EvaluationRecord:
        """A copy with some fields changed (records are frozen)."""
        return dataclasses.replace(self, **changes)

    def without_machine_paths(self) -> EvaluationRecord:
        """A copy fit to publish or show: every absolute path of this machine (a local model, a stimulus directory,
        a checkpoint) is cut to its last two parts, as a relative path (``/home/me/runs/run/checkpoint-200`` ->
        ``./run/checkpoint-200``), so that names and labels stay readable (`display_name`, `model_label`), nothing
        reads as a Hub id, and no home directory leaves the machine."""
        data = self.to_dict()
        matrix = None
        if data.get("cosines"):  # its base64 text may start with "/"; a copy, so the record itself keeps it
            data["cosines"] = dict(data["cosines"])
            matrix = data["cosines"].pop("values")
        stripped = _strip_machine_paths(data)
        if matrix is not None:
            stripped["cosines"]["values"] = matrix
        return EvaluationRecord.from_dict(stripped)

    def save(self, directory: str | Path) -> Path:
        """Write the record as ``directory/<file_name>`` atomically; returns the path."""
        path = Path(directory) / self.file_name
        atomic_write_text(path, self.to_json(indent=2) + "\n")
        return path


def display_name(model: str) -> str:
    """How tables, progress bars and the Space call a model string: a local model (a path: absolute, ``./``,
    ``../``, ``~``, or a research checkpoint's ``melhubert:DIR/FILE``) by its file or folder name, anything else (a Hub
    id, a feature, a ``random:`` model) as it is.

    Example:
        >>> display_name("/home/me/models/teacher"), display_name("./run/teacher"), display_name("facebook/hubert")
        ('teacher', 'teacher', 'facebook/hubert')
    """
    spec = _spec(model)
    if spec is None or spec.kind not in ("transformers", *CHECKPOINT_KINDS):
        return model
    path = spec.target
    local = PurePath(path).is_absolute() or path.startswith(("./", "../", "~")) or (
        spec.kind in CHECKPOINT_KINDS and "/" in path)
    return (PurePath(path).name or model) if local else model


def _spec(model: str) -> ModelSpec | None:
    try:
        return ModelSpec.parse(model)
    except ModelLoadError:  # not a model string speat reads (e.g. an unknown random: model): shown as it is
        return None


def read_record_file(path: str | Path) -> list[EvaluationRecord]:
    """The records of one JSON file: one record (what `EvaluationRecord.save` writes) or a list of them (what
    ``speat evaluate --format json`` prints); a ValueError when it is not JSON, or not records (the message says
    what it found)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [EvaluationRecord.from_dict(item) for item in (data if isinstance(data, list) else [data])]


def load_records(directory: str | Path) -> list[EvaluationRecord]:
    """Every evaluation record in the ``*.json`` files of a results directory (`read_record_file`), by file name;
    a bad file is an error naming it."""
    records = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            records.extend(read_record_file(path))
        except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"{path} is not a speat evaluation record: {error}") from None
    return records


_ABSOLUTE_PATH = re.compile(r"^(?P<prefix>[a-z0-9]+:)?(?P<path>(?:/|~/|[A-Za-z]:[\\/])\S*)$")


def _strip_machine_paths(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _strip_machine_paths(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_strip_machine_paths(value) for value in data]
    if isinstance(data, str) and (match := _ABSOLUTE_PATH.match(data)):
        parts = [part for part in re.split(r"[\\/]", match["path"]) if part and part != "~"]
        return (match["prefix"] or "") + "./" + "/".join(parts[-2:])
    return data


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"
