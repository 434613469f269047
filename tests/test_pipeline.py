"""speat_metric.pipeline: the SpEAT of every test of an encoder, and the records it writes."""
# ruff: noqa: F811 (the fixtures of test_embedding, imported here, are test arguments)

from types import SimpleNamespace as Stimulus

import numpy as np
import pytest
from test_embedding import audio_dir, make_tests, wav2vec2  # noqa: F401

from speat_metric.cosines import record_cosines
from speat_metric.embedding import clips_of, embed_stimuli
from speat_metric.pipeline import evaluate_tests, matched_pairs
from speat_metric.pooling import LayerPooling
from speat_metric.results import EvaluationRecord


def test_association_scores_in_records_give_the_effect_size(audio_dir, wav2vec2):
    """The per-stimulus s(w) of a record, recomputed from the embeddings independently, and d from them."""
    tests = make_tests(audio_dir)
    record = evaluate_tests(wav2vec2, tests, num_permutations=100, progress=False)[0]
    rows = list(tests["first"])
    embeddings = embed_stimuli(wav2vec2, clips_of(rows), progress=False)
    pooled = {row.stimulus_id: embeddings[row.sha256].mean(axis=0).astype(np.float64) for row in rows}
    by_role = {role: [row.stimulus_id for row in rows if row.role == role] for role in "XYAB"}

    def cosine(u, v):
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    def s(stimulus_id):
        w = pooled[stimulus_id]
        return (np.mean([cosine(w, pooled[a]) for a in by_role["A"]])
                - np.mean([cosine(w, pooled[b]) for b in by_role["B"]]))

    scores = record.association_scores
    assert [entry["id"] for entry in scores["X"]] == by_role["X"]
    assert [entry["id"] for entry in scores["Y"]] == by_role["Y"]
    for entry in scores["X"] + scores["Y"]:
        assert entry["s"] == pytest.approx(s(entry["id"]), abs=1e-6)  # layer mean in float32 vs float64 here
    s_x, s_y = (np.array([entry["s"] for entry in scores[role]]) for role in "XY")
    d = (s_x.mean() - s_y.mean()) / np.concatenate([s_x, s_y]).std(ddof=1)
    assert record.speat.effect_size == pytest.approx(d, rel=1e-12)  # d from the recorded scores themselves
    # The cosine matrix kept for comparisons: every entry against the loop, and s(w) from it.
    cosines = record_cosines(record)
    assert cosines.ids == {role: tuple(by_role[role]) for role in "XYAB"}
    for row, target in enumerate(by_role["X"] + by_role["Y"]):
        for column, attribute in enumerate(by_role["A"] + by_role["B"]):
            assert cosines.values[row, column] == pytest.approx(cosine(pooled[target], pooled[attribute]), abs=1e-6)
        assert cosines.scores()[row] == pytest.approx(s(target), abs=1e-6)


def test_records_describe_how_they_were_made(audio_dir, wav2vec2):
    tests = make_tests(audio_dir)
    records = evaluate_tests(wav2vec2, tests, layer_pooling=LayerPooling("per-layer"), num_permutations=500,
                             seed=7, labels=["random-init"], progress=False)
    assert [(r.test, r.pooling["layer"]) for r in records] == [(t, layer) for t in tests for layer in range(3)]
    record = records[0]
    assert record.groups == {"X": "X", "Y": "Y", "A": "A", "B": "B"}  # the default group names
    assert record.speat.paired and not records[3].speat.paired  # only the first test declares pairs
    assert record.speat.seed == 7 and record.labels == ("random-init", "small-groups")  # 3 targets a group
    assert record.model == wav2vec2.description
    assert record.stimuli["test"] == "first" and {"speat", "torch", "transformers"} <= set(record.environment)
    assert EvaluationRecord.from_json(record.to_json()) == record


def test_matched_pairs():
    x = [Stimulus(pair_id=3), Stimulus(pair_id=1)]
    assert matched_pairs(x, [Stimulus(pair_id=1), Stimulus(pair_id=3)]).tolist() == [[0, 1], [1, 0]]
    assert matched_pairs(x, [Stimulus(pair_id=1), Stimulus(pair_id=None)]) is None
    assert matched_pairs(x, [Stimulus(pair_id=1), Stimulus(pair_id=2)]) is None
