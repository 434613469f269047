"""speat_metric.stimuli.fingerprints: what a fingerprint depends on (the bytes, in their roles) and what not (order,
names), and the comparison with a benchmark's reference."""

from __future__ import annotations

import doctest
import hashlib

import pytest

from speat_metric.stimuli import fingerprints
from speat_metric.stimuli.fingerprints import BenchmarkReference, rows_fingerprint, stimulus_fingerprint


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CLIPS = {"X": [sha("x1"), sha("x2")], "Y": [sha("y1"), sha("y2")], "A": [sha("a1")], "B": [sha("b1")]}


def test_order_within_a_role_does_not_matter_but_the_bytes_and_roles_do():
    base = stimulus_fingerprint(CLIPS)["test"]
    assert stimulus_fingerprint({**CLIPS, "X": CLIPS["X"][::-1]})["test"] == base
    assert stimulus_fingerprint({**CLIPS, "X": CLIPS["Y"], "Y": CLIPS["X"]})["test"] != base  # roles swapped
    assert stimulus_fingerprint({**CLIPS, "Y": [sha("y1"), sha("y3")]})["test"] != base  # one clip's bytes
    assert stimulus_fingerprint({**CLIPS, "A": [sha("a1"), sha("a1")]})["test"] != base  # a clip used twice
    assert len({stimulus_fingerprint(CLIPS)["test"] for _ in range(3)}) == 1 and len(base) == 64


def test_rows_give_the_fingerprint_of_their_roles():
    rows = [{"role": role, "sha256": value, "stimulus_id": f"id-{value[:6]}"} for role, values in CLIPS.items()
            for value in values]
    assert rows_fingerprint(rows[::-1]) == stimulus_fingerprint(CLIPS)


@pytest.mark.parametrize(("clips", "message"), [({"Z": [sha("z")]}, "role must be one of X, Y, A, B, got 'Z'"),
                                                ({"X": ["not-a-hash"]}, "'not-a-hash' is not a SHA-256")])
def test_bad_input_is_named(clips, message):
    with pytest.raises(ValueError, match=message):
        stimulus_fingerprint(clips)


def test_the_reference_names_differing_clips_and_ignores_those_it_does_not_list():
    reference = BenchmarkReference("lab/bench", "c" * 40, {"gender": "f" * 64}, {"saa/a": sha("a"), "saa/b": sha("b")})
    rows = [{"stimulus_id": "saa/a", "sha256": sha("a")}, {"stimulus_id": "saa/b", "sha256": sha("changed")},
            {"stimulus_id": "custom/mine", "sha256": sha("mine")}]
    assert reference.differing(rows) == ["saa/b"]
    assert reference.comparison("gender", rows) == {"benchmark": "lab/bench", "revision": "c" * 40,
                                                    "test": "f" * 64, "differing": ["saa/b"]}
    assert reference.comparison("custom", rows[2:]) is None  # nothing the benchmark lists
    again = BenchmarkReference.from_json(reference.to_json(), benchmark="lab/bench", revision="d" * 40)
    assert (again.tests, again.clips, again.revision) == (reference.tests, reference.clips, "d" * 40)
    with pytest.raises(ValueError, match="fingerprints.json of the benchmark lab/bench is not a speat fingerprints"):
        BenchmarkReference.from_json('{"version": 7}', benchmark="lab/bench", revision=None)


def test_the_benchmark_setting_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.setenv("SPEAT_BENCHMARK", "org/from-env")
    assert fingerprints.benchmark_from_environment(None) == "org/from-env"
    assert fingerprints.benchmark_from_environment("org/given") == "org/given"
    monkeypatch.setenv("SPEAT_BENCHMARK", "bad")
    with pytest.raises(ValueError, match=r"\$SPEAT_BENCHMARK 'bad' is not a Hub repository id"):
        fingerprints.benchmark_from_environment(None)
    monkeypatch.delenv("SPEAT_BENCHMARK")
    assert fingerprints.benchmark_from_environment(None) is None


def test_module_example():
    assert doctest.testmod(fingerprints).failed == 0
