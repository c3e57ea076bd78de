"""What every check must answer, computed from what the generator sent, not from the server.

The benchmark's entitlements are chosen so that the value has a closed form: one usage period
(measurement starts at the period's start), grants all effective at that start, none expiring,
voided or recurring within it. Then burn order cannot change the totals:

    total    = sum of the grant amounts
    balance  = max(total - usage, 0)       overage = max(usage - total, 0)
    hasAccess = balance > 0                totalAvailableGrantAmount = total

(`totalAvailableGrantAmount` is what the grants absorbed this period plus the balance, which is
min(usage, total) + max(total - usage, 0) = total.) The closed form is tested against the server
itself in tests/bench.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FIELDS = ("hasAccess", "balance", "usage", "overage", "totalAvailableGrantAmount")


@dataclass(frozen=True)
class MeteredValue:
    has_access: bool
    balance: Decimal
    usage: Decimal
    overage: Decimal
    total_available_grant_amount: Decimal

    def as_wire(self) -> dict[str, Any]:
        return {
            "hasAccess": self.has_access,
            "balance": self.balance,
            "usage": self.usage,
            "overage": self.overage,
            "totalAvailableGrantAmount": self.total_available_grant_amount,
        }


def metered_value(grant_amounts: Sequence[int | Decimal], usage: int | Decimal) -> MeteredValue:
    total = sum((Decimal(a) for a in grant_amounts), Decimal(0))
    used = Decimal(usage)
    balance = max(total - used, Decimal(0))
    return MeteredValue(
        has_access=balance > 0,
        balance=balance,
        usage=used,
        overage=max(used - total, Decimal(0)),
        total_available_grant_amount=total,
    )


def parse(body: bytes) -> Any:
    """JSON with every number read exactly (no binary floats)."""
    return json.loads(body, parse_float=Decimal, parse_int=Decimal)


def value_mismatch(body: bytes | Mapping[str, Any], expected: MeteredValue) -> str | None:
    """None when an entitlement value (a body, or one already parsed) is exactly `expected`;
    else what differs."""
    try:
        got = parse(body) if isinstance(body, bytes | bytearray) else body
    except ValueError:
        return f"not JSON: {bytes(body)[:200]!r}"  # type: ignore[arg-type]
    if not isinstance(got, Mapping):
        return f"not an object: {got!r}"
    wanted = expected.as_wire()
    wrong = [
        f"{name}: got {got.get(name)!r}, expected {wanted[name]!r}"
        for name in FIELDS
        if name not in got or _differs(got[name], wanted[name])
    ]
    return "; ".join(wrong) or None


def _differs(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return got is not wanted
    if isinstance(got, bool) or not isinstance(got, Decimal | int):
        return True
    return Decimal(got) != wanted


class Mismatches:
    """Every wrong answer of a run, kept (the first few in full) and counted per figure."""

    def __init__(self) -> None:
        self.by_figure: dict[str, int] = {}
        self.examples: list[str] = []

    def add(self, figure: str, problem: str) -> None:
        self.by_figure[figure] = self.by_figure.get(figure, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(f"{figure}: {problem}")

    def __bool__(self) -> bool:
        return bool(self.by_figure)

    @property
    def total(self) -> int:
        return sum(self.by_figure.values())
