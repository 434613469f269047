"""Matplotlib figures of `series.Curves` and of per-stimulus association scores, and what lets them be read without
seeing them: a text alternative, the plotted numbers as a table, and HTML that carries the alt text.

Figures are built with the object API (``matplotlib.figure.Figure``, no pyplot state), so concurrent requests never
draw into each other's figures. Every d is drawn with its 95% confidence interval: a band along continuous axes
(training steps, layers), error bars for compression steps and distillation depths, as in Lin et al. (2024). Error
bars are dodged (each line shifted by a fraction of the x spacing), so no two sit on one x.

Lines differ in colour (Okabe & Ito's colour-blind-safe palette), marker and line style, and each of the study's
tests is always drawn the same way. Dashed lines are references only, named in the legend by
`Curves.reference_label`; the legend names everything drawn, so no title has to. Figures of synthetic stimuli carry
`SYNTHETIC_MARK` inside the axes, so a screenshot cannot lose it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from speat_metric.formatting import format_ci, format_d, format_parameters
from speat_metric.report import test_sort_key
from speat_metric.space.series import Curves


@dataclass(frozen=True)
class Style:
    """How one line is drawn: colour, marker and line style together, so no line is told apart by colour alone."""

    colour: str
    marker: str
    linestyle: str | tuple[int, tuple[int, ...]]


# Okabe & Ito (2008). Its yellow (#F0E442) is too light for a line on white: it comes darkened, and last.
STUDY_STYLES = {"gender": Style("#D55E00", "o", "-"), "age": Style("#0072B2", "s", "-."),
                "native": Style("#009E73", "^", ":")}
_COLOURS = ("#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C7E00")
_MARKERS = ("D", "v", "P", "X", "*", "h")
_LINESTYLES = ("-", "-.", ":", (0, (3, 1, 1, 1, 1, 1)))  # no "--": dashed means a reference line
TEST_COLOURS = {test: style.colour for test, style in STUDY_STYLES.items()}
ROLE_STYLES = {"X": Style("#0072B2", "o", "-"), "Y": Style("#D55E00", "s", "-")}
"""The explain figure's target groups: X always blue circles, Y always vermillion squares."""
ROLE_ROWS = {"X": 1, "Y": 0}
"""The explain figure's rows: X on top (y grows upwards)."""

NEUTRAL = "#4B5563"
REFERENCE_LINESTYLE = "--"
BAND_ALPHA = 0.22  # light enough to see overlapping bands through each other, dark enough to stay a colour
DODGE_SPAN = 0.3
"""The dodged error bars at one x together span this fraction of the gap to the next x."""
CI_LABEL = "95% CI"
SYNTHETIC_MARK = "SYNTHETIC STIMULI — pipeline check, not a bias measurement"
_WATERMARK = "SYNTHETIC STIMULI\npipeline check —\nnot a bias measurement"  # `SYNTHETIC_MARK` in lines that fit


def style(key: str, keys: list[str]) -> Style:
    """The style of the line `key` among the drawn `keys`: a study test always the same, other keys by their order.

    Example:
        >>> style("age", ["native", "age"]) == STUDY_STYLES["age"]
        True
        >>> keys = ["gender", "run-a", "run-b"]
        >>> len({style(key, keys) for key in keys}), style("run-a", keys) in STUDY_STYLES.values()
        (3, False)
    """
    if key in STUDY_STYLES:
        return STUDY_STYLES[key]
    others = [name for name in keys if name not in STUDY_STYLES]
    index = others.index(key) if key in others else 0
    return Style(_COLOURS[index % len(_COLOURS)], _MARKERS[index % len(_MARKERS)],
                 _LINESTYLES[index % len(_LINESTYLES)])


def colour(key: str, keys: list[str]) -> str:
    """The colour of the line `key` (see `style`)."""
    return style(key, keys).colour


