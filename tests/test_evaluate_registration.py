"""Registering the measurement in evaluate's modules cache (speat_metric.evaluate_registration): what it writes, and
(slow: importing evaluate alone takes seconds) that ``evaluate.load("speat")`` then finds the installed code offline."""

import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from speat_metric.evaluate_registration import MODULE_PATH, register_evaluate_module

PACKAGE_DIRS = ("evaluate_modules", "metrics", "evaluate-measurement--speat")


def test_the_shim_lands_where_evaluate_looks_under_a_hash_of_its_content(tmp_path):
    shim = register_evaluate_module(tmp_path / "modules")
    content = shim.read_bytes()
    assert shim.name == "speat.py"
    assert shim.parent.name == hashlib.sha256(content).hexdigest()
    assert shim.parent.parent == tmp_path.joinpath("modules", *PACKAGE_DIRS)
    package = tmp_path / "modules"
    for name in (*PACKAGE_DIRS, shim.parent.name):
        package = package / name
        assert (package / "__init__.py").is_file()
    assert sorted(path.name for path in shim.parent.iterdir()) == ["__init__.py", "speat.py"]


def test_the_shim_imports_the_installed_measurement(tmp_path):
    shim = ast.parse(register_evaluate_module(tmp_path).read_text())
    imports = [node for node in shim.body if isinstance(node, ast.ImportFrom)]
    assert [(node.module, [alias.name for alias in node.names]) for node in imports] == [
        ("speat_metric.speat.speat", ["Speat"])]
    assert MODULE_PATH.is_file() and MODULE_PATH.parts[-3:] == ("speat_metric", "speat", "speat.py")
    measurement = ast.parse(MODULE_PATH.read_text())
    assert "Speat" in [node.name for node in measurement.body if isinstance(node, ast.ClassDef)]


def test_registering_again_restores_a_changed_shim_and_keeps_existing_files(tmp_path):
    shim = register_evaluate_module(tmp_path)
    original = shim.read_text()
    shim.write_text("raise RuntimeError('edited by hand')\n")
    init = tmp_path / "evaluate_modules" / "__init__.py"
    init.write_text("# someone else's package marker\n")
    assert register_evaluate_module(str(tmp_path)) == shim  # a str works as well as a Path
    assert shim.read_text() == original
    assert init.read_text() == "# someone else's package marker\n"
    assert not [path for path in shim.parent.iterdir() if path.name not in ("__init__.py", "speat.py")]  # no temp


def test_a_file_as_the_modules_cache_is_refused_before_writing(tmp_path):
    file = tmp_path / "modules"
    file.write_text("not a directory")
    with pytest.raises(ValueError, match=rf"^--modules-cache '{re.escape(str(file))}' is a file, not a directory; "
                                         "give a directory for the evaluate modules cache$"):
        register_evaluate_module(file)
    with pytest.raises(ValueError, match=r"is a file, so the directory cannot be created$"):
        register_evaluate_module(file / "below")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["modules"]


@pytest.mark.slow
def test_the_default_cache_then_an_offline_load_from_anywhere(tmp_path):
    modules, elsewhere = tmp_path / "modules", tmp_path / "else"
    elsewhere.mkdir()
    env = {**os.environ, "HF_MODULES_CACHE": str(modules), "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "home")}
    code = ("import evaluate, speat_metric.speat.speat as installed\n"
            "from speat_metric.evaluate_registration import register_evaluate_module\n"
            "print(register_evaluate_module())\n"
            "print(type(evaluate.load('speat')) is installed.Speat)\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr
    shim, same_class = completed.stdout.split()
    assert Path(shim).is_relative_to(modules) and Path(shim).is_file()
    assert same_class == "True"
