"""The `speat` console script, run as a user runs it: in a subprocess."""

import os
import shutil
import subprocess
import sys

import pytest

from speat_metric import __version__

SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"


def run(*arguments: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SPEAT, *arguments], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_version():
    completed = run("--version")
    assert completed.returncode == 0 and completed.stdout.strip() == f"speat {__version__}"


@pytest.mark.parametrize("arguments", [("--help",), ()])
def test_help_lists_the_commands(arguments):
    completed = run(*arguments)
    assert completed.returncode == 0
    assert "register" in completed.stdout and "example" in completed.stdout


def test_example_runs_the_evaluate_module_on_the_bundled_embeddings(tmp_path):
    completed = run("example", "--permutations", "2000", "--seed", "5", HF_HOME=str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert "SYNTHETIC" in completed.stdout
    assert "targets X/Y: 16/14" in completed.stdout and "2,000 random partitions, seed 5" in completed.stdout


def test_bad_option_value_is_reported_without_traceback(tmp_path):
    completed = run("example", "--permutations", "0", HF_HOME=str(tmp_path))
    assert completed.returncode == 2
    assert "num_permutations must be an integer >= 1, got 0" in completed.stderr
    assert "Traceback" not in completed.stderr
