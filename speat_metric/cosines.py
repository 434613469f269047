"""The cosine matrix of a test: what resampling the stimuli needs, kept beside each record.

For one model and one test, ``C[w, v] = cos(w, v)`` for every target w (the rows: X, then Y) and every attribute v
(the columns: A, then B). Everything SpEAT computes is a function of C: ``s(w) = mean_{a in A} C[w, a] -
mean_{b in B} C[w, b]``, so a bootstrap that redraws targets *and* attributes (`speat_metric.comparison`), the four
single-concept associations and leave-one-speaker-out (`speat_metric.diagnostics`) all run from a record, without the
model or its embeddings.

A record (schema 4) keeps C as float32 in its ``cosines`` field (`Cosines.to_dict`): ``4 (n_x + n_y)(n_a + n_b)``
bytes, as base64. For the study's tests (60 + 60 targets, 60 + 60 attributes) that is 57.6 kB, 77 kB of JSON, per
record (13 layer views of a base model with ``--pooling per-layer``: 1 MB per test); the embeddings it replaces
would be 240 x 768 x 4 bytes = 737 kB. float32 keeps s(w) to about 1e-7, far below any bootstrap's spread.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from speat_metric.results import EvaluationRecord

ROLES = ("X", "Y", "A", "B")


@dataclass(frozen=True)
class Cosines:
    """One test's cosine matrix with the stimulus ids of its rows and columns.

    Attributes:
        ids: stimulus ids by role: ``{"X": (...), "Y": (...), "A": (...), "B": (...)}``; rows are X then Y, columns
            A then B, in these orders.
        values: float array of shape (n_x + n_y, n_a + n_b).
        pairs: matched (X id, Y id) pairs covering every target once, or None for an unmatched design.
    """

    ids: dict[str, tuple[str, ...]]
    values: np.ndarray
    pairs: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        rows = len(self.ids["X"]) + len(self.ids["Y"])
        columns = len(self.ids["A"]) + len(self.ids["B"])
        if self.values.shape != (rows, columns):
            raise ValueError(f"a cosine matrix of {rows} targets and {columns} attributes must have shape "
                             f"({rows}, {columns}), got {self.values.shape}")

    @property
    def n_x(self) -> int:
        return len(self.ids["X"])

    @property
    def n_a(self) -> int:
        return len(self.ids["A"])

    def attribute_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """The A and the B columns, transposed to (attributes, targets) and contiguous: the layout a batch of
        resampled attribute weights multiplies fastest (a transposed view is many times slower with threaded BLAS).
        Computed once per matrix."""
        blocks = self.__dict__.get("_attribute_blocks")
        if blocks is None:
            blocks = (np.ascontiguousarray(self.values[:, :self.n_a].T),
                      np.ascontiguousarray(self.values[:, self.n_a:].T))
            object.__setattr__(self, "_attribute_blocks", blocks)
        return blocks

    def scores(self) -> np.ndarray:
        """s(w) of every target, X then Y: ``mean_A C[w, :] - mean_B C[w, :]``, in float64."""
        values = self.values.astype(np.float64)
        return values[:, :self.n_a].mean(axis=1) - values[:, self.n_a:].mean(axis=1)

    def pair_rows(self) -> np.ndarray | None:
        """The matched pairs as (row of X, row of Y within Y) indices, or None."""
        if self.pairs is None:
            return None
        x_row = {stimulus_id: row for row, stimulus_id in enumerate(self.ids["X"])}
        y_row = {stimulus_id: row for row, stimulus_id in enumerate(self.ids["Y"])}
        return np.array([[x_row[x], y_row[y]] for x, y in self.pairs], dtype=np.intp).reshape(-1, 2)

    def aligned_to(self, ids: dict[str, tuple[str, ...]]) -> Cosines:
        """The same matrix with rows and columns in the order of `ids` (another record's), so that one resample's
        indices mean the same stimuli for both; a ValueError naming the role when the stimulus sets differ."""
        for role in ROLES:
            if set(ids[role]) != set(self.ids[role]) or len(ids[role]) != len(self.ids[role]):
                missing = sorted(set(ids[role]) - set(self.ids[role]))[:3]
                extra = sorted(set(self.ids[role]) - set(ids[role]))[:3]
                raise ValueError(f"the {role} stimuli differ (only in one: {missing + extra}); results on different "
                                 "stimuli cannot be resampled together")
        position = {role: {stimulus_id: i for i, stimulus_id in enumerate(self.ids[role])} for role in ROLES}
        rows = [position["X"][i] for i in ids["X"]] + [self.n_x + position["Y"][i] for i in ids["Y"]]
        columns = [position["A"][i] for i in ids["A"]] + [self.n_a + position["B"][i] for i in ids["B"]]
        return Cosines({role: tuple(ids[role]) for role in ROLES}, self.values[np.ix_(rows, columns)], self.pairs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ids by role, the pairs, and the matrix as base64 of little-endian float32, row-major."""
        data = np.ascontiguousarray(self.values, dtype="<f4").tobytes()
        return {**{role: list(self.ids[role]) for role in ROLES},
                "pairs": [list(pair) for pair in self.pairs] if self.pairs is not None else None,
                "dtype": "float32", "values": base64.b64encode(data).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cosines:
        ids = {role: tuple(str(i) for i in data[role]) for role in ROLES}
        if data.get("dtype") != "float32":
            raise ValueError(f"cosines of dtype {data.get('dtype')!r}: this speat reads float32")
        flat = np.frombuffer(base64.b64decode(data["values"]), dtype="<f4")
        shape = (len(ids["X"]) + len(ids["Y"]), len(ids["A"]) + len(ids["B"]))
        if flat.size != shape[0] * shape[1]:
            raise ValueError(f"cosines hold {flat.size} values for a {shape[0]} x {shape[1]} matrix")
        pairs = data.get("pairs")
        return cls(ids, flat.reshape(shape).astype(np.float64),
                   tuple((str(x), str(y)) for x, y in pairs) if pairs is not None else None)


def cosine_matrix(targets: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """``C[i, j] = cos(targets[i], attributes[j])``, in float64."""
    targets, attributes = (np.asarray(array, dtype=np.float64) for array in (targets, attributes))
    unit_targets = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    unit_attributes = attributes / np.linalg.norm(attributes, axis=1, keepdims=True)
    return unit_targets @ unit_attributes.T


def cosines_of_test(embeddings: Sequence[np.ndarray], ids: Sequence[Sequence[str]],
                 pairs: Sequence[tuple[str, str]] | None = None) -> Cosines:
    """The `Cosines` of one test from its X, Y, A and B embeddings (rows = stimuli) and their stimulus ids."""
    x, y, a, b = embeddings
    values = cosine_matrix(np.concatenate([x, y]), np.concatenate([a, b]))
    return Cosines({role: tuple(role_ids) for role, role_ids in zip(ROLES, ids)}, values,
                   tuple(pairs) if pairs is not None else None)


def record_cosines(record: EvaluationRecord) -> Cosines:
    """The cosine matrix a record keeps; a ValueError naming the record when it has none (made before schema 4)."""
    if record.cosines is None:
        raise ValueError(f"the record of {record.model_label} on {record.test} keeps no cosine matrix (made by speat "
                         f"{record.environment.get('speat', '?')}, before records kept them); re-run speat evaluate "
                         "with this speat to compare or resample it")
    return Cosines.from_dict(record.cosines)
