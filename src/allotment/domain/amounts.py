"""Amounts a client may send: grant amounts, rollover bounds, `issueAfterReset`.

The engine computes exactly with `Decimal` in a 60-digit context that refuses to round (see
`burn.py`). An amount with a huge exponent or endless fraction digits would make a sum need more
digits than that, so such an amount is refused here, at the door, naming its field, instead of
failing deep in a balance computation. The bounds are far beyond any real quota: 10^18 units with
up to 18 digits after the point fit in 37 significant digits, and sums of many stay within 60.
"""

from __future__ import annotations

from decimal import Decimal

from allotment.errors import InvalidInput

AMOUNT_MAX = Decimal(10) ** 18
FRACTION_DIGITS_MAX = 18


def checked_amount(
    value: Decimal | int, field: str, *, positive: bool = False, signed: bool = False
) -> Decimal:
    """`value` as an exact Decimal, or InvalidInput naming `field`.

    Refuses non-finite values, negatives unless `signed` (and zero when `positive`), values
    beyond AMOUNT_MAX either way and more than FRACTION_DIGITS_MAX digits after the point.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidInput("must be a number", field=field)
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidInput("must be a finite number", field=field)
    if (amount < 0 and not signed) or (positive and amount <= 0):
        raise InvalidInput("must be positive" if positive else "must not be negative", field=field)
    if abs(amount) > AMOUNT_MAX:
        raise InvalidInput(f"must be at most {AMOUNT_MAX:,}", field=field)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > FRACTION_DIGITS_MAX:
        raise InvalidInput(
            f"must have at most {FRACTION_DIGITS_MAX} digits after the decimal point", field=field
        )
    # Normalised, so 1E+1 and 10 are stored and echoed alike; integral values stay integral.
    normal = amount.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal
