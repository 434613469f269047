"""speat_metric.space.uploads: CSV and NPZ embeddings -> the evaluate module's SpEAT, and clear errors for bad files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from speat_metric.formatting import CI_EXCLUDES_ZERO_MARK, CI_EXCLUDES_ZERO_NOTE
from speat_metric.space.uploads import (
    EmbeddingsFileError,
    error_summary,
    evaluate_upload,
    read_embeddings,
    upload_scores,
    upload_summary,
)
from speat_metric.statistics import association_scores, effect_size, speat_test


def _sets(seed: int = 3) -> dict[str, np.ndarray]:
    """Asymmetric sets (sizes and offsets differ), so an axis or ordering mistake changes d."""
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(0.4, 1, (7, 5)), "Y": rng.normal(-0.3, 1, (6, 5)), "A": rng.normal(1, 1, (5, 5)),
            "B": rng.normal(-1, 1, (4, 5))}


def write_csv(path, sets, **options) -> None:
    """`sets` as a CSV with roles interleaved; `options` go to `DataFrame.to_csv` (``sep``, ``decimal``)."""
    rows = [{"id": f"{role}-{index}", "group": role, **{f"d{k}": value for k, value in enumerate(vector)}}
            for role, array in sets.items() for index, vector in enumerate(array)]
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False, **options)


def reference_d(sets) -> float:
    """d computed from the sets directly, without the upload path."""
    s_x = association_scores(sets["X"], sets["A"], sets["B"])
    s_y = association_scores(sets["Y"], sets["A"], sets["B"])
    return effect_size(s_x, s_y)


def test_csv_and_npz_give_the_d_of_speat_test_on_the_same_data(tmp_path):
    sets = _sets()
    expected = speat_test(sets["X"], sets["Y"], sets["A"], sets["B"], num_permutations=5_000, seed=7)
    write_csv(tmp_path / "e.csv", sets)
    np.savez(tmp_path / "e.npz", **sets)
    flat = np.concatenate(list(sets.values()))
    np.savez(tmp_path / "flat.npz", embeddings=flat, groups=np.array([r for r, a in sets.items() for _ in a]))
    for name in ("e.csv", "e.npz", "flat.npz"):
        result = evaluate_upload(read_embeddings(tmp_path / name), num_permutations=5_000, seed=7)
        assert result["effect_size"] == pytest.approx(expected.effect_size, rel=1e-12), name
        assert result["p_value"] == pytest.approx(expected.p_value, rel=1e-12), name
        assert (result["n_x"], result["n_y"], result["n_a"], result["n_b"]) == (7, 6, 5, 4)


def test_upload_scores_name_each_target_and_reproduce_d(tmp_path):
    sets = _sets()
    write_csv(tmp_path / "e.csv", sets)
    upload = read_embeddings(tmp_path / "e.csv")
    result = evaluate_upload(upload, num_permutations=100, seed=0)
    frame = upload_scores(upload, result)
    assert sorted(frame["stimulus"]) == sorted([f"X-{i}" for i in range(7)] + [f"Y-{i}" for i in range(6)])
    x, y = frame[frame["role"] == "X"]["s(w)"], frame[frame["role"] == "Y"]["s(w)"]
    assert (x.mean() - y.mean()) / pd.concat([x, y]).std(ddof=1) == pytest.approx(result["effect_size"], rel=1e-9)


@pytest.mark.parametrize(("content", "message"), [
    ("id,d0,d1\na,1,2\n", "has no 'group' column"),
    ("group,d0\nX,1\nX,2\nY,1\nY,3\nA,1\nA,2\nB,1\nQ,2\n", r"group must be X, Y, A or B; found 9: 'Q'"),
    ("group,d0,d1\nX,1,a\nX,2,b\nY,1,c\nY,1,d\nA,1,e\nA,1,f\nB,1,g\nB,1,h\n", "not numeric: d1"),
    ("group,d0\nX,1\nX,\nY,1\nY,3\nA,1\nA,2\nB,1\nB,2\n", r"empty values in line\(s\) 3"),
    ("group,d0\nX,1\nY,1\nY,3\nA,1\nA,2\nB,1\nB,2\n", r"at least 2 stimuli; too few in X \(1\)"),
    ("group\nX\nX\nY\nY\nA\nA\nB\nB\n", "no embedding columns"),
])
def test_bad_csv_files_get_a_message_that_says_what_to_fix(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(EmbeddingsFileError, match=message):
        read_embeddings(tmp_path / "bad.csv")


def test_bad_npz_files_and_formats(tmp_path):
    np.savez(tmp_path / "objects.npz", X=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(EmbeddingsFileError, match="object arrays are not accepted"):
        read_embeddings(tmp_path / "objects.npz")
    np.savez(tmp_path / "keys.npz", foo=np.zeros((2, 2)))
    with pytest.raises(EmbeddingsFileError, match="must hold arrays X, Y, A and B, or 'embeddings' and 'groups'; "
                                                  "found foo"):
        read_embeddings(tmp_path / "keys.npz")
    sets = _sets()
    np.savez(tmp_path / "dims.npz", **{**sets, "B": np.zeros((3, 2))})
    with pytest.raises(EmbeddingsFileError, match="same dimension, got X 5, Y 5, A 5, B 2"):
        read_embeddings(tmp_path / "dims.npz")
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(EmbeddingsFileError, match=r"e.txt: upload a .csv or .npz file of embeddings, not .txt"):
        read_embeddings(tmp_path / "e.txt")


def test_semicolon_csv_with_decimal_commas_gives_the_d_of_the_comma_csv(tmp_path):
    sets = _sets(seed=11)
    write_csv(tmp_path / "comma.csv", sets)
    write_csv(tmp_path / "excel.csv", sets, sep=";", decimal=",")  # as Excel writes it in e.g. German locales
    text = (tmp_path / "excel.csv").read_text()
    assert ";" in text.splitlines()[0] and re.search(r";-?\d+,\d+", text)  # the file really has decimal commas
    comma, excel = read_embeddings(tmp_path / "comma.csv"), read_embeddings(tmp_path / "excel.csv")
    assert excel.groups == comma.groups and excel.ids == comma.ids
    np.testing.assert_array_equal(excel.embeddings, comma.embeddings)
    result = evaluate_upload(excel, num_permutations=200, seed=0)
    assert result["effect_size"] == pytest.approx(reference_d(sets), rel=1e-12)


@pytest.mark.parametrize(("sep", "decimal"), [("\t", "."), ("\t", ","), (";", ".")])
def test_tab_separated_and_point_decimal_semicolon_files_work(tmp_path, sep, decimal):
    sets = _sets(seed=4)
    write_csv(tmp_path / "e.csv", sets, sep=sep, decimal=decimal)
    result = evaluate_upload(read_embeddings(tmp_path / "e.csv"), num_permutations=200, seed=0)
    assert result["effect_size"] == pytest.approx(reference_d(sets), rel=1e-12)


def test_mixed_decimal_marks_in_a_semicolon_csv_say_what_to_fix(tmp_path):
    rows = ["group;d0;d1", *(f"{role};0,{i + 1};1.{i}" for role in "XYAB" for i in range(2))]
    (tmp_path / "mixed.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(EmbeddingsFileError, match=r"^mixed.csv: .*not numeric: d1; write every number with the "
                                                  r"same decimal mark$"):
        read_embeddings(tmp_path / "mixed.csv")


def summary_cells(summary: str) -> dict[str, str]:
    """The header -> value of the summary's one-row results table."""
    header, _, values = [line for line in summary.splitlines() if line.startswith("|")]
    return dict(zip([cell.strip() for cell in header.strip("|").split("|")],
                    [cell.strip() for cell in values.strip("|").split("|")]))


