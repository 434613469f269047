"""The distribution as a user gets it: ``python -m build`` gives an sdist and a wheel that pass ``twine check``; the
wheel holds one top-level package and every data file; installed into a fresh environment that has the base
dependencies only (no extras, no checkout on the path), it runs the main job offline, ``speat register`` and
``evaluate.load("speat")``, and every command's ``--help``, and a command whose extra is missing says which."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from environments import EXTRAS_DISTRIBUTIONS, FreshEnvironment, fresh_environment

from speat_metric import __version__, speat_test
from speat_metric.cli import build_parser

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[1]
DATA_FOLDERS = {  # repository folder -> where its files sit in the wheel
    "speat_metric/data": "speat_metric/data", "pruning/configs": "speat_metric/pruning/configs",
    "distill/configs": "speat_metric/distill/configs", "hub_scripts/webhook_space": "speat_metric/hub/webhook_space",
}


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    started = time.perf_counter()
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPOSITORY)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\npython -m build (sdist, then the wheel from it): {time.perf_counter() - started:.1f} s")
    return {"sdist": next(out.glob("speat-*.tar.gz")), "wheel": next(out.glob("speat-*.whl"))}


@pytest.fixture(scope="module")
def base_install(distributions: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> FreshEnvironment:
    """The wheel, installed with its dependencies resolved (offline) in an environment without the extras."""
    started = time.perf_counter()
    environment = fresh_environment(tmp_path_factory.mktemp("base") / "venv", leave_out=EXTRAS_DISTRIBUTIONS)
    installed = environment.pip_install(str(distributions["wheel"]))
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    print(f"\nfresh environment + pip install of the wheel: {time.perf_counter() - started:.1f} s")
    return environment


def test_the_sdist_and_the_wheel_pass_twine_check(distributions):
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, distributions.values())],
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2


def test_the_wheel_has_one_top_level_package_and_every_data_file(distributions):
    names = zipfile.ZipFile(distributions["wheel"]).namelist()
    assert {name.split("/")[0] for name in names} == {"speat_metric", f"speat-{__version__}.dist-info"}
    for folder, inside in DATA_FOLDERS.items():
        files = [path for path in (REPOSITORY / folder).rglob("*") if path.is_file() and "__pycache__" not in
                 path.parts]
        assert files, folder
        missing = [str(path) for path in files if f"{inside}/{path.relative_to(REPOSITORY / folder)}" not in names]
        assert missing == [], f"not in the wheel: {missing[:5]}"
    assert "speat_metric/speat/speat.py" in names  # the evaluate module
    entry_points = zipfile.ZipFile(distributions["wheel"]).read(f"speat-{__version__}.dist-info/entry_points.txt")
    assert b"[speat.commands]" in entry_points and b"hub = speat_metric.hub.cli:add_parser" in entry_points


def test_speat_comes_from_the_wheel_and_the_extras_are_absent(base_install, tmp_path):
    probe = base_install.run(base_install.python, "-c", (
        "import importlib.util, json, speat_metric\n"
        "print(json.dumps({'file': speat_metric.__file__, 'extras': [m for m in ('gradio', 'matplotlib', 'sklearn',"
        " 'fastapi', 'uvicorn') if importlib.util.find_spec(m)]}))"), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["file"]).is_relative_to(base_install.root) and found["extras"] == []
    version = base_install.run(base_install.bin / "speat", "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"speat {__version__}"


def test_the_main_job_runs_offline_from_the_wheel(base_install, tmp_path):
    env = base_install.env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), SPEAT_CACHE=str(tmp_path / "cache"))
    started = time.perf_counter()
    completed = base_install.run(base_install.bin / "speat", "evaluate", "--no-progress", cwd=tmp_path, env=env)
    print(f"\nspeat evaluate (the main job, cold cache) from the wheel: {time.perf_counter() - started:.1f} s")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "15 results written to results/" in completed.stderr
    for model in ("stft", "spectrogram", "mel_spectrogram", "mfcc", "random:melhubert-small"):
        assert f"\n{model} " in completed.stdout, model
    assert len(list((tmp_path / "results").glob("*.json"))) == 15


def test_register_then_evaluate_load_gives_speat_test(base_install, tmp_path):
    rng = np.random.default_rng(11)
    x, y, a, b = (rng.normal(shift, 1.0, size=(n, 6)) for shift, n in ((0.4, 7), (-0.3, 6), (0.9, 5), (-0.8, 5)))
    expected = speat_test(x, y, a, b, num_permutations=3000, seed=2)
    env = base_install.env(HF_HOME=str(tmp_path / "hf"), HF_MODULES_CACHE=str(tmp_path / "modules"),
                           HF_EVALUATE_OFFLINE="1", HF_HUB_OFFLINE="1")
    registered = base_install.run(base_install.bin / "speat", "register", cwd=tmp_path, env=env)
    assert registered.returncode == 0, registered.stderr
    embeddings = [row.tolist() for part in (x, y, a, b) for row in part]
    groups = [role for role, part in zip("XYAB", (x, y, a, b)) for _ in part]
    code = ("import json, sys, evaluate\n"
            "embeddings, groups = json.loads(sys.argv[1])\n"
            "result = evaluate.load('speat').compute(embeddings=embeddings, groups=groups, num_permutations=3000, "
            "seed=2)\n"
            "print(json.dumps(result))")
    loaded = base_install.run(base_install.python, "-c", code, json.dumps([embeddings, groups]), cwd=tmp_path,
                              env=env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["effect_size"] == pytest.approx(expected.effect_size, rel=1e-12)
    assert result["p_value"] == pytest.approx(expected.p_value, rel=1e-12)


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name))
    return paths


def test_every_command_has_help_without_the_extras(base_install, tmp_path):
    commands = _command_paths(build_parser())
    assert ("hub", "webhook") in commands and ("prune", "rows") in commands and ("space",) in commands
    for command in commands:
        completed = base_install.run(base_install.bin / "speat", *command, "--help", cwd=tmp_path)
        assert completed.returncode == 0 and "usage: speat" in completed.stdout, (command, completed.stderr[-2000:])


@pytest.mark.parametrize(("command", "extra", "missing"), [
    (("space",), "space", "gradio<7,>=6"),
    (("prune", "rows", "some/model", "--data", "audio", "--out", "run"), "train", "matplotlib>=3.8"),
    (("distill", "some/model", "--data", "audio", "--out", "run"), "train", "scikit-learn>=1.4"),
    (("hub", "webhook"), "hub", "fastapi>=0.110"),
])
def test_a_command_whose_extra_is_missing_names_the_install_line(base_install, distributions, tmp_path, command,
                                                                 extra, missing):
    completed = base_install.run(base_install.bin / "speat", *command, cwd=tmp_path,
                                 env=base_install.env(SPEAT_WEBHOOK_SECRET="not-used-0123456789"))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert f"needs the {extra!r} extra (missing: " in lines[0] and missing in lines[0]
    assert lines[0].endswith(f"pip install '{distributions['wheel']}[{extra}]'")
    assert not (tmp_path / "run").exists()
