"""Grants, resets, voids and usage arriving at the same moment for one entitlement.

Each round fires them together from threads at a real server. Whatever interleaving happens, the
outcome must be one some serial order could produce: exactly one of two same-minute resets wins,
a grant is voided at most once, a grant or void dated before the reset succeeds only if it ran
before the reset, and the final values equal those of replaying the successful requests one by
one on a twin customer. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from allotment.domain.time import rfc3339
from allotment.ids import new_id
from tests.api.conftest import LiveServer
from tests.api.helpers import cloud_event

T = datetime(2024, 1, 15, 12, tzinfo=UTC)
ROUNDS = 3


class Api:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.server.admin_key}"},
            timeout=60,
        )


def _usage(http: httpx.Client, subject: str, tokens: int, at: datetime) -> httpx.Response:
    event = cloud_event(
        new_id(), source="concurrency", subject=subject, time=rfc3339(at), data={"tokens": tokens}
    )
    return http.post("/api/v1/events", json=event)


def _prepare(http: httpx.Client, customer: str) -> str:
    """A customer with 1000 a month, a 300 grant from Jan 5 and 600 used; returns the id of
    the 300 grant."""
    attribution = {"subjectKeys": [customer]}
    created = http.post(
        "/api/v1/customers",
        json={"key": customer, "name": customer, "usageAttribution": attribution},
    )
    assert created.status_code == 201, created.text
    entitlement = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
        "issueAfterReset": 1000,
    }
    base = f"/api/v2/customers/{customer}/entitlements"
    assert http.post(base, json=entitlement).status_code == 201
    grant = http.post(
        f"{base}/ai_tokens/grants", json={"amount": 300, "effectiveAt": "2024-01-05T00:00:00Z"}
    )
    assert grant.status_code == 201, grant.text
    for tokens, day in ((400, 3), (200, 12)):
        at = datetime(2024, 1, day, tzinfo=UTC)
        assert _usage(http, customer, tokens, at).status_code == 204
    return str(grant.json()["id"])


def _operations(
    customer: str, grant_id: str
) -> dict[str, Callable[[httpx.Client], httpx.Response]]:
    base = f"/api/v2/customers/{customer}/entitlements/ai_tokens"

    def grant(amount: int, effective_at: datetime) -> Callable[[httpx.Client], httpx.Response]:
        body = {"amount": amount, "effectiveAt": rfc3339(effective_at)}
        return lambda http: http.post(f"{base}/grants", json=body)

    def void(at: datetime) -> Callable[[httpx.Client], httpx.Response]:
        return lambda http: http.delete(f"/api/v1/grants/{grant_id}", params={"at": rfc3339(at)})

    def usage(tokens: int, at: datetime) -> Callable[[httpx.Client], httpx.Response]:
        return lambda http: _usage(http, customer, tokens, at)

    return {
        "reset_1": lambda http: http.post(f"{base}/reset", json={}),
        "reset_2": lambda http: http.post(f"{base}/reset", json={}),
        "grant_jan_10": grant(100, datetime(2024, 1, 10, tzinfo=UTC)),
        "grant_jan_14": grant(50, datetime(2024, 1, 14, tzinfo=UTC)),
        "grant_later": grant(70, T + timedelta(hours=1)),
        "void_jan_14": void(datetime(2024, 1, 14, tzinfo=UTC)),
        "void_jan_13": void(datetime(2024, 1, 13, tzinfo=UTC)),
        "usage_jan_11": usage(25, datetime(2024, 1, 11, tzinfo=UTC)),
        "usage_later": usage(35, T + timedelta(minutes=30)),
    }


def _fire_together(
    api: Api, operations: dict[str, Callable[[httpx.Client], httpx.Response]]
) -> dict[str, httpx.Response]:
    barrier = threading.Barrier(len(operations))
    results: dict[str, httpx.Response] = {}
    failures: list[BaseException] = []

    def run(name: str, operation: Callable[[httpx.Client], httpx.Response]) -> None:
        with api.client() as http:
            http.get("/healthz")  # open the connection before the race starts
            barrier.wait()
            try:
                results[name] = operation(http)
            except BaseException as error:  # surfaced below, with the name
                failures.append(error)

    threads = [threading.Thread(target=run, args=item) for item in operations.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    return results


def _values(http: httpx.Client, customer: str) -> list[tuple[Any, ...]]:
    """Balance, usage, overage, total available and the grant balances (by amount, since ids
    differ between twins) at instants on both sides of the reset and the month boundary."""
    base = f"/api/v2/customers/{customer}/entitlements/ai_tokens"
    amounts = {
        g["id"]: g["amount"]
        for g in http.get(f"{base}/grants", params={"includeDeleted": "true"}).json()["items"]
    }
    seen = []
    for at in (
        T - timedelta(minutes=1),
        T,
        T + timedelta(hours=2),
        datetime(2024, 2, 1, tzinfo=UTC),
    ):
        value = http.get(f"{base}/value", params={"time": rfc3339(at)}).json()
        seen.append(
            (
                value["balance"],
                value["usage"],
                value["overage"],
                value["totalAvailableGrantAmount"],
                sorted((amounts[g], b) for g, b in value["grantBalances"].items()),
            )
        )
    return seen


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_writes_equal_a_serial_order(live_server: LiveServer, round_: int) -> None:
    live_server.clock.set(datetime(2024, 1, 5, tzinfo=UTC))
    api = Api(live_server)
    with api.client() as http:
        meter = {
            "slug": "tokens",
            "eventType": "prompt",
            "aggregation": "SUM",
            "valueProperty": "$.tokens",
        }
        assert http.post("/api/v1/meters", json=meter).status_code == 201
        feature = {"key": "ai_tokens", "name": "AI tokens", "meterSlug": "tokens"}
        assert http.post("/api/v1/features", json=feature).status_code == 201
        racing_grant = _prepare(http, "racer")
        twin_grant = _prepare(http, "twin")
    live_server.clock.set(T)

    results = _fire_together(api, _operations("racer", racing_grant))
    status = {name: response.status_code for name, response in results.items()}

    assert sorted((status["reset_1"], status["reset_2"])) == [204, 400], status
    assert [status["void_jan_14"], status["void_jan_13"]].count(204) <= 1, status
    assert (status["grant_later"], status["usage_jan_11"], status["usage_later"]) == (201, 204, 204)
    for name in ("grant_jan_10", "grant_jan_14", "void_jan_14", "void_jan_13"):
        assert status[name] in (201, 204, 400), (name, results[name].text)
        if status[name] == 400:
            # Refused only because a reset (or the other void) got there first, never for
            # anything a serial order would not explain.
            detail = results[name].json()["detail"]
            assert "before the current usage period" in detail or "already voided" in detail

    # The serial order that explains it: everything that succeeded before the reset, then the
    # reset; whatever failed came after it. Replay that on the twin, one request at a time.
    twin = _operations("twin", twin_grant)
    succeeded = [name for name, code in status.items() if code < 300]
    order = [name for name in succeeded if not name.startswith("reset")] + ["reset_1"]
    with api.client() as http:
        for name in order:
            response = twin[name](http)
            assert response.status_code < 300, (name, response.text)
        assert _values(http, "racer") == _values(http, "twin")