def test_the_upload_summary_names_the_file_and_writes_numbers_the_one_way(tmp_path):
    sets = _sets()
    np.savez(tmp_path / "e.npz", **sets)
    upload = read_embeddings(tmp_path / "e.npz")
    result = evaluate_upload(upload, num_permutations=500, seed=1)
    summary = upload_summary(str(tmp_path / "e.npz"), result, upload_scores(upload, result))
    assert summary.startswith("### ") and "`e.npz`" in summary.splitlines()[0] and str(tmp_path) not in summary
    cells = summary_cells(summary)
    assert set(cells) == {"d", "size", "p", "95% CI", "X/Y/A/B"} and cells["X/Y/A/B"] == "7/6/5/4"
    assert re.fullmatch(r"[+-]\d\.\d\d", cells["d"]) and float(cells["d"]) == round(result["effect_size"], 2)
    assert re.fullmatch(rf"(negligible|small|medium|large)( {CI_EXCLUDES_ZERO_MARK})?", cells["size"])
    assert re.fullmatch(r"<?\d(\.\d+)?(e-\d+)?", cells["p"])
    assert re.fullmatch(r"\[[+-]\d\.\d\d, [+-]\d\.\d\d\]", cells["95% CI"])
    assert (CI_EXCLUDES_ZERO_NOTE in summary) == (CI_EXCLUDES_ZERO_MARK in cells["size"])
    assert "500 random partitions, seed 1" in summary and "Targets that move d most" in summary
    for influence in re.findall(r"influence (\S+)$", summary, flags=re.M):
        assert re.fullmatch(r"[+-]\d\.\d\d", influence)


