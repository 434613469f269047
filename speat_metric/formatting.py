"""How speat writes its numbers, the one way every consumer shows them (CLI tables, cards, the Space, plots, uploads).

- d: signed, two decimals (``+0.31``, ``-0.20``); the size label comes from the unrounded d.
- p: two significant digits, never ``0`` nor ``1`` when it is neither; a sampled p at its floor 1/(N+1) is written
  as the bound it is (``<1e-06``).
- confidence intervals: ``[-1.06, +0.53]``; a size is followed by `CI_EXCLUDES_ZERO_MARK` when the interval excludes 0
  (a mark that is not a colour, so it survives copying, printing and colour blindness).
- parameter counts: three significant digits with a unit (``24.8K``, ``94.4M``), never ``0.02`` M.
"""

from __future__ import annotations

import math

CI_EXCLUDES_ZERO_MARK = "◆"
"""Written after the size label of a result whose confidence interval excludes 0."""

CI_EXCLUDES_ZERO_NOTE = f"{CI_EXCLUDES_ZERO_MARK}: the 95% confidence interval of d excludes 0"

NOT_AVAILABLE = "n/a"


def format_d(effect_size: float | None) -> str:
    """An effect size as speat writes it: signed, two decimals (``n/a`` when there is none).

    Example:
        >>> format_d(0.3125), format_d(-0.2), format_d(0.0), format_d(-0.001), format_d(None)
        ('+0.31', '-0.20', '+0.00', '+0.00', 'n/a')
    """
    if effect_size is None or math.isnan(effect_size):
        return NOT_AVAILABLE
    text = f"{effect_size:+.2f}"
    return "+0.00" if text == "-0.00" else text  # a d that rounds to zero has no direction to show


def format_ci(low: float | None, high: float | None) -> str:
    """A confidence interval with signed bounds, two decimals.

    Example:
        >>> format_ci(-1.0612, 0.5349), format_ci(None, None)
        ('[-1.06, +0.53]', 'n/a')
    """
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return NOT_AVAILABLE
    return f"[{format_d(low)}, {format_d(high)}]"


def excludes_zero(low: float | None, high: float | None) -> bool:
    """Whether a confidence interval lies entirely on one side of 0 (False when there is none)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return False
    return low > 0 or high < 0


def format_size(label: str, low: float | None, high: float | None) -> str:
    """A size label (from the unrounded d), with `CI_EXCLUDES_ZERO_MARK` when the interval excludes 0.

    Example:
        >>> format_size("large", 0.55, 1.57), format_size("small", -1.0, 0.55)
        ('large ◆', 'small')
    """
    return f"{label} {CI_EXCLUDES_ZERO_MARK}" if excludes_zero(low, high) else label


def format_p(p_value: float, *, exact: bool, num_permutations: int | None) -> str:
    """A p-value as people should read it: 2 significant digits, but never ``0`` nor ``1`` when it is neither.

    A sampled p at its floor 1/(N+1) (no random partition reached the observed statistic) is written as ``<1/N``
    rounded up to two significant digits, so it stays a true bound; a p just below 1 keeps the digits that show it.

    Example:
        >>> format_p(0.99986, exact=True, num_permutations=None), format_p(0.0123, exact=True, num_permutations=None)
        ('0.99986', '0.012')
        >>> format_p(1 / 1_000_001, exact=False, num_permutations=1_000_000)
        '<1e-06'
        >>> format_p(1 / 2001, exact=False, num_permutations=2000)
        '<0.0005'
    """
    if is_p_bound(p_value, exact=exact, num_permutations=num_permutations):
        return format_p_bound(1, int(num_permutations))
    if p_value >= 1.0:
        return "1"
    text = f"{p_value:#.2g}"  # "#" keeps the second digit: 0.70, not 0.7
    if float(text) >= 1.0:
        decimals = math.ceil(-math.log10(1.0 - p_value)) + 1
        text = f"{p_value:.{decimals}f}".rstrip("0")
    return text


def is_p_bound(p_value: float, *, exact: bool, num_permutations: int | None) -> bool:
    """Whether `format_p` writes this p as a bound: a sampled p at its floor 1/(N+1), no random partition having
    reached the observed statistic (the true p is below 1/N, not equal to the floor)."""
    return bool(not exact and num_permutations and p_value <= 1.5 / (num_permutations + 1))


def format_p_bound(numerator: int, denominator: int) -> str:
    """The bound ``p < numerator/denominator``, written ``<`` and the fraction rounded UP at its second significant
    digit, so it stays a true bound (``1`` for a bound above 1, which says no more than a p-value's cap).

    Example:
        >>> format_p_bound(1, 1_000_000), format_p_bound(1, 300), format_p_bound(3, 2000), format_p_bound(3, 2)
        ('<1e-06', '<0.0034', '<0.0015', '1')
    """
    if numerator > denominator:
        return "1"
    # In integers: float arithmetic can round the bound below the fraction (1/62,499,999,997 gave 1.6e-11). With
    # the decimal shift below, numerator/denominator * 10^shift lies in (10, 1000); one step back when it is over 100
    # leaves a mantissa of 11 to 100, whose ceiling has two significant digits.
    shift = len(str(denominator)) - len(str(numerator)) + 2
    if numerator * 10 ** shift > 100 * denominator:
        shift -= 1
    mantissa = -(-(numerator * 10 ** shift) // denominator)
    return f"<{mantissa * 10.0 ** -shift:.2g}"


def format_p_statement(p_value: float, *, exact: bool, num_permutations: int | None) -> str:
    """A p-value in a sentence: ``p = 0.012``, or ``p < 0.0005`` when `format_p` writes a bound.

    Example:
        >>> format_p_statement(0.0123, exact=True, num_permutations=None)
        'p = 0.012'
        >>> format_p_statement(1 / 2001, exact=False, num_permutations=2000)
        'p < 0.0005'
    """
    text = format_p(p_value, exact=exact, num_permutations=num_permutations)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "K"))


def format_parameters(count: float | None) -> str:
    """A parameter count with three significant digits and a unit (``—`` for none: a classical feature).

    Example:
        >>> format_parameters(24_762), format_parameters(94_371_712), format_parameters(1_261_000_000)
        ('24.8K', '94.4M', '1.26B')
        >>> format_parameters(950), format_parameters(0)
        ('950', '—')
    """
    if count is None or math.isnan(count) or count <= 0:
        return "—"
    for scale, unit in _UNITS:
        if count >= scale * 0.9995:  # 999,600 reads as 1.00M, not 1e+03K
            return f"{_three_digits(count / scale)}{unit}"
    return f"{count:.0f}"


def _three_digits(value: float) -> str:
    rounded = float(f"{value:.3g}")  # 9.996 -> 10.0, so the digits are counted after rounding
    return f"{rounded:.{max(0, 2 - math.floor(math.log10(rounded)))}f}"
