"""The shared defaults (speat_metric.defaults) are the ones every command and module offers: the CLI's choices and
defaults, its help texts, the stimulus tests and the adapters' dtypes."""

import re

import pytest

from speat_metric import cli, stimuli
from speat_metric.adapters.base import TORCH_DTYPES
from speat_metric.defaults import DTYPES, STUDY_TESTS


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare words


def _option_help(text: str, option: str) -> str:
    """The help of one option: from the option to the next option's start."""
    match = re.search(rf"\s{option} (\S+)\s+(.*?)(?=\s--?[a-z][\w-]* |$)", text)
    assert match, f"{option} is not in the help"
    return match.group(1) + " " + match.group(2)


def test_evaluate_offers_exactly_the_dtypes(capsys):
    text = _help(capsys, "evaluate")
    choices = re.findall(r"--dtype \{([^}]*)\}", text)
    assert choices and {tuple(found.split(",")) for found in choices} == {DTYPES}
    assert f"(default {DTYPES[0]})" in _option_help(text, "--dtype")
    assert cli.build_parser("evaluate").parse_args(["evaluate"]).dtype == DTYPES[0]


def test_evaluate_refuses_another_dtype_listing_the_offered_ones(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["evaluate", "--dtype", "float64"])
    assert exited.value.code == 2
    listed = re.search(r"invalid choice: '?float64'? \(choose from (.*)\)", capsys.readouterr().err)
    assert listed and [name.strip("' ") for name in listed.group(1).split(",")] == list(DTYPES)


@pytest.mark.parametrize("command", [("evaluate",), ("stimuli", "download")])
def test_tests_default_to_the_study_tests(capsys, command):
    text = _option_help(_help(capsys, *command), "--tests")
    assert f"(default {','.join(STUDY_TESTS)})" in text
    parsed = cli.build_parser(command[0]).parse_args([*command])
    assert parsed.tests == ",".join(STUDY_TESTS)


def test_the_evaluate_help_names_the_study_tests_in_order(capsys):
    text = _option_help(_help(capsys, "evaluate"), "--tests")
    assert f"comma-separated tests: {', '.join(STUDY_TESTS)}, another published test" in text


def test_the_stimulus_tests_are_the_study_tests():
    assert stimuli.TEST_NAMES == STUDY_TESTS
    assert list(stimuli.speat_tests()) == list(STUDY_TESTS)
    assert [spec.name for spec in stimuli.speat_tests().values()] == list(STUDY_TESTS)


def test_every_dtype_is_a_torch_dtype_of_that_name():
    assert tuple(TORCH_DTYPES) == DTYPES
    assert [str(dtype) for dtype in TORCH_DTYPES.values()] == [f"torch.{name}" for name in DTYPES]
