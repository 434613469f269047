"""speat_metric.space.plots: figures that read without a legend hunt, their text alternative, table and HTML."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.text import Text
from test_space_fixtures import SMALL, bundled, of, with_compression

from speat_metric.formatting import format_ci, format_d
from speat_metric.space import plots, series
from speat_metric.space.rows import build_table

LAYERED = "random:melhubert-small"
TESTS = ["gender", "age", "native"]


@pytest.fixture(scope="module")
def records():
    return bundled()


@pytest.fixture(scope="module")
def table(records):
    return build_table(with_compression(records))


def _curves(tests: list[str], xs: list[float], *, references: dict | None = None, label: str = "") -> series.Curves:
    """Curves of one panel, d rising with x and differing per test, CI of +-0.3."""
    rows = [{"series": "m", "panel": "", "test": test, "x": x, "d": 0.1 * x - i, "ci_low": 0.1 * x - i - 0.3,
             "ci_high": 0.1 * x - i + 0.3} for i, test in enumerate(tests) for x in xs]
    return series.Curves(pd.DataFrame(rows, columns=series.CURVE_COLUMNS), "step", references=references or {},
                         reference_label=label)


def _legend_texts(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def _drawn(figure) -> None:
    FigureCanvasAgg(figure).draw()


def _error_bar_x(axes) -> dict[str, np.ndarray]:
    return {container.get_label(): np.asarray(container.lines[0].get_xdata(), dtype=float)
            for container in axes.containers}


# Dodged error bars -------------------------------------------------------------------------------------------------

def test_error_bars_along_a_continuous_x_stand_apart_near_their_x(table):
    curves = series.pruning_curves(table, SMALL, "synthetic")
    figure = plots.curve_figure(curves, title="pruning", band=False)
    for axes in figure.axes:
        panel = curves.points[curves.points["panel"] == axes.get_title()]
        true_x = np.unique(panel["x"].to_numpy(dtype=float))
        reach = plots.DODGE_SPAN / 2 * np.diff(true_x).min()
        drawn = _error_bar_x(axes)
        assert sorted(drawn) == sorted(TESTS)
        positions = np.concatenate(list(drawn.values()))
        assert len(np.unique(positions)) == len(positions) == len(true_x) * len(TESTS)  # no two bars on one x
        for test, x in drawn.items():
            expected = np.sort(panel.loc[panel["test"] == test, "x"].to_numpy(dtype=float))
            assert np.all(np.abs(x - expected) <= reach + 1e-12)
        # every test at its own offset, the same at every x, and the middle test undisplaced
        offsets = {test: x - np.sort(panel.loc[panel["test"] == test, "x"].to_numpy(dtype=float))
                   for test, x in drawn.items()}
        assert len({round(float(values[0]), 12) for values in offsets.values()}) == len(TESTS)
        assert all(np.allclose(values, values[0]) for values in offsets.values())
        assert offsets["age"] == pytest.approx(0.0)


def test_error_bars_of_a_single_x_and_of_categories_are_dodged_too(table):
    single = plots.curve_figure(_curves(TESTS, [2.0]), title="one step", band=False)
    positions = np.concatenate(list(_error_bar_x(single.axes[0]).values()))
    assert len(set(positions)) == len(TESTS) and np.all(np.abs(positions - 2.0) <= plots.DODGE_SPAN / 2 + 1e-12)
    distillation = plots.curve_figure(series.distillation_curves(table, SMALL, "synthetic"), title="d", band=False)
    drawn = _error_bar_x(distillation.axes[0])
    positions = np.concatenate(list(drawn.values()))
    assert len(set(positions)) == len(positions)
    assert np.all(np.abs(positions - np.round(positions)) <= plots.DODGE_SPAN / 2 + 1e-12)  # by its category


# Axes, styles and legends ------------------------------------------------------------------------------------------

def test_layers_and_steps_get_whole_number_ticks_only(table):
    figure = plots.curve_figure(series.layer_curves(table, LAYERED, "synthetic"), title="layers")
    _drawn(figure)
    axes = figure.axes[0]
    low, high = axes.get_xlim()
    ticks = [tick for tick in axes.get_xticks() if low <= tick <= high]
    assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks)
    fractional = plots.curve_figure(_curves(TESTS, [0.25, 0.5]), title="fractions")
    _drawn(fractional)
    assert not all(float(tick).is_integer() for tick in fractional.axes[0].get_xticks())


def _line_styles(axes) -> dict[str, tuple[str, str, object]]:
    return {line.get_label(): (to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
            for line in axes.lines if not line.get_label().startswith("_")}


def test_each_line_has_its_own_colour_marker_and_line_style_and_a_test_keeps_its_own(table):
    layers = _line_styles(plots.curve_figure(series.layer_curves(table, LAYERED, "synthetic"), title="l").axes[0])
    assert sorted(layers) == sorted(TESTS)
    assert len(set(layers.values())) == len(TESTS)
    assert len({colour for colour, _, _ in layers.values()}) == len({marker for _, marker, _ in layers.values()}) == 3
    assert all(style != "--" for _, _, style in layers.values())  # dashed means a reference
    pruning = plots.curve_figure(series.pruning_curves(table, SMALL, "synthetic"), title="p", band=False)
    for axes in pruning.axes:
        pruned = {container.get_label(): container.lines[0] for container in axes.containers}
        assert {test: (to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
                for test, line in pruned.items()} == layers
    custom = _line_styles(plots.curve_figure(_curves(["my-test", "age", "other-test"], [1.0, 2.0]), title="c").axes[0])
    assert custom["age"] == layers["age"] and len(set(custom.values())) == 3


def test_the_legend_names_every_line_the_interval_and_the_references_drawn(table):
    pruning = plots.curve_figure(series.pruning_curves(table, SMALL, "synthetic"), title="p", band=False)
    assert set(TESTS) | {plots.CI_LABEL, series.UNPRUNED} <= set(_legend_texts(pruning))
    layers = plots.curve_figure(series.layer_curves(table, LAYERED, "synthetic"), title="l")
    assert set(TESTS) | {plots.CI_LABEL, "mean over layers"} <= set(_legend_texts(layers))
    assert len([line for line in layers.axes[0].lines if line.get_linestyle() == "--"]) == len(TESTS)
    distillation = plots.curve_figure(series.distillation_curves(table, SMALL, "synthetic"), title="d", band=False)
    assert set(_legend_texts(distillation)) == set(TESTS) | {plots.CI_LABEL}
    missing = _curves(TESTS, [1.0, 2.0], references={"": {}}, label=series.UNPRUNED)  # no unpruned result
    figure = plots.curve_figure(missing, title="m")
    assert series.UNPRUNED not in _legend_texts(figure)
    assert not [line for line in figure.axes[0].lines if line.get_linestyle() == "--"]


def _marks(figure) -> list[Text]:
    return [text for text in figure.findobj(Text) if "SYNTHETIC STIMULI" in text.get_text()]


def test_synthetic_stimuli_are_marked_inside_the_axes_only_when_asked(table, records):
    curves = series.layer_curves(table, LAYERED, "synthetic")
    frame = series.association_frame(of(records, LAYERED, "gender"))
    for marked, unmarked in ((plots.curve_figure(curves, title="l", synthetic=True),
                              plots.curve_figure(curves, title="l")),
                             (plots.association_figure(frame, title="a", synthetic=True),
                              plots.association_figure(frame, title="a"))):
        assert not _marks(unmarked)
        _drawn(marked)
        [mark] = _marks(marked)
        assert "not a bias measurement" in mark.get_text()
        centre = mark.get_window_extent().get_points().mean(axis=0)
        assert marked.axes[0].get_window_extent().contains(*centre)


# Text alternative and table ----------------------------------------------------------------------------------------

def test_the_alt_text_says_the_axis_every_test_and_each_lines_first_and_last_d(table):
    curves = series.layer_curves(table, LAYERED, "synthetic")
    text = plots.alt_text(curves, "Layers of a model", synthetic=True)
    assert text.startswith("Layers of a model.") and curves.x_label in text and "synthetic stimuli" in text
    for test in TESTS:
        line = curves.points[curves.points["test"] == test].sort_values("x")
        first, last = line.iloc[0], line.iloc[-1]
        assert (f"{test}: {format_d(first['d'])} at layer {int(first['x'])} to {format_d(last['d'])} "
                f"at layer {int(last['x'])}") in text
        assert f"{test} {format_d(curves.references[''][test])}" in text
    assert "mean over layers" in text
    assert "synthetic" not in plots.alt_text(curves, "Layers of a model")
    pruning = series.pruning_curves(table, SMALL, "synthetic")
    pruned = plots.alt_text(pruning, "Pruning", band=False)
    assert all(panel in pruned for panel in set(pruning.points["panel"])) and "error bars" in pruned
    assert "no results" in plots.alt_text(series.training_curves(table, [], "real"), "Training")


def test_the_association_alt_text_gives_each_groups_count_and_mean(records):
    record = of(records, LAYERED, "age")
    frame = series.association_frame(record)
    text = plots.association_alt_text(frame, "Explain")
    for role in ("X", "Y"):
        scores = np.array([entry["s"] for entry in record.association_scores[role]])
        assert f"{record.groups[role]} ({role})" in text
        assert f"{len(scores)} targets, mean {scores.mean():+.3g}" in text
    top = frame.iloc[0]
    assert f"{top['stimulus']} ({top['role']}, {format_d(top['influence on d'])})" in text


def test_the_table_has_one_row_per_plotted_point_with_the_curves_numbers(table):
    curves = series.pruning_curves(table, SMALL, "synthetic")
    frame = plots.curves_table(curves)
    assert list(frame.columns[:7]) == ["series", "panel", "test", curves.x_label, "d", "95% CI low", "95% CI high"]
    assert len(frame) == len(curves.points)
    assert frame["d"].tolist() == curves.points["d"].tolist()  # full precision
    assert frame[curves.x_label].tolist() == curves.points["x"].tolist()
    expected = [curves.references[panel][test] for panel, test in zip(curves.points["panel"], curves.points["test"])]
    assert frame[f"{series.UNPRUNED} d"].tolist() == expected
    layers = plots.curves_table(series.layer_curves(table, LAYERED, "synthetic"))
    assert "panel" not in layers.columns
    shown = plots.formatted_table(frame)
    assert shown["d"].tolist() == [format_d(d) for d in curves.points["d"]]
    assert shown["95% CI"].tolist() == [format_ci(low, high)
                                        for low, high in zip(curves.points["ci_low"], curves.points["ci_high"])]
    assert "95% CI low" not in shown.columns and frame["d"].dtype == float  # the copy is formatted, not the table
    distilled = plots.curves_table(series.distillation_curves(table, SMALL, "synthetic"))
    assert set(distilled["model"]) == {"base", "2 layers", "4 layers"}


# HTML --------------------------------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def _parsed(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


def test_figure_html_is_an_image_with_the_given_alt_and_a_png(table):
    alt = 'd of "gender" <falls> & rises'
    markup = plots.figure_html(plots.curve_figure(_curves(TESTS, [1.0, 2.0]), title="x"), alt)
    tags = _parsed(markup).tags
    assert [tag for tag, _ in tags] == ["figure", "img"]
    image = tags[1][1]
    assert image["alt"] == alt
    header, data = image["src"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_an_empty_state_is_text_with_a_status_role():
    parsed = _parsed(plots.message_html("No pruning sweeps <yet> & none uploaded"))
    assert parsed.tags[0][0] == "div" and parsed.tags[0][1]["role"] == "status"
    assert parsed.text == "No pruning sweeps <yet> & none uploaded"


# The explain figure ------------------------------------------------------------------------------------------------

def _rows_and_colours(figure) -> tuple[list[str], dict[str, str]]:
    """Y tick labels from top to bottom, and the colour of the points on each row."""
    axes = figure.axes[0]
    ticks = sorted(zip(axes.get_yticks(), (label.get_text() for label in axes.get_yticklabels())), reverse=True)
    colours = {}
    for collection in axes.collections:
        row = round(float(np.mean(collection.get_offsets()[:, 1])))
        colours[dict((round(y), text) for y, text in ticks)[row]] = to_hex(collection.get_facecolor()[0])
    return [text for _, text in ticks], colours


def test_the_explain_figure_keeps_x_on_top_and_each_group_in_its_colour(records):
    seen = set()
    for name, test in ((LAYERED, "gender"), (LAYERED, "age"), (SMALL, "native")):
        record = of(records, name, test)
        frame = series.association_frame(record)
        x_label, y_label = f"{record.groups['X']} (X)", f"{record.groups['Y']} (Y)"
        for order in (frame, frame.sort_values("role", ascending=False), frame.iloc[::-1]):
            figure = plots.association_figure(order, title="t")
            rows, colours = _rows_and_colours(figure)
            assert rows == [x_label, y_label]
            seen.add((colours[x_label], colours[y_label]))
            legend = " ".join(_legend_texts(figure))
            assert record.groups["X"] in legend and record.groups["Y"] in legend
    assert len(seen) == 1 and len(next(iter(seen))) == len(set(next(iter(seen))))


def test_a_point_alone_at_its_x_sits_on_its_tick():
    """Each test measured once, on a categorical x of its own (the detail view of a single-result model): nothing to
    dodge, so every point is on its category's tick; two tests at one x are still set apart."""
    points = pd.DataFrame({"series": "m", "panel": "", "test": ["gender", "age", "native"],
                           "x": pd.Categorical(["gender", "age", "native"], categories=["gender", "age", "native"]),
                           "d": [0.1, 0.2, 0.3], "ci_low": [0.0, 0.1, 0.2], "ci_high": [0.2, 0.3, 0.4]})
    figure = plots.curve_figure(series.Curves(points, "test", categorical_x=True), title="t", band=False)
    drawn = {test: x.tolist() for test, x in _error_bar_x(figure.axes[0]).items()}
    assert drawn == {"gender": [0.0], "age": [1.0], "native": [2.0]}
    shared = points.assign(x=pd.Categorical(["a", "a", "b"], categories=["a", "b"]))
    drawn = _error_bar_x(plots.curve_figure(series.Curves(shared, "test", categorical_x=True), title="t",
                                            band=False).axes[0])
    assert drawn["gender"][0] < 0 < drawn["age"][0] and drawn["native"].tolist() == [1.0]
