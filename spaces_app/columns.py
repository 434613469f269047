"""The leaderboard's columns and the values its filters offer: names, display types, what is shown by default."""

from __future__ import annotations

from dataclasses import dataclass

from speat_metric.report import STUDY_TESTS

STANDARD_TESTS = STUDY_TESTS
"""The SpEAT tests of the study, always first and in this order; custom tests follow alphabetically."""


@dataclass(frozen=True)
class Column:
    """One leaderboard column.

    Attributes:
        name: the header (also the key in the leaderboard frame).
        datatype: Gradio's display type: ``str``, ``number`` or ``markdown``.
        shown_by_default: in the initial column selection.
        never_hidden: always shown, not offered in the column selection.
        width: display width in pixels (long texts wrap).
    """

    name: str
    datatype: str = "str"
    shown_by_default: bool = True
    never_hidden: bool = False
    width: int = 130


MODEL = "model"
MEAN_ABS_D = "mean |d|"

LEADING = (Column(MODEL, "markdown", never_hidden=True, width=250),)

AUDIO = "audio"
"""Whether a row's audio is the reference audio of each test (`speat_metric.space.rows.AudioReference`)."""

TRAILING = (
    Column(MEAN_ABS_D, "number", width=80),
    Column(AUDIO, width=150),
    Column("family", width=120),
    Column("params (M)", "number", width=80),
    Column("compression", width=220),
    Column("revision", shown_by_default=False),
    Column("layers", shown_by_default=False),
    Column("stimuli", shown_by_default=False),
    Column("profile", shown_by_default=False),
    Column("how it was made", shown_by_default=False),
    Column("labels", shown_by_default=False),
    Column("created", shown_by_default=False),
)


def d_column(test: str) -> str:
    return f"{test} d"


def test_columns(test: str) -> tuple[Column, ...]:
    """d (with Cohen's size label beside it), p and the confidence interval of one test."""
    return (Column(d_column(test), "number", never_hidden=True, width=74), Column(f"{test} size", width=108),
            Column(f"{test} p", "number", width=84), Column(f"{test} CI", width=140))


def leaderboard_columns(tests: tuple[str, ...]) -> tuple[Column, ...]:
    return (*LEADING, *(column for test in tests for column in test_columns(test)), *TRAILING)


# Filter choices ----------------------------------------------------------------------------------------------------

STIMULI_CHOICES = (("real stimuli", "real"), ("synthetic stimuli (pipeline check)", "synthetic"))
"""Real and synthetic results are ranked separately: the stimuli filter has no "both"."""

SIZE_BUCKETS = (
    ("classical feature (no parameters)", 0, 1),
    ("under 30M", 1, 30e6),
    ("30M to 150M", 30e6, 150e6),
    ("150M to 500M", 150e6, 500e6),
    ("500M and more", 500e6, float("inf")),
)
"""(label, lowest parameter count, upper bound) of the size filter."""

UNCOMPRESSED = "none"
COMPRESSION_METHODS = (UNCOMPRESSED, "heads", "rows", "weights", "distill")

MEAN_VIEW = "mean over layers"
ALL_VIEWS = "every layer view"

SORT_CHOICES = (MEAN_ABS_D + " (least biased first)", "model", "params (M)")

ROW_LIMITS = (("first 200", 200), ("first 1,000", 1000), ("all", 0))
"""How many ranked rows the table shows (0: all). A browser table of thousands of rows is slow to redraw, and
ranking, search and filters find any model."""
