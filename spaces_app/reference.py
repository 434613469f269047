"""Published SpEAT values (package data in ``speat_metric/data/reference/``) and their comparison with our results.

Two tables: Lin et al. (2024) Table 3 (gender, age, native) and Slaughter et al.'s (2023) result file of all 12
published tests (T1-T12, each row given speat's test id through `speat_metric.stimuli.battery.BATTERY`). The
published numbers are for display beside our measurements; nothing in the project computes towards them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from speat_metric.formatting import format_d, format_p
from speat_metric.space import columns as C
from speat_metric.space.rows import ResultTable
from speat_metric.stimuli.battery import BATTERY


def reference_dir() -> Path:
    import speat_metric

    return Path(speat_metric.__file__).resolve().parent / "data" / "reference"


LIN_FILE = "lin2024_table3.csv"
BATTERY_FILE = "speat_published_all_tests_mean_mean.csv"
"""Slaughter et al.'s (2023) result file in full: 16 models x the 12 published tests T1-T12."""


@dataclass(frozen=True)
class PublishedTable:
    """One published table: its title, citation, and values: `frame` holds the numbers, `shown` the same as speat
    writes every number (`speat_metric.formatting`), `d_by_model` the published d of each model (as the table names
    it) by speat test name, what `comparison` reads whatever the table's layout."""

    file: str
    title: str
    citation: str
    frame: pd.DataFrame
    shown: pd.DataFrame
    d_by_model: Mapping[str, Mapping[str, float]]


@cache
def published_tables() -> tuple[PublishedTable, ...]:
    """Lin et al. (2024) Table 3 and Slaughter et al.'s (2023) published results of all 12 tests, with their
    citations (`sources.json`)."""
    return lin_table(), battery_table()


def lin_table() -> PublishedTable:
    """Lin et al. (2024) Table 3: one row per model (model, family, architecture, ``<test> d`` of gender, age and
    native; "" where the paper gives none)."""
    frame = pd.read_csv(reference_dir() / LIN_FILE).rename(
        columns={"age_d": "age d", "native_d": "native d", "gender_d": "gender d"})
    frame = frame[["model", "family", "architecture", "gender d", "age d", "native d"]]
    d_by_model = {str(row["model"]): {test: float(row[f"{test} d"]) for test in C.STANDARD_TESTS
                                      if pd.notna(row[f"{test} d"])} for _, row in frame.iterrows()}
    frame = frame.fillna("")
    return PublishedTable(LIN_FILE, *_source(LIN_FILE), frame, formatted(frame), d_by_model)


def battery_table() -> PublishedTable:
    """Slaughter et al.'s (2023) published d and p of every test and model: one row per row of the result file
    (columns paper, test, X, Y, model, d, p: the paper's label ``T1``, speat's test id, the published group names),
    in the paper's test order, each test's models in the file's order; `frame` adds each p's permutations and
    whether it is exact.

    A row belongs to the test of `speat_metric.stimuli.battery.BATTERY` whose `published` (Test, Authors, Target
    Dataset) it names. Its p is exact when its permutations are every partition of the two target groups of n
    (C(2n, n): T9, 12,870 of 8 + 8), else sampled and written as a bound at its floor 1/(N+1).

    Raises:
        ValueError: a row names no test of the battery (the package data is damaged).
    """
    published = pd.read_csv(reference_dir() / BATTERY_FILE)
    by_key = {test.published: test for test in BATTERY}
    keys = list(zip(published["Test"], published["Authors"], published["Target Dataset"]))
    unknown = next((key for key in keys if key not in by_key), None)
    if unknown is not None:
        raise ValueError(f"{BATTERY_FILE}: the row of {unknown} names no test of speat_metric.stimuli.battery."
                         "BATTERY; reinstall speat")
    tests = [by_key[key] for key in keys]
    order = {test.test_id: position for position, test in enumerate(BATTERY)}
    permutations = published["Number of Permutations"].astype(int)
    per_group = published["Number of Target Embeddings per Group"].astype(int)
    frame = pd.DataFrame({
        "paper": [test.label for test in tests], "test": [test.test_id for test in tests],
        "X": published["X"], "Y": published["Y"], "model": published["Speech Model"],
        "d": published["SpEAT d"].astype(float), "p": published["SpEAT p"].astype(float),
        "permutations": permutations,
        "exact": [count >= math.comb(2 * n, n) for count, n in zip(permutations, per_group)],
        "position": [order[test.test_id] for test in tests],
    }).sort_values("position", kind="stable").drop(columns="position").reset_index(drop=True)
    shown = frame[["paper", "test", "X", "Y", "model"]].assign(
        d=[format_d(d) for d in frame["d"]],
        p=[format_p(p, exact=exact, num_permutations=count)
           for p, exact, count in zip(frame["p"], frame["exact"], frame["permutations"])])
    d_by_model: dict[str, dict[str, float]] = {}
    for model, test, d in zip(frame["model"], frame["test"], frame["d"]):
        d_by_model.setdefault(str(model), {})[test] = float(d)
    return PublishedTable(BATTERY_FILE, *_source(BATTERY_FILE), frame, shown, d_by_model)


def _source(file: str) -> tuple[str, str]:
    """(title, citation) of a reference file, from ``sources.json``."""
    sources = json.loads((reference_dir() / "sources.json").read_text())
    return sources[file]["title"], sources[file]["citation"]


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with every d column (``<test> d``, ``<test> d (ours)``...) written by `format_d` ("" where none)."""
    shown = frame.copy()
    for column in shown.columns:
        if " d" in str(column):
            shown[column] = [format_d(float(value)) if value not in ("", None) and pd.notna(value) else ""
                             for value in shown[column]]
    return shown


def normalised_name(name: str) -> str:
    """Model names compared across sources: owner dropped, lower case, ``_`` for separators, no ``_encoder``."""
    name = name.rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return name.removesuffix("_encoder")


def comparison(table: ResultTable) -> pd.DataFrame:
    """Our mean-over-layers results on real stimuli beside the published d of the same models (matched by
    `normalised_name`), one row per model and source."""
    ours = table.frame[(table.frame["stimuli"] == "real") & (table.frame["view"] == C.MEAN_VIEW)
                       & (table.frame["method"] == C.UNCOMPRESSED) & table.frame["step"].isna()]
    rows = []
    for published in published_tables():
        by_name = {normalised_name(model): (model, d) for model, d in published.d_by_model.items()}
        for run, results in ours.groupby("run"):
            match = by_name.get(normalised_name(str(run)))
            if match is None:
                continue
            row = {"our model": run, "published as": match[0], "source": published.title}
            for test in C.STANDARD_TESTS:
                measured = results.loc[results["test"] == test, "d"]
                row[f"{test} d (ours)"] = round(float(measured.iloc[-1]), 2) if len(measured) else None
                row[f"{test} d (published)"] = round(match[1][test], 2) if test in match[1] else None
            rows.append(row)
    columns = ["our model", "published as", "source"] + [f"{test} d ({which})" for test in C.STANDARD_TESTS
                                                          for which in ("ours", "published")]
    return pd.DataFrame(rows, columns=columns)
