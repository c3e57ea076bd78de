"""Subscriptions: a customer on a plan, and the entitlements its rate cards stand for.

Rules:

- A subscription copies its plan's terms (or a custom plan's), so later versions of the plan
  never change it. It runs on `[activeFrom, activeTo)`; its phases follow one another from
  `activeFrom`, each for its duration (the last one, without a duration, until the end).
- Each rate card of each phase is an item, active for its phase's window (clipped to the
  subscription's); an item with an entitlement template has one entitlement with that window.
  Nothing runs at a phase boundary: the next phase's entitlements exist from the start with
  their own windows, so check access needs nothing new.
- The billing anchor is normalised to the last boundary of the billing cadence at or before
  `activeFrom`; the usage periods of the subscription's metered entitlements are anchored on it.
- Timing: `immediate` is now; `next_billing_cycle` the end of the billing period containing
  now; an instant must not be in the past (to the minute).
- A customer has at most one subscription at any instant: a change ends the current one at the
  change's time and starts the next one there.
- Status: scheduled before `activeFrom`; inactive from `activeTo` (and at once for one cancelled
  before it started); canceled while an end is set and not reached; otherwise active.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from allotment.domain.periods import Interval, Recurrence
from allotment.domain.plans import PlanTerms, phase_starts
from allotment.domain.time import truncate_to_minute
from allotment.errors import InvalidInput

SUBSCRIPTION_FIELD = "subscriptionId"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CANCELED = "canceled"
    SCHEDULED = "scheduled"


class TimingPreset(StrEnum):
    IMMEDIATE = "immediate"
    NEXT_BILLING_CYCLE = "next_billing_cycle"


Timing = TimingPreset | datetime


@dataclass(frozen=True)
class PlanReference:
    id: str
    key: str
    version: int


@dataclass(frozen=True)
class Subscription:
    id: str
    customer_id: str
    name: str
    terms: PlanTerms
    billing_anchor: datetime
    active_from: datetime
    created_at: datetime
    updated_at: datetime
    plan: PlanReference | None = None  # None for a custom plan
    phase_ids: tuple[str, ...] = ()  # one per phase of `terms`, for responses
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    active_to: datetime | None = None
    deleted_at: datetime | None = None

    def status(self, now: datetime) -> SubscriptionStatus:
        if self.active_to is not None and self.active_to <= self.active_from:
            return SubscriptionStatus.INACTIVE  # cancelled before it started: it never runs
        if now < self.active_from:
            return SubscriptionStatus.SCHEDULED
        if self.active_to is not None and self.active_to <= now:
            return SubscriptionStatus.INACTIVE
        if self.active_to is not None:
            return SubscriptionStatus.CANCELED
        return SubscriptionStatus.ACTIVE

    def active_at(self, t: datetime) -> bool:
        return self.active_from <= t and (self.active_to is None or t < self.active_to)

    @property
    def billing(self) -> Recurrence:
        return Recurrence(Interval.parse(self.terms.billing_cadence), self.billing_anchor)

    def phase_windows(self) -> list[PhaseWindow]:
        """Each phase's window as the plan lays it out, clipped to the subscription's end."""
        return phase_windows(self.terms, self.active_from, self.active_to)

    @property
    def natural_end(self) -> datetime | None:
        """Where the subscription ends by its plan alone: a last phase with a duration ends it."""
        windows = phase_windows(self.terms, self.active_from, None)
        return windows[-1].end if windows else None


@dataclass(frozen=True)
class PhaseWindow:
    index: int
    start: datetime
    end: datetime | None

    @property
    def is_empty(self) -> bool:
        return self.end is not None and self.end <= self.start


def phase_windows(terms: PlanTerms, start: datetime, end: datetime | None) -> list[PhaseWindow]:
    """Every phase's `[start, end)`, the subscription's `end` clipping them; a phase that
    would start at or after `end` gets an empty window at `end` (it never starts)."""
    starts = phase_starts(terms.phases, start)
    windows = []
    for index, phase_start in enumerate(starts):
        phase_end: datetime | None
        if index + 1 < len(starts):
            phase_end = starts[index + 1]
        elif terms.phases[index].duration is not None:
            duration = terms.phases[index].duration
            assert duration is not None
            phase_end = Interval.parse(duration, field="duration").add(phase_start)
        else:
            phase_end = None
        if end is not None:
            phase_start = min(phase_start, end)
            phase_end = end if phase_end is None else min(phase_end, end)
        windows.append(PhaseWindow(index, phase_start, phase_end))
    return windows


@dataclass(frozen=True)
class SubscriptionItem:
    """One rate card of one phase, with the entitlement it created (if it has a template)."""

    id: str
    subscription_id: str
    phase_index: int
    rate_card_key: str
    active_from: datetime
    created_at: datetime
    updated_at: datetime
    entitlement_id: str | None = None
    active_to: datetime | None = None


def normalised_anchor(cadence: str, anchor: datetime, start: datetime) -> datetime:
    """The billing cadence's last boundary at or before `start`, counted from `anchor`."""
    recurrence = Recurrence(Interval.parse(cadence, field="billingCadence"), anchor)
    return recurrence.period_containing(start).start


def resolve_timing(
    timing: Timing,
    now: datetime,
    billing: Recurrence | None,
    *,
    field: str = "timing",
) -> datetime:
    """The instant a timing means; `billing` None refuses `next_billing_cycle` (a new
    subscription has no billing cycle yet)."""
    if timing is TimingPreset.IMMEDIATE:
        return now
    if timing is TimingPreset.NEXT_BILLING_CYCLE:
        if billing is None:
            raise InvalidInput(
                "a new subscription starts immediately or at a given time", field=field
            )
        return billing.period_containing(now).end
    assert isinstance(timing, datetime)
    if timing < truncate_to_minute(now):
        raise InvalidInput("the time must not be in the past", field=field)
    return max(timing, now)


def starting_phase_terms(
    terms: PlanTerms, starting_phase: str | None, *, field: str = "startingPhase"
) -> PlanTerms:
    """The terms from the named phase on (OpenMeter's `startingPhase`)."""
    if starting_phase is None:
        return terms
    keys = [phase.key for phase in terms.phases]
    if starting_phase not in keys:
        raise InvalidInput(f"the plan has no phase '{starting_phase}'", field=field)
    index = keys.index(starting_phase)
    return PlanTerms(
        name=terms.name,
        currency=terms.currency,
        billing_cadence=terms.billing_cadence,
        phases=terms.phases[index:],
        description=terms.description,
        metadata=terms.metadata,
        alignment=terms.alignment,
        pro_rating_config=terms.pro_rating_config,
        settlement_mode=terms.settlement_mode,
    )


def current_phase(windows: Sequence[PhaseWindow], t: datetime) -> PhaseWindow | None:
    for window in windows:
        if window.start <= t and (window.end is None or t < window.end):
            return window
    return None
