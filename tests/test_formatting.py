"""speat_metric.formatting: every number people read, checked against an independent computation, and written the same
way by the CLI's table and a model card."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from huggingface_hub import parse_eval_result_entries
from hypothesis import example, given
from hypothesis import strategies as st

import speat_metric
from speat_metric.formatting import (
    CI_EXCLUDES_ZERO_MARK,
    CI_EXCLUDES_ZERO_NOTE,
    excludes_zero,
    format_ci,
    format_d,
    format_p,
    format_p_statement,
    format_parameters,
    format_size,
)
from speat_metric.hub.benchmark import Benchmark
from speat_metric.hub.card import render_card
from speat_metric.report import format_records
from speat_metric.results import load_records

D_TEXT = re.compile(r"^[+-]\d+\.\d\d$")
finite = st.floats(allow_nan=False, allow_infinity=False)
maybe_missing = st.one_of(finite, st.none(), st.just(math.nan))
EXAMPLE_RECORDS = Path(speat_metric.__file__).parent / "data" / "example_records"


def examples(*cases):
    """Hypothesis ``@example`` for each case (a tuple of arguments, or the one argument)."""
    def decorate(test):
        for case in reversed(cases):
            test = example(*(case if isinstance(case, tuple) else (case,)))(test)
        return test
    return decorate


def significant_digits(number_text: str) -> int:
    """How many significant digits a written number shows (``0.0011`` has 2, ``1.00`` has 3, ``5e-06`` has 1)."""
    mantissa = number_text.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")
    return len(mantissa)


@given(finite)
@examples(-0.001, -0.005, 0.005, -0.0, 2.675, -1e300, 5e-324)
def test_d_is_signed_with_two_decimals_and_rounds_to_the_nearest_hundredth(d):
    text = format_d(d)
    assert D_TEXT.match(text), text
    assert abs(float(text) - round(d, 2)) <= 0.005 + 1e-12
    assert text != "-0.00"  # a d that rounds to 0 has no direction
    assert text.startswith("-") == (float(text) < 0)


@pytest.mark.parametrize("d,text", [(0.3125, "+0.31"), (-0.2, "-0.20"), (0.0, "+0.00"), (-0.0049, "+0.00"),
                                    (-0.0051, "-0.01"), (12.345678, "+12.35"), (None, "n/a"), (math.nan, "n/a")])
def test_d_examples(d, text):
    assert format_d(d) == text


@given(maybe_missing, maybe_missing)
def test_a_ci_is_two_signed_bounds_in_brackets_or_not_available(low, high):
    text = format_ci(low, high)
    missing = [value for value in (low, high) if value is None or math.isnan(value)]
    if missing:
        assert text == "n/a"
        return
    match = re.fullmatch(r"\[(\S+), (\S+)\]", text)
    assert match, text
    for written, value in zip(match.groups(), (low, high)):
        assert D_TEXT.match(written) and abs(float(written) - value) <= 0.005 + 1e-9 * max(1.0, abs(value))


@given(maybe_missing, maybe_missing, st.sampled_from(["negligible", "small", "medium", "large"]))
@examples((0.0, 1.0, "small"), (-1.0, 0.0, "small"), (1e-300, 2.0, "large"), (-2.0, -5e-324, "large"))
def test_the_mark_is_added_exactly_when_the_interval_excludes_zero(low, high, label):
    known = not any(value is None or math.isnan(value) for value in (low, high))
    outside = known and (low > 0 or high < 0)
    assert excludes_zero(low, high) is outside
    assert format_size(label, low, high) == (f"{label} {CI_EXCLUDES_ZERO_MARK}" if outside else label)
    assert CI_EXCLUDES_ZERO_MARK in CI_EXCLUDES_ZERO_NOTE and "excludes 0" in CI_EXCLUDES_ZERO_NOTE


@given(st.integers(min_value=1, max_value=10**12))
@examples(1, 2, 10, 100, 101, 2000, 999_999, 1_000_000)
def test_a_sampled_p_at_its_floor_is_written_as_a_true_bound(num_permutations):
    floor = 1 / (num_permutations + 1)  # no random partition reached the observed statistic
    text = format_p(floor, exact=False, num_permutations=num_permutations)
    assert text.startswith("<"), text
    bound = float(text[1:])
    assert bound >= 1 / num_permutations  # a true bound: p is below it whatever the partitions not drawn
    assert bound < 1.1 / num_permutations  # and a tight one (rounded up at the second digit)
    assert significant_digits(text[1:]) <= 2
    assert format_p_statement(floor, exact=False, num_permutations=num_permutations) == f"p < {text[1:]}"


def check_p_text(p_value: float, text: str) -> None:
    assert not text.startswith("<") and text != "0" and float(text) > 0, text
    assert (text == "1") == (p_value >= 1.0) and (float(text) == 1.0) == (p_value >= 1.0), text
    if p_value < 1.0:
        assert abs(float(text) - p_value) <= 0.05 * p_value, text
    if p_value <= 0.95:
        assert significant_digits(text) <= 2, text


@given(st.floats(min_value=0.0, max_value=1.0, exclude_min=True))
@examples(1.0, 0.99986, 0.995, 0.9999999999999999, 5e-324, 0.105)
def test_an_exact_p_keeps_two_significant_digits_and_is_never_0_nor_1_when_it_is_neither(p_value):
    text = format_p(p_value, exact=True, num_permutations=None)
    check_p_text(p_value, text)
    assert format_p_statement(p_value, exact=True, num_permutations=None) == f"p = {text}"


@given(st.integers(min_value=1, max_value=10**9), st.data())
def test_a_sampled_p_above_its_floor_is_written_like_an_exact_one(num_permutations, data):
    count = data.draw(st.integers(min_value=2, max_value=num_permutations + 1))  # partitions at least as extreme, +1
    p_value = count / (num_permutations + 1)
    text = format_p(p_value, exact=False, num_permutations=num_permutations)
    check_p_text(p_value, text)
    assert text == format_p(p_value, exact=True, num_permutations=None)


UNITS = {"K": 1e3, "M": 1e6, "B": 1e9}


@given(st.integers(min_value=1, max_value=999_000_000_000))
@examples(950, 999, 1000, 24_762, 99_950, 999_499, 999_500, 94_371_712, 999_499_999, 999_500_000, 1_261_000_000)
def test_a_parameter_count_reads_back_within_half_a_percent_with_three_significant_digits(count):
    text = format_parameters(count)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMB]?)", text)
    assert match, text
    number, unit = match.groups()
    value = float(number) * UNITS.get(unit, 1)
    if count < 1000:
        assert unit == "" and value == count
        return
    assert unit and 1 <= float(number) < 1000, text  # never 0.02M nor 1e+03K
    assert abs(value - count) <= 0.005 * count, text
    assert significant_digits(number) == 3, text


@pytest.mark.parametrize("count", [None, 0, -5, math.nan])
def test_no_parameter_count_is_a_dash(count):
    assert format_parameters(count) == "—"


def test_the_cli_table_and_a_card_write_the_same_numbers_for_the_same_records():
    """mfcc's example records: a large d whose CI excludes 0 at p's sampled floor, a medium one, a negligible one."""
    records = [record for record in load_records(EXAMPLE_RECORDS) if record.model.name == "mfcc"]
    assert sorted(record.test for record in records) == ["age", "gender", "native"]
    benchmark = Benchmark("lab/speat-benchmark", "b" * 40, ("gender", "age", "native"), "https://example.org")
    content = render_card(records, allow_synthetic=True, benchmark=benchmark)
    card = table_cells(content.section, "| test |", separator="|")
    entries = parse_eval_result_entries(yaml.safe_load(content.eval_file))
    tables = {fmt: table_cells(format_records(records, fmt), "model" if fmt == "table" else "| model |",
                               separator="|" if fmt == "markdown" else None) for fmt in ("table", "markdown")}
    shown = set()
    for record in records:
        result = record.speat
        expected = {"d": format_d(result.effect_size),
                    "size": format_size(result.effect_size_label, result.ci_low, result.ci_high),
                    "p": format_p(result.p_value, exact=result.exact, num_permutations=result.num_permutations),
                    "95% CI": format_ci(result.ci_low, result.ci_high)}
        assert {column: card[record.test][column] for column in expected} == expected
        for cells in tables.values():
            assert {column: cells[record.test][column] for column in expected} == expected
        notes = next(entry.notes for entry in entries if entry.task_id == record.test)
        p_statement = format_p_statement(result.p_value, exact=result.exact, num_permutations=result.num_permutations)
        assert f"{p_statement} (" in notes and f"CI {expected['95% CI']};" in notes
        shown.add(expected["size"])
    assert "large ◆" in shown and any(CI_EXCLUDES_ZERO_MARK not in size for size in shown)
    assert {next(cells["p"] for cells in card.values() if cells["p"].startswith("<"))} == {"<0.0001"}
    assert CI_EXCLUDES_ZERO_NOTE in content.section and CI_EXCLUDES_ZERO_NOTE in format_records(records)


def table_cells(text: str, header_start: str, *, separator: str | None) -> dict[str, dict[str, str]]:
    """{test: {column: cell}} of the table in `text` whose header line starts with `header_start`: cells between
    ``|`` (Markdown) or, for the aligned text table, under the runs of dashes of its second line."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header_start))
    body = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        body.append(line)
    if separator:
        def split(line: str) -> list[str]:
            return [cell.strip() for cell in line.strip().strip(separator).split(separator)]
    else:
        spans = [match.span() for match in re.finditer(r"-+", lines[start + 1])]

        def split(line: str) -> list[str]:
            return [line[begin:end].strip() for begin, end in spans]
    header = split(lines[start])
    rows = [dict(zip(header, split(line))) for line in body]
    return {row["test"]: row for row in rows}
