"""Compression curves: rows from records, the figure (error bars, dashed uncompressed d), CSV and Markdown."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from speat_metric.formatting import CI_EXCLUDES_ZERO_NOTE, excludes_zero, format_ci, format_d, format_p, format_size
from speat_metric.results import EvaluationRecord, ModelDescription
from speat_metric.statistics import speat_test
from speat_metric.training.plots import CSV_COLUMNS, curve_figure, curve_markdown, curve_rows, write_curve


def _record(test: str, step: int, removed: int, shift: float, *, labels=("synthetic-stimuli",)) -> EvaluationRecord:
    rng = np.random.default_rng(step + len(test))
    x, y = rng.normal(size=(6, 4)) + shift, rng.normal(size=(6, 4))
    a, b = rng.normal(size=(5, 4)) + 1.0, rng.normal(size=(5, 4))
    return EvaluationRecord(
        test=test, groups={"X": "x", "Y": "y", "A": "a", "B": "b"},
        model=ModelDescription("m", "transformers", None, "0" * 64, 100 - removed, 3),
        speat=speat_test(x, y, a, b, num_permutations=50, seed=0, n_bootstrap=100), pooling={"layer": None},
        stimuli={}, environment={}, created="2026-01-01T00:00:00+00:00", labels=labels,
        compression={"method": "rows", "step": step, "parameters_removed": removed, "parameters": 100 - removed,
                     "sparsity": removed / 100, "heads_per_layer": [2, 2]})


@pytest.fixture
def records():
    return [_record(test, step, removed, shift) for test, shift in (("gender", 0.5), ("age", -0.2))
            for step, removed in ((0, 0), (40, 25), (20, 10))]


def test_rows_follow_the_records_sorted_by_test_and_x(records):
    rows = curve_rows(records)
    assert [(row["test"], row["x"]) for row in rows] == [("age", 0), ("age", 10), ("age", 25), ("gender", 0),
                                                          ("gender", 10), ("gender", 25)]
    by_key = {(record.test, record.compression["step"]): record for record in records}
    for row in rows:
        record = by_key[(row["test"], row["step"])]
        assert (row["d"], row["ci_low"], row["ci_high"]) == (record.speat.effect_size, record.speat.ci_low,
                                                              record.speat.ci_high)
        assert row["heads"] == 4 and row["synthetic"]
    assert [row["x"] for row in curve_rows(records, x="step")][:3] == [0, 20, 40]
    with pytest.raises(ValueError, match=r"has no compression\['loss'\]"):
        curve_rows(records, x="loss")


def test_the_figure_draws_error_bars_and_the_uncompressed_d_dashed(records):
    axes = curve_figure(curve_rows(records), title="rows pruning of m").axes[0]
    assert len(axes.containers) == 2  # one error-bar series per test
    dashed = sorted(round(line.get_ydata()[0], 9) for line in axes.lines if line.get_linestyle() == "--")
    assert dashed == sorted(round(record.speat.effect_size, 9) for record in records
                            if record.compression["step"] == 0)
    assert "SYNTHETIC" in axes.get_title() and axes.get_xlabel() == "parameters removed"


def test_write_curve_writes_the_png_csv_and_markdown(records, tmp_path):
    paths = write_curve(records, tmp_path, title="rows pruning of m")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    with open(paths["csv"]) as file:
        table = list(csv.DictReader(file))
    assert len(table) == 6 and float(table[0]["d"]) == pytest.approx(curve_rows(records)[0]["d"])
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("# rows pruning of m") and "NOT a bias measurement" in markdown
    assert markdown.count("| gender |") == 3
    assert "SYNTHETIC" not in curve_markdown(curve_rows([_record("age", 0, 0, 0.0, labels=())]))
    with pytest.raises(ValueError, match="no compression records"):
        write_curve([records[0].replace(compression=None)], tmp_path)


def test_the_csv_keeps_every_digit_and_the_markdown_writes_numbers_as_every_table_does(records, tmp_path):
    paths = write_curve(records, tmp_path)
    with open(paths["csv"]) as file:
        reader = csv.DictReader(file)
        table = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS  # how to write p stays out of the CSV file
    rows = curve_rows(records)
    assert [float(line["p_value"]) for line in table] == [row["p_value"] for row in rows]
    assert [float(line["ci_low"]) for line in table] == [row["ci_low"] for row in rows]
    markdown = paths["markdown"].read_text()
    for record in records:
        result = record.speat
        cells = (record.test, str(record.compression["step"]), str(record.compression["parameters_removed"]),
                 format_d(result.effect_size), format_ci(result.ci_low, result.ci_high),
                 format_p(result.p_value, exact=result.exact, num_permutations=result.num_permutations),
                 format_size(result.effect_size_label, result.ci_low, result.ci_high))
        assert "| " + " | ".join(cells) + " |" in markdown.splitlines()
    marked = any(excludes_zero(record.speat.ci_low, record.speat.ci_high) for record in records)
    assert (CI_EXCLUDES_ZERO_NOTE in markdown) == marked


def test_parameter_counts_are_written_with_a_unit_in_the_table_and_on_the_axis(records):
    big = [record.replace(compression={**record.compression,
                                       "parameters_removed": record.compression["parameters_removed"] * 990_487})
           for record in records]
    rows = curve_rows(big)
    markdown = curve_markdown(rows)
    assert "| gender | 40 | 24.8M |" in markdown and "| gender | 0 | 0 |" in markdown
    assert "| gender | 20 | 9.90M |" in markdown
    at_floor = rows[0] | {"p_value": 1 / 51, "exact": False, "num_permutations": 50}
    assert "| <0.02 |" in curve_markdown([at_floor])
    figure = curve_figure(rows)
    figure.canvas.draw()
    axes = figure.axes[0]
    ticks = [label.get_text() for label in axes.get_xticklabels() if label.get_text()]
    assert axes.get_xlabel() == "parameters removed" and "0" in ticks
    assert all(re.fullmatch(r"-?(0|\d+(\.\d+)?M)", tick) for tick in ticks), ticks
    assert any(tick.endswith("M") for tick in ticks)
