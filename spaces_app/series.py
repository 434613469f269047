"""The curves behind the plots, from the tidy rows of `rows.ResultTable`: d with its interval against training
steps (Lin et al. 2024, Figure 1), parameters removed by pruning (Figure 2), distillation depth (Figure 3) and
layer, and the per-stimulus association scores of one record.

Every curve is a frame with ``series``, ``panel``, ``test``, ``x``, ``d``, ``ci_low`` and ``ci_high``; `plots`
draws them without knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from speat_metric.report import plural
from speat_metric.results import EvaluationRecord
from speat_metric.space import columns as C
from speat_metric.space.rows import ResultTable
from speat_metric.statistics import effect_size

PRUNING_METHODS = ("heads", "rows", "weights")
UNPRUNED = "unpruned model"
"""What the dashed references of the pruning curves are."""
CURVE_COLUMNS = ["series", "panel", "test", "x", "d", "ci_low", "ci_high"]


@dataclass(frozen=True)
class Curves:
    """Points to draw, the x axis, and per-panel dashed reference values of d by test (e.g. the unpruned model).

    ``reference_label`` says what the references are (``unpruned model``, ``mean over layers``): the figure's legend
    and its text alternative name the dashed lines with it, so no title has to.
    """

    points: pd.DataFrame
    x_label: str
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    categorical_x: bool = False
    note: str = ""
    reference_label: str = ""

    @property
    def empty(self) -> bool:
        return self.points.empty


def _curve(rows: pd.DataFrame, *, series: pd.Series | str, panel: pd.Series | str, x: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame({"series": series, "panel": panel, "test": rows["test"], "x": x, "d": rows["d"],
                          "ci_low": rows["ci_low"], "ci_high": rows["ci_high"]}, index=rows.index)
    return frame[CURVE_COLUMNS].sort_values(["panel", "series", "test", "x"]).reset_index(drop=True)


def _of(table: ResultTable, stimuli: str, *, view: str | None = C.MEAN_VIEW) -> pd.DataFrame:
    rows = table.frame[table.frame["stimuli"] == stimuli]
    return rows if view is None else rows[rows["view"] == view]


# Training steps (Figure 1) -----------------------------------------------------------------------------------------

def training_runs(table: ResultTable, stimuli: str) -> list[str]:
    """Uncompressed models with results at two or more checkpoint steps."""
    rows = _of(table, stimuli)
    rows = rows[(rows["method"] == C.UNCOMPRESSED) & rows["step"].notna()]
    steps = rows.groupby("run")["step"].nunique()
    return sorted(steps[steps >= 2].index)


def training_curves(table: ResultTable, runs: list[str], stimuli: str) -> Curves:
    rows = _of(table, stimuli)
    rows = rows[(rows["method"] == C.UNCOMPRESSED) & rows["step"].notna() & rows["run"].isin(runs)]
    return Curves(_curve(rows, series=rows["run"], panel="", x=rows["step"].astype(float)), "training step")


# Pruning (Figure 2) ------------------------------------------------------------------------------------------------

def pruned_models(table: ResultTable, stimuli: str) -> list[str]:
    """The models that pruning sweeps started from."""
    rows = _of(table, stimuli)
    return sorted(set(rows.loc[rows["method"].isin(PRUNING_METHODS), "origin"]))


def _baseline(table: ResultTable, origin: str, stimuli: str) -> pd.DataFrame:
    """The unpruned (or undistilled) model's rows: the origin model itself, at its latest checkpoint if several."""
    rows = _of(table, stimuli)
    rows = rows[(rows["method"] == C.UNCOMPRESSED) & ((rows["run"] == origin) | (rows["name"] == origin))]
    if rows["step"].notna().any():
        rows = rows[rows["step"] == rows["step"].max()]
    return rows.drop_duplicates("test", keep="last")


def pruning_curves(table: ResultTable, origin: str, stimuli: str) -> Curves:
    """d per test against parameters removed, one panel per pruning method, the unpruned d as reference.

    The unpruned d is the sweep's step-0 record (``speat prune`` evaluates the model before pruning), else the
    record of the model the sweep started from. Parameters removed come from the record's compression
    (``parameters_removed``, or ``base_parameters`` minus ``parameters``); failing that, from the unpruned model's
    parameter count minus the pruned one's; failing that (e.g. masks that keep the count), the x axis is the step.
    """
    rows = _of(table, stimuli)
    rows = rows[rows["method"].isin(PRUNING_METHODS) & (rows["origin"] == origin)]
    baseline = _baseline(table, origin, stimuli)
    removed = rows["removed"].astype(float)
    if removed.isna().any() and not baseline.empty:
        removed = removed.fillna(float(baseline["params"].iloc[0]) - rows["params"])
    if removed.notna().all() and (removed > 0).any():
        x, label = removed, "parameters removed"
    else:
        x, label = rows["compression_step"].astype(float), "pruning step"
    points = _curve(rows, series=rows["method"], panel=rows["method"] + " pruning", x=x)
    fallback = dict(zip(baseline["test"], baseline["d"]))
    references = {}
    for method in set(rows["method"]):
        unpruned = rows[(rows["method"] == method) & (rows["compression_step"] == 0)]
        unpruned = unpruned.drop_duplicates("test", keep="last")
        references[f"{method} pruning"] = dict(zip(unpruned["test"], unpruned["d"])) or fallback
    note = "" if all(references.values()) else f"no unpruned result of {origin}: the dashed reference is missing"
    return Curves(points, label, references=references, note=note, reference_label=UNPRUNED)


