"""Numbers and times written for people: 10,000,000 (never 1E+7), exact to the last digit, and
instants in UTC with the zone named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

DASH = "—"


def number(value: Decimal | int | None) -> str:
    """Grouped thousands and every significant digit: Decimal("1E+7") -> 10,000,000,
    Decimal("0.250") -> 0.25."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return str(value)
    exact = Decimal(value)
    if not exact.is_finite():
        return str(exact)
    normal = exact.normalize() + 0  # `+ 0` turns -0 into 0
    return format(normal, ",f")


def percent(share: Decimal) -> str:
    """A share (1 = 100 %) as a whole percentage, for labels next to the exact numbers."""
    whole = (share * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return f"{whole:,f}%"


def when(value: datetime | None) -> str:
    if value is None:
        return DASH
    utc = value.astimezone(UTC)
    text = utc.strftime("%d %b %Y, %H:%M")
    if utc.second or utc.microsecond:
        text += utc.strftime(":%S")
    return text.lstrip("0") + " UTC"


def when_short(value: datetime) -> str:
    """A chart label: the date, and the time when it is not midnight."""
    utc = value.astimezone(UTC)
    if (utc.hour, utc.minute) == (0, 0):
        return utc.strftime("%d %b").lstrip("0")
    return utc.strftime("%d %b %H:%M").lstrip("0")


def input_time(value: datetime | None) -> str:
    """The value of a datetime-local input (UTC, to the minute)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def compact_json(value: Any, limit: int = 160) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