def x_spacing(values: np.ndarray, *, fallback: float = 1.0) -> float:
    """The smallest gap between distinct finite x values; `fallback` when there are fewer than two.

    Example:
        >>> x_spacing(np.array([4.0, 0.5, 2.0, 2.0])), x_spacing(np.array([0.01]), fallback=0.3)
        (1.5, 0.3)
    """
    distinct = np.unique(values[np.isfinite(values)])
    return float(np.diff(distinct).min()) if len(distinct) > 1 else fallback


def dodge_offsets(count: int, spacing: float) -> np.ndarray:
    """Offsets of `count` lines around a shared x: centred, spread over `DODGE_SPAN` of `spacing`, so the error
    bars at one x stand side by side and never reach the next x's.

    Example:
        >>> dodge_offsets(3, 0.5).tolist(), dodge_offsets(1, 0.5).tolist()
        ([-0.075, 0.0, 0.075], [0.0])
    """
    if count < 2:
        return np.zeros(count)
    return (np.arange(count) - (count - 1) / 2) * (DODGE_SPAN * spacing / (count - 1))


def message_figure(text: str) -> Figure:
    """A small figure that says why there is nothing to draw (`message_html` says it as text)."""
    figure = Figure(figsize=(9, 2.2), layout="constrained")
    axes = figure.subplots()
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, color="#475569")
    return figure


def _style(axes: Axes, *, zero_at: str = "y") -> None:
    """Light grid, no top/right spines, and the d = 0 (or s = 0) line."""
    (axes.axhline if zero_at == "y" else axes.axvline)(0, color="#94a3b8", linewidth=0.8, zorder=0)
    axes.grid(True, color="#e2e8f0", linewidth=0.7)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def mark_synthetic(axes: Axes) -> None:
    """Write `SYNTHETIC_MARK` diagonally across `axes`, light and behind the data, sized to the axes' width."""
    width = axes.get_position().width * axes.figure.get_figwidth()  # inches
    axes.text(0.5, 0.5, _WATERMARK, transform=axes.transAxes, ha="center", va="center", rotation=18,
              fontsize=float(np.clip(3.6 * width, 9, 20)), fontweight="bold", color=NEUTRAL, alpha=0.28,
              linespacing=1.3, zorder=0, clip_on=True)


def _ordered(values: pd.Series) -> list[str]:
    """The study's tests first, in their order; other values (custom tests, panels, runs) as they come."""
    return sorted(dict.fromkeys(values), key=lambda value: test_sort_key(value)[0])


def _lines(points: pd.DataFrame, facet: str, colour_by: str) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(panel, key, its points in x order) of every drawn line, panels and keys in drawing order."""
    keys = _ordered(points[colour_by])
    for facet_value in _ordered(points[facet]):
        panel = points[points[facet] == facet_value]
        for key in keys:
            line = panel[panel[colour_by] == key]
            if not line.empty:
                yield facet_value, key, line.sort_values("x")


def _references(curves: Curves, facet: str, facet_value: str, colour_by: str) -> dict[str, float]:
    """The dashed reference d drawn in one panel, by test. References are by panel and test: with lines by test
    each test's reference is drawn; with one panel per test (lines by run), that test's reference."""
    if facet == "panel" and colour_by == "test":
        drawn_tests = set(curves.points.loc[curves.points["panel"] == facet_value, "test"])
        values = {test: d for test, d in curves.references.get(facet_value, {}).items() if test in drawn_tests}
    elif facet == "test":
        values = {facet_value: curves.references.get("", {}).get(facet_value, float("nan"))}
    else:
        values = {}
    return {test: float(values[test]) for test in sorted(values, key=test_sort_key)
            if values[test] is not None and np.isfinite(values[test])}


def _positions(points: pd.DataFrame, categorical: bool) -> np.ndarray:
    """Where the points' x values sit on the axis: a category at its index."""
    return points["x"].cat.codes.to_numpy(dtype=float) if categorical else points["x"].to_numpy(dtype=float)


def _panel_spacing(curves: Curves, panel: pd.DataFrame) -> float:
    """The x spacing that dodging scales with: the panel's smallest gap, else the whole x range, else 1."""
    every_x = _positions(curves.points, curves.categorical_x)
    span = float(np.nanmax(every_x) - np.nanmin(every_x)) if np.isfinite(every_x).any() else 0.0
    return x_spacing(_positions(panel, curves.categorical_x), fallback=span if span > 0 else 1.0)


