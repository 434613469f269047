"""The `evaluate` measurement: agreement with speat_test, add_batch, its docstring examples, and offline loading."""

import doctest
import os
import shutil
import subprocess
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest

from speat_metric import speat_test
from speat_metric.evaluate_registration import MODULE_PATH, register_evaluate_module


@pytest.fixture(scope="module")
def speat(tmp_path_factory):
    return evaluate.load(str(MODULE_PATH), cache_dir=str(tmp_path_factory.mktemp("evaluate-cache")))


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(0)
    sizes = {"X": 7, "Y": 5, "A": 6, "B": 4}
    groups = [role for role, size in sizes.items() for _ in range(size)]
    order = rng.permutation(len(groups))  # interleave the roles, as real data arrives
    embeddings = rng.normal(0, 1, (len(groups), 6)) + np.array([[role == "A", role == "X", 0, 0, 0, 0]
                                                                for role in groups], dtype=float)
    return embeddings[order], [groups[i] for i in order]


def test_compute_matches_speat_test(speat, stimuli):
    embeddings, groups = stimuli
    result = speat.compute(embeddings=embeddings.tolist(), groups=groups, num_permutations=1000, seed=3)
    by_role = {role: embeddings[[g == role for g in groups]] for role in "XYAB"}
    expected = speat_test(by_role["X"], by_role["Y"], by_role["A"], by_role["B"], num_permutations=1000, seed=3)
    assert result == expected.to_dict()
    assert result["exact"] and result["num_permutations"] == 792  # C(12, 5) <= 1000


def test_add_batch_agrees_with_compute(speat, stimuli):
    embeddings, groups = stimuli
    for start in range(0, len(groups), 5):
        speat.add_batch(embeddings=embeddings[start:start + 5].tolist(), groups=groups[start:start + 5])
    batched = speat.compute(num_permutations=100, seed=1, alternative="two-sided")
    direct = speat.compute(embeddings=embeddings.tolist(), groups=groups, num_permutations=100, seed=1,
                           alternative="two-sided")
    assert batched == direct


def test_unknown_group_is_named(speat, stimuli):
    embeddings, groups = stimuli
    with pytest.raises(ValueError, match=r"groups must be 'X', 'Y', 'A' or 'B'; got \['female'\]"):
        speat.compute(embeddings=embeddings.tolist(), groups=["female"] + groups[1:])


def test_a_missing_role_is_named(speat, stimuli):
    embeddings, groups = stimuli
    kept = [index for index, group in enumerate(groups) if group != "B"]
    with pytest.raises(ValueError, match=r"no embeddings with group 'B': SpEAT needs rows of all four roles"):
        speat.compute(embeddings=embeddings[kept].tolist(), groups=[groups[index] for index in kept])


def test_docstring_examples_run(speat):
    module = sys.modules[type(speat).__module__]
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in finder.find(module.Speat, "Speat", globs={"speat": speat, "evaluate": evaluate}):
        examples += len(test.examples)
        runner.run(test)
    assert examples >= 5
    assert runner.failures == 0


def _offline_load(cwd: Path, modules_cache: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_MODULES_CACHE": str(modules_cache), "HF_EVALUATE_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(home)}
    code = ("import evaluate; m = evaluate.load('speat'); "
            "r = m.compute(embeddings=[[1, 0.1], [0.9, 0.3], [0.2, 1], [0.1, 0.8], [1, 0], [0, 1], [0.5, 0.1],"
            " [0.1, 0.4]],"
            " groups=list('XXYYAABB'), seed=0); print(type(m).__name__, round(r['effect_size'], 6), r['exact'])")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_bare_name_loads_offline_from_any_directory_after_register(tmp_path):
    modules_cache, elsewhere = tmp_path / "modules", tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    before = _offline_load(elsewhere, modules_cache, tmp_path / "home")
    assert before.returncode != 0 and "speat" in before.stderr  # proves the test can fail

    speat_command = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"
    registered = subprocess.run([speat_command, "register"], env={**os.environ, "HF_MODULES_CACHE": str(modules_cache)},
                                capture_output=True, text=True, timeout=300)
    assert registered.returncode == 0, registered.stderr
    assert str(modules_cache) in registered.stdout

    after = _offline_load(elsewhere, modules_cache, tmp_path / "home")
    assert after.returncode == 0, after.stderr
    expected = speat_test([[1, 0.1], [0.9, 0.3]], [[0.2, 1], [0.1, 0.8]], [[1, 0], [0, 1]], [[0.5, 0.1], [0.1, 0.4]],
                          seed=0)
    assert after.stdout.split() == ["Speat", str(round(expected.effect_size, 6)), "True"]


def test_register_is_idempotent(tmp_path):
    first = register_evaluate_module(tmp_path)
    content = first.read_text()
    assert register_evaluate_module(tmp_path) == first and first.read_text() == content
    assert len(list((tmp_path / "evaluate_modules" / "metrics" / "evaluate-measurement--speat").iterdir())) == 2
