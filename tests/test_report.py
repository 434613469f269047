"""Tables people read: p-values that never print as 0 or 1 when they are neither, counts, labels, warnings."""

import doctest

import numpy as np
import pytest

from speat_metric import report, speat_test
from speat_metric.report import format_p_value, format_records, ordered_tests, plural
from speat_metric.results import EvaluationRecord, ModelDescription


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    return speat_test(*(rng.normal(size=(6, 4)) for _ in range(4)), num_permutations=100, n_bootstrap=0, seed=0)


@pytest.mark.parametrize("p_value,text", [
    (0.99986, "0.99986"), (0.9996, "0.9996"), (0.995, "0.99"), (0.5, "0.50"), (0.0123, "0.012"), (2.5e-5, "2.5e-05"),
])
def test_p_values_keep_the_digits_that_matter(result, p_value, text):
    assert format_p_value(result.replace(p_value=p_value, exact=True)) == text
    assert float(format_p_value(result.replace(p_value=p_value, exact=True))) not in (0.0, 1.0)


def test_p_of_exactly_one_prints_as_one(result):
    assert format_p_value(result.replace(p_value=1.0, exact=True)) == "1"


@pytest.mark.parametrize("permutations,text", [(1_000_000, "<1e-06"), (1000, "<0.001"), (300, "<0.0034")])
def test_a_sampled_p_at_its_floor_prints_as_below_one_over_n(result, permutations, text):
    floor = 1 / (permutations + 1)
    printed = format_p_value(result.replace(exact=False, num_permutations=permutations, p_value=floor))
    assert printed == text
    assert float(printed[1:]) >= floor  # the bound printed is a true upper bound
    # one partition reaching the statistic is no longer the floor
    assert not format_p_value(result.replace(exact=False, num_permutations=permutations,
                                             p_value=2 / (permutations + 1))).startswith("<")


def _record(result, **changes):
    model = ModelDescription(name="/data/runs/my-wav2vec2", kind="transformers", revision=None,
                             weights_sha256="a" * 64, num_parameters=1, num_layers=2)
    record = EvaluationRecord(
        test="gender", groups={"X": "female", "Y": "male", "A": "pleasant", "B": "unpleasant"}, model=model,
        speat=result, pooling={"frame_pooling": "mean", "layer_pooling": "mean", "layer": None},
        stimuli={"synthetic": True}, environment={}, created="2026-01-01T00:00:00+00:00",
        labels=("synthetic-stimuli",))
    return record.replace(**changes)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_tables_keep_the_synthetic_warning_and_use_the_p_rule(result, fmt):
    floor = result.replace(exact=False, num_permutations=1_000_000, p_value=1 / 1_000_001)
    text = format_records([_record(floor)], fmt)
    warning = "SpEAT on the embedded SYNTHETIC demo stimuli: a pipeline check, NOT a bias measurement"
    assert text.splitlines()[0] == (f"**{warning}**" if fmt == "markdown" else warning)
    assert "<1e-06" in text and "1,000,000 random partitions" in text


def test_a_local_model_shows_by_folder_name_and_a_checkpoint_as_run_at_step(result):
    local = _record(result)
    assert local.model_label == "my-wav2vec2" and local.model.name == "/data/runs/my-wav2vec2"
    assert local.file_name.startswith("my-wav2vec2__gender__")
    checkpoint = local.replace(model=local.model.__class__(**{**local.model.to_dict(),
                                                               "name": "/data/runs/run/checkpoint-200"}),
                               checkpoint={"name": "checkpoint-200", "step": 200})
    assert checkpoint.model_label == "run @ step 200"
    assert "run @ step 200" in format_records([checkpoint])
    hub = local.replace(model=local.model.__class__(**{**local.model.to_dict(), "name": "facebook/hubert-base-ls960"}))
    assert hub.model_label == "facebook/hubert-base-ls960"


def test_plural():
    assert (plural(1, "result"), plural(0, "result"), plural(15, "result")) == ("1 result", "0 results", "15 results")


def test_docstring_examples_run():
    assert doctest.testmod(report).failed == 0