def _draw_band(axes: Axes, x: np.ndarray, line: pd.DataFrame, drawn: Style, key: str) -> None:
    # an edge in the line's colour keeps overlapping bands apart where their fills blend
    axes.fill_between(x, line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float),
                      facecolor=to_rgba(drawn.colour, BAND_ALPHA), edgecolor=to_rgba(drawn.colour, 0.55),
                      linewidth=0.6, zorder=1)
    axes.plot(x, line["d"].to_numpy(dtype=float), color=drawn.colour, marker=drawn.marker,
              linestyle=drawn.linestyle, markersize=5, linewidth=1.6, label=key, zorder=3)


def _draw_error_bars(axes: Axes, x: np.ndarray, line: pd.DataFrame, drawn: Style, key: str) -> None:
    d = line["d"].to_numpy(dtype=float)
    errors = np.vstack([d - line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float) - d])
    axes.errorbar(x, d, yerr=np.nan_to_num(errors), color=drawn.colour, marker=drawn.marker,
                  linestyle=drawn.linestyle, markersize=5, linewidth=1.2, capsize=3, label=key, zorder=3)


def _x_axis(axes: Axes, curves: Curves) -> None:
    """Category names on a categorical axis; whole-number ticks when every x is a whole number (layers, steps)."""
    if curves.categorical_x:
        categories = list(curves.points["x"].cat.categories)
        axes.set_xticks(range(len(categories)), categories)
        return
    x = curves.points["x"].to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if len(x) and np.all(x == np.round(x)):
        axes.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    if curves.x_label.startswith("parameters"):  # counts read as speat writes them everywhere: 24.8K, 94.4M
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_parameters(value) if value > 0
                                                     else "0"))


def _legend(figure: Figure, axes_list: list[Axes], *, title: str, extras: list[tuple[object, str]]) -> None:
    """One legend for the figure: every line once (panels share keys), then the extra (handle, label) pairs."""
    handles, labels = [], []
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    for handle, label in extras:
        handles.append(handle)
        labels.append(label)
    if handles:
        figure.legend(handles, labels, loc="outside right upper", frameon=False, fontsize=9, title=title,
                      title_fontsize=9, alignment="left")


def _interval_handle(banded: bool) -> object:
    """The legend's sample of a confidence interval as drawn: a shaded patch or a vertical bar."""
    if banded:
        return Patch(facecolor=NEUTRAL, alpha=BAND_ALPHA, edgecolor="none")
    return Line2D([], [], color=NEUTRAL, marker="|", markersize=12, markeredgewidth=1.4, linestyle="none")


def curve_figure(curves: Curves, *, title: str, facet: str = "panel", colour_by: str = "test",
                 band: bool = True, empty_message: str = "nothing to show", synthetic: bool = False) -> Figure:
    """One panel per value of `facet` (``panel`` or ``test``), one line per value of `colour_by`; d with its CI
    (a band along a continuous x when `band`, else dodged error bars), dashed references, and `SYNTHETIC_MARK` in
    every panel when `synthetic`."""
    if curves.empty:
        return message_figure(empty_message)
    points = curves.points
    facets, keys = _ordered(points[facet]), _ordered(points[colour_by])
    figure = Figure(figsize=(max(8.5, min(4.3 * len(facets), 13.5)), 4.0), layout="constrained")
    axes_list = list(np.atleast_1d(figure.subplots(1, len(facets), sharey=True, squeeze=False)[0]))
    axes_of = dict(zip(facets, axes_list))
    banded = band and not curves.categorical_x
    for facet_value, key, line in _lines(points, facet, colour_by):
        x = _positions(line, curves.categorical_x)
        if banded:
            _draw_band(axes_of[facet_value], x, line, style(key, keys), key)
        else:
            panel = points[points[facet] == facet_value]
            shift = _dodge(panel, line, key, keys, colour_by) * _panel_spacing(curves, panel)
            _draw_error_bars(axes_of[facet_value], x + shift, line, style(key, keys), key)
    drew_references = False
    for facet_value, axes in axes_of.items():
        for test, d in _references(curves, facet, facet_value, colour_by).items():
            axes.axhline(d, color=colour(test, keys) if colour_by == "test" else NEUTRAL,
                         linestyle=REFERENCE_LINESTYLE, linewidth=1.2, alpha=0.9, zorder=2)
            drew_references = True
        _x_axis(axes, curves)
        axes.set_xlabel(curves.x_label)
        _style(axes)
        axes.set_title(str(facet_value) if facet_value else "", fontsize=11)
        if synthetic:
            mark_synthetic(axes)
    axes_list[0].set_ylabel("SpEAT d (95% CI)")
    extras = [(_interval_handle(banded), CI_LABEL)]
    if drew_references:
        extras.append((Line2D([], [], color=NEUTRAL, linestyle=REFERENCE_LINESTYLE, linewidth=1.2),
                       curves.reference_label or "reference"))
    _legend(figure, axes_list, title=colour_by, extras=extras)
    figure.suptitle(title + (f"\n{curves.note}" if curves.note else ""), fontsize=12)
    return figure


