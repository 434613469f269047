"""`speat compare` and `speat explain` on records made by `speat evaluate`, as users run them."""

import json
import shutil

import numpy as np
import pytest

from speat_metric.cli import main
from speat_metric.comparison import compare_records, rank_records
from speat_metric.diagnostics import record_concept_associations, record_leave_one_out
from speat_metric.formatting import format_ci, format_d
from speat_metric.results import load_records


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Three classical features on the demo stimuli, each in its own results directory, plus one at another pooling."""
    root = tmp_path_factory.mktemp("compare")
    cache = root / "cache"
    for model in ("mfcc", "stft", "spectrogram"):
        assert main(["evaluate", model, "--permutations", "200", "--no-progress", "--cache-dir", str(cache),
                     "--out", str(root / model)]) == 0
    assert main(["evaluate", "mfcc", "--tests", "gender", "--pooling", "last", "--permutations", "200",
                 "--no-progress", "--cache-dir", str(cache), "--out", str(root / "mfcc-last")]) == 0
    return root


def run(capsys, *arguments):
    code = main(list(map(str, arguments)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_models_print_each_tests_delta_d_interval_and_verdict(results, capsys):
    code, out, _ = run(capsys, "compare", results / "mfcc", results / "stft", "--resamples", "500")
    assert code == 0
    first, second = load_records(results / "mfcc"), load_records(results / "stft")
    assert "1 = mfcc, 2 = stft" in out
    for record in first:
        other = next(candidate for candidate in second if candidate.test == record.test)
        expected = compare_records(record, other, n_resamples=500)
        line = next(line for line in out.splitlines() if line.startswith(record.test + " "))
        assert format_d(expected.difference) in line and format_ci(expected.ci_low, expected.ci_high) in line
        assert line.split()[1:3] == [format_d(record.speat.effect_size), format_d(other.speat.effect_size)]
        assert expected.verdict in line


def test_json_output_is_the_comparisons_and_a_seed_reproduces_them(results, capsys):
    arguments = ("compare", results / "mfcc", results / "stft", "--resamples", "300", "--format", "json", "--seed", "4")
    _, out, _ = run(capsys, *arguments)
    _, again, _ = run(capsys, *arguments)
    assert out == again
    comparisons = json.loads(out)
    assert [item["test"] for item in comparisons] == ["gender", "age", "native"]
    for item in comparisons:
        assert item["difference"] == pytest.approx(item["effect_sizes"][0] - item["effect_sizes"][1])
        assert item["verdict"] == ("distinguishable" if item["ci_low"] > 0 or item["ci_high"] < 0
                                   else "not distinguishable")


def test_a_model_against_itself_is_not_distinguishable(results, tmp_path, capsys):
    shutil.copytree(results / "mfcc", tmp_path / "again")
    for path in (tmp_path / "again").glob("*.json"):  # the same measurement made again, at another "commit"
        data = json.loads(path.read_text())
        data["model"]["weights_sha256"] = "f" * 64
        path.write_text(json.dumps(data))
    _, out, _ = run(capsys, "compare", results / "mfcc", tmp_path / "again", "--resamples", "200", "--format", "json")
    for item in json.loads(out):
        assert (item["difference"], item["ci_low"], item["ci_high"]) == (0.0, 0.0, 0.0)
        assert item["verdict"] == "not distinguishable" and item["p_first_less_biased"] == 0.0


def test_three_models_get_rank_intervals_and_tiers(results, capsys):
    code, out, _ = run(capsys, "compare", results / "mfcc", results / "stft", results / "spectrogram",
                       "--resamples", "400", "--format", "json")
    assert code == 0
    tables = json.loads(out)
    assert list(tables) == ["gender", "age", "native"]
    records = [record for name in ("mfcc", "stft", "spectrogram") for record in load_records(results / name)]
    for test, rows in tables.items():
        expected = rank_records([record for record in records if record.test == test], n_resamples=400)
        assert rows == [dict(vars(interval)) for interval in expected]
        assert [row["rank"] for row in rows] == [1, 2, 3]
        assert [abs(row["effect_size"]) for row in rows] == sorted(abs(row["effect_size"]) for row in rows)
        assert all(1 <= row["rank_low"] <= row["rank_high"] <= 3 for row in rows)
        tiers = [row["tier"] for row in rows]
        assert tiers[0] == 1 and all(later - earlier in (0, 1) for earlier, later in zip(tiers, tiers[1:]))


def test_results_of_different_stimuli_are_refused_in_one_line_unless_allowed(results, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(results / "stft", other)
    for path in other.glob("*.json"):
        data = json.loads(path.read_text())
        data["fingerprint"]["test"] = "0" * 64  # another recording of the same clips, say
        path.write_text(json.dumps(data))
    code, out, err = run(capsys, "compare", results / "mfcc", other, "--resamples", "200")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "different-stimuli" in err and "--allow-different" in err
    code, out, _ = run(capsys, "compare", results / "mfcc", other, "--resamples", "200", "--allow-different")
    assert code == 0 and "different-stimuli" in out


def test_results_of_different_pooling_are_refused_unless_allowed(results, capsys):
    code, _, err = run(capsys, "compare", results / "stft", results / "mfcc-last", "--tests", "gender",
                       "--resamples", "200")
    assert code == 2 and "no test measured alike" in err and "gender at layer0, mean frames" in err
    code, out, _ = run(capsys, "compare", results / "stft", results / "mfcc-last", "--tests", "gender",
                       "--resamples", "200", "--allow-different")
    assert code == 0 and "different-pooling" in out


def test_explain_prints_the_single_concept_associations_and_leave_one_out(results, capsys):
    code, out, _ = run(capsys, "explain", results / "mfcc", "--tests", "gender", "--resamples", "300")
    assert code == 0
    record = next(record for record in load_records(results / "mfcc") if record.test == "gender")
    associations = record_concept_associations(record, n_resamples=300)
    left_out = record_leave_one_out(record)
    row = next(line for line in out.splitlines() if line.startswith("mfcc "))
    for name in ("XA", "XB", "YA", "YB"):
        assert f"{associations.mean_cosines[name]:+.3f}" in row
    assert format_d(associations.group_effects["X"] - associations.group_effects["Y"]) == \
        format_d(record.speat.effect_size)
    assert left_out.most_influential in row
    assert associations.sentence(record.groups) in out and left_out.sentence() in out
    assert np.isfinite(associations.intervals["X"]).all()


@pytest.mark.parametrize(("arguments", "message"), [
    (("compare", "missing-dir", "other"), "missing-dir does not exist"),
    (("compare", "{mfcc}"), "one model (mfcc)"),
    (("compare", "{mfcc}", "{stft}", "--resamples", "5"), "--resamples must be a whole number of at least 100"),
    (("compare", "{mfcc}", "{stft}", "--confidence", "95"), "--confidence must lie strictly between 0 and 1"),
    (("compare", "{mfcc}", "{stft}", "--tests", "accent"), "--tests accent: no record of that test"),
    (("compare", "{mfcc}", "{stft}", "{spectrogram}", "--allow-different"), "--allow-different compares two models"),
    (("explain", "{not_a_record}"), "not_a_record.json is not a speat evaluation record"),
])
def test_bad_input_is_one_line_before_any_work(results, tmp_path, capsys, arguments, message):
    (tmp_path / "not_a_record.json").write_text('{"hello": 1}')
    paths = {name: results / name for name in ("mfcc", "stft", "spectrogram")}
    paths["not_a_record"] = tmp_path / "not_a_record.json"
    code, out, err = run(capsys, *(argument.format(**paths) for argument in arguments))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1, err
