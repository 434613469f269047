"""SpeatResult records: JSON round trip, derived label, strictness."""

import json

import numpy as np
import pytest

from speat_metric import SpeatResult, effect_size_label, speat_test
from speat_metric.cosines import Cosines, record_cosines


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


def _record(result, **changes):
    from speat_metric.results import EvaluationRecord, ModelDescription

    model = ModelDescription(name="org/model", kind="transformers", revision="abc123", weights_sha256="f" * 64,
                             num_parameters=10, num_layers=3, settings={"dtype": "float32"})
    record = EvaluationRecord(
        test="gender", groups={"X": "female", "Y": "male", "A": "pleasant", "B": "unpleasant"}, model=model,
        speat=result, pooling={"frame_pooling": "mean", "layer_pooling": "mean", "layer": None},
        stimuli={"source": "demo", "synthetic": True}, environment={"speat": "0"}, created="2026-01-01T00:00:00+00:00",
        labels=("synthetic-stimuli",),
        association_scores={"X": [{"id": "x1", "s": 0.5}], "Y": [{"id": "y1", "s": -0.1}]})
    return record.replace(**changes)


def test_record_round_trip_keeps_the_version_2_3_and_4_fields(result):
    from speat_metric.results import RECORD_SCHEMA_VERSION, EvaluationRecord
    from speat_metric.stimuli.fingerprints import stimulus_fingerprint

    fingerprint = {**stimulus_fingerprint({role: [str(index) * 64] for index, role in enumerate("XYAB")}),
                   "reference": {"benchmark": "o/b", "revision": "c" * 40, "test": "d" * 64, "differing": ["saa/a"]}}
    cosines = Cosines({"X": ("x1", "x2"), "Y": ("y1", "y2"), "A": ("a1",), "B": ("b1", "b2")},
                      np.arange(12, dtype=np.float64).reshape(4, 3) / 16, (("x1", "y2"), ("x2", "y1")))
    record = _record(result, profile="speat2023", compression={"method": "rows", "step": 2, "ffn_sizes": [512, 640]},
                     fingerprint=fingerprint, cosines=cosines.to_dict())
    data = json.loads(record.to_json())
    assert data["schema_version"] == RECORD_SCHEMA_VERSION == 4
    again = EvaluationRecord.from_json(record.to_json())
    assert again == record
    assert again.profile == "speat2023" and again.compression["ffn_sizes"] == [512, 640]
    assert again.association_scores["X"][0] == {"id": "x1", "s": 0.5}
    assert again.stimulus_fingerprint == fingerprint["test"]
    assert again.fingerprint["reference"]["differing"] == ["saa/a"]
    kept = record_cosines(again)
    assert np.array_equal(kept.values, cosines.values) and kept.ids == cosines.ids and kept.pairs == cosines.pairs
    assert kept.pair_rows().tolist() == [[0, 1], [1, 0]]


def test_without_machine_paths_keeps_a_cosine_matrix_whose_text_starts_with_a_slash(result):
    # 0xFC... encodes to base64 text starting with "/": a path to the path stripper, numbers to us.
    values = np.frombuffer(bytes([0xFC, 0x16, 0x7D, 0x3F] * 4), dtype="<f4").astype(np.float64).reshape(2, 2)
    cosines = Cosines({"X": ("x",), "Y": ("y",), "A": ("a",), "B": ("b",)}, values)
    record = _record(result, cosines=cosines.to_dict(),
                     model=_record(result).model.__class__("/home/me/models/m", "transformers", None, "0" * 64, 1, 1))
    assert record.cosines["values"].startswith("/")
    published = record.without_machine_paths()
    assert published.model.name == "./models/m"
    assert np.array_equal(record_cosines(published).values, values)


def test_version_3_record_loads_without_cosines_and_says_so_when_asked_for_them(result):
    from speat_metric.results import EvaluationRecord

    data = json.loads(_record(result).to_json())
    del data["cosines"]
    data["schema_version"] = 3
    old = EvaluationRecord.from_dict(data)
    assert old.cosines is None
    with pytest.raises(ValueError, match="keeps no cosine matrix .*made by speat 0.*re-run speat evaluate"):
        record_cosines(old)