def _dodge(panel: pd.DataFrame, line: pd.DataFrame, key: str, keys: list[str], colour_by: str) -> np.ndarray:
    """Each point's shift (in x spacings): dodged among the lines that have a point at the same x only, so a lone
    point sits on its tick."""
    shifts = []
    for x in line["x"]:
        present = [other for other in keys if ((panel["x"] == x) & (panel[colour_by] == other)).any()]
        shifts.append(dodge_offsets(len(present), 1.0)[present.index(key)])
    return np.array(shifts)


def _role_label(role: str, group: str) -> str:
    """``female (X)``; just ``X`` when the group has no other name (uploads)."""
    return role if group == role else f"{group} ({role})"


def _format_s(value: float) -> str:
    """An association score s(w): a difference of mean cosines, often below 0.01, so three significant digits
    (`format_d`'s two decimals would write most of them as +0.00)."""
    return f"{value:+.3g}"


def association_figure(frame: pd.DataFrame, *, title: str, highlight: int = 3, synthetic: bool = False) -> Figure:
    """s(w) of every X and Y target: points over a box per group, X always the top row, group means marked, and
    the `highlight` targets that move d most labelled by stimulus id and influence on d."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots()
    rng = np.random.default_rng(0)  # the same jitter on every redraw
    labels = {}
    for role, row in ROLE_ROWS.items():
        targets = frame[frame["role"] == role]
        if targets.empty:
            continue
        values, drawn = targets["s(w)"].to_numpy(dtype=float), ROLE_STYLES[role]
        labels[row] = _role_label(role, str(targets["group"].iloc[0]))
        axes.boxplot(values, positions=[row], orientation="horizontal", widths=0.5, showfliers=False,
                     medianprops={"color": "#334155"}, boxprops={"color": "#94a3b8"},
                     whiskerprops={"color": "#94a3b8"}, capprops={"color": "#94a3b8"})
        axes.scatter(values, row + rng.uniform(-0.15, 0.15, len(values)), s=24, color=drawn.colour,
                     marker=drawn.marker, alpha=0.75, zorder=3,
                     label=f"{labels[row]}: n={len(values)}, mean s(w) {_format_s(values.mean())} (thick bar)")
        axes.plot([values.mean()] * 2, [row - 0.32, row + 0.32], color=drawn.colour, linewidth=2.5)
    for rank, (_, target) in enumerate(frame.head(highlight).iterrows()):
        name = str(target["stimulus"]).rsplit("/", 1)[-1]
        where = (target["s(w)"], ROLE_ROWS[target["role"]])
        axes.annotate(f"{name} ({format_d(target['influence on d'])} on d)", where,
                      xytext=(0, 14 + 11 * rank), textcoords="offset points", ha="center", fontsize=8,
                      color="#0f172a", arrowprops={"arrowstyle": "-", "color": "#64748b", "linewidth": 0.6})
    axes.set_yticks(list(labels), list(labels.values()))
    axes.set_ylim(-0.7, 1.7)
    axes.set_xlabel("association s(w) = mean cos(w, A) - mean cos(w, B)")
    _style(axes, zero_at="x")
    if synthetic:
        mark_synthetic(axes)
    handles, texts = axes.get_legend_handles_labels()
    handles.append(Patch(facecolor="none", edgecolor="#94a3b8"))
    texts.append("box: quartiles, thin line: median")
    figure.legend(handles, texts, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    figure.suptitle(title, fontsize=12)
    return figure


# Text alternatives -------------------------------------------------------------------------------------------------

def _spoken_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _format_x(value: object) -> str:
    """An x value as the alt text and table write it: whole numbers without decimals, others as they are."""
    if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
        return str(int(value)) if float(value).is_integer() else f"{float(value):g}"
    return str(value)


def _at(curves: Curves, value: object) -> str:
    """``at layer 3`` on a numeric axis (its label without the parenthesis), ``at 4 layers`` on a categorical one."""
    if curves.categorical_x:
        return f"at {value}"
    return f"at {curves.x_label.split(' (')[0]} {_format_x(value)}"


def _line_summary(curves: Curves, name: str, line: pd.DataFrame) -> str:
    first, last = line.iloc[0], line.iloc[-1]
    text = f"{name}: {format_d(first['d'])} {_at(curves, first['x'])}"
    return text if len(line) == 1 else f"{text} to {format_d(last['d'])} {_at(curves, last['x'])}"


def _x_extent(curves: Curves) -> str:
    if curves.categorical_x:
        return f"{curves.x_label} ({', '.join(map(str, curves.points['x'].cat.categories))})"
    x = curves.points["x"].to_numpy(dtype=float)
    return f"{curves.x_label} ({_format_x(np.nanmin(x))} to {_format_x(np.nanmax(x))})"


def alt_text(curves: Curves, title: str, *, synthetic: bool = False, facet: str = "panel", colour_by: str = "test",
             band: bool = True) -> str:
    """What `curve_figure` (called with the same `facet`, `colour_by` and `band`) shows, in words and numbers: the
    kind of chart, its axis and lines, each line's first and last d, and the dashed references."""
    on = " on synthetic stimuli" if synthetic else ""
    heading = title.rstrip(". ")
    if curves.empty:
        return f"{heading}: no results to plot{on}."
    points = curves.points
    facets = [value for value in _ordered(points[facet]) if value]
    kind = ("Dot chart" if curves.categorical_x else "Line chart") + (
        " with 95% CI bands" if band and not curves.categorical_x else " with 95% CI error bars")
    panels = f" in {len(facets)} panels ({', '.join(facets)})" if len(facets) > 1 else ""
    summary = (f"{heading}. {kind} of SpEAT d against {_x_extent(curves)} for "
               f"{_spoken_list(_ordered(points['test']))}{panels}{on}.")
    lines = [_line_summary(curves, f"{facet_value}, {key}" if len(facets) > 1 else key, line)
             for facet_value, key, line in _lines(points, facet, colour_by)]
    text = f"{summary} {'; '.join(lines)}."
    references = {facet_value: ", ".join(f"{test} {format_d(d)}" for test, d in values.items())
                  for facet_value in _ordered(points[facet])
                  if (values := _references(curves, facet, facet_value, colour_by))}
    if references:
        if facet == "test":  # one panel per test, each with that test's reference
            shown = ", ".join(references.values())
        elif len(set(references.values())) == 1:  # the same references in every panel: said once
            shown = next(iter(references.values()))
        else:
            shown = "; ".join(f"{facet_value}: {values}" for facet_value, values in references.items())
        text += f" Dashed lines: {curves.reference_label or 'reference'} ({shown})."
    return text + (f" {curves.note}." if curves.note else "")


