"""Random histories of usage, grants, voids and resets, driven through the HTTP API and checked
against the naive minute-by-minute model of the credit rules (`tests/domain/reference_model.py`).

The domain suite checks the engine against the same model; this checks everything around it:
storage round trips, the usage queries on each database, late events, the per-entitlement
write path and the wire format. Each example uses its own meter, feature and customer, so
examples share the database without seeing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allotment.domain.time import rfc3339
from tests.conftest import SettableClock
from tests.domain.reference_model import NaiveGrant, NaiveReset, NaiveScenario, simulate

START = datetime(2024, 3, 1, tzinfo=UTC)
PERIOD_MINUTES = 120
_example_numbers = count()


@dataclass(frozen=True)
class UsageStep:
    minutes_ago: int  # how far before "now" the event is stamped (late events included)
    tenths: int  # tokens in tenths: decimal usage must burn exactly, never as binary floats


@dataclass(frozen=True)
class GrantStep:
    amount: int
    priority: int
    delay_minutes: int  # effectiveAt = now + delay (grants may start in the future)
    expires_in_hours: int | None
    max_rollover: int | None
    min_rollover: int | None


@dataclass(frozen=True)
class VoidStep:
    pick: int  # which live grant, modulo their number


@dataclass(frozen=True)
class ResetStep:
    retain_anchor: bool
    preserve_overage: bool


Step = UsageStep | GrantStep | VoidStep | ResetStep


@dataclass(frozen=True)
class History:
    issue_after_reset: int | None
    preserve_overage_at_reset: bool
    steps: list[tuple[int, Step]]  # (minutes the clock moves first, what happens then)


@dataclass
class Model:
    grants: list[NaiveGrant] = field(default_factory=list)
    usage: dict[datetime, Decimal] = field(default_factory=dict)
    resets: list[NaiveReset] = field(default_factory=list)


steps = st.one_of(
    st.builds(UsageStep, st.integers(0, 300), st.integers(0, 600)),
    st.builds(
        GrantStep,
        st.integers(1, 150),
        st.integers(1, 3),
        st.integers(0, 40),
        st.none() | st.integers(1, 4),
        st.none() | st.integers(0, 150),
        st.none() | st.integers(0, 50),
    ),
    st.builds(VoidStep, st.integers(0, 10)),
    st.builds(ResetStep, st.booleans(), st.booleans()),
)
histories = st.builds(
    History,
    st.none() | st.integers(1, 200),
    st.booleans(),
    st.lists(st.tuples(st.integers(1, 90), steps), min_size=1, max_size=14),
)


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _value(client: TestClient, customer: str, at: datetime) -> dict[str, Any]:
    response = client.get(
        f"/api/v2/customers/{customer}/entitlements/ai_tokens/value", params={"time": rfc3339(at)}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _replay(client: TestClient, clock: SettableClock, history: History, suffix: str) -> Model:
    customer = f"c{suffix}"
    meter = {"slug": f"tokens_{suffix}", "eventType": f"prompt_{suffix}", "aggregation": "SUM"}
    meter["valueProperty"] = "$.tokens"
    assert client.post("/api/v1/meters", json=meter).status_code == 201
    feature = {"key": "ai_tokens", "name": "AI tokens", "meterSlug": meter["slug"]}
    # Feature keys are unique among live features: archive the previous example's first.
    client.delete("/api/v1/features/ai_tokens")
    assert client.post("/api/v1/features", json=feature).status_code == 201
    assert (
        client.post("/api/v1/customers", json={"key": customer, "name": customer}).status_code
        == 201
    )

    clock.set(START)
    entitlement: dict[str, Any] = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": f"PT{PERIOD_MINUTES // 60}H", "anchor": rfc3339(START)},
        "measureUsageFrom": rfc3339(START),
        "preserveOverageAtReset": history.preserve_overage_at_reset,
    }
    model = Model()
    if history.issue_after_reset is not None:
        entitlement["issueAfterReset"] = history.issue_after_reset
    created = client.post(f"/api/v2/customers/{customer}/entitlements", json=entitlement)
    assert created.status_code == 201, created.text
    if history.issue_after_reset is not None:
        [default] = client.get(
            f"/api/v2/customers/{customer}/entitlements/ai_tokens/grants"
        ).json()["items"]
        amount = Decimal(history.issue_after_reset)
        model.grants.append(
            NaiveGrant(
                id=default["id"],
                amount=amount,
                priority=1,
                effective=START,
                created=datetime.fromisoformat(default["createdAt"]),
                min_rollover=amount,
                max_rollover=amount,
            )
        )

    events = count()
    for advance, step in history.steps:
        clock.advance(timedelta(minutes=advance))
        now = _minute(clock())
        if isinstance(step, UsageStep):
            stamped = max(START, now - timedelta(minutes=step.minutes_ago))
            event = {
                "specversion": "1.0",
                "id": f"{suffix}-{next(events)}",
                "source": "random-history",
                "type": f"prompt_{suffix}",
                "subject": customer,
                "time": rfc3339(stamped + timedelta(seconds=17)),
                "data": {"tokens": step.tenths / 10},
            }
            assert client.post("/api/v1/events", json=event).status_code == 204
            tokens = Decimal(step.tenths) / 10
            model.usage[stamped] = model.usage.get(stamped, Decimal(0)) + tokens
        elif isinstance(step, GrantStep):
            effective = now + timedelta(minutes=step.delay_minutes)
            body: dict[str, Any] = {
                "amount": step.amount,
                "priority": step.priority,
                "effectiveAt": rfc3339(effective),
            }
            if step.expires_in_hours is not None:
                body["expiration"] = {"duration": "HOUR", "count": step.expires_in_hours}
            if step.max_rollover is not None:
                body["maxRolloverAmount"] = step.max_rollover
            if step.min_rollover is not None:
                body["minRolloverAmount"] = step.min_rollover
            response = client.post(
                f"/api/v2/customers/{customer}/entitlements/ai_tokens/grants", json=body
            )
            assert response.status_code == 201, response.text
            grant = response.json()
            expires = (
                effective + timedelta(hours=step.expires_in_hours)
                if step.expires_in_hours is not None
                else None
            )
            model.grants.append(
                NaiveGrant(
                    id=grant["id"],
                    amount=Decimal(step.amount),
                    priority=step.priority,
                    effective=effective,
                    created=datetime.fromisoformat(grant["createdAt"]),
                    expires=expires,
                    # v2 defaults: keep up to the whole amount at a reset, from zero.
                    max_rollover=Decimal(
                        step.amount if step.max_rollover is None else step.max_rollover
                    ),
                    min_rollover=Decimal(step.min_rollover or 0),
                )
            )
        elif isinstance(step, VoidStep):
            live = [g for g in model.grants if g.voided is None]
            if not live:
                continue
            target = live[step.pick % len(live)]
            response = client.delete(f"/api/v1/grants/{target.id}", params={"at": rfc3339(now)})
            assert response.status_code == 204, response.text
            model.grants[model.grants.index(target)] = NaiveGrant(
                **{**target.__dict__, "voided": now}
            )
        else:
            last = model.resets[-1].at if model.resets else START
            if now <= last:
                continue
            response = client.post(
                f"/api/v2/customers/{customer}/entitlements/ai_tokens/reset",
                json={
                    "effectiveAt": rfc3339(now),
                    "retainAnchor": step.retain_anchor,
                    "preserveOverage": step.preserve_overage,
                },
            )
            assert response.status_code == 204, response.text
            model.resets.append(NaiveReset(now, step.retain_anchor, step.preserve_overage))
    return model


@settings(
    # A dozen per database in `make test`; raise it for a deep run.
    max_examples=int(os.environ.get("ALLOTMENT_RANDOM_HISTORY_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_api_balances_match_the_naive_model(
    client: TestClient, clock: SettableClock, history: History
) -> None:
    suffix = str(next(_example_numbers))
    model = _replay(client, clock, history, suffix)
    end = _minute(clock())
    scenario = NaiveScenario(
        start=START,
        period_minutes=PERIOD_MINUTES,
        period_anchor=START,
        grants=model.grants,
        usage=model.usage,
        resets=model.resets,
        preserve_default=history.preserve_overage_at_reset,
    )
    # Every step's instant, the end, and a few instants in between: past reads see the past.
    instants = {START, end, *(START + (end - START) * k / 7 for k in range(1, 7))}
    for at in sorted(_minute(t) for t in instants):
        expected = simulate(scenario, at)
        balance = sum(expected.balances.values(), Decimal(0))
        value = _value(client, f"c{suffix}", at)
        assert Decimal(str(value["balance"])) == balance, (at, value, expected)
        assert Decimal(str(value["overage"])) == expected.overage, (at, value, expected)
        assert Decimal(str(value["usage"])) == expected.period_usage, (at, value, expected)
        assert Decimal(str(value["totalAvailableGrantAmount"])) == (
            expected.period_grant_usage + balance
        ), (at, value, expected)
        assert value["hasAccess"] is (balance > 0)
