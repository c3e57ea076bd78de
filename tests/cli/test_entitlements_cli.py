"""`allotment entitlements|grants|access`: the announcement scenario through the CLI, on SQLite
and PostgreSQL, with the same numbers and JSON shapes as the API, and plain-word errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from allotment.cli.main import app
from allotment.services.context import ServiceContext
from tests.cli.conftest import Cli, as_json, error, ok, row, table_rows
from tests.conftest import SettableClock
from tests.factories import make_customer, make_feature, make_meter, send_usage

CONFIG = '{"allowed": ["gpt-4o-mini"]}'


@pytest.fixture
def acme(context: ServiceContext) -> ServiceContext:
    """Meter `tokens`, features ai_tokens (metered), saml_sso and models, customer acme."""
    make_meter(context)
    make_feature(context)
    make_feature(context, "saml_sso", meter_slug=None)
    make_feature(context, "models", meter_slug=None)
    make_customer(context)
    return context


def value(cli: Cli, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = as_json(
        cli("entitlements", "value", "acme", "ai_tokens", *extra, "--json")
    )
    return result


def test_announcement_scenario(
    cli: Cli, acme: ServiceContext, clock: SettableClock, api: TestClient
) -> None:
    # 4. a metered entitlement: a monthly allowance of 10 million tokens
    created = as_json(
        cli(
            "entitlements", "create", "acme", "ai_tokens", "--type", "metered",
            "--interval", "MONTH", "--anchor", "2024-01-01T00:00:00Z",
            "--issue-after-reset", "10_000_000", "--json",
        )
    )  # fmt: skip
    assert created == {
        "id": created["id"],
        "type": "metered",
        "featureId": created["featureId"],
        "featureKey": "ai_tokens",
        "customerId": created["customerId"],
        "customerKey": "acme",
        "activeFrom": "2024-01-15T12:00:00Z",
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
        "currentUsagePeriod": {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"},
        "usagePeriod": {
            "interval": "MONTH",
            "intervalISO": "P1M",
            "anchor": "2024-01-01T00:00:00Z",
        },
        "isSoftLimit": False,
        "preserveOverageAtReset": False,
        "issueAfterReset": 10_000_000,
        "issueAfterResetPriority": 1,
        "lastReset": "2024-01-01T00:00:00Z",
        "measureUsageFrom": "2024-01-01T00:00:00Z",
        "issue": {"amount": 10_000_000, "priority": 1},
    }
    # Scripts can switch between the CLI and the API: same fields, same values.
    assert created == api.get("/api/v2/customers/acme/entitlements/ai_tokens").json()
    assert as_json(cli("entitlements", "get", "acme", created["id"], "--json")) == created

    # 5. check access
    (allowance_id,) = value(cli)["grantBalances"]
    assert value(cli) == {
        "hasAccess": True,
        "balance": 10_000_000,
        "usage": 0,
        "overage": 0,
        "totalAvailableGrantAmount": 10_000_000,
        "grantBalances": {allowance_id: 10_000_000},
    }
    assert value(cli) == api.get("/api/v2/customers/acme/entitlements/ai_tokens/value").json()

    # 6. usage: 9,999,000 tokens leave 1,000; 2,000 more run 1,000 over
    send_usage(acme, 9_999_000, datetime(2024, 1, 15, 10, tzinfo=UTC))
    assert (value(cli)["balance"], value(cli)["usage"], value(cli)["hasAccess"]) == (
        1_000, 9_999_000, True,
    )  # fmt: skip
    send_usage(acme, 2_000, datetime(2024, 1, 15, 11, tzinfo=UTC))
    over = value(cli)
    assert (over["hasAccess"], over["balance"], over["overage"], over["usage"]) == (
        False, 0, 1_000, 10_001_000,
    )  # fmt: skip
    table = ok(cli("entitlements", "value", "acme", "ai_tokens")).stdout
    assert row(table, "has access")[1] == "no"
    assert row(table, "usage")[1] == "10,001,000"
    assert row(table, "overage")[1] == "1,000"

    # 7. a top-up of 500,000 that expires in a month pays off the overage first
    top_up = as_json(
        cli("grants", "create", "acme", "ai_tokens", "--amount", "500000",
            "--expires-in", "1 MONTH", "--json")
    )  # fmt: skip
    assert top_up == {
        "id": top_up["id"],
        "entitlementId": created["id"],
        "amount": 500_000,
        "priority": 1,
        "effectiveAt": "2024-01-15T12:00:00Z",
        "expiration": {"duration": "MONTH", "count": 1},
        "expiresAt": "2024-02-15T12:00:00Z",
        # v2 defaults, which the CLI uses: keep up to the whole amount at a reset
        "maxRolloverAmount": 500_000,
        "minRolloverAmount": 0,
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    topped = value(cli)
    assert (topped["hasAccess"], topped["balance"], topped["overage"]) == (True, 499_000, 0)
    assert topped["grantBalances"] == {allowance_id: 0, top_up["id"]: 499_000}
    assert [g["id"] for g in api.get("/api/v2/customers/acme/entitlements/ai_tokens/grants")
            .json()["items"]] == [allowance_id, top_up["id"]]  # fmt: skip
    # Customer and feature are fixed by the arguments, so the table leaves them out.
    assert table_rows(ok(cli("grants", "list", "acme", "ai_tokens")).stdout) == [
        ["10,000,000", "1", "2024-01-01T00:00:00Z → never", "10,000,000", "active",
         allowance_id],
        ["500,000", "1", "2024-01-15T12:00:00Z → 2024-02-15T12:00:00Z", "0 to 500,000",
         "active", top_up["id"]],
    ]  # fmt: skip

    # 8. at the month boundary the allowance is back; the top-up keeps its 499,000
    february = value(cli, "--at", "2024-02-01T00:00:00Z")
    assert (february["balance"], february["usage"], february["overage"]) == (10_499_000, 0, 0)
    assert february["grantBalances"] == {allowance_id: 10_000_000, top_up["id"]: 499_000}

    # 9. a boolean and a static entitlement show in the access table with the metered one
    ok(cli("entitlements", "create", "acme", "saml_sso", "--type", "boolean"))
    ok(cli("entitlements", "create", "acme", "models", "--type", "static", "--config", CONFIG))
    static = as_json(cli("entitlements", "get", "acme", "models", "--json"))
    assert static["config"] == CONFIG
    assert static == api.get("/api/v2/customers/acme/entitlements/models").json()
    access = as_json(cli("access", "acme", "--json"))
    assert access == {
        "entitlements": {
            "ai_tokens": {
                "hasAccess": True,
                "balance": 499_000,
                "usage": 10_001_000,
                "overage": 0,
                "totalAvailableGrantAmount": 10_500_000,
            },
            "models": {"hasAccess": True, "config": CONFIG},
            "saml_sso": {"hasAccess": True},
        }
    }
    assert access == api.get("/api/v1/customers/acme/access").json()
    table = ok(cli("access", "acme")).stdout
    assert "Access of acme at 2024-01-15T12:00:00Z" in table
    assert row(table, "ai_tokens") == [
        "ai_tokens", "metered", "yes", "499,000", "10,001,000", "0", "",
    ]  # fmt: skip
    assert row(table, "models") == ["models", "static", "yes", "", "", "", CONFIG]
    assert row(table, "saml_sso") == ["saml_sso", "boolean", "yes", "", "", "", ""]
    assert row(ok(cli("access", "acme", "--at", "2024-02-01T00:00:00Z")).stdout, "ai_tokens")[
        3:6
    ] == ["10,499,000", "0", "0"]


def test_list_delete_override_and_history(
    cli: Cli, acme: ServiceContext, clock: SettableClock, api: TestClient
) -> None:
    ok(cli("entitlements", "create", "acme", "ai_tokens", "--type", "metered",
           "--interval", "DAY", "--anchor", "2024-01-14T00:00:00Z", "--issue-after-reset", "100",
           "--measure-usage-from", "2024-01-14T00:00:00Z"))  # fmt: skip
    ok(cli("entitlements", "create", "acme", "saml_sso", "--type", "boolean"))
    send_usage(acme, 30, datetime(2024, 1, 14, 6, tzinfo=UTC))
    send_usage(acme, 120, datetime(2024, 1, 15, 9, tzinfo=UTC))

    listed = as_json(cli("entitlements", "list", "--json"))
    assert [(e["featureKey"], e["type"]) for e in listed] == [
        ("ai_tokens", "metered"), ("saml_sso", "boolean"),
    ]  # fmt: skip
    assert listed == api.get("/api/v2/entitlements").json()["items"]
    only = as_json(cli("entitlements", "list", "acme", "--feature", "saml_sso", "--json"))
    assert [e["featureKey"] for e in only] == ["saml_sso"]
    table = ok(cli("entitlements", "list", "acme")).stdout
    assert row(table, "acme")[:4] == [
        "acme",
        "ai_tokens",
        "metered",
        "DAY, 100 a period, hard limit",
    ]

    # Daily windows: 30 used on the 14th (70 left), the 15th starts at 100 again and runs over.
    history = as_json(
        cli("entitlements", "history", "acme", "ai_tokens", "--window", "DAY",
            "--from", "2024-01-14T00:00:00Z", "--json")
    )  # fmt: skip
    assert [
        (w["period"]["from"], w["usage"], w["balanceAtStart"]) for w in history["windowedHistory"]
    ] == [("2024-01-14T00:00:00Z", 30, 100), ("2024-01-15T00:00:00Z", 120, 100)]
    assert (
        history
        == api.get(
            "/api/v2/customers/acme/entitlements/ai_tokens/history",
            params={"windowSize": "DAY", "from": "2024-01-14T00:00:00Z"},
        ).json()
    )
    history_table = ok(cli("entitlements", "history", "acme", "ai_tokens", "--window", "day",
                           "--from", "2024-01-14T00:00:00Z")).stdout  # fmt: skip
    assert row(history_table, "2024-01-15T00:00:00Z") == [
        "2024-01-15T00:00:00Z", "2024-01-15T12:00:00Z", "120", "100",
    ]  # fmt: skip

    # A reset starts a new period at once: usage 0, the allowance back at 100.
    clock.set(datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    reset = ok(cli("entitlements", "reset", "acme", "ai_tokens"))
    assert reset.stdout == ""
    assert "current period 2024-01-15T12:30:00Z → 2024-01-16T12:30:00Z" in reset.stderr
    after = value(cli)
    assert (after["balance"], after["usage"], after["overage"]) == (100, 0, 0)

    # Override: the old entitlement ends now, the new one starts fresh.
    clock.set(datetime(2024, 1, 15, 13, tzinfo=UTC))
    old_id = as_json(cli("entitlements", "get", "acme", "ai_tokens", "--json"))["id"]
    new = as_json(
        cli("entitlements", "override", "acme", old_id, "--type", "metered", "--interval",
            "MONTH", "--issue-after-reset", "5000", "--soft-limit", "--json")
    )  # fmt: skip
    assert (new["featureKey"], new["isSoftLimit"], new["issueAfterReset"]) == (
        "ai_tokens", True, 5000,
    )  # fmt: skip
    assert new["measureUsageFrom"] == "2024-01-15T13:00:00Z"
    assert value(cli)["balance"] == 5000

    # Delete ends it now; it stays listed with --include-deleted, and still answers for the past.
    clock.set(datetime(2024, 1, 15, 14, tzinfo=UTC))
    deleted = ok(cli("entitlements", "delete", "acme", "saml_sso"))
    assert deleted.stdout == "" and "deleted the saml_sso entitlement of acme" in deleted.stderr
    assert value(cli)["hasAccess"] is True
    assert as_json(cli("entitlements", "value", "acme", "saml_sso", "--json")) == {
        "hasAccess": False
    }
    earlier = cli("entitlements", "value", "acme", "saml_sso", "--at", "2024-01-15T13:30:00Z",
                  "--json")  # fmt: skip
    assert as_json(earlier) == {"hasAccess": True}
    live = as_json(cli("entitlements", "list", "acme", "--json"))
    assert [(e["featureKey"], e["id"]) for e in live] == [("ai_tokens", new["id"])]
    everything = as_json(cli("entitlements", "list", "acme", "--include-deleted", "--json"))
    assert (
        everything
        == api.get("/api/v2/customers/acme/entitlements?includeDeleted=true").json()["items"]
    )
    assert [(e["featureKey"], e.get("deletedAt"), e.get("activeTo")) for e in everything] == [
        ("ai_tokens", "2024-01-15T13:00:00Z", "2024-01-15T13:00:00Z"),
        ("saml_sso", "2024-01-15T14:00:00Z", "2024-01-15T14:00:00Z"),
        ("ai_tokens", None, None),
    ]


def test_grants_list_and_void(
    cli: Cli, acme: ServiceContext, clock: SettableClock, api: TestClient
) -> None:
    ok(cli("entitlements", "create", "acme", "ai_tokens", "--type", "metered",
           "--interval", "MONTH", "--anchor", "2024-01-01T00:00:00Z"))  # fmt: skip
    first = as_json(cli("grants", "create", "acme", "ai_tokens", "--amount", "1,500.25", "--json"))
    second = as_json(
        cli("grants", "create", "acme", "ai_tokens", "--amount", "0.000000000000000001",
            "--priority", "3", "--expiration-duration", "DAY", "--expiration-count", "14",
            "--max-rollover", "0", "--recurrence-interval", "WEEK", "--metadata", "reason=promo",
            "--json")
    )  # fmt: skip
    assert (first["amount"], first["maxRolloverAmount"]) == (1500.25, 1500.25)
    assert "expiration" not in first and "expiresAt" not in first  # never expires
    # Exact in the text: no binary float on the way out.
    raw = ok(cli("grants", "list", "acme", "--json")).stdout
    assert '"amount": 1E-18' not in raw and '"amount": 0.000000000000000001' in raw
    assert second["expiresAt"] == "2024-01-29T12:00:00Z"
    assert second["recurrence"] == {
        "interval": "WEEK", "intervalISO": "P1W", "anchor": "2024-01-15T12:00:00Z",
    }  # fmt: skip
    assert second["nextRecurrence"] == "2024-01-22T12:00:00Z"
    assert second["metadata"] == {"reason": "promo"}

    clock.set(datetime(2024, 1, 15, 12, 30, tzinfo=UTC))
    voided = ok(cli("grants", "void", first["id"]))
    assert voided.stdout == "" and f"voided grant {first['id']}" in voided.stderr
    assert [g["id"] for g in as_json(cli("grants", "list", "--json"))] == [second["id"]]
    every = as_json(cli("grants", "list", "acme", "ai_tokens", "--include-voided", "--json"))
    assert every == api.get("/api/v2/grants").json()["items"]
    assert [(g["id"], g.get("voidedAt")) for g in every] == [
        (first["id"], "2024-01-15T12:30:00Z"), (second["id"], None),
    ]  # fmt: skip
    table = ok(cli("grants", "list", "--include-voided")).stdout
    assert table_rows(table) == [
        ["acme", "ai_tokens", "1,500.25", "1", "2024-01-15T12:00:00Z → never", "0 to 1,500.25",
         "", "voided", first["id"]],
        ["acme", "ai_tokens", "0.000000000000000001", "3",
         "2024-01-15T12:00:00Z → 2024-01-29T12:00:00Z", "0", "every WEEK", "active",
         second["id"]],
    ]  # fmt: skip
    assert as_json(cli("grants", "list", "acme", "saml_sso", "--json")) == []


def test_entitlement_errors_are_plain_words(cli: Cli, acme: ServiceContext) -> None:
    create = ("entitlements", "create", "acme")
    existing = as_json(cli(*create, "ai_tokens", "--type", "metered", "--interval", "MONTH",
                           "--json"))  # fmt: skip
    error(
        cli(*create, "ai_tokens", "--type", "metered", "--interval", "MONTH"),
        "conflict", "already has an active entitlement for feature 'ai_tokens'", existing["id"],
    )  # fmt: skip
    error(cli("entitlements", "create", "nobody", "saml_sso", "--type", "boolean"),
          "not found", "customer not found: nobody")  # fmt: skip
    error(cli(*create, "nope", "--type", "boolean"), "not found", "feature not found: nope")
    error(cli(*create, "models", "--type", "metered", "--interval", "MONTH"),
          "invalid input", "feature 'models' has no meter")  # fmt: skip
    error(cli(*create, "models", "--type", "static"), "invalid input", "--config:",
          "a static entitlement needs a config")  # fmt: skip
    error(cli(*create, "models", "--type", "static", "--config", "{not json"),
          "invalid input", "--config: must be a string holding valid JSON")  # fmt: skip
    error(cli(*create, "saml_sso", "--type", "boolean", "--soft-limit", "--issue-after-reset", "5"),
          "invalid input", "--soft-limit: only metered entitlements take isSoftLimit",
          "--issue-after-reset: only metered")  # fmt: skip
    error(cli("entitlements", "override", "acme", "ai_tokens", "--type", "metered"),
          "invalid input", "--interval: a metered entitlement needs a usage period")  # fmt: skip
    error(cli(*create, "saml_sso", "--type", "boolean", "--anchor", "2024-01-01T00:00:00Z"),
          "invalid input", "--anchor needs --interval")  # fmt: skip
    error(cli(*create, "saml_sso", "--type", "metered", "--interval", "PT5M"),
          "invalid input", "at least one hour")  # fmt: skip
    error(cli(*create, "saml_sso", "--type", "metered", "--interval", "MONTH",
              "--anchor", "2024-01-01"),
          "invalid input", "--anchor: '2024-01-01' has no offset")  # fmt: skip

    error(cli("entitlements", "get", "acme", "saml_sso"),
          "not found", "entitlement not found: saml_sso")  # fmt: skip
    error(cli("entitlements", "value", "acme", "ai_tokens", "--at", "yesterday"),
          "invalid input", "--at: 'yesterday' is not a time")  # fmt: skip
    error(cli("entitlements", "reset", "acme", "ai_tokens", "--at", "2024-02-01T00:00:00Z"),
          "invalid input", "in the future")  # fmt: skip
    error(cli("entitlements", "history", "acme", "ai_tokens", "--window", "DAY",
              "--tz", "Mars/Olympus"),
          "invalid input", "unknown time zone 'Mars/Olympus'")  # fmt: skip
    error(cli("entitlements", "history", "acme", "ai_tokens", "--window", "DAY",
              "--from", "2023-12-01T00:00:00Z"),
          "invalid input", "before the start of measurement")  # fmt: skip
    ok(cli(*create, "saml_sso", "--type", "boolean"))
    error(cli("entitlements", "history", "acme", "saml_sso", "--window", "DAY"),
          "invalid input", "only metered entitlements have a balance history")  # fmt: skip
    error(cli("entitlements", "reset", "acme", "saml_sso"),
          "invalid input", "only metered entitlements have usage to reset")  # fmt: skip
    ok(cli("entitlements", "delete", "acme", "saml_sso"))
    error(cli("entitlements", "delete", "acme", "saml_sso"),
          "not found", "entitlement not found: saml_sso")  # fmt: skip
    error(cli("access", "nobody"), "not found", "customer not found: nobody")


def test_grant_errors_are_plain_words(cli: Cli, acme: ServiceContext) -> None:
    ok(cli("entitlements", "create", "acme", "ai_tokens", "--type", "metered",
           "--interval", "MONTH", "--anchor", "2024-01-01T00:00:00Z"))  # fmt: skip
    ok(cli("entitlements", "create", "acme", "saml_sso", "--type", "boolean"))
    create = ("grants", "create", "acme", "ai_tokens")
    error(cli("grants", "create", "acme", "saml_sso", "--amount", "5"),
          "invalid input", "only metered entitlements take grants")  # fmt: skip
    error(cli("grants", "create", "acme", "models", "--amount", "5"),
          "not found", "entitlement not found: models")  # fmt: skip
    error(cli(*create, "--amount", "abc"), "invalid input", "--amount: 'abc' is not a number")
    error(cli(*create, "--amount", "0"), "invalid input", "--amount: must be positive")
    error(cli(*create, "--amount", "5", "--expires-in", "2 fortnights"),
          "invalid input", "--expires-in: invalid expiration duration 'FORTNIGHT'")  # fmt: skip
    error(cli(*create, "--amount", "5", "--expires-in", "soon"),
          "invalid input", "--expires-in: expected a count and a unit")  # fmt: skip
    error(cli(*create, "--amount", "5", "--expires-in", "1 DAY", "--expiration-count", "2"),
          "invalid input", "either --expires-in or --expiration-duration")  # fmt: skip
    error(cli(*create, "--amount", "5", "--expiration-duration", "DAY"),
          "invalid input", "--expiration-duration and --expiration-count go together")  # fmt: skip
    error(cli(*create, "--amount", "5", "--effective-at", "2023-12-31T00:00:00Z"),
          "invalid input", "is before the current usage period start 2024-01-01")  # fmt: skip
    error(
        cli(*create, "--amount", "5", "--priority", "0"),
        "invalid input",
        "priority must be an integer from 1 to 255",
    )
    error(cli("grants", "void", "01HZZZZZZZZZZZZZZZZZZZZZZZ"),
          "not found", "grant not found: 01HZZZZZZZZZZZZZZZZZZZZZZZ")  # fmt: skip
    grant_id = as_json(cli(*create, "--amount", "5", "--json"))["id"]
    error(cli("grants", "void", grant_id, "--at", "2024-03-01T00:00:00Z"),
          "invalid input", "in the future")  # fmt: skip
    ok(cli("grants", "void", grant_id))
    error(cli("grants", "void", grant_id), "invalid input", "already voided")
    error(cli("grants", "list", "nobody"), "not found", "customer not found: nobody")


def test_a_narrow_terminal_gets_whole_values_record_by_record(
    cli: Cli, acme: ServiceContext
) -> None:
    ok(cli("entitlements", "create", "acme", "ai_tokens", "--type", "metered",
           "--interval", "MONTH", "--anchor", "2024-01-01T00:00:00Z",
           "--issue-after-reset", "123456789012345678.5"))  # fmt: skip
    grant_id = as_json(cli("grants", "list", "--json"))[0]["id"]

    narrow = ok(cli.runner.invoke(app, ["grants", "list"], env={"COLUMNS": "60"})).stdout
    assert "…" not in narrow
    assert "Grants (1 of 1)" in narrow
    assert row(narrow, "amount") == ["amount", "123,456,789,012,345,678.5"]
    assert row(narrow, "id") == ["id", grant_id]
    assert row(narrow, "effective → expires") == [
        "effective → expires", "2024-01-01T00:00:00Z → never",
    ]  # fmt: skip
