"""Issue 12, items 12 to 15: metrics, structured logs and audit lines, abuse limits, HTTP
hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from allotment import logs
from allotment.api.app import create_app
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.api.helpers import MONTHLY, cloud_event, setup_catalogue
from tests.api.problems import problem
from tests.api.test_request_limits import quiet


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_latency_access_checks_and_pool(client: TestClient) -> None:
    setup_catalogue(client)
    client.post("/api/v1/customers", json={"key": "acme", "name": "ACME"})
    client.post(
        "/api/v2/customers/acme/entitlements", json={"type": "boolean", "featureKey": "saml_sso"}
    )
    before = _samples(client)
    route = "/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value"
    assert client.get("/api/v1/customers/acme/entitlements/saml_sso/value").json()["hasAccess"]
    assert not client.get("/api/v1/customers/acme/entitlements/models/value").json()["hasAccess"]
    client.get("/api/v1/customers/nobody")
    after = _samples(client)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("allotment_http_requests_total", method="GET", route=route, status="200") == 2
    assert (
        delta(
            "allotment_http_requests_total",
            method="GET",
            route="/api/v1/customers/{customerIdOrKey}",
            status="404",
        )
        == 1
    )
    assert delta("allotment_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert delta("allotment_access_checks_total", result="granted") == 1
    assert delta("allotment_access_checks_total", result="denied") == 1
    pool_states = {
        labels for (name, labels) in after if name == "allotment_database_pool_connections"
    }
    assert pool_states, "pool use is exported"
    assert ("allotment_events_ingested_total", ()) in after
    # Label values are route templates, so random paths do not add series.
    client.get("/no/such/path/12345")
    assert not any("12345" in str(labels) for (_name, labels) in _samples(client))


def test_ingest_metrics_count_events(client: TestClient) -> None:
    before = _samples(client)
    batch = [cloud_event(f"m{index}") for index in range(3)]
    response = client.post(
        "/api/v1/events", json=batch, headers={"Content-Type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 204
    # A batch with one bad event is refused whole: both of its events count as refused.
    bad = [cloud_event("m9"), cloud_event("m10", subject=...)]
    refused = client.post(
        "/api/v1/events", json=bad, headers={"Content-Type": "application/cloudevents-batch+json"}
    )
    assert refused.status_code == 400
    not_json = client.post(
        "/api/v1/events", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    after = _samples(client)
    ingested = "allotment_events_ingested_total"
    assert _value(after, ingested) - _value(before, ingested) == 3
    rejected = _value(after, "allotment_events_rejected_total", reason="invalid")
    assert rejected - _value(before, "allotment_events_rejected_total", reason="invalid") == 3


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.formatter_json = logs.json_formatter()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_json.format(record)))


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    loggers = [
        logging.getLogger(name) for name in ("allotment.access", "allotment.audit", "allotment.api")
    ]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def test_access_log_is_one_json_line_with_request_id_and_key_id(
    client: TestClient, captured: Captured, admin_key: str, context: ServiceContext
) -> None:
    response = client.get("/api/v1/customers", headers={"X-Request-Id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    generated = client.get("/api/v1/meters").headers["x-request-id"]
    assert len(generated) == 18 and generated != response.headers["x-request-id"]
    # An id that is not a plain token is replaced, not echoed or logged.
    odd = client.get("/api/v1/meters", headers={"X-Request-Id": "a b<script>"})
    assert odd.headers["x-request-id"] != "a b<script>"
    access = [line for line in captured.lines if line["logger"] == "allotment.access"]
    first = access[0]
    assert first["request_id"] == "trace-42"
    assert first["route"] == "/api/v1/customers" and first["status"] == 200
    assert first["method"] == "GET" and first["duration_ms"] >= 0 and "time" in first
    key = api_keys.list_keys(context)[0]
    assert first["key_id"] == key.id


def test_logs_hold_nothing_the_client_sent_and_no_key(
    client: TestClient, captured: Captured, admin_key: str
) -> None:
    secret_text = "SECRET-PAYLOAD-9f3c"
    client.post("/api/v1/customers", json={"key": "acme", "name": secret_text})
    client.get(f"/api/v1/customers/{secret_text}", params={"q": secret_text})
    client.post(
        "/api/v1/events",
        json=cloud_event("e1", data={"tokens": 1, "prompt": secret_text}),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    client.get("/api/v1/meters", headers={"Authorization": f"Bearer alt_{secret_text}"})
    text = json.dumps(captured.lines)
    assert captured.lines
    assert secret_text not in text
    assert admin_key not in text and admin_key[4:12] not in text


def test_every_admin_change_leaves_an_audit_line(
    client: TestClient, captured: Captured, context: ServiceContext
) -> None:
    setup_catalogue(client)
    client.post("/api/v1/customers", json={"key": "acme", "name": "ACME"})
    created = client.post(
        "/api/v2/customers/acme/entitlements",
        json={"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY},
    ).json()
    grant = client.post(
        "/api/v2/customers/acme/entitlements/ai_tokens/grants",
        json={"amount": 100, "effectiveAt": "2024-01-15T12:00:00Z"},
    ).json()
    client.post("/api/v2/customers/acme/entitlements/ai_tokens/reset", json={})
    client.delete(f"/api/v1/grants/{grant['id']}")
    client.get("/api/v1/customers")  # a read: no audit line
    api_keys.create_key(context, "read", "reporting")
    audit = [line for line in captured.lines if line["logger"] == "allotment.audit"]
    actions = [line["action"] for line in audit]
    assert actions[-6:] == [
        "create_customer",
        "create_customer_entitlement",
        "create_customer_grant",
        "reset_customer_entitlement",
        "void_grant",
        "create_api_key",
    ]
    by_action = {line["action"]: line for line in audit}
    assert by_action["create_customer_entitlement"]["id"] == created["id"]
    assert by_action["void_grant"]["target"] == {"grantId": grant["id"]}
    assert by_action["void_grant"]["key_id"] and by_action["void_grant"]["request_id"]
    assert by_action["create_api_key"]["scope"] == "read"


def test_auth_failures_are_rate_limited_per_address(context: ServiceContext) -> None:
    settings = quiet(rate_limit_auth_failures="3/minute")
    _key, secret = api_keys.create_key(context, "admin")
    with TestClient(create_app(settings, context=context)) as client:
        for _ in range(3):
            wrong = client.get("/api/v1/meters", headers={"Authorization": "Bearer alt_guess"})
            assert wrong.status_code == 401
        refused = client.get("/api/v1/meters", headers={"Authorization": "Bearer alt_guess"})
        body = problem(refused, 429)
        assert "failed authentication" in body["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Blocked before the key is looked at: even the right key waits out the window.
        blocked = client.get("/api/v1/meters", headers={"Authorization": f"Bearer {secret}"})
        assert blocked.status_code == 429


def test_writes_are_rate_limited_per_key(context: ServiceContext) -> None:
    settings = quiet(rate_limit_writes="2/minute", rate_limit_ingest="3/minute")
    _key, first = api_keys.create_key(context, "admin")
    _key, second = api_keys.create_key(context, "admin")
    with TestClient(create_app(settings, context=context)) as client:

        def create(secret: str, key: str) -> Any:
            return client.post(
                "/api/v1/customers",
                json={"key": key, "name": key},
                headers={"Authorization": f"Bearer {secret}"},
            )

        assert create(first, "a").status_code == 201
        assert create(first, "b").status_code == 201
        refused = create(first, "c")
        assert "writes limit" in problem(refused, 429)["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        # Another key has its own budget; reads are not limited.
        assert create(second, "c").status_code == 201
        headers = {"Authorization": f"Bearer {first}"}
        assert client.get("/api/v1/customers", headers=headers).json()["totalCount"] == 3
        for index in range(3):
            event = cloud_event(f"e{index}")
            assert client.post("/api/v1/events", json=event, headers=headers).status_code == 204
        ingest = client.post("/api/v1/events", json=cloud_event("e9"), headers=headers)
        assert "ingest limit" in problem(ingest, 429)["detail"]


def test_security_headers_on_every_answer(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    for response in (
        client.get("/api/v1/meters"),
        client.get("/api/v1/meters", headers=anonymous),
        client.get("/healthz", headers=anonymous),
        client.get("/nowhere"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "server" not in response.headers
    assert client.get("/api/v1/meters").headers["cache-control"] == "no-store"


def test_cors_is_closed_by_default(anonymous_client: TestClient) -> None:
    simple = anonymous_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers
    preflight = anonymous_client.options(
        "/api/v1/meters",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "allows no other origin" in problem(preflight, 403)["detail"]
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_configured_origins_and_answers_preflights(
    context: ServiceContext, admin_key: str
) -> None:
    settings = quiet(cors_allow_origins=["https://dash.example"])
    with TestClient(create_app(settings, context=context)) as client:
        preflight = client.options(
            "/api/v1/customers",
            headers={
                "Origin": "https://dash.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "Idempotency-Key" in preflight.headers["access-control-allow-headers"]
        actual = client.get(
            "/api/v1/customers",
            headers={"Origin": "https://dash.example", "Authorization": f"Bearer {admin_key}"},
        )
        assert actual.headers["access-control-allow-origin"] == "https://dash.example"
        assert "X-Request-Id" in actual.headers["access-control-expose-headers"]
        other = client.options(
            "/api/v1/customers",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "origin not allowed" in problem(other, 403)["detail"]
