"""Published SpEAT values (package data in ``speat_metric/data/reference/``) and their comparison with our results.

The published numbers are for display beside our measurements; nothing in the project computes towards them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from speat_metric.formatting import format_d, format_p
from speat_metric.space import columns as C
from speat_metric.space.rows import ResultTable


def reference_dir() -> Path:
    import speat_metric

    return Path(speat_metric.__file__).resolve().parent / "data" / "reference"


# The SpEAT result file's test names -> speat's test names.
_SPEAT_TESTS = {"Female vs. Male (SAA)": "gender", "Young vs. Old (SAA, native US English)": "age",
                "U.S. vs. Korean (SAA matched pairs)": "native",
                "Human vs. Synthesized (SAA humans vs TTS)": "human vs TTS"}


@dataclass(frozen=True)
class PublishedTable:
    """One published table: its title, citation, and values as a frame (model, family, ``<test> d`` columns...):
    `frame` holds the numbers, `shown` the same as speat writes every number (`speat_metric.formatting`)."""

    file: str
    title: str
    citation: str
    frame: pd.DataFrame
    shown: pd.DataFrame


@cache
def published_tables() -> tuple[PublishedTable, ...]:
    """Lin et al. (2024) Table 3 and Slaughter et al.'s (2023) published results, with their citations."""
    directory = reference_dir()
    sources = json.loads((directory / "sources.json").read_text())
    lin = pd.read_csv(directory / "lin2024_table3.csv").rename(
        columns={"age_d": "age d", "native_d": "native d", "gender_d": "gender d"})
    lin = lin[["model", "family", "architecture", "gender d", "age d", "native d"]].fillna("")
    speat = pd.read_csv(directory / "speat_published_mean_mean.csv")
    speat["test"] = speat["test"].map(_SPEAT_TESTS).fillna(speat["test"])
    wide = speat.pivot_table(index="speech_model", columns="test", values=["speat_d", "speat_p"], aggfunc="first",
                             sort=False)
    tests = [test for test in (*C.STANDARD_TESTS, "human vs TTS") if ("speat_d", test) in wide.columns]
    permutations = speat.pivot_table(index="speech_model", columns="test", values="n_permutations",
                                     aggfunc="first", sort=False)
    published, shown = pd.DataFrame({"model": wide.index}), pd.DataFrame({"model": wide.index})
    for test in tests:
        published[f"{test} d"] = wide[("speat_d", test)].round(2).to_numpy()
        published[f"{test} p"] = wide[("speat_p", test)].to_numpy()
        shown[f"{test} d"] = [format_d(d) for d in wide[("speat_d", test)]]
        shown[f"{test} p"] = [format_p(p, exact=False, num_permutations=int(n)) if pd.notna(p) else ""
                              for p, n in zip(wide[("speat_p", test)], permutations[test])]
    return (PublishedTable("lin2024_table3.csv", *_source(sources, "lin2024_table3.csv"), lin, formatted(lin)),
            PublishedTable("speat_published_mean_mean.csv", *_source(sources, "speat_published_mean_mean.csv"),
                           published, shown))


def _source(sources: dict, file: str) -> tuple[str, str]:
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
        by_name = {normalised_name(str(model)): row for model, row in published.frame.set_index("model").iterrows()}
        for run, results in ours.groupby("run"):
            match = by_name.get(normalised_name(str(run)))
            if match is None:
                continue
            row = {"our model": run, "published as": match.name, "source": published.title}
            for test in C.STANDARD_TESTS:
                measured = results.loc[results["test"] == test, "d"]
                row[f"{test} d (ours)"] = round(float(measured.iloc[-1]), 2) if len(measured) else None
                row[f"{test} d (published)"] = match.get(f"{test} d")
            rows.append(row)
    columns = ["our model", "published as", "source"] + [f"{test} d ({which})" for test in C.STANDARD_TESTS
                                                          for which in ("ours", "published")]
    return pd.DataFrame(rows, columns=columns)
