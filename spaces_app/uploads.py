"""Uploaded embeddings (CSV or NPZ) -> the SpEAT result of the ``evaluate`` module and the per-target scores.

CSV: a ``group`` (or ``role``) column with X, Y, A or B, an optional ``id`` (or ``stimulus_id``) column, and one
numeric column per embedding dimension. NPZ: arrays ``X``, ``Y``, ``A``, ``B`` (rows = stimuli), or ``embeddings``
with ``groups`` (and optionally ``ids``); object arrays are refused (files are loaded without pickle).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speat_metric.space.series import scores_frame
from speat_metric.statistics import association_scores

ROLES = ("X", "Y", "A", "B")
_GROUP_COLUMNS = ("group", "role")
_ID_COLUMNS = ("id", "stimulus_id")


class EmbeddingsFileError(ValueError):
    """An uploaded embeddings file that cannot be read; the message says what to fix."""


@dataclass(frozen=True)
class UploadedEmbeddings:
    """Embeddings in arrival order with their roles and ids."""

    embeddings: np.ndarray
    groups: tuple[str, ...]
    ids: tuple[str, ...]

    def of(self, role: str) -> np.ndarray:
        return self.embeddings[[index for index, group in enumerate(self.groups) if group == role]]

    def ids_of(self, role: str) -> list[str]:
        return [stimulus for stimulus, group in zip(self.ids, self.groups) if group == role]


def read_embeddings(path: str | Path) -> UploadedEmbeddings:
    """Read a CSV or NPZ of labelled embeddings.

    Raises:
        EmbeddingsFileError: unknown format, a missing or bad group column, non-numeric or missing values, a role
            with fewer than 2 stimuli.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        upload = _read_csv(path)
    elif suffix == ".npz":
        upload = _read_npz(path)
    else:
        kind = suffix or "a file without extension"
        raise EmbeddingsFileError(f"{path.name}: upload a .csv or .npz file of embeddings, not {kind}")
    small = [f"{role} ({upload.groups.count(role)})" for role in ROLES if upload.groups.count(role) < 2]
    if small:
        raise EmbeddingsFileError(f"{path.name}: every group needs at least 2 stimuli; too few in {', '.join(small)}")
    return upload


def _read_csv(path: Path) -> UploadedEmbeddings:
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise EmbeddingsFileError(f"{path.name} is not a readable CSV file: {error}") from None
    lower = {str(column).strip().lower(): column for column in frame.columns}
    group_column = next((lower[name] for name in _GROUP_COLUMNS if name in lower), None)
    if group_column is None:
        raise EmbeddingsFileError(f"{path.name} has no 'group' column; add one with X, Y, A or B for each row "
                                  f"(columns found: {', '.join(map(str, frame.columns[:8]))})")
    id_column = next((lower[name] for name in _ID_COLUMNS if name in lower), None)
    groups = _roles(frame[group_column].astype(str).tolist(), path.name, first_row=2)
    values = frame.drop(columns=[column for column in (group_column, id_column) if column is not None])
    text = [str(column) for column in values.columns if not pd.api.types.is_numeric_dtype(values[column])]
    if text:
        raise EmbeddingsFileError(f"{path.name}: embedding columns must be numbers; not numeric: {', '.join(text[:5])}")
    if values.shape[1] == 0:
        raise EmbeddingsFileError(f"{path.name} has no embedding columns besides the group (and id) column")
    missing = values.index[values.isna().any(axis=1)].tolist()
    if missing:
        raise EmbeddingsFileError(f"{path.name}: empty values in line(s) {', '.join(str(i + 2) for i in missing[:10])}")
    ids = (frame[id_column].astype(str).tolist() if id_column is not None
           else [f"row {index + 2}" for index in range(len(frame))])
    return UploadedEmbeddings(values.to_numpy(dtype=np.float64), tuple(groups), tuple(ids))


def _read_npz(path: Path) -> UploadedEmbeddings:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as error:
        raise EmbeddingsFileError(f"{path.name} is not a readable NPZ file (object arrays are not accepted): "
                                  f"{error}") from None
    if all(role in arrays for role in ROLES):
        parts = [np.atleast_2d(np.asarray(arrays[role], dtype=np.float64)) for role in ROLES]
        dimensions = {part.shape[1] for part in parts}
        if len(dimensions) != 1:
            raise EmbeddingsFileError(f"{path.name}: X, Y, A and B must have the same dimension, got "
                                      + ", ".join(f"{role} {part.shape[1]}" for role, part in zip(ROLES, parts)))
        groups = [role for role, part in zip(ROLES, parts) for _ in range(len(part))]
        ids = [f"{role} {index}" for role, part in zip(ROLES, parts) for index in range(len(part))]
        return UploadedEmbeddings(np.concatenate(parts), tuple(groups), tuple(ids))
    if "embeddings" in arrays and "groups" in arrays:
        embeddings = np.asarray(arrays["embeddings"], dtype=np.float64)
        if embeddings.ndim != 2 or len(embeddings) != len(arrays["groups"]):
            raise EmbeddingsFileError(f"{path.name}: 'embeddings' must be 2-D with one row per entry of 'groups'")
        groups = _roles([str(group) for group in arrays["groups"]], path.name, first_row=0)
        ids = [str(value) for value in arrays["ids"]] if "ids" in arrays else [f"row {i}" for i in range(len(groups))]
        return UploadedEmbeddings(embeddings, tuple(groups), tuple(ids))
    raise EmbeddingsFileError(f"{path.name} must hold arrays X, Y, A and B, or 'embeddings' and 'groups'; found "
                              f"{', '.join(arrays) or 'no arrays'}")


def _roles(values: list[str], name: str, *, first_row: int) -> list[str]:
    roles = [value.strip().upper() for value in values]
    bad = [(index + first_row, value) for index, (value, role) in enumerate(zip(values, roles)) if role not in ROLES]
    if bad:
        shown = ", ".join(f"{row}: {value!r}" for row, value in bad[:5])
        raise EmbeddingsFileError(f"{name}: group must be X, Y, A or B; found {shown}")
    return roles


@cache
def speat_module() -> Any:
    """The evaluate measurement installed with speat (loaded by path, so it works offline and never drifts)."""
    import evaluate

    from speat_metric.evaluate_registration import MODULE_PATH

    return evaluate.load(str(MODULE_PATH))


def evaluate_upload(upload: UploadedEmbeddings, *, num_permutations: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """The SpEAT result dict of ``evaluate.load("speat").compute`` on the uploaded embeddings."""
    return speat_module().compute(embeddings=upload.embeddings.tolist(), groups=list(upload.groups),
                                  num_permutations=int(num_permutations), seed=int(seed))


def upload_scores(upload: UploadedEmbeddings, result: dict[str, Any]) -> pd.DataFrame:
    """Per-target s(w) and influence on d of an upload (the same scores the result's d comes from)."""
    targets = np.concatenate([upload.of("X"), upload.of("Y")])
    s = association_scores(targets, upload.of("A"), upload.of("B"))
    n_x = len(upload.of("X"))
    return scores_frame({"X": (upload.ids_of("X"), s[:n_x]), "Y": (upload.ids_of("Y"), s[n_x:])},
                        groups={"X": "X", "Y": "Y"}, d=result["effect_size"], ddof=result["ddof"])
