"""Wire details OpenMeter's schema fixes: problem `instance` URIs, RFC 3339 times in and out,
CloudEvents 0.3."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from allotment.domain.time import rfc3339
from tests.api.helpers import cloud_event, send_usage, setup_catalogue
from tests.api.problems import problem, problem_fields
from tests.conftest import SettableClock

_URI = r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9/:@!$&'()*+,;=._~%-]*$"


def test_instance_is_a_uri_for_a_path_with_a_space(client: TestClient) -> None:
    body = problem(client.get("/api/v1/customers/ACME%20Inc"), 404)
    assert body["instance"] == "urn:request:/api/v1/customers/ACME%20Inc"
    body = problem(client.get("/api/v1/customers/caf%C3%A9%25"), 404)
    assert body["instance"] == "urn:request:/api/v1/customers/caf%C3%A9%25"
    assert re.fullmatch(_URI, body["instance"])


@pytest.mark.parametrize("sent", ["0", "1700000000", "2024-01-15", "2024-01-15T10:00:00"])
def test_a_time_parameter_must_be_an_rfc3339_date_time(client: TestClient, sent: str) -> None:
    response = client.get("/api/v1/meters/none/query", params={"from": sent})
    assert problem_fields(response) == ["from"]
    assert problem(response)["detail"].startswith("from: must be an RFC 3339 date-time")


def test_an_rfc3339_time_parameter_is_read(client: TestClient) -> None:
    response = client.get(
        "/api/v1/events", params={"from": "2024-01-15T10:00:00+01:00", "to": "2024-01-16T10:00:00Z"}
    )
    assert response.status_code == 200, response.text


def test_times_are_written_with_four_digit_years() -> None:
    assert rfc3339(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"
    assert rfc3339(datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)) == "2024-01-02T03:04:05.12Z"


def test_cloudevents_0_3_are_accepted_and_kept(client: TestClient) -> None:
    event = cloud_event("e03", specversion="0.3")
    response = client.post(
        "/api/v1/events",
        content=json.dumps(event).encode(),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert response.status_code == 204, response.text
    (item,) = client.get("/api/v1/events").json()
    assert item["event"]["specversion"] == "0.3"


def test_negative_rollover_bounds_are_kept_and_roll_nothing_negative(
    client: TestClient, clock: SettableClock
) -> None:
    setup_catalogue(client)
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    base = "/api/v2/customers/acme/entitlements"
    entitlement = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "DAY", "anchor": "2024-01-01T00:00:00Z"},
    }
    assert client.post(base, json=entitlement).status_code == 201
    grants = [
        {"amount": 100, "maxRolloverAmount": -5, "priority": 1},
        {"amount": 100, "minRolloverAmount": -20, "maxRolloverAmount": 100, "priority": 2},
    ]
    for body in grants:
        sent = {**body, "effectiveAt": "2024-01-15T00:00:00Z"}
        response = client.post(f"{base}/ai_tokens/grants", json=sent)
        assert response.status_code == 201, response.text
        assert {key: response.json()[key] for key in body} == body
    send_usage(client, 30, "2024-01-15T10:00:00Z")  # from the first grant: 70 left
    clock.set(datetime(2024, 1, 16, 1, tzinfo=UTC))
    value = client.get(f"{base}/ai_tokens/value").json()
    # At the day's reset the first grant keeps nothing (its maximum is below zero), the second
    # all it had (its negative minimum is no floor, its maximum the amount).
    assert value["balance"] == 100


def test_a_feature_keeps_its_unit_cost_and_may_have_an_empty_name(client: TestClient) -> None:
    setup_catalogue(client)
    manual = {"type": "manual", "amount": "0.000015"}
    llm = {"type": "llm", "providerProperty": "provider", "model": "gpt-4o", "tokenType": "input"}
    for key, cost in (("manual_cost", manual), ("llm_cost", llm)):
        body = {"key": key, "name": "", "meterSlug": "tokens", "unitCost": cost}
        created = client.post("/api/v1/features", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["unitCost"] == cost and created.json()["name"] == ""
        assert client.get(f"/api/v1/features/{created.json()['id']}").json()["unitCost"] == cost
    listed = {f["key"]: f.get("unitCost") for f in client.get("/api/v1/features").json()}
    assert listed["manual_cost"] == manual and listed["ai_tokens"] is None
    for cost, field in [
        ({"type": "manual", "amount": "1e-5"}, "unitCost.manual.amount"),
        ({"type": "llm", "model": "a", "modelProperty": "m"}, "unitCost.llm"),
        ({"type": "flat"}, "unitCost"),
    ]:
        body = {"key": "bad", "name": "Bad", "unitCost": cost}
        assert problem_fields(client.post("/api/v1/features", json=body)) == [field]


def test_an_empty_window_time_zone_means_utc(client: TestClient) -> None:
    setup_catalogue(client)
    send_usage(client, 5, "2024-01-15T23:30:00Z")
    for response in (
        client.get(
            "/api/v1/meters/tokens/query", params={"windowSize": "DAY", "windowTimeZone": ""}
        ),
        client.post(
            "/api/v1/meters/tokens/query", json={"windowSize": "DAY", "windowTimeZone": ""}
        ),
    ):
        assert response.status_code == 200, response.text
        (row,) = response.json()["data"]
        assert row["windowStart"] == "2024-01-15T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/customers", {"key": "a", "name": None}, "name"),
        ("/api/v1/customers", {"key": "a", "name": "A", "description": None}, "description"),
        (
            "/api/v1/meters",
            {"slug": "m", "aggregation": "COUNT", "eventType": "e", "name": None},
            "name",
        ),
        ("/api/v1/features", {"key": "f", "name": "F", "meterSlug": None}, "meterSlug"),
        ("/api/v1/portal/tokens", {"subject": "s", "allowedMeterSlugs": None}, "allowedMeterSlugs"),
        ("/api/v1/subjects", [{"key": "s", "currentPeriodStart": None}], "0.currentPeriodStart"),
    ],
)
def test_null_is_refused_where_openmeter_does_not_allow_it(
    client: TestClient, path: str, body: object, field: str
) -> None:
    assert problem_fields(client.post(path, json=body)) == [field]


def test_null_is_accepted_where_openmeter_allows_it(client: TestClient) -> None:
    customer = {"key": "a", "name": "A", "metadata": None}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    subject = [{"key": "s", "displayName": None, "metadata": None, "stripeCustomerId": None}]
    assert client.post("/api/v1/subjects", json=subject).status_code == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/meters/Not-A-Slug", "meterIdOrSlug"),
        ("/api/v1/meters/Not-A-Slug/query", "meterIdOrSlug"),
        ("/api/v1/entitlements/not-an-id", "entitlementId"),
        ("/api/v2/entitlements/not-an-id", "entitlementId"),
        ("/api/v2/customers/acme/entitlements/AI%20tokens/value", "entitlementIdOrFeatureKey"),
        ("/api/v2/customers/acme/entitlements/AI%20tokens/grants", "entitlementIdOrFeatureKey"),
        ("/api/v1/customers/acme/entitlements/AI-tokens/value", "featureKey"),
    ],
)
def test_path_keys_breaking_the_documented_pattern_are_a_400(
    client: TestClient, path: str, field: str
) -> None:
    assert problem_fields(client.get(path)) == [field]


def test_expand_takes_openmeters_values_only(client: TestClient) -> None:
    assert client.post("/api/v1/customers", json={"key": "a", "name": "A"}).status_code == 201
    assert client.get("/api/v1/customers", params={"expand": "subscriptions"}).status_code == 200
    assert client.get("/api/v1/customers/a", params={"expand": "subscriptions"}).status_code == 200
    assert problem_fields(client.get("/api/v1/customers", params={"expand": "apps"})) == [
        "expand.0"
    ]
    assert problem_fields(client.get("/api/v1/customers/a", params={"expand": "x"})) == ["expand.0"]


def test_the_meter_csv_names_subjects_by_display_name_when_they_have_one(
    client: TestClient,
) -> None:
    setup_catalogue(client)
    upsert = [{"key": "acme", "displayName": "ACME, Inc."}, {"key": "globex"}]
    assert client.post("/api/v1/subjects", json=upsert).status_code == 200
    send_usage(client, 5, "2024-01-15T10:00:00Z", subject="acme")
    send_usage(client, 7, "2024-01-15T10:00:00Z", subject="globex")
    csv_text = client.get(
        "/api/v1/meters/tokens/query",
        params={"subject": ["acme", "globex"]},
        headers={"Accept": "text/csv"},
    ).text
    lines = csv_text.strip().split("\n")
    assert lines[0] == "window_start,window_end,subject,subject_display_name,value"
    assert sorted(line.split(",", 2)[2] for line in lines[1:]) == [
        'acme,"ACME, Inc.",5.000000',
        "globex,,7.000000",
    ]
    # Without display names the column is left out, as before.
    plain = client.get(
        "/api/v1/meters/tokens/query", params={"subject": "globex"}, headers={"Accept": "text/csv"}
    ).text
    assert plain.split("\n")[0] == "window_start,window_end,subject,value"
