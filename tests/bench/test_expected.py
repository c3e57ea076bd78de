"""The benchmark's expected values: the closed form agrees with the server on entitlements
shaped like the benchmark's (3 grants from the period start), the comparison catches every
wrong field, and the generator's own accounting matches the events it makes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from bench.expected import metered_value, value_mismatch
from bench.scales import TINY
from fastapi.testclient import TestClient

from allotment.api.app import create_app
from allotment.domain.events import Event
from allotment.services import api_keys
from allotment.services import events as events_service
from allotment.services.context import ServiceContext
from allotment.settings import Settings
from allotment.storage import Database
from allotment.storage.migrations import upgrade
from bench import dataset


def test_closed_form_worked_examples() -> None:
    under = metered_value([1000, 500, 250], 1200)
    assert (under.has_access, under.balance, under.overage) == (True, 550, 0)
    assert under.total_available_grant_amount == 1750
    exact = metered_value([1000, 500, 250], 1750)
    assert (exact.has_access, exact.balance, exact.overage) == (False, 0, 0)
    over = metered_value([1000, 500, 250], 2000)
    assert (over.has_access, over.balance, over.overage, over.usage) == (False, 0, 250, 2000)


def test_mismatch_names_each_wrong_field_and_reads_numbers_exactly() -> None:
    expected = metered_value([10], 3)
    good = b'{"hasAccess":true,"balance":7.0,"usage":3,"overage":0,"totalAvailableGrantAmount":10}'
    assert value_mismatch(good, expected) is None
    wrong = b'{"hasAccess":1,"balance":7.000000001,"usage":3,"overage":0}'
    problem = value_mismatch(wrong, expected)
    assert problem is not None
    assert "hasAccess" in problem
    assert "balance" in problem
    assert "totalAvailableGrantAmount" in problem
    assert "usage" not in problem.replace("totalAvailableGrantAmount", "")
    assert value_mismatch(b"<html>", expected) is not None


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, ServiceContext]]:
    url = f"sqlite:///{tmp_path / 'expected.db'}"
    upgrade(url)
    context = ServiceContext(database=Database(url))
    _key, secret = api_keys.create_key(context, "admin", "test")
    with TestClient(
        create_app(Settings(database_url=url)), headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        yield client, context
    context.database.dispose()


@pytest.mark.parametrize(
    ("grants", "usages"),
    [((20_000, 100_000, 1_000), (0, 5_000, 121_000, 150_000)), ((7, 3, 1), (10, 11, 12))],
)
def test_closed_form_matches_the_server(
    app: tuple[TestClient, ServiceContext], grants: tuple[int, int, int], usages: tuple[int, ...]
) -> None:
    client, context = app
    layout = dataset.Layout.now()
    assert client.post("/api/v1/meters", json=dataset.TOKENS_METER).status_code == 201
    feature = {"key": "ai_tokens", "name": "AI", "meterSlug": "tokens"}
    assert client.post("/api/v1/features", json=feature).status_code == 201
    client.post(
        "/api/v1/customers",
        json={"key": "c", "name": "c", "usageAttribution": {"subjectKeys": ["s"]}},
    )
    body = dataset.metered_entitlement("ai_tokens", layout, grants)
    created = client.post("/api/v2/customers/c/entitlements", json=body)
    assert created.status_code == 201, created.text
    used = 0
    for n, usage in enumerate(usages):
        if usage > used:
            at = layout.anchor + timedelta(days=n + 1)
            event = Event(
                id=f"e{n}",
                source="t",
                type="prompt",
                subject="s",
                time=at,
                data={"tokens": usage - used, "model": "m"},
            )
            events_service.ingest(context, [event])
            used = usage
        answer = client.get("/api/v1/customers/c/entitlements/ai_tokens/value")
        assert answer.status_code == 200
        assert value_mismatch(answer.content, metered_value(grants, usage)) is None, answer.text


def test_generator_accounting_counts_each_distinct_event_once() -> None:
    layout = dataset.Layout(
        anchor=datetime(2026, 11, 1, tzinfo=UTC), built_at=datetime(2026, 11, 20, tzinfo=UTC)
    )
    stream = dataset.population_stream(TINY)
    batches, totals = dataset.chunk_events(stream, TINY, layout, 1)
    again, totals_again = dataset.chunk_events(stream, TINY, layout, 1)
    assert batches == again
    assert totals == totals_again
    first, second = batches
    distinct = {(e.source, e.id): e for e in first + second}
    assert len(distinct) == TINY.chunk_events
    retried = len(first) + len(second) - TINY.chunk_events
    assert retried > 0  # the second batch repeats some of the first
    summed: dict[str, dict[str, int]] = {}
    for e in distinct.values():
        assert layout.first_event <= e.time <= layout.last_event
        by_model = summed.setdefault(e.subject, {})
        by_model[e.data["model"]] = by_model.get(e.data["model"], 0) + e.data["tokens"]
    assert summed == totals
    late = [e for e in first + second if e.time < first[0].time]
    assert late  # some events are hours to days older than their batch
    assert sum(Decimal(sum(m.values())) for m in totals.values()) > 0
