"""The `speat` console script, run as a user runs it: in a subprocess."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from speat_metric import __version__
from speat_metric.formatting import CI_EXCLUDES_ZERO_NOTE

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
    # numbers as every table writes them (speat_metric.formatting): no partition reached d, so p is below 1/2000
    assert re.search(r"effect size d = \+\d\.\d\d \(large ◆\), 95% CI \[\+\d\.\d\d, \+\d\.\d\d\]\n",
                     completed.stdout), completed.stdout
    assert "  p < 0.0005 (greater, " in completed.stdout and f"  {CI_EXCLUDES_ZERO_NOTE}\n" in completed.stdout


def test_bad_option_value_is_reported_without_traceback(tmp_path):
    completed = run("example", "--permutations", "0", HF_HOME=str(tmp_path))
    assert completed.returncode == 2
    assert "--permutations must be a whole number of at least 1, got 0" in completed.stderr
    assert "Traceback" not in completed.stderr


CONSUMERS = ("speat_metric.hub", "speat_metric.pruning", "speat_metric.distill", "speat_metric.space",
             "speat_metric.training", "speat_hello")
LOADED = f"""
import sys
from speat_metric.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("LOADED", *sorted(name for name in sys.modules if name.startswith({CONSUMERS!r}) or name.split(".")[0] in
      ("fastapi", "uvicorn", "gradio", "matplotlib", "sklearn", "torch")), file=sys.stderr)
"""


def loaded_modules(*arguments: str, env: dict | None = None) -> set[str]:
    completed = subprocess.run([sys.executable, "-c", LOADED, *arguments], capture_output=True, text=True,
                               timeout=120, env={**os.environ, **(env or {})})
    line = next(line for line in completed.stderr.splitlines() if line.startswith("LOADED"))
    return set(line.split()[1:])


@pytest.mark.parametrize("arguments", [("evaluate", "--help"), ("--version",), ("stimuli", "list")])
def test_core_commands_import_no_consumer(arguments):
    assert loaded_modules(*arguments) == set()


def test_a_consumer_command_loads_only_its_own_package():
    loaded = loaded_modules("prune", "--help")
    assert "speat_metric.pruning.cli" in loaded
    assert not {name for name in loaded if name.startswith(("speat_metric.hub", "speat_metric.space",
                                                            "speat_metric.distill"))}


def test_help_lists_every_installed_command():
    completed = run("--help")
    for command in ("evaluate", "stimuli", "hub", "prune", "distill", "space"):
        assert f"    {command} " in completed.stdout, command


def test_a_third_party_package_adds_a_command_through_an_entry_point(tmp_path):
    """A distribution on the path that declares a `speat.commands` entry point gets its own `speat` subcommand."""
    (tmp_path / "speat_hello.py").write_text(
        "def add_parser(commands):\n"
        "    parser = commands.add_parser('hello', help='say hello from a plug-in')\n"
        "    parser.add_argument('name')\n"
        "    parser.set_defaults(handler=lambda args: print(f'hello {args.name}') or 0)\n")
    info = tmp_path / "speat_hello-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: speat-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[speat.commands]\nhello = speat_hello:add_parser\n")
    env = {"PYTHONPATH": str(tmp_path)}
    assert "say hello from a plug-in" in run("--help", **env).stdout
    said = run("hello", "world", **env)
    assert (said.returncode, said.stdout) == (0, "hello world\n")
    assert loaded_modules("hello", "you", env=env) == {"speat_hello"}
    assert loaded_modules("evaluate", "--help", env=env) == set()  # a core command loads no plug-in either


def test_a_plug_in_may_not_take_a_core_command_name(tmp_path):
    info = tmp_path / "speat_rogue-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: speat-rogue\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[speat.commands]\nevaluate = speat_rogue:add_parser\n")
    completed = run("--help", PYTHONPATH=str(tmp_path))
    assert completed.returncode != 0
    assert "takes the name of the core command 'evaluate'" in completed.stderr
