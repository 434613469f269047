"""`speat space` and `python -m speat_metric.space`: a cheap parser, and bad arguments fail before gradio loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gradio
import pytest
import yaml

from speat_metric import __version__
from speat_metric.cli import main

SPACE = Path(__file__).resolve().parent.parent / "spaces_app"


def test_python_dash_m_spaces_app_is_speat_space_and_its_parser_does_not_import_gradio():
    code = ("import runpy, sys\nsys.argv = ['spaces_app', '--help']\ntry:\n    runpy.run_module('spaces_app', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('gradio loaded:', 'gradio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("usage: speat space [-h] [--results DIR | --repo ORG/NAME]")
    assert "--evaluate-models" in done.stdout
    assert done.stdout.rstrip().endswith("gradio loaded: False")


@pytest.mark.parametrize(("arguments", "message"), [
    (["--results", "{tmp}/missing"], "speat space: error: results directory {tmp}/missing does not exist"),
    (["--revision", "v1"], "speat space: error: --revision applies to --repo; give --repo ORG/NAME too"),
    (["--repo", "not-a-repo"], "speat space: error: Hub dataset repository must look like ORG/NAME, got 'not-a-repo'"),
    (["--port", "0"], "speat space: error: --port must be between 1 and 65535, got 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, arguments, message):
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    assert main(["space", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith(message.format(tmp=tmp_path)) and error.count("\n") == 1


def test_results_and_repo_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["space", "--results", ".", "--repo", "a/b"])
    assert exit_info.value.code == 2
    assert "argument --repo: not allowed with argument --results" in capsys.readouterr().err


def test_the_folder_is_a_gradio_space_that_installs_this_speat():
    header = (SPACE / "README.md").read_text().split("---")[1]
    card = yaml.safe_load(header)
    assert (card["sdk"], card["app_file"]) == ("gradio", "app.py")
    assert card["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]
    requirements = [line for line in (SPACE / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith(("#", "-"))]
    assert requirements == [f"speat[space]=={__version__}"], "pin the speat this folder comes from"
    assert re.search(r"^--extra-index-url https://download.pytorch.org/whl/cpu$",
                     (SPACE / "requirements.txt").read_text(), re.MULTILINE)
