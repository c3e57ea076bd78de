"""`allotment meters ...` and `allotment customers ...`: what the scenario needs before
entitlements, with the API's JSON shapes and plain-word errors."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.cli.conftest import Cli, error, ok, row


def test_meters(cli: Cli, api: TestClient) -> None:
    created = json.loads(
        ok(
            cli("meters", "create", "--slug", "tokens", "--event-type", "prompt",
                "--aggregation", "sum", "--value-property", "$.tokens",
                "--group-by", "model=$.model", "--json")
        ).stdout
    )  # fmt: skip
    assert created == {
        "id": created["id"],
        "slug": "tokens",
        "name": "tokens",
        "aggregation": "SUM",
        "eventType": "prompt",
        "valueProperty": "$.tokens",
        "groupBy": {"model": "$.model"},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    assert created == api.get("/api/v1/meters/tokens").json()
    assert json.loads(ok(cli("meters", "get", created["id"], "--json")).stdout) == created
    table = ok(cli("meters", "list")).stdout
    assert row(table, "tokens")[:5] == ["tokens", "SUM", "prompt", "$.tokens", "model=$.model"]

    error(cli("meters", "create", "--slug", "tokens", "--event-type", "prompt",
              "--aggregation", "SUM", "--value-property", "$.tokens"),
          "conflict", "meter with the same slug already exists: tokens")  # fmt: skip
    error(
        cli("meters", "create", "--slug", "calls", "--event-type", "prompt",
            "--aggregation", "COUNT", "--value-property", "$.tokens"),
          "invalid input", "--value-property: not allowed when the aggregation is COUNT",
    )  # fmt: skip
    error(cli("meters", "get", "nope"), "not found", "meter not found: nope")

    ok(cli("features", "create", "--key", "ai_tokens", "--name", "AI", "--meter-slug", "tokens"))
    error(cli("meters", "delete", "tokens"), "conflict", "archive the feature first")
    ok(cli("features", "archive", "ai_tokens"))
    deleted = ok(cli("meters", "delete", "tokens"))
    assert deleted.stdout == "" and "deleted meter tokens" in deleted.stderr
    assert json.loads(ok(cli("meters", "list", "--json")).stdout) == []
    assert [m["slug"] for m in json.loads(ok(cli("meters", "list", "--include-deleted",
                                                 "--json")).stdout)] == ["tokens"]  # fmt: skip


def test_customers(cli: Cli, api: TestClient) -> None:
    created = json.loads(
        ok(
            cli("customers", "create", "--name", "ACME Inc.", "--key", "acme", "--subject", "acme",
                "--subject", "acme-eu", "--email", "billing@acme.test", "--metadata", "tier=gold",
                "--json")
        ).stdout
    )  # fmt: skip
    assert created == {
        "id": created["id"],
        "name": "ACME Inc.",
        "key": "acme",
        "usageAttribution": {"subjectKeys": ["acme", "acme-eu"]},
        "primaryEmail": "billing@acme.test",
        "metadata": {"tier": "gold"},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    assert created == api.get("/api/v1/customers/acme").json()
    assert json.loads(ok(cli("customers", "get", created["id"], "--json")).stdout) == created
    table = ok(cli("customers", "list")).stdout
    assert row(table, "acme")[:3] == ["acme", "ACME Inc.", "acme, acme-eu"]

    error(cli("customers", "create", "--name", "Other", "--subject", "acme"), "conflict", "acme")
    error(cli("customers", "create", "--name", "Other", "--metadata", "tier"),
          "invalid input", "--metadata expects KEY=VALUE")  # fmt: skip
    error(cli("customers", "get", "nobody"), "not found", "customer not found: nobody")

    ok(cli("features", "create", "--key", "saml_sso", "--name", "SSO"))
    ok(cli("entitlements", "create", "acme", "saml_sso", "--type", "boolean"))
    error(cli("customers", "delete", "acme"), "conflict", "1 active entitlement(s)")
    ok(cli("entitlements", "delete", "acme", "saml_sso"))
    deleted = ok(cli("customers", "delete", "acme"))
    assert deleted.stdout == "" and f"deleted customer acme ({created['id']})" in deleted.stderr
    assert json.loads(ok(cli("customers", "list", "--json")).stdout) == []
