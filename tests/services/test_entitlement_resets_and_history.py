"""Manual resets (anchor, preserved overage, validation) and balance history, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementType
from allotment.domain.grant_requests import GrantDefaults
from allotment.errors import InvalidInput
from allotment.services import (
    entitlement_history,
    entitlement_resets,
    entitlement_values,
    entitlements,
    grants,
)
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock
from tests.factories import ACME, grant, make_feature, metered, send_usage

NOW = datetime(2024, 1, 15, 12, tzinfo=UTC)


def _state(context: ServiceContext) -> tuple[object, ...]:
    value = entitlement_values.entitlement_value(context, ACME, "ai_tokens")
    return (value.balance, value.usage, value.overage)


def test_reset_moves_the_anchor_unless_retained(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=1_000))
    send_usage(setup, 300, datetime(2024, 1, 10, tzinfo=UTC))
    assert _state(setup) == (700, 300, 0)

    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens")
    assert _state(setup) == (1_000, 0, 0)
    view = entitlements.get_entitlement(setup, ACME, "ai_tokens")
    assert view.last_reset == NOW
    assert view.current_usage_period is not None
    assert (view.current_usage_period.start, view.current_usage_period.end) == (
        NOW,
        datetime(2024, 2, 15, 12, tzinfo=UTC),
    )
    # The response keeps showing the original anchor.
    assert view.entitlement.usage_period is not None
    assert view.entitlement.usage_period.anchor == datetime(2024, 1, 1, tzinfo=UTC)

    clock.set(datetime(2024, 1, 20, 8, 30, 40, tzinfo=UTC))
    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens", retain_anchor=True)
    view = entitlements.get_entitlement(setup, ACME, "ai_tokens")
    assert view.current_usage_period is not None
    assert (view.current_usage_period.start, view.current_usage_period.end) == (
        datetime(2024, 1, 20, 8, 30, tzinfo=UTC),
        datetime(2024, 2, 15, 12, tzinfo=UTC),
    )


def test_preserved_overage_is_burnt_from_the_rolled_over_balance(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=100))
    send_usage(setup, 130, datetime(2024, 1, 10, tzinfo=UTC))
    assert _state(setup) == (0, 130, 30)

    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens", preserve_overage=True)
    assert _state(setup) == (70, 0, 0)

    # Forgiven (the entitlement's default): back at the full 100.
    send_usage(setup, 150, datetime(2024, 1, 15, 13, tzinfo=UTC))
    clock.set(datetime(2024, 1, 16, tzinfo=UTC))
    assert _state(setup) == (0, 150, 80)
    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens")
    assert _state(setup) == (100, 0, 0)


def test_preserve_overage_at_reset_applies_at_period_boundaries(setup: ServiceContext) -> None:
    entitlements.create_entitlement(
        setup, ACME, metered(issue_after_reset=100, preserve_overage_at_reset=True)
    )
    send_usage(setup, 130, datetime(2024, 1, 10, tzinfo=UTC))
    february = entitlement_values.entitlement_value(
        setup, ACME, "ai_tokens", datetime(2024, 2, 1, tzinfo=UTC)
    )
    assert (february.balance, february.usage, february.overage) == (70, 0, 0)


def test_reset_validation(setup: ServiceContext, clock: SettableClock) -> None:
    make_feature(setup, "saml_sso", meter_slug=None)
    entitlements.create_entitlement(
        setup, ACME, EntitlementRequest(EntitlementType.BOOLEAN, "saml_sso")
    )
    entitlements.create_entitlement(setup, ACME, metered())

    def refused(**arguments: object) -> InvalidInput:
        with pytest.raises(InvalidInput) as error:
            entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens", **arguments)  # type: ignore[arg-type]
        return error.value

    future = refused(effective_at=NOW + timedelta(seconds=1))
    assert (future.field, "future" in future.message) == ("effectiveAt", True)
    before_period = refused(effective_at=datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    assert (before_period.field, "before the current usage period" in before_period.message) == (
        "effectiveAt",
        True,
    )
    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens", effective_at=NOW)
    clock.set(NOW + timedelta(seconds=40))
    same_minute = refused()
    assert (same_minute.field, "after the last reset" in same_minute.message) == (
        "effectiveAt",
        True,
    )
    with pytest.raises(InvalidInput) as boolean:
        entitlement_resets.reset_entitlement(setup, ACME, "saml_sso")
    assert boolean.value.field == "entitlementIdOrFeatureKey"


def test_a_reset_exactly_at_a_period_boundary_is_allowed(
    setup: ServiceContext, clock: SettableClock
) -> None:
    entitlements.create_entitlement(setup, ACME, metered(issue_after_reset=10))
    clock.set(datetime(2024, 2, 1, tzinfo=UTC))
    entitlement_resets.reset_entitlement(setup, ACME, "ai_tokens")
    assert entitlements.get_entitlement(setup, ACME, "ai_tokens").last_reset == clock()


def test_history_adds_up(setup: ServiceContext, clock: SettableClock) -> None:
    entitlements.create_entitlement(
        setup, ACME, metered(measure_usage_from=MeasureUsageFromPreset.NOW)
    )
    first = grants.create_grant(setup, ACME, "ai_tokens", grant(1_000, NOW), GrantDefaults.V2)
    second = grants.create_grant(
        setup,
        ACME,
        "ai_tokens",
        grant(500, datetime(2024, 1, 15, 15, tzinfo=UTC)),
        GrantDefaults.V2,
    )
    send_usage(setup, 100, datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    send_usage(setup, 200, datetime(2024, 1, 15, 14, 10, tzinfo=UTC))
    send_usage(setup, 50, datetime(2024, 1, 15, 16, 5, tzinfo=UTC))
    clock.set(datetime(2024, 1, 15, 17, tzinfo=UTC))

    history = entitlement_history.entitlement_history(setup, ACME, "ai_tokens", window_size="HOUR")

    rows = [(w.period.start.hour, w.usage, w.balance_at_start) for w in history.windows]
    assert rows == [(12, 100, 1000), (13, 0, 900), (14, 200, 900), (15, 0, 1200), (16, 50, 1200)]
    segments = [
        (s.period.start.hour, s.period.end.hour, s.usage, s.balance_at_start, s.balance_at_end)
        for s in history.segments
    ]
    assert segments == [(12, 15, 300, 1000, 700), (15, 17, 50, 1200, 1150)]
    assert history.segments[1].grant_balances_at_start == {
        first.grant.id: 700,
        second.grant.id: 500,
    }
    # Each window's start balance minus its usage is the next one's, except across the grant.
    for this, following in zip(history.windows, history.windows[1:], strict=False):
        if following.period.start.hour != 15:
            assert this.balance_at_start - this.usage == following.balance_at_start


def test_history_validation(setup: ServiceContext) -> None:
    entitlements.create_entitlement(setup, ACME, metered())
    cases = {
        "from": {"start": datetime(2023, 12, 1, tzinfo=UTC)},
        "windowSize": {"window_size": "WEEK"},
        "windowTimeZone": {"time_zone": "Mars/Olympus_Mons"},
        "to": {"end": datetime(2023, 12, 1, tzinfo=UTC)},
    }
    for field, arguments in cases.items():
        options = {"window_size": "DAY", **arguments}
        with pytest.raises(InvalidInput) as refused:
            entitlement_history.entitlement_history(setup, ACME, "ai_tokens", **options)  # type: ignore[arg-type]
        assert refused.value.field == field
