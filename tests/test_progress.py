"""Progress bars (speat_metric.progress): counting whole units, the final line drawn once, closing on error, and
silencing the libraries' own bars."""

import re
import time

import pytest
import transformers
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from speat_metric.progress import ProgressBar, silence_library_progress_bars


def _counts(text: str, total: int) -> list[int]:
    """The counts of the lines a bar drew (carriage returns are new lines in a log)."""
    return [int(count) for count in re.findall(rf"(\d+)/{total} ", text)]


def test_a_bar_counts_and_draws_its_final_line_once(capsys):
    with ProgressBar(3, unit="test", desc="tests") as bar:
        bar.advance(2)
        time.sleep(0.15)  # past tqdm's 0.1 s minimum interval: an update now would be drawn
        bar.advance()
        assert bar.done == 3
    drawn = capsys.readouterr().err
    assert drawn.lstrip("\r").startswith("tests:") and ("test/s" in drawn or "s/test" in drawn)
    counts = _counts(drawn, 3)
    assert counts[0] == 0 and counts.count(3) == 1 and counts[-1] == 3  # plain tqdm.update would draw 3/3 twice


def test_a_disabled_bar_counts_silently(capsys):
    with ProgressBar(4, unit="clip", desc="clips", enabled=False) as bar:
        for _ in range(4):
            bar.advance()
    assert bar.done == 4
    assert capsys.readouterr() == ("", "")


def test_advance_to_never_goes_back_nor_past_the_total():
    bar = ProgressBar(10.0, unit="s audio", desc="audio", enabled=False)  # a float total counts whole units
    assert bar.total == 10
    bar.advance_to(4.7)
    assert bar.done == 4
    bar.advance_to(2)
    assert bar.done == 4
    bar.advance(3)
    assert bar.done == 7
    bar.advance(100)
    assert bar.done == 10
    bar.close()


def test_an_error_closes_the_bar_where_it_stood(capsys):
    with pytest.raises(RuntimeError, match="model failed"):
        with ProgressBar(5, unit="clip", desc="clips") as bar:
            bar.advance(2)
            raise RuntimeError("model failed")
    assert bar._bar.disable  # tqdm marks a closed bar disabled; a later advance draws nothing
    drawn = capsys.readouterr().err
    assert _counts(drawn, 5)[-1] == 2 and 5 not in _counts(drawn, 5)
    assert drawn.endswith("\n")  # the line is finished, so the error message starts on its own line


@pytest.fixture
def library_bars():
    """Restore both libraries' bar settings after the test."""
    transformers_on, hub_on = transformers.utils.logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    yield
    transformers.utils.logging.enable_progress_bar() if transformers_on else \
        transformers.utils.logging.disable_progress_bar()
    enable_progress_bars() if hub_on else disable_progress_bars()


@pytest.mark.parametrize("downloads", [False, True])
def test_silence_library_progress_bars(library_bars, downloads):
    transformers.utils.logging.enable_progress_bar()
    enable_progress_bars()
    silence_library_progress_bars(downloads=downloads)
    assert not transformers.utils.logging.is_progress_bar_enabled()
    assert are_progress_bars_disabled() is not downloads


def test_download_bars_stay_off_when_they_were_off(library_bars):
    transformers.utils.logging.enable_progress_bar()
    disable_progress_bars()
    silence_library_progress_bars(downloads=True)
    assert not transformers.utils.logging.is_progress_bar_enabled() and are_progress_bars_disabled()
