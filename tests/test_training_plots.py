"""Compression curves: rows from records, the figure (error bars, dashed uncompressed d), CSV and Markdown."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from speat_metric.results import EvaluationRecord, ModelDescription
from speat_metric.statistics import speat_test
from speat_metric.training.plots import curve_figure, curve_markdown, curve_rows, write_curve


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
