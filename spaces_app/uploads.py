"""Uploaded embeddings (CSV or NPZ) -> the SpEAT result of the ``evaluate`` module, the per-target scores, and the
Markdown that shows them (or, inline, why a file could not be used).

CSV: a ``group`` (or ``role``) column with X, Y, A or B, an optional ``id`` (or ``stimulus_id``) column, and one
numeric column per embedding dimension, separated by commas, semicolons or tabs (with ``;`` or tabs, as Excel writes
in many locales, numbers may have decimal commas: ``0,25``). NPZ: arrays ``X``, ``Y``, ``A``, ``B`` (rows = stimuli),
or ``embeddings`` with ``groups`` (and optionally ``ids``); object arrays are refused (files are loaded without
pickle).
"""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_MARK,
    CI_EXCLUDES_ZERO_NOTE,
    format_ci,
    format_d,
    format_p,
    format_size,
)
from speat_metric.space.series import scores_frame
from speat_metric.statistics import association_scores

ROLES = ("X", "Y", "A", "B")
_GROUP_COLUMNS = ("group", "role")
_ID_COLUMNS = ("id", "stimulus_id")
DELIMITERS = ",;\t"
"""The column separators a CSV upload may use."""
_SNIFFED_LINES = 20


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


def csv_dialect(path: Path) -> tuple[str, str]:
    """The (column separator, decimal mark) of a CSV file, from its first lines.

    The separator is whichever of ``,`` ``;`` and tab splits every line alike (`csv.Sniffer`), ``,`` when none does
    (a file of one column). Where the separator is not a comma, a comma between digits is a decimal comma.

    Raises:
        EmbeddingsFileError: the file is not text.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            sample = "".join(itertools.islice(file, _SNIFFED_LINES))
    except UnicodeDecodeError as error:
        raise EmbeddingsFileError(f"{path.name} is not a readable CSV file ({error.reason}); save it as UTF-8 "
                                  "text") from None
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or too few lines to tell: nothing to split
        delimiter = ","
    decimal = "," if delimiter != "," and re.search(r"\d,\d", sample) else "."
    return delimiter, decimal


def _read_csv(path: Path) -> UploadedEmbeddings:
    delimiter, decimal = csv_dialect(path)
    try:
        frame = pd.read_csv(path, sep=delimiter, decimal=decimal)
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
        # a separator other than "," makes decimal commas possible, so the two marks may have been mixed
        hint = "; write every number with the same decimal mark" if delimiter != "," else ""
        raise EmbeddingsFileError(f"{path.name}: embedding columns must be numbers; not numeric: {', '.join(text[:5])}"
                                  + hint)
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


# Markdown -----------------------------------------------------------------------------------------------------------

def upload_summary(name: str, result: dict[str, Any], frame: pd.DataFrame) -> str:
    """Markdown of an upload's SpEAT result: a heading naming the file, d, size, p, CI and group sizes (written by
    `speat_metric.formatting`), how p was computed, then which targets move d most (`scores_summary`).

    Args:
        name: the uploaded file (a path is shown by its file name).
        result: the ``evaluate`` module's result (`evaluate_upload`).
        frame: its per-target scores (`upload_scores`).
    """
    d, low, high = result["effect_size"], result["ci_low"], result["ci_high"]
    size = format_size(result["effect_size_label"], low, high)
    p = format_p(result["p_value"], exact=result["exact"], num_permutations=result["num_permutations"])
    how = "every partition enumerated" if result["exact"] else f"{result['num_permutations']:,} random partitions"
    lines = [f"### SpEAT of `{_file_name(name)}`", "",
             f"| d | size | p | {result['confidence']:.0%} CI | X/Y/A/B |", "|---|---|---|---|---|",
             f"| {format_d(d)} | {size} | {p} | {format_ci(low, high)} | "
             f"{result['n_x']}/{result['n_y']}/{result['n_a']}/{result['n_b']} |", "",
             f"p: alternative {result['alternative']}, {how}, seed {result['seed']}."]
    if CI_EXCLUDES_ZERO_MARK in size:
        lines += ["", CI_EXCLUDES_ZERO_NOTE]
    return "\n".join([*lines, "", scores_summary(frame, d, {"X": "X", "Y": "Y"})])


def scores_summary(frame: pd.DataFrame, effect: float, groups: dict[str, str]) -> str:
    """Markdown: the mean s(w) of X and Y, what d is, and the three targets that move d most.

    Args:
        frame: per-target scores as `speat_metric.space.series.scores_frame` builds them (largest influence first).
        effect: d of the result the scores belong to.
        groups: role -> group name, e.g. ``{"X": "female", "Y": "male"}``.
    """
    means = frame.groupby("role")["s(w)"].mean()
    # s(w) is a difference of mean cosines, often below 0.01: four decimals, not the two of d
    lines = [f"Mean s(w): X ({groups.get('X')}) {means.get('X', np.nan):+.4f}, Y ({groups.get('Y')}) "
             f"{means.get('Y', np.nan):+.4f}. d = {format_d(effect)} is their difference over the pooled standard "
             "deviation.", "", "Targets that move d most (d minus d without them):"]
    lines += [f"- `{row['stimulus']}` ({row['group']}): s = {row['s(w)']:+.4f}, "
              f"influence {format_d(row['influence on d'])}" for _, row in frame.head(3).iterrows()]
    return "\n".join(lines)


def error_summary(name: str | None, error: Exception | str) -> str:
    """One line of Markdown, shown where the results would be, naming the file and what is wrong with it.

    Example:
        >>> error_summary("/tmp/up/e.csv", EmbeddingsFileError("e.csv has no 'group' column; add one"))
        "**⚠ Could not use `e.csv`:** the file has no 'group' column; add one"
        >>> error_summary(None, "Upload a .csv or .npz file of embeddings first.")
        '**⚠ No file to use:** Upload a .csv or .npz file of embeddings first.'
    """
    message = " ".join(str(error).split())  # one line, whatever the error held
    if not name:
        return f"**⚠ No file to use:** {message}"
    shown = _file_name(name)
    # `read_embeddings` messages start with the file name, which the bold prefix already gives
    if message.startswith(f"{shown}: "):
        message = message[len(shown) + 2:]
    elif message.startswith(f"{shown} "):
        message = "the file " + message[len(shown) + 1:]
    return f"**⚠ Could not use `{shown}`:** {message}"


def _file_name(name: str) -> str:
    """How a file is named to the user: its name without the folder (an upload's is a temporary one), no backticks
    (they would end the code span it is shown in)."""
    return Path(name).name.replace("`", "'")
