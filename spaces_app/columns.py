"""The leaderboard's columns and the values its filters offer: names, display types, what is shown by default."""

from __future__ import annotations

from dataclasses import dataclass

from speat_metric.defaults import STUDY_TESTS
from speat_metric.report import HOLM_COLUMN, HOLM_NOTE

STANDARD_TESTS = STUDY_TESTS
"""The SpEAT tests of the study, always first and in this order; custom tests follow alphabetically."""


@dataclass(frozen=True)
class Column:
    """One leaderboard column.

    Attributes:
        name: the header (also the key of the column's display text in the leaderboard frame; its sort value is
            under ``_sort:<name>``).
        shown_by_default: in the initial column selection.
        never_hidden: always shown, not offered in the column selection.
        width: display width in pixels (texts never wrap inside a word).
        numeric: right-aligned, and sorted as numbers.
        test: the test the column belongs to (the narrow stack shows one test at a time), or None.
        help: what the column means, shown when the pointer rests on its header.
    """

    name: str
    shown_by_default: bool = True
    never_hidden: bool = False
    width: int = 110
    numeric: bool = False
    test: str | None = None
    help: str = ""


MODEL = "model"
MEAN_ABS_D = "mean |d|"

LEADING = (Column(MODEL, never_hidden=True, width=250, help="the model, and what tells this row from its "
                  "neighbours (layer, checkpoint, compression); badges are comparability labels"),
           Column(MEAN_ABS_D, never_hidden=True, width=92, numeric=True,
                  help="mean |d| over the study's tests: the default ranking key (0: no measured association)"))

AUDIO = "audio"
"""Whether a row's audio is the reference audio of each test (`speat_metric.space.rows.AudioReference`)."""

TRAILING = (
    Column("family", width=128),
    Column("params", width=74, numeric=True, help="parameters (K: thousand, M: million)"),
    Column(AUDIO, shown_by_default=False, width=150),
    Column("compression", shown_by_default=False, width=220),
    Column("revision", shown_by_default=False, width=150),
    Column("layers", shown_by_default=False),
    Column("stimuli", shown_by_default=False),
    Column("profile", shown_by_default=False, width=80),
    Column("how it was made", shown_by_default=False, width=320),
    Column("labels", shown_by_default=False, width=200),
    Column("created", shown_by_default=False, width=190),
)


def d_column(test: str) -> str:
    return f"{test} d"


def holm_column(test: str) -> str:
    return f"{test} {HOLM_COLUMN}"


RANK = "rank (95% interval)"
TIER = "tier"


def rank_column(test: str) -> str:
    return f"{test} {RANK}"


def tier_column(test: str) -> str:
    return f"{test} {TIER}"


RANK_HELP = ("rank by |d| (1: least biased) among the results of this test on the same stimuli, profile and pooling "
             "(all of them, not only the rows shown), with its 95% interval over joint bootstrap resamples of the "
             "shared stimuli; — : no cosines kept (an older record) or nothing to rank it with")
TIER_HELP = ("models sorted by |d|: each tier starts with the first model whose |d| the shared stimuli tell apart "
             "from the previous tier's leader (the 95% interval of the difference of |d| lies above 0); models in "
             "one tier cannot be ordered by this test; — as for the rank")


def test_columns(test: str) -> tuple[Column, ...]:
    """d, its size label (with the mark when the CI excludes 0), p, Holm-adjusted p, the confidence interval, and the
    rank interval and tier among comparable results of one test (`speat_metric.space.ranks`)."""
    return (Column(d_column(test), never_hidden=True, width=58, numeric=True, test=test,
                   help=f"SpEAT effect size d of the {test} test (positive: X closer to pleasant speech)"),
            Column(f"{test} size", width=84, test=test,
                   help="Cohen's label of |d|; ◆: the 95% CI of d excludes 0"),
            Column(f"{test} p", width=64, numeric=True, test=test, help="one-sided permutation p-value"),
            Column(holm_column(test), shown_by_default=False, width=80, numeric=True, test=test, help=HOLM_NOTE),
            Column(f"{test} CI", shown_by_default=False, width=118, test=test, help="95% bootstrap interval of d"),
            Column(rank_column(test), shown_by_default=False, width=136, numeric=True, test=test, help=RANK_HELP),
            Column(tier_column(test), shown_by_default=False, width=48, numeric=True, test=test, help=TIER_HELP))


def leaderboard_columns(tests: tuple[str, ...]) -> tuple[Column, ...]:
    return (*LEADING, *(column for test in tests for column in test_columns(test)), *TRAILING)


@dataclass(frozen=True)
class SortOrder:
    """How the leaderboard is ranked: by one column, ascending or descending.

    Its text is what the "Rank by" control shows (``mean |d|, least biased first``); a header click sets it.
    """

    column: str = MEAN_ABS_D
    descending: bool = False

    @property
    def by_bias(self) -> bool:
        """Ranked by a |d| (the mean, or one test's d): the words say least or most biased."""
        return self.column == MEAN_ABS_D or self.column.endswith(" d")

    def text(self) -> str:
        if self.by_bias:
            key = self.column if self.column == MEAN_ABS_D else f"{self.column[:-2]} |d|"
            return f"{key}, {'most' if self.descending else 'least'} biased first"
        if self.column == MODEL:
            return f"{MODEL}, {'Z to A' if self.descending else 'A to Z'}"
        return f"{self.column}, {'highest' if self.descending else 'lowest'} first"

    def flipped(self) -> SortOrder:
        return SortOrder(self.column, not self.descending)

    @classmethod
    def parse(cls, text: str | None, tests: tuple[str, ...]) -> SortOrder:
        """The order a "Rank by" text names; the default order for a text that names none."""
        for column in leaderboard_columns(tests):
            for descending in (False, True):
                order = cls(column.name, descending)
                if order.text() == (text or "").strip():
                    return order
        return cls()


def sort_choices(tests: tuple[str, ...]) -> list[str]:
    """The rankings the "Rank by" control offers: by mean |d| and by each test's |d|, both ways, then by model and
    parameters; a header click may rank by any other column too."""
    keys = [MEAN_ABS_D, *(d_column(test) for test in tests)]
    orders = [SortOrder(key, descending) for key in keys for descending in (False, True)]
    orders += [SortOrder(MODEL), SortOrder("params"), SortOrder("params", True)]
    return [order.text() for order in orders]


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

ROW_LIMITS = (("first 200", 200), ("first 1,000", 1000), ("all", 0))
"""How many ranked rows the table shows (0: all). A browser table of thousands of rows is slow to redraw, and
ranking, search and filters find any model."""
DEFAULT_ROW_LIMIT = ROW_LIMITS[0][1]


def row_limit(value: object) -> tuple[int, str]:
    """(how many rows to show, "" or a one-line problem) for what the Rows control holds: one of `ROW_LIMITS`, or a
    whole number a user typed; anything else keeps the default and says why.

    Example:
        >>> row_limit(1000), row_limit(" 50 "), row_limit("all")
        ((1000, ''), (50, ''), (0, ''))
        >>> row_limit("abc")
        (200, "Rows: 'abc' is not a number of rows; showing the first 200 (type a whole number, or choose all)")
    """
    labels = dict(ROW_LIMITS)
    text = str(value).strip().replace(",", "").replace("_", "") if value is not None else ""
    if text in labels:
        return labels[text], ""
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number.is_integer() and number >= 0:
        return int(number), ""
    return DEFAULT_ROW_LIMIT, (f"Rows: {value!r} is not a number of rows; showing the first {DEFAULT_ROW_LIMIT} "
                               "(type a whole number, or choose all)")
