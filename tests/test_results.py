"""SpeatResult records: JSON round trip, derived label, strictness."""

import json

import numpy as np
import pytest

from speat_metric import SpeatResult, effect_size_label, speat_test


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    return speat_test(rng.normal(0.3, 1, (6, 4)), rng.normal(0, 1, (5, 4)), rng.normal(1, 1, (4, 4)),
                      rng.normal(-1, 1, (4, 4)), num_permutations=100, n_bootstrap=200, seed=9)


def test_json_round_trip(result):
    text = result.to_json()
    assert SpeatResult.from_json(text) == result
    data = json.loads(text)
    assert data["effect_size_label"] == effect_size_label(result.effect_size)
    assert data["schema_version"] == 1 and data["seed"] == 9


def test_json_is_strict_without_interval():
    rng = np.random.default_rng(1)
    result = speat_test(*(rng.normal(size=(3, 2)) for _ in range(4)), n_bootstrap=0, seed=0)
    assert json.loads(result.to_json())["ci_low"] is None


@pytest.mark.parametrize("d,label", [(0.0, "negligible"), (0.199, "negligible"), (0.2, "small"), (-0.49, "small"),
                                     (0.5, "medium"), (-0.79, "medium"), (0.8, "large"), (-1.6, "large")])
def test_effect_size_labels_follow_cohen(d, label):
    assert effect_size_label(d) == label


def test_label_rejects_nan():
    with pytest.raises(ValueError, match="effect_size is NaN"):
        effect_size_label(float("nan"))


def test_from_dict_rejects_other_records(result):
    data = result.to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['model'\], missing keys \['p_value'\]"):
        SpeatResult.from_dict({**{k: v for k, v in data.items() if k != "p_value"}, "model": "x"})
    with pytest.raises(ValueError, match="schema_version 2 is not supported"):
        SpeatResult.from_dict({**data, "schema_version": 2})
