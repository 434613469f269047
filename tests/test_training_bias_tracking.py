"""Bias tracking: SpEAT of a model under compression, with the existing pipeline, as records with compression."""

from __future__ import annotations

import pytest
from tiny_models import MELHUBERT, write_tone_test

from speat_metric.adapters.melhubert import MelHuBERTEncoder
from speat_metric.evaluation import EvaluationSettings
from speat_metric.stimuli import StimulusError
from speat_metric.training.bias_tracking import BiasTracker


def test_records_carry_the_compression_and_the_demo_sets_label(tmp_path):
    tracker = BiasTracker(EvaluationSettings(tests=("gender",), num_permutations=50, progress=False),
                          tmp_path / "results")
    assert tracker.synthetic
    records = tracker.evaluate("mfcc", compression={"method": "rows", "step": 0, "parameters_removed": 0},
                               labels=("note",))
    assert [record.test for record in records] == ["gender"]
    assert records[0].compression == {"method": "rows", "step": 0, "parameters_removed": 0}
    assert set(records[0].labels) >= {"synthetic-stimuli", "classical-feature", "note"}
    assert [record.to_dict() for record in tracker.records()] == [record.to_dict() for record in records]


def test_an_in_memory_model_is_evaluated_as_it_is(tmp_path):
    tracker = BiasTracker(EvaluationSettings(tests=(str(write_tone_test(tmp_path)),), num_permutations=20,
                                             progress=False), tmp_path / "results")
    encoder = MelHuBERTEncoder.from_config(MELHUBERT, seed=3, name="student")
    record, = tracker.evaluate(encoder, compression={"method": "distill", "step": 10},
                               checkpoint={"name": "checkpoint-10", "step": 10})
    assert record.model.name == "student" and record.checkpoint["step"] == 10 and not tracker.synthetic
    assert record.model.weights_sha256 == encoder.description.weights_sha256


def test_unknown_tests_fail_before_any_training(tmp_path):
    with pytest.raises((StimulusError, ValueError), match="nonsense"):
        BiasTracker(EvaluationSettings(tests=("nonsense",), progress=False), tmp_path)