def test_the_reproduce_command_keeps_every_setting_and_no_machine_path(result):
    from speat_metric.report import reproduce_command

    local = _record(result, stimuli={"synthetic": False, "source": {"kind": "local", "path": "/home/me/saa"}},
                    labels=())
    feature = local.replace(model=local.model.__class__(
        name="mfcc", kind="feature", revision=None, weights_sha256=None, num_parameters=0, num_layers=1,
        settings={"cmvn": True}))
    command = reproduce_command([feature, feature.replace(test="mine")])
    assert command == ("speat evaluate mfcc --stimuli <your copy of the stimuli> --tests gender,mine.json --cmvn "
                       f"--permutations {result.num_permutations} --seed 0")
    assert "/home/me" not in command
    hub = local.replace(model=local.model.__class__(**{**local.model.to_dict(), "name": "org/m", "revision": "abc"}))
    assert reproduce_command([hub], "org/m").startswith("speat evaluate org/m --revision abc --stimuli")


def test_tests_are_ordered_as_the_study_shows_them_then_custom_ones_by_name():
    assert ordered_tests(["native", "zeta", "gender", "accent", "native"]) == ("gender", "native", "accent", "zeta")
    assert ordered_tests(["age", "gender", "native"]) == ("gender", "age", "native")


def _family(result, p_values, **changes):
    """One model's records, one per test, with the given p-values (exact ones unless `changes` say otherwise)."""
    return [_record(result, test=test, speat=result.replace(p_value=p, **changes))
            for test, p in zip(["gender", "age", "native"], p_values)]


def test_holm_is_taken_within_each_model_not_across_models(result):
    first = _family(result, [0.04, 0.01, 0.03], exact=True)
    other_model = [record.replace(model=record.model.__class__(**{**record.model.to_dict(), "name": "/m/other"}))
                   for record in _family(result, [0.02], exact=True)]
    other_layer = [record.replace(pooling={**record.pooling, "layer": 3})
                   for record in _family(result, [0.01, 0.02], exact=True)]
    records = [first[0], other_model[0], first[1], other_layer[0], first[2], other_layer[1]]
    # by hand: family {0.04, 0.01, 0.03} -> 0.06, 0.03, 0.06; {0.02} alone; layer 3 {0.01, 0.02} -> 0.02, 0.02
    assert report.families_of_tests(records) == [[0, 2, 4], [1], [3, 5]]
    assert report.holm_p_texts(records) == ["0.060", "0.020", "0.030", "0.020", "0.060", "0.020"]


def test_a_bound_p_makes_a_bound_holm_p_that_stays_true(result):
    floor = 1 / 1001  # no random partition of 1000 reached the statistic: p < 1/1000
    records = _family(result, [floor, 0.5, 0.0012], exact=False, num_permutations=1000)
    records[2] = records[2].replace(speat=records[2].speat.replace(exact=True))  # a number, not a bound
    texts = report.holm_p_texts(records)
    # 3 * p < 3/1000 is a bound; 0.0012 * 2 < 3 * floor, so the floor sets (and bounds) its adjusted p too
    assert texts == ["<0.003", "0.50", "<0.003"]
    assert float(texts[0][1:]) >= 3 / 1000


def test_the_table_shows_holm_beside_p_only_when_a_model_has_several_tests(result):
    single = format_records(_family(result, [0.04], exact=True))
    assert "p (Holm)" not in single
    table = format_records(_family(result, [0.04, 0.01], exact=True)).splitlines()
    header = table[2].split()  # after the synthetic warning and a blank line
    assert header[header.index("p") + 1:header.index("p") + 3] == ["p", "(Holm)"]
    assert any(line.startswith("p (Holm): p adjusted by Holm-Bonferroni") for line in table)
    markdown = format_records(_family(result, [0.04, 0.01], exact=True), fmt="markdown")
    assert "| p | p (Holm) | 95% CI |" in markdown
    assert "| 0.040 | 0.040 |" in markdown and "| 0.010 | 0.020 |" in markdown
