"""The reads the dashboard added: customer search, overview counts, the customers closest to
their limits, an entitlement's resets, and API keys by secret or id."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from allotment.domain.customers import CustomerDetails
from allotment.domain.entitlement_requests import EntitlementRequest
from allotment.domain.entitlements import EntitlementType
from allotment.domain.listing import Window
from allotment.errors import InvalidInput
from allotment.services import (
    api_keys,
    customers,
    entitlement_resets,
    entitlements,
    features,
    meters,
    overview,
)
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from tests.conftest import SettableClock
from tests.factories import (
    event,
    make_customer,
    make_feature,
    make_meter,
    metered,
    send_usage,
    store_events,
)


def _customer(
    context: ServiceContext,
    name: str,
    key: str,
    email: str | None = None,
    subjects: tuple[str, ...] = (),
) -> str:
    return customers.create_customer(
        context, CustomerDetails(name=name, key=key, primary_email=email, subject_keys=subjects)
    ).id


def test_search_matches_name_key_email_or_subject_in_any_case(context: ServiceContext) -> None:
    _customer(context, "ACME Inc.", "acme", "ops@acme.example")
    _customer(context, "Globex", "globex", subjects=("glx-eu", "ACME-reseller"))
    _customer(context, "Initech", "initech", "billing@initech.example")

    def names(text: str, window: Window = Window()) -> list[str]:
        return [c.name for c in customers.search_customers(context, text, window).items]

    assert names("acme") == ["ACME Inc.", "Globex"]  # Globex by its subject key
    assert names("INITECH.EXAMPLE") == ["Initech"]
    assert names("glx") == ["Globex"]
    assert names("  ") == ["ACME Inc.", "Globex", "Initech"]
    assert names("%") == [] and names("_") == []  # wildcards are matched literally
    page = customers.search_customers(context, "", Window(offset=1, limit=1))
    assert [c.name for c in page.items] == ["Globex"] and page.total_count == 3
    with pytest.raises(InvalidInput):
        customers.search_customers(context, "a\x00", Window())


def test_counts_are_of_live_things_and_todays_events(
    context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context)
    make_meter(context, "old", deleted=True)
    make_feature(context)
    archived = make_feature(context, "gone", meter_slug=None)
    features.archive_feature(context, archived)
    make_customer(context)
    entitlements.create_entitlement(context, CustomerOwner("acme"), metered(issue_after_reset=10))
    midnight = clock().replace(hour=0, minute=0)
    # Received a minute before midnight (yesterday), at midnight and now: two today.
    for number, received in enumerate((midnight - timedelta(minutes=1), midnight, clock())):
        store_events(context.database, [event(f"e{number}", received, {"tokens": 1})], received)
    counts = overview.counts(context)
    assert (counts.meters, counts.features, counts.customers, counts.entitlements) == (1, 1, 1, 1)
    assert counts.events_today == 2 and counts.today_starts == midnight
    assert len(meters.list_meters(context, include_deleted=True)) == 2


def test_the_closest_to_their_limits_come_first_and_over_limit_before_all(
    context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context)
    make_feature(context)
    make_feature(context, "sso", meter_slug=None)
    usage = {"light": 100, "heavy": 900, "over": 1_500, "idle": 0}
    for key, tokens in usage.items():
        make_customer(context, key, (key,))
        entitlements.create_entitlement(
            context,
            CustomerOwner(key),
            metered(issue_after_reset=1_000, anchor=clock() - timedelta(days=1)),
        )
        if tokens:
            send_usage(context, tokens, clock() - timedelta(hours=1), subject=key)
    entitlements.create_entitlement(
        context,
        CustomerOwner("idle"),
        EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="sso"),
    )
    standings = overview.closest_to_limits(context, limit=3)
    assert [s.customer.key for s in standings.closest] == ["over", "heavy", "light"]
    assert standings.closest[0].is_over and standings.closest[0].value.overage == Decimal(500)
    assert standings.closest[1].used_share == Decimal("0.9")
    assert (standings.checked, standings.total) == (4, 4)  # the boolean one is not metered


def test_resets_are_listed_oldest_first(context: ServiceContext, clock: SettableClock) -> None:
    make_meter(context)
    make_feature(context)
    make_feature(context, "sso", meter_slug=None)
    make_customer(context)
    owner = CustomerOwner("acme")
    entitlements.create_entitlement(context, owner, metered(issue_after_reset=10))
    entitlements.create_entitlement(
        context, owner, EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="sso")
    )
    assert entitlement_resets.list_resets(context, owner, "ai_tokens") == []
    first = clock()
    entitlement_resets.reset_entitlement(context, owner, "ai_tokens")
    clock.advance(timedelta(hours=1))
    entitlement_resets.reset_entitlement(context, owner, "ai_tokens", retain_anchor=True)
    resets = entitlement_resets.list_resets(context, owner, "ai_tokens")
    assert [r.at for r in resets] == [first, first + timedelta(hours=1)]
    assert resets[1].anchor == first  # the second kept the anchor the first set
    with pytest.raises(InvalidInput):
        entitlement_resets.list_resets(context, owner, "sso")


def test_keys_are_identified_by_secret_even_when_revoked_and_found_by_id(
    context: ServiceContext,
) -> None:
    key, secret = api_keys.create_key(context, "read", "support")
    assert api_keys.identify(context, secret) == key
    assert api_keys.identify(context, secret + "x") is None
    api_keys.revoke_key(context, key.id)
    revoked = api_keys.identify(context, secret)
    assert revoked is not None and not revoked.is_active
    assert api_keys.get_key(context, key.id) == revoked
    assert api_keys.get_key(context, "nope") is None
    assert api_keys.get_key(context, "a\x00") is None