def association_alt_text(frame: pd.DataFrame, title: str, *, synthetic: bool = False, highlight: int = 3) -> str:
    """What `association_figure` shows, in words and numbers: each group's count, mean and range of s(w), and the
    `highlight` targets with the largest influence on d."""
    on = " on synthetic stimuli" if synthetic else ""
    groups = []
    for role, position in (("X", "top row"), ("Y", "bottom row")):
        targets = frame[frame["role"] == role]
        if targets.empty:
            continue
        values = targets["s(w)"].to_numpy(dtype=float)
        groups.append(f"{_role_label(role, str(targets['group'].iloc[0]))}, {position}: {len(values)} targets, "
                      f"mean {_format_s(values.mean())}, from {_format_s(values.min())} to {_format_s(values.max())}")
    text = (f"{title.rstrip('. ')}. Strip chart of each target's association score s(w){on}, one row per group. "
            f"{'; '.join(groups)}.")
    movers = [f"{str(target['stimulus']).rsplit('/', 1)[-1]} ({target['role']}, {format_d(target['influence on d'])})"
              for _, target in frame.head(highlight).iterrows()]
    return text + (f" Largest influence on d: {', '.join(movers)}." if movers else "")


# Tables ------------------------------------------------------------------------------------------------------------

D, CI_LOW, CI_HIGH, CI = "d", "95% CI low", "95% CI high", "95% CI"