def test_a_p_at_its_floor_is_written_as_the_bound_it_is(tmp_path):
    rng = np.random.default_rng(0)
    far = {"X": rng.normal(0, 0.1, (12, 4)) + [3, 0, 0, 0], "Y": rng.normal(0, 0.1, (12, 4)) - [3, 0, 0, 0],
           "A": rng.normal(0, 0.1, (6, 4)) + [3, 1, 0, 0], "B": rng.normal(0, 0.1, (6, 4)) - [3, 1, 0, 0]}
    np.savez(tmp_path / "far.npz", **far)
    upload = read_embeddings(tmp_path / "far.npz")
    result = evaluate_upload(upload, num_permutations=2000, seed=0)
    assert not result["exact"] and result["p_value"] == pytest.approx(1 / 2001)  # no partition reached it
    cells = summary_cells(upload_summary("far.npz", result, upload_scores(upload, result)))
    assert cells["p"] == "<0.0005" and cells["size"] == f"large {CI_EXCLUDES_ZERO_MARK}"


def test_an_upload_error_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "bad.csv").write_text("id,d0,d1\na,1,2\n")
    with pytest.raises(EmbeddingsFileError) as caught:
        read_embeddings(tmp_path / "bad.csv")
    shown = error_summary(str(tmp_path / "bad.csv"), caught.value)
    assert shown.startswith("**⚠ Could not use `bad.csv`:** the file has no 'group' column; add one")
    assert "\n" not in shown and str(tmp_path) not in shown
    assert error_summary("e.npz", "e.npz: X, Y, A and B must have\nthe same dimension") == (
        "**⚠ Could not use `e.npz`:** X, Y, A and B must have the same dimension")
    assert error_summary(None, ValueError("Upload a file first.")) == "**⚠ No file to use:** Upload a file first."


def test_commas_in_the_ids_of_a_semicolon_csv_are_not_read_as_decimal_commas(tmp_path):
    sets = _sets(seed=8)
    rows = ["id;group;" + ";".join(f"d{k}" for k in range(5))]
    rows += [f"speaker {index}, take 1;{role};" + ";".join(repr(float(value)) for value in vector)
             for role, array in sets.items() for index, vector in enumerate(array)]
    (tmp_path / "ids.csv").write_text("\n".join(rows) + "\n")
    upload = read_embeddings(tmp_path / "ids.csv")
    assert upload.ids[0] == "speaker 0, take 1"
    np.testing.assert_array_equal(upload.embeddings, np.concatenate(list(sets.values())))


def test_a_file_that_is_not_text_says_so(tmp_path):
    (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    with pytest.raises(EmbeddingsFileError, match=r"^sheet.csv is not a readable CSV file .*save it as UTF-8 text$"):
        read_embeddings(tmp_path / "sheet.csv")
