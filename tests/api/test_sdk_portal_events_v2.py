"""The official OpenMeter Python SDK against a running Allotment: `events_v2.list` (following
the cursor) and the customer portal (`portal.portal_tokens`, `portal.portal_meters`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from corehttp.exceptions import ClientAuthenticationError
from openmeter import Client
from openmeter.models import Event, MeterCreate, PortalToken

from tests.api.conftest import LiveServer


def _prompt(event_id: str, subject: str, hour: int, tokens: int) -> Event:
    return Event(
        id=event_id,
        source="sdk-test",
        type="prompt",
        subject=subject,
        time=datetime(2024, 1, 15, hour, tzinfo=UTC),
        data={"tokens": tokens},
    )


@pytest.fixture
def usage(sdk: Client) -> Client:
    sdk.meters.create(
        MeterCreate(
            slug="tokens", aggregation="SUM", event_type="prompt", value_property="$.tokens"
        )
    )
    sdk.events.ingest_events(
        [_prompt(f"e{i}", "acme" if i % 3 else "globex", 8 + i % 4, 10 * i) for i in range(7)]
    )
    return sdk


def test_events_v2_list_follows_the_cursor_with_its_filter(usage: Client) -> None:
    every = list(usage.events_v2.list(limit=2))
    assert len(every) == 7
    times = [item.event.time for item in every]
    assert times == sorted(times, reverse=True)
    acme = list(usage.events_v2.list(limit=2, filter={"subject": {"$eq": "acme"}}))
    assert sorted(item.event.id for item in acme) == ["e1", "e2", "e4", "e5"]


def test_a_portal_token_from_the_sdk_queries_its_subject(
    usage: Client, live_server: LiveServer
) -> None:
    token = usage.portal.portal_tokens.create(
        PortalToken(subject="acme", allowed_meter_slugs=["tokens"])
    )
    assert token.token and token.id and token.expires_at is not None
    listed = usage.portal.portal_tokens.list(limit=10)
    assert [t.id for t in listed] == [token.id] and listed[0].token is None

    customer = Client(endpoint=live_server.url, token=token.token)
    result = customer.portal.portal_meters.query_json("tokens")
    assert [(row.subject, row.value) for row in result.data] == [("acme", 120)]
    csv = customer.portal.portal_meters.query_csv("tokens")
    assert "acme" in csv and "globex" not in csv

    usage.portal.portal_tokens.invalidate(id=token.id)
    with pytest.raises(ClientAuthenticationError):
        customer.portal.portal_meters.query_json("tokens")
    # The portal token was never an API key.
    with pytest.raises(ClientAuthenticationError):
        customer.meters.list()
