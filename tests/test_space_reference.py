"""speat_metric.space.reference: the published values shipped as package data, and their comparison with our results."""

from __future__ import annotations

import csv

import pytest
from test_space_fixtures import bundled, of, on_real_stimuli

from speat_metric.space.reference import comparison, normalised_name, published_tables, reference_dir
from speat_metric.space.rows import build_table


def _csv(name: str) -> list[dict[str, str]]:
    with open(reference_dir() / name, newline="") as file:
        return list(csv.DictReader(file))


def test_published_tables_show_every_published_value_with_its_citation():
    lin, speat = published_tables()
    assert "Lin" in lin.citation and "Interspeech" in lin.citation
    assert "Slaughter" in speat.citation and "isaacOnline/SpEAT" in speat.citation
    for row in _csv("lin2024_table3.csv"):
        shown = lin.frame[lin.frame["model"] == row["model"]].iloc[0]
        for test in ("age", "native", "gender"):
            assert shown[f"{test} d"] == pytest.approx(float(row[f"{test}_d"]))
    tests = {"Female vs. Male (SAA)": "gender", "U.S. vs. Korean (SAA matched pairs)": "native",
             "Young vs. Old (SAA, native US English)": "age"}
    rows = [row for row in _csv("speat_published_mean_mean.csv") if row["test"] in tests]
    assert len(rows) == 48
    for row in rows:
        shown = speat.frame[speat.frame["model"] == row["speech_model"]].iloc[0]
        assert shown[f"{tests[row['test']]} d"] == pytest.approx(float(row["speat_d"]), abs=0.005)
        assert shown[f"{tests[row['test']]} p"] == pytest.approx(float(row["speat_p"]))


def test_the_package_data_matches_the_shared_reference_when_it_is_beside_the_checkout():
    shared = reference_dir().parents[3] / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("the shared reference folder is not beside this checkout")
    for name in ("lin2024_table3.csv", "speat_published_mean_mean.csv"):
        assert (reference_dir() / name).read_bytes() == (shared / name).read_bytes()


def test_our_real_results_are_compared_by_model_name_and_synthetic_ones_never():
    records = bundled()
    assert normalised_name("facebook/hubert-base-ls960") == normalised_name("hubert_base_ls960")
    assert normalised_name("openai/whisper-base") == normalised_name("whisper_base_encoder")
    assert comparison(build_table(records)).empty  # the bundle is synthetic
    real = [on_real_stimuli(of(records, "mfcc", test), "facebook/hubert-base-ls960")
            for test in ("gender", "age", "native")]
    real += [on_real_stimuli(of(records, "mfcc", "gender"))]
    table = comparison(build_table(records + real))
    hubert = table[table["our model"] == "facebook/hubert-base-ls960"].iloc[0]
    assert hubert["published as"] == "hubert_base_ls960"
    assert hubert["gender d (published)"] == pytest.approx(1.06)
    assert hubert["gender d (ours)"] == pytest.approx(round(of(records, "mfcc", "gender").speat.effect_size, 2))
    assert set(table["published as"]) == {"hubert_base_ls960", "MFCC"}


def test_published_values_are_shown_as_speat_writes_every_number():
    """One number format: the published d and p as the CLI writes them (a p at the permutation floor as a bound)."""
    import re

    lin, speat = published_tables()
    for table in (lin, speat):
        for column in [column for column in table.shown.columns if column.endswith(" d")]:
            assert all(re.fullmatch(r"[+-]\d\.\d\d|", cell) for cell in table.shown[column]), column
            assert [float(cell) for cell in table.shown[column] if cell] == pytest.approx(
                [float(value) for value in table.frame[column] if value != ""], abs=0.0051)
    floor = [row for row in _csv("speat_published_mean_mean.csv")
             if float(row["speat_p"]) * (int(row["n_permutations"]) + 1) <= 1.5]
    assert floor
    shown_bounds = sum(cell.startswith("<") for column in speat.shown.columns if column.endswith(" p")
                       for cell in speat.shown[column])
    assert shown_bounds == len(floor)
