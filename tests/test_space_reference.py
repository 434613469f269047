"""speat_metric.space.reference: the published values shipped as package data, and their comparison with our results."""

from __future__ import annotations

import csv

import pytest
from test_space_fixtures import bundled, of, on_real_stimuli

from speat_metric.space.reference import comparison, normalised_name, published_tables, reference_dir
from speat_metric.space.rows import build_table
from speat_metric.stimuli.battery import BATTERY


def _csv(name: str) -> list[dict[str, str]]:
    with open(reference_dir() / name, newline="") as file:
        return list(csv.DictReader(file))


def test_published_tables_show_every_published_value_with_its_citation():
    lin, speat = published_tables()
    assert "Lin" in lin.citation and "Interspeech" in lin.citation
    assert "Slaughter" in speat.citation and "isaacOnline/SpEAT" in speat.citation
    assert "12" in speat.title and speat.file == "speat_published_all_tests_mean_mean.csv"
    for row in _csv("lin2024_table3.csv"):
        shown = lin.frame[lin.frame["model"] == row["model"]].iloc[0]
        for test in ("age", "native", "gender"):
            assert shown[f"{test} d"] == pytest.approx(float(row[f"{test}_d"]))


def test_every_row_of_the_12_test_file_is_shown_under_its_speat_test_id():
    """The view's rows are the result file's rows, test by test: each test's rows picked from the CSV by its
    published (Test, Authors, Target Dataset), in the paper's order T1-T12, each test's models in the file's order."""
    _, speat = published_tables()
    rows = _csv("speat_published_all_tests_mean_mean.csv")
    expected = []
    for number, test in enumerate(BATTERY, start=1):
        picked = [row for row in rows if (row["Test"], row["Authors"], row["Target Dataset"]) == test.published]
        assert len(picked) == 16, test.test_id
        expected += [(f"T{number}", test.test_id, row["X"], row["Y"], row["Speech Model"], float(row["SpEAT d"]),
                      float(row["SpEAT p"])) for row in picked]
    assert len(expected) == len(rows) == 192  # every row belongs to one test
    shown = list(speat.frame[["paper", "test", "X", "Y", "model", "d", "p"]].itertuples(index=False, name=None))
    assert shown == expected
    assert list(dict.fromkeys(speat.shown["test"])) == [test.test_id for test in BATTERY]
    assert {"race-coraal-buckeye", "disability-torgo", "disability-uaspeech", "synthetic-saa", "synthetic-mitchell",
            "gender", "gender-mitchell", "native", "accent-pantos-perkins", "age", "age-uk",
            "accent-romero-rivas"} == set(speat.shown["test"])
    t12 = speat.shown[speat.shown["paper"] == "T12"].iloc[0]
    assert (t12["test"], t12["X"], t12["Y"]) == ("accent-romero-rivas", "British Accent", "Foreign Accent")


def test_the_original_four_tests_keep_their_published_values():
    """The 4-test file the view showed before: every value of it is in the 12-test table, under speat's test id."""
    _, speat = published_tables()
    tests = {"Female vs. Male (SAA)": "gender", "U.S. vs. Korean (SAA matched pairs)": "native",
             "Young vs. Old (SAA, native US English)": "age",
             "Human vs. Synthesized (SAA humans vs TTS)": "synthetic-saa"}
    rows = _csv("speat_published_mean_mean.csv")
    assert len(rows) == 64 and {row["test"] for row in rows} == set(tests)
    frame = speat.frame.set_index(["test", "model"])
    for row in rows:
        shown = frame.loc[(tests[row["test"]], row["speech_model"])]
        assert shown["d"] == pytest.approx(float(row["speat_d"]))
        assert shown["p"] == pytest.approx(float(row["speat_p"]))
        assert speat.d_by_model[row["speech_model"]][tests[row["test"]]] == pytest.approx(float(row["speat_d"]))


def test_a_row_of_no_battery_test_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import shutil

    from speat_metric.space import reference

    for name in ("sources.json", "speat_published_all_tests_mean_mean.csv"):
        shutil.copy(reference_dir() / name, tmp_path / name)
    damaged = tmp_path / "speat_published_all_tests_mean_mean.csv"
    damaged.write_text(damaged.read_text().replace("TORGO Recordings", "TORGO recordings", 1))
    monkeypatch.setattr(reference, "reference_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match=r"^speat_published_all_tests_mean_mean\.csv: the row of .*'TORGO "
                                         r"recordings'\) names no test of .*BATTERY; reinstall speat$"):
        reference.battery_table()


def test_the_package_data_matches_the_shared_reference_when_it_is_beside_the_checkout():
    shared = reference_dir().parents[3] / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("the shared reference folder is not beside this checkout")
    for name in ("lin2024_table3.csv", "speat_published_mean_mean.csv", "speat_published_all_tests_mean_mean.csv"):
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
    for column in [column for column in lin.shown.columns if column.endswith(" d")]:
        assert all(re.fullmatch(r"[+-]\d\.\d\d|", cell) for cell in lin.shown[column]), column
        assert [float(cell) for cell in lin.shown[column] if cell] == pytest.approx(
            [float(value) for value in lin.frame[column] if value != ""], abs=0.0051)
    assert all(re.fullmatch(r"[+-]\d\.\d\d", cell) for cell in speat.shown["d"])
    assert [float(cell) for cell in speat.shown["d"]] == pytest.approx(list(speat.frame["d"]), abs=0.0051)
    # Pantos & Perkins (T9): all C(16, 8) = 12,870 partitions, so exact; the rest sampled from 1,000,000
    assert list(speat.frame["exact"]) == [paper == "T9" for paper in speat.frame["paper"]]
    rows = _csv("speat_published_all_tests_mean_mean.csv")
    floor = [row for row in rows if int(row["Number of Permutations"]) == 1_000_000
             and float(row["SpEAT p"]) * (1_000_000 + 1) <= 1.5]
    assert floor
    assert sum(cell.startswith("<") for cell in speat.shown["p"]) == len(floor)
    assert all(cell == "<1e-06" for cell in speat.shown["p"] if cell.startswith("<"))
    assert [float(cell) for cell in speat.shown["p"] if not cell.startswith("<")] == pytest.approx(
        [p for p in speat.frame["p"] if p * (1_000_000 + 1) > 1.5], rel=0.051)
