"""Grants: an amount of usage an entitlement may burn, active on `[effectiveAt, end)`.

Rules (README.md, "Grants"):

- A grant is active on `[effective_at, min(expires_at, voided_at))`; outside it has no balance.
- Burn order: priority ascending, then earlier expiry (no expiry last), then earlier creation,
  then id. Balances never change the order.
- At a reset a grant active at the reset instant keeps `min(max, max(balance, min))`.
- A recurring grant is refilled to `amount` at each of its recurrence boundaries while active.
- Grants are immutable; voiding sets `voided_at` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from allotment.domain.periods import Recurrence
from allotment.domain.time import MINUTE, ensure_utc, truncate_to_minute
from allotment.errors import InvalidInput

PRIORITY_MIN = 1
PRIORITY_MAX = 255

# Sorts before every real expiry; only used as a placeholder in the burn-order key.
_NO_EXPIRY_PLACEHOLDER = datetime(1, 1, 1, tzinfo=UTC)


def as_decimal(value: Decimal | int, name: str = "amount") -> Decimal:
    """Accept a Decimal or an int (never a float: binary fractions are not exact amounts)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a Decimal, not a bool")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    else:
        raise TypeError(f"{name} must be a Decimal or an int, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number, got {result}")
    return result


@dataclass(frozen=True, kw_only=True)
class Grant:
    """One grant as the engine sees it.

    Engine instants (`effective_at`, `expires_at`, `voided_at`) are floored to the minute on
    construction; `created_at` is kept exact because it only breaks ties in the burn order.
    `recurrence` refills the grant to `amount` at its boundaries (its anchor defaults to
    `effective_at`; the caller resolves that default). Keyword-only, so that a row mapped
    field by field cannot swap two datetimes unnoticed.
    """

    id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    expires_at: datetime | None = None
    voided_at: datetime | None = None
    created_at: datetime
    min_rollover_amount: Decimal = Decimal(0)
    max_rollover_amount: Decimal = Decimal(0)
    recurrence: Recurrence | None = None

    def __post_init__(self) -> None:
        amount = as_decimal(self.amount, "amount")
        if amount <= 0:
            raise ValueError(f"grant {self.id}: amount must be positive, got {amount}")
        object.__setattr__(self, "amount", amount)
        for name in ("min_rollover_amount", "max_rollover_amount"):
            object.__setattr__(self, name, as_decimal(getattr(self, name), name))
        object.__setattr__(self, "effective_at", truncate_to_minute(self.effective_at))
        object.__setattr__(self, "created_at", ensure_utc(self.created_at, "created_at"))
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", truncate_to_minute(self.expires_at))
        if self.voided_at is not None:
            object.__setattr__(self, "voided_at", truncate_to_minute(self.voided_at))

    @property
    def active_until(self) -> datetime | None:
        """End (exclusive) of the active window: the earlier of expiry and void, or None."""
        ends = [t for t in (self.expires_at, self.voided_at) if t is not None]
        return min(ends) if ends else None

    def active_at(self, t: datetime) -> bool:
        """True on `[effective_at, min(expires_at, voided_at))`; a void or expiry at or before
        `effective_at` means the grant is never active."""
        if t < self.effective_at:
            return False
        end = self.active_until
        return end is None or t < end

    @property
    def burn_order_key(self) -> tuple[int, bool, datetime, datetime, str]:
        """Sort key: priority, expiry (earlier first, none last), creation, id."""
        return (
            self.priority,
            self.expires_at is None,
            self.expires_at if self.expires_at is not None else _NO_EXPIRY_PLACEHOLDER,
            self.created_at,
            self.id,
        )

    def rollover(self, balance: Decimal) -> Decimal:
        """Balance kept at a reset: `min(max_rollover, max(balance, min_rollover))`, never below 0.

        `min` is applied last, so with `min_rollover > max_rollover` the result is the max
        (OpenMeter accepts that combination silently; so do we). The bounds may be negative,
        as OpenMeter's schema allows; a grant's balance is never negative there (a deficit is
        overage), so a negative result keeps nothing: a negative maximum rolls nothing over, a
        negative minimum is no floor.
        """
        kept = min(self.max_rollover_amount, max(balance, self.min_rollover_amount))
        return max(kept, Decimal(0))

    def recurrences_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Refill instants r with `start < r <= end` at which the grant is active."""
        if self.recurrence is None:
            return []
        # Bound the search by the active window so a long-expired grant costs nothing.
        lo = max(ensure_utc(start), self.effective_at - MINUTE)
        until = self.active_until
        hi = ensure_utc(end) if until is None else min(ensure_utc(end), until)
        return [r for r in self.recurrence.boundaries_between(lo, hi) if self.active_at(r)]


def validate_new_grant(
    effective_at: datetime,
    current_period_start: datetime,
    *,
    priority: int | None = None,
    recurrence: Recurrence | None = None,
) -> datetime:
    """Check when a grant about to be created starts; return its floored `effectiveAt`.

    `effectiveAt` (floored) must not be before the start of the usage period current now
    (`current_period_start`), so a grant never rewrites a closed period; it may be backdated
    inside the current period or lie in the future. Optional extras are checked when given:
    priority 1..255, a recurrence of at least an hour. Amounts are checked where the request is
    read (`amounts.checked_amount`). Raises InvalidInput naming the API field.
    """
    floored = truncate_to_minute(effective_at)
    period_start = ensure_utc(current_period_start, "current_period_start")
    if floored < period_start:
        raise InvalidInput(
            f"grant effective date {floored.isoformat()} is before the current usage period "
            f"start {period_start.isoformat()}",
            field="effectiveAt",
        )
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not PRIORITY_MIN <= priority <= PRIORITY_MAX
    ):
        raise InvalidInput(
            f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}",
            field="priority",
        )
    if recurrence is not None and not recurrence.interval.is_at_least_one_hour():
        raise InvalidInput(
            "a grant recurrence interval must be at least one hour", field="recurrence.interval"
        )
    return floored


def validate_void(
    grant: Grant, at: datetime, now: datetime, current_period_start: datetime
) -> datetime:
    """Check voiding `grant` at `at`; return the floored void instant.

    Voiding twice, in the future, or before the start of the current usage period is refused
    (the past of a closed period is never rewritten). Raises InvalidInput: field "grantId" for a
    grant already voided, "at" for the time rules.
    """
    if grant.voided_at is not None:
        raise InvalidInput(
            f"grant {grant.id} is already voided (at {grant.voided_at.isoformat()})",
            field="grantId",
        )
    requested = ensure_utc(at, "at")
    if requested > ensure_utc(now, "now"):
        raise InvalidInput(
            f"cannot void grant at {requested.isoformat()}: it is in the future", field="at"
        )
    floored = truncate_to_minute(requested)
    period_start = ensure_utc(current_period_start, "current_period_start")
    if floored < period_start:
        raise InvalidInput(
            f"cannot void grant at {floored.isoformat()}: before the current usage period "
            f"start {period_start.isoformat()}",
            field="at",
        )
    return floored
