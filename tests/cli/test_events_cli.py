"""`allotment events exclude/restore/corrections`: the same repair as the API, from the shell."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient

from allotment.services.context import ServiceContext
from tests.cli.conftest import Cli, error, ok, table_rows
from tests.conftest import SettableClock
from tests.factories import JANUARY, event, make_meter, store_events


def _total(api: TestClient) -> float:
    data = api.get("/api/v1/meters/tokens/query").json()["data"]
    return float(sum(item["value"] for item in data))


def test_exclude_restore_and_the_trail(
    cli: Cli, api: TestClient, context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context)
    store_events(
        context.database,
        [
            event("good", JANUARY, {"tokens": 5, "model": "m"}, source="app"),
            event("spam", JANUARY, {"tokens": 50, "model": "m"}, source="app"),
        ],
    )
    assert _total(api) == 55
    made = json.loads(
        ok(
            cli("events", "exclude", "--source", "app", "--id", "spam", "--reason", "bot", "--json")
        ).stdout
    )
    assert (made["action"], made["eventId"], made["reason"]) == ("exclude", "spam", "bot")
    assert made["apiKeyId"] is None  # made on the server's machine, not with a key
    assert _total(api) == 5

    error(cli("events", "exclude", "--source", "app", "--id", "spam", "--reason", "x"), "conflict")
    error(cli("events", "restore", "--source", "app", "--id", "gone", "--reason", "x"), "not found")

    clock.advance(timedelta(minutes=1))
    ok(cli("events", "restore", "--source", "app", "--id", "spam", "--reason", "was real"))
    assert _total(api) == 55
    rows = table_rows(ok(cli("events", "corrections")).stdout)
    # Newest first: when, action, source, id, subject, reason, by key.
    assert [r[1:] for r in rows] == [
        ["restore", "app", "spam", "acme", "was real", "(CLI)"],
        ["exclude", "app", "spam", "acme", "bot", "(CLI)"],
    ]