# Distillation (Figure 3) -------------------------------------------------------------------------------------------

def distilled_models(table: ResultTable, stimuli: str) -> list[str]:
    """The teachers of distilled students."""
    rows = _of(table, stimuli)
    return sorted(set(rows.loc[rows["method"] == "distill", "origin"]))


def distillation_curves(table: ResultTable, teacher: str, stimuli: str) -> Curves:
    """d per test of the teacher ("base") and of each student depth (its last step), as in Figure 3."""
    rows = _of(table, stimuli)
    students = rows[(rows["method"] == "distill") & (rows["origin"] == teacher)]
    students = students.assign(_order=students["compression_step"].fillna(-1).astype(float))
    students = students.sort_values("_order").drop_duplicates(["student_layers", "test"], keep="last")
    depth = students["student_layers"].map(
        lambda layers: "student" if pd.isna(layers) else plural(int(layers), "layer"))
    baseline = _baseline(table, teacher, stimuli)
    points = pd.concat([_curve(baseline, series="teacher", panel="", x=pd.Series("base", index=baseline.index)),
                        _curve(students, series="student", panel="", x=depth)], ignore_index=True)
    order = ["base"] + sorted(set(depth), key=lambda label: (len(label), label))
    points["x"] = pd.Categorical(points["x"], categories=order, ordered=True)
    return Curves(points.sort_values(["test", "x"]).reset_index(drop=True), "model", categorical_x=True,
                  note="" if not baseline.empty else f"no result of the teacher {teacher} on these stimuli")


# Layers ------------------------------------------------------------------------------------------------------------

def layered_models(table: ResultTable, stimuli: str) -> list[str]:
    """Models (with their checkpoint or compression) that have results for two or more single layers."""
    rows = _of(table, stimuli, view=None)
    rows = rows[rows["layer"].notna()]
    layers = rows.groupby("model")["layer"].nunique()
    return sorted(layers[layers >= 2].index)


def layer_curves(table: ResultTable, model: str, stimuli: str) -> Curves:
    rows = _of(table, stimuli, view=None)
    rows = rows[rows["model"] == model]
    pooled = rows[rows["layer"].isna()].drop_duplicates("test", keep="last")
    layered = rows[rows["layer"].notna()]
    return Curves(_curve(layered, series=model, panel="", x=layered["layer"].astype(float)),
                  "layer (0 = input embedding layer)", references={"": dict(zip(pooled["test"], pooled["d"]))},
                  reference_label=C.MEAN_VIEW)


# Association scores ------------------------------------------------------------------------------------------------

def association_frame(record: EvaluationRecord) -> pd.DataFrame | None:
    """The record's per-target scores as `scores_frame`; None when it carries none (version-1 records)."""
    scores = record.association_scores
    if not scores:
        return None
    return scores_frame({role: ([entry["id"] for entry in scores[role]],
                                np.array([entry["s"] for entry in scores[role]], dtype=np.float64))
                         for role in ("X", "Y")},
                        groups=record.groups, d=record.speat.effect_size, ddof=record.speat.ddof)


def scores_frame(scores: dict[str, tuple[list[str], np.ndarray]], *, groups: dict[str, str], d: float,
                 ddof: int = 1) -> pd.DataFrame:
    """Per-target s(w) (``scores``: role -> (stimulus ids, scores) for X and Y) with each target's influence on d
    (d minus d without that target), largest influence first."""
    (ids_x, s_x), (ids_y, s_y) = scores["X"], scores["Y"]
    influence = [d - _effect_size_or_nan(np.delete(s_x, i), s_y, ddof) for i in range(len(s_x))]
    influence += [d - _effect_size_or_nan(s_x, np.delete(s_y, i), ddof) for i in range(len(s_y))]
    frame = pd.DataFrame({
        "role": ["X"] * len(s_x) + ["Y"] * len(s_y),
        "group": [groups.get("X", "X")] * len(s_x) + [groups.get("Y", "Y")] * len(s_y),
        "stimulus": [*ids_x, *ids_y],
        "s(w)": np.concatenate([s_x, s_y]),
        "influence on d": influence,
    })
    return frame.reindex(frame["influence on d"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _effect_size_or_nan(s_x: np.ndarray, s_y: np.ndarray, ddof: int) -> float:
    try:
        return effect_size(s_x, s_y, ddof=ddof)
    except ValueError:  # no variance left without this target
        return float("nan")


def recomputed_effect_size(frame: pd.DataFrame, ddof: int = 1) -> float:
    """d from the per-target scores alone (it equals the record's d: the scores are the ones d was computed from)."""
    return effect_size(frame.loc[frame["role"] == "X", "s(w)"].to_numpy(),
                       frame.loc[frame["role"] == "Y", "s(w)"].to_numpy(), ddof=ddof)