def test_version_2_record_loads_without_a_fingerprint(result):
    from speat_metric.results import EvaluationRecord

    data = json.loads(_record(result).to_json())
    del data["fingerprint"]
    data["schema_version"] = 2
    old = EvaluationRecord.from_dict(data)
    assert old.fingerprint is None and old.stimulus_fingerprint is None and old.test == "gender"


def test_version_1_record_still_loads_as_hf_without_scores(result):
    from speat_metric.results import EvaluationRecord

    data = json.loads(_record(result).to_json())
    for key in ("profile", "compression", "association_scores", "fingerprint", "cosines"):
        del data[key]
    data["schema_version"] = 1
    old = EvaluationRecord.from_dict(data)
    assert (old.profile, old.compression, old.association_scores) == ("hf", None, None)
    assert old.test == "gender" and old.speat == result


def test_unknown_record_version_is_refused(result):
    from speat_metric.results import EvaluationRecord

    data = {**json.loads(_record(result).to_json()), "schema_version": 5}
    with pytest.raises(ValueError, match="schema_version 5 is not supported by this speat"):
        EvaluationRecord.from_dict(data)


def test_profile_is_part_of_the_record_key_and_file_name(result):
    hf, reference = _record(result), _record(result, profile="speat2023")
    assert hf.key != reference.key
    assert hf.file_name == "org-model__gender__mean-mean__demo.json"
    assert reference.file_name == "org-model__gender__mean-mean__speat2023__demo.json"


def test_a_demo_run_and_a_real_run_of_one_model_get_different_files(result):
    demo = _record(result)
    real = demo.replace(stimuli={"synthetic": False, "source": {"kind": "download"}}, labels=())
    assert (demo.stimuli_kind, real.stimuli_kind) == ("synthetic", "download")
    assert demo.key != real.key and demo.file_name != real.file_name
    assert real.file_name == "org-model__gender__mean-mean.json"


def test_a_checkpoint_reads_as_run_at_step_whatever_its_path(result):
    from speat_metric.results import ModelDescription

    for name in ("/data/pretraining-run/checkpoint-500", "models/pretraining-run/checkpoint-500",
                 "melhubert:ckpts/pretraining-run/step-500.ckpt"):
        kind = "melhubert" if name.startswith("melhubert:") else "transformers"
        model = ModelDescription(name=name, kind=kind, revision=None, weights_sha256="0" * 64, num_parameters=1,
                                 num_layers=2)
        record = _record(result, model=model, checkpoint={"name": "checkpoint-500", "step": 500})
        assert record.model_label == "pretraining-run @ step 500", name


def test_records_to_publish_carry_no_machine_path(result):
    from speat_metric.results import ModelDescription

    model = ModelDescription(name="/home/me/runs/run/checkpoint-200", kind="transformers", revision=None,
                             weights_sha256="0" * 64, num_parameters=1, num_layers=2)
    record = _record(result, model=model, checkpoint={"name": "checkpoint-200", "step": 200},
                     stimuli={"synthetic": False, "source": {"kind": "local", "path": "/home/me/data/saa"}},
                     compression={"method": "rows", "base_model": "melhubert:/home/me/ckpt/base.ckpt"})
    public = record.without_machine_paths()
    text = public.to_json()
    assert "/home/me" not in text and "home" not in text
    assert public.model.name == "./run/checkpoint-200" and public.model_label == record.model_label == "run @ step 200"
    assert public.stimuli["source"]["path"] == "./data/saa"
    assert public.compression["base_model"] == "melhubert:./ckpt/base.ckpt"
    assert public.association_scores == record.association_scores and public.speat == record.speat
    hub = record.replace(model=ModelDescription(**{**model.to_dict(), "name": "facebook/hubert-base-ls960"}))
    assert hub.without_machine_paths().model.name == "facebook/hubert-base-ls960"