def curves_table(curves: Curves) -> pd.DataFrame:
    """The plotted points, one row per point, with readable headers and full-precision numbers (the CSV download):
    ``series``, ``panel`` (when there are panels), ``test``, the x axis label, ``d``, ``95% CI low``, ``95% CI high``,
    and ``<reference label> d`` when the curves have references."""
    points = curves.points
    x = points["x"].astype(str) if curves.categorical_x else points["x"].astype(float)
    table = pd.DataFrame({"series": points["series"], "panel": points["panel"], "test": points["test"],
                          curves.x_label: x, D: points["d"].astype(float), CI_LOW: points["ci_low"].astype(float),
                          CI_HIGH: points["ci_high"].astype(float)}).reset_index(drop=True)
    if not (table["panel"] != "").any():
        table = table.drop(columns="panel")
    if any(curves.references.values()):
        table[f"{curves.reference_label or 'reference'} d"] = [
            float(curves.references.get(panel, {}).get(test, np.nan))
            for panel, test in zip(points["panel"], points["test"])]
    return table


def formatted_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a `curves_table` as the UI shows it: every d column (``d``, ``... d``) by `format_d`, and the
    interval as one ``95% CI`` column by `format_ci` in place of its bounds.

    Example:
        >>> table = pd.DataFrame({"test": ["age"], "d": [0.3125], "95% CI low": [-1.0612], "95% CI high": [0.5349]})
        >>> formatted_table(table).to_dict("records")
        [{'test': 'age', 'd': '+0.31', '95% CI': '[-1.06, +0.53]'}]
    """
    shown = frame.copy()
    for column in shown.columns:
        if column == D or str(column).endswith(f" {D}"):
            shown[column] = [format_d(value) for value in shown[column]]
    if CI_LOW in shown.columns and CI_HIGH in shown.columns:
        shown.insert(list(shown.columns).index(CI_LOW), CI,
                     [format_ci(low, high) for low, high in zip(shown[CI_LOW], shown[CI_HIGH])])
        shown = shown.drop(columns=[CI_LOW, CI_HIGH])
    return shown


# HTML --------------------------------------------------------------------------------------------------------------

def figure_html(figure: Figure, alt: str, *, dpi: int = 100) -> str:
    """`figure` as an inline PNG in a ``<figure>`` whose image carries `alt` (``gr.Plot`` writes a generic alt)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure class="speat-plot"><img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"'
            ' style="max-width:100%;height:auto"></figure>')


def message_html(text: str) -> str:
    """Why there is nothing to draw, as text a screen reader announces (not an image of text).

    Example:
        >>> message_html("no <runs> yet")
        '<div class="speat-plot-message" role="status" ...>no &lt;runs&gt; yet</div>'
    """
    return ('<div class="speat-plot-message" role="status" style="padding:1.2em;border:1px dashed #94a3b8;'
            f'border-radius:6px;color:#334155;text-align:center">{html.escape(text)}</div>')
