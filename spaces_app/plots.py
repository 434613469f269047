"""Matplotlib figures of `series.Curves` and of per-stimulus association scores.

Figures are built with the object API (``matplotlib.figure.Figure``, no pyplot state), so concurrent requests never
draw into each other's figures. Every d is drawn with its confidence interval: a band along continuous axes
(training steps, layers), error bars for compression steps and distillation depths, as in Lin et al. (2024).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from speat_metric.report import test_sort_key
from speat_metric.space.series import Curves

TEST_COLOURS = {"gender": "#c2410c", "age": "#1d4ed8", "native": "#15803d"}
_CYCLE = ("#7c3aed", "#0891b2", "#be185d", "#4d7c0f", "#b45309", "#475569", "#9333ea", "#0f766e")


def colour(key: str, keys: list[str]) -> str:
    if key in TEST_COLOURS:
        return TEST_COLOURS[key]
    others = [name for name in keys if name not in TEST_COLOURS]
    return _CYCLE[others.index(key) % len(_CYCLE)] if key in others else _CYCLE[0]


def message_figure(text: str) -> Figure:
    """A small figure that says why there is nothing to draw."""
    figure = Figure(figsize=(9, 2.2), layout="constrained")
    axes = figure.subplots()
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, color="#475569")
    return figure


def _style(axes, *, zero_at: str = "y") -> None:
    """Light grid, no top/right spines, and the d = 0 (or s = 0) line."""
    (axes.axhline if zero_at == "y" else axes.axvline)(0, color="#94a3b8", linewidth=0.8, zorder=0)
    axes.grid(True, color="#e2e8f0", linewidth=0.7)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def _ordered(values: pd.Series) -> list[str]:
    """The study's tests first, in their order; other values (custom tests, panels, runs) as they come."""
    return sorted(dict.fromkeys(values), key=lambda value: test_sort_key(value)[0])


def curve_figure(curves: Curves, *, title: str, facet: str = "panel", colour_by: str = "test",
                 band: bool = True, empty_message: str = "nothing to show") -> Figure:
    """One panel per value of `facet` (``panel`` or ``test``), one line per value of `colour_by`; d with its CI."""
    if curves.empty:
        return message_figure(empty_message)
    points = curves.points
    facets = _ordered(points[facet])
    figure = Figure(figsize=(max(8.5, min(4.3 * len(facets), 13.5)), 4.0), layout="constrained")
    axes_list = np.atleast_1d(figure.subplots(1, len(facets), sharey=True, squeeze=False)[0])
    keys = _ordered(points[colour_by])
    for axes, facet_value in zip(axes_list, facets):
        panel = points[points[facet] == facet_value]
        for position, key in enumerate(keys):
            line = panel[panel[colour_by] == key]
            if line.empty:
                continue
            line = line.sort_values("x")
            if curves.categorical_x:  # side by side within a category, so the error bars do not hide each other
                x = line["x"].cat.codes.to_numpy() + 0.09 * (position - (len(keys) - 1) / 2)
            else:
                x = line["x"].to_numpy(dtype=float)
            lows, highs = line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float)
            shade = colour(key, keys)
            if band and not curves.categorical_x:
                axes.fill_between(x, lows, highs, color=shade, alpha=0.15, linewidth=0)
                axes.plot(x, line["d"], marker="o", markersize=4, color=shade, label=key)
            else:
                errors = np.vstack([line["d"] - lows, highs - line["d"]])
                axes.errorbar(x, line["d"], yerr=np.nan_to_num(errors), marker="o", markersize=5, capsize=3,
                              color=shade, label=key, linestyle="-" if not curves.categorical_x else ":")
        reference = curves.references.get(facet_value if facet == "panel" else "", {})
        for key, value in reference.items():
            if key in keys or facet == "test":
                axes.axhline(value, color=colour(key, keys) if colour_by == "test" else "#64748b",
                             linestyle="--", linewidth=1.1, alpha=0.8)
        if curves.categorical_x:
            categories = list(points["x"].cat.categories)
            axes.set_xticks(range(len(categories)), categories)
        _style(axes)
        axes.set_title(str(facet_value) if facet_value else "", fontsize=11)
        axes.set_xlabel(curves.x_label)
    axes_list[0].set_ylabel("SpEAT d (95% CI)")
    handles, labels = axes_list[0].get_legend_handles_labels()
    for axes in axes_list[1:]:
        more_handles, more_labels = axes.get_legend_handles_labels()
        for handle, label in zip(more_handles, more_labels):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        figure.legend(handles, labels, loc="outside right upper", frameon=False, fontsize=9)
    figure.suptitle(title + (f"\n{curves.note}" if curves.note else ""), fontsize=12)
    return figure


def association_figure(frame: pd.DataFrame, *, title: str, highlight: int = 3) -> Figure:
    """s(w) of every X and Y target: points over a box per group, group means marked, and the `highlight` targets
    that move d most labelled by stimulus id."""
    groups = list(dict.fromkeys(frame["group"]))
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots()
    rng = np.random.default_rng(0)
    shades = ("#c2410c", "#1d4ed8")
    for position, group in enumerate(groups):
        values = frame.loc[frame["group"] == group, "s(w)"].to_numpy(dtype=float)
        axes.boxplot(values, positions=[position], orientation="horizontal", widths=0.5, showfliers=False,
                     medianprops={"color": "#334155"}, boxprops={"color": "#94a3b8"},
                     whiskerprops={"color": "#94a3b8"}, capprops={"color": "#94a3b8"})
        jitter = rng.uniform(-0.15, 0.15, len(values))
        axes.scatter(values, position + jitter, s=22, color=shades[position % 2], alpha=0.75, zorder=3,
                     label=f"{group} (n={len(values)}, mean {values.mean():+.4f})")
        axes.plot([values.mean()] * 2, [position - 0.32, position + 0.32], color=shades[position % 2], linewidth=2.5)
    for rank, (_, row) in enumerate(frame.head(highlight).iterrows()):
        position = groups.index(row["group"])
        axes.annotate(str(row["stimulus"]).rsplit("/", 1)[-1], (row["s(w)"], position), xytext=(0, 14 + 11 * rank),
                      textcoords="offset points", ha="center", fontsize=8, color="#0f172a",
                      arrowprops={"arrowstyle": "-", "color": "#64748b", "linewidth": 0.6})
    axes.set_yticks(range(len(groups)), groups)
    axes.set_ylim(-0.7, len(groups) - 0.3)
    axes.set_xlabel("association s(w) = mean cos(w, A) - mean cos(w, B)")
    _style(axes, zero_at="x")
    figure.legend(loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    figure.suptitle(title, fontsize=12)
    return figure
