"""`speat space` and `python -m speat_metric.space`: a cheap parser, and bad arguments fail before gradio loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speat_metric.cli import main


def test_python_dash_m_speat_metric_space_is_speat_space_and_its_parser_does_not_import_gradio():
    code = ("import runpy, sys\nsys.argv = ['speat_metric.space', '--help']\ntry:\n"
            "    runpy.run_module('speat_metric.space', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('gradio loaded:', 'gradio' in sys.modules)")
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
