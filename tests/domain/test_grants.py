"""Grant value object: activity window, rollover, recurrences, validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from allotment.domain.grant_requests import GrantDefaults, GrantRequest, new_grant
from allotment.domain.grants import Grant, validate_new_grant, validate_void
from allotment.domain.periods import Interval, Recurrence
from allotment.errors import InvalidInput
from tests.domain.helpers import T0, at, every, grant


def test_a_grant_is_active_from_effective_at_until_the_earlier_of_expiry_and_void() -> None:
    g = grant("g", 10, effective_at=at(hours=1), expires_at=at(hours=5), voided_at=at(hours=3))
    assert g.active_until == at(hours=3)
    assert not g.active_at(at(hours=1) - timedelta(minutes=1))
    assert g.active_at(at(hours=1))
    assert g.active_at(at(hours=3) - timedelta(minutes=1))
    assert not g.active_at(at(hours=3))


def test_a_grant_voided_before_it_starts_is_never_active() -> None:
    g = grant("g", 10, effective_at=at(hours=2), voided_at=at(hours=1))
    assert not any(g.active_at(at(minutes=m)) for m in range(0, 300, 7))


def test_engine_instants_are_floored_but_creation_time_is_kept() -> None:
    g = grant(
        "g",
        10,
        effective_at=T0 + timedelta(seconds=59),
        expires_at=at(hours=1, minutes=0.5),
        created_at=T0 + timedelta(seconds=1.5),
    )
    assert g.effective_at == T0
    assert g.expires_at == at(hours=1)
    assert g.created_at == T0 + timedelta(seconds=1.5)


@pytest.mark.parametrize(
    ("minimum", "maximum", "balance", "kept"),
    [
        (0, 50, 90, 50),  # capped
        (0, 50, 10, 10),
        (30, 100, 10, 30),  # topped up to the minimum
        (0, 0, 90, 0),  # v1 default: nothing carries
        (80, 50, 10, 50),  # min > max: max wins (min applied first)
        (0, -5, 90, 0),  # a negative maximum keeps nothing (no grant balance is negative)
        (-20, 100, 90, 90),  # a negative minimum is no floor
        (-20, -10, 90, 0),
    ],
)
def test_rollover_is_min_max_of_balance_and_min(
    minimum: int, maximum: int, balance: int, kept: int
) -> None:
    g = grant("g", 100, min_rollover=minimum, max_rollover=maximum)
    assert g.rollover(Decimal(balance)) == kept


def test_recurrences_only_fall_inside_the_active_window() -> None:
    g = grant(
        "g",
        10,
        effective_at=at(hours=1),
        expires_at=at(days=3, hours=1),
        recurrence=every("DAY", at(hours=1)),
    )
    assert g.recurrences_between(T0, at(days=10)) == [
        at(hours=1),
        at(days=1, hours=1),
        at(days=2, hours=1),
    ]
    assert g.recurrences_between(at(days=1, hours=1), at(days=2, hours=1)) == [at(days=2, hours=1)]
    assert grant("plain", 10).recurrences_between(T0, at(days=10)) == []


def test_a_grant_refuses_nonsense_amounts() -> None:
    with pytest.raises(ValueError, match="positive"):
        grant("g", 0)
    with pytest.raises(TypeError, match="Decimal"):
        Grant(id="g", amount=0.1, priority=1, effective_at=T0, created_at=T0)  # type: ignore[arg-type]


class TestValidateNewGrant:
    period_start = datetime(2024, 1, 1, tzinfo=UTC)

    def test_accepts_a_backdated_grant_inside_the_period_and_floors_it(self) -> None:
        effective = self.period_start + timedelta(hours=1, seconds=30)
        assert validate_new_grant(effective, self.period_start) == self.period_start + timedelta(
            hours=1
        )

    def test_accepts_a_future_grant(self) -> None:
        later = self.period_start + timedelta(days=90)
        assert validate_new_grant(later, self.period_start) == later

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"effective_at": datetime(2023, 12, 31, 23, 59, tzinfo=UTC)}, "effectiveAt"),
            ({"priority": 0}, "priority"),
            ({"priority": 256}, "priority"),
            ({"recurrence": Recurrence(Interval.parse("PT30M"), T0)}, "recurrence.interval"),
        ],
    )
    def test_rejects_with_the_field_name(self, kwargs: dict[str, object], field: str) -> None:
        arguments: dict[str, object] = {
            "effective_at": self.period_start,
            "current_period_start": self.period_start,
        }
        arguments.update(kwargs)
        with pytest.raises(InvalidInput) as raised:
            validate_new_grant(**arguments)  # type: ignore[arg-type]
        assert raised.value.field == field

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"amount": Decimal(0)}, "amount"),
            ({"amount": Decimal("-1")}, "amount"),
            ({"amount": Decimal("NaN")}, "amount"),
            ({"min_rollover_amount": Decimal("NaN")}, "minRolloverAmount"),
            ({"max_rollover_amount": Decimal("-1e30")}, "maxRolloverAmount"),
        ],
    )
    def test_a_request_with_a_bad_amount_is_refused_with_the_field_name(
        self, kwargs: dict[str, object], field: str
    ) -> None:
        request = GrantRequest(amount=Decimal(10), effective_at=self.period_start)
        with pytest.raises(InvalidInput) as raised:
            new_grant(
                replace(request, **kwargs),  # type: ignore[arg-type]
                grant_id="g",
                entitlement_id="e",
                current_period_start=self.period_start,
                now=self.period_start,
                defaults=GrantDefaults.V2,
            )
        assert raised.value.field == field


class TestValidateVoid:
    period_start = datetime(2024, 1, 1, tzinfo=UTC)
    now = datetime(2024, 1, 10, 12, 0, 30, tzinfo=UTC)

    def test_accepts_now_and_earlier_in_the_period(self) -> None:
        g = grant("g", 10)
        assert validate_void(g, self.now, self.now, self.period_start) == datetime(
            2024, 1, 10, 12, tzinfo=UTC
        )
        assert validate_void(g, self.period_start, self.now, self.period_start) == self.period_start

    def test_rejects_a_second_void(self) -> None:
        g = grant("g", 10, voided_at=datetime(2024, 1, 5, tzinfo=UTC))
        with pytest.raises(InvalidInput, match="already voided") as raised:
            validate_void(g, self.now, self.now, self.period_start)
        assert raised.value.field == "grantId"

    @pytest.mark.parametrize(
        "when",
        [datetime(2024, 1, 10, 12, 1, tzinfo=UTC), datetime(2023, 12, 31, 23, 59, tzinfo=UTC)],
    )
    def test_rejects_future_and_closed_period_voids(self, when: datetime) -> None:
        with pytest.raises(InvalidInput) as raised:
            validate_void(grant("g", 10), when, self.now, self.period_start)
        assert raised.value.field == "at"
