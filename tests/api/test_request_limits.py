"""Issue 12, defects 2, 3, 8, 9 and 11 (bodies other than ingest's): what the edge refuses, and
that it refuses it before doing the work an attacker wants done."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allotment.api.app import create_app
from allotment.api.problems import leaf_routes
from allotment.api.routing import ApiRoute
from allotment.services import grants
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from allotment.settings import Settings
from tests.api.helpers import MONTHLY, setup_catalogue
from tests.api.problems import fields_of, problem


def quiet(**settings: Any) -> Settings:
    """Settings for an extra app over the test's database: no maintenance thread of its own,
    which could still hold a connection when another app's exit disposes the shared pool."""
    return Settings(maintenance_interval_seconds=0, **settings)


class BodySpy:
    """Wraps an app and records every body chunk the app pulled from the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read.append(len(message.get("body", b"")))
            return message

        await self.app(scope, counting, send)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _body_routes(app: Any) -> Iterator[tuple[str, str]]:
    for route in leaf_routes(app.router.routes):
        if isinstance(route, ApiRoute):
            for method in sorted(route.methods - {"GET", "HEAD"}):
                yield method, _concrete(route.path)


def test_every_route_authenticates_before_reading_the_body(context: ServiceContext) -> None:
    # Defect 2: FastAPI parsed the body before the key dependency ran, so an anonymous client
    # could make the server parse any amount of JSON (answered 400 for broken JSON, not 401).
    spy = BodySpy(create_app(quiet(rate_limit_auth_failures=""), context=context))
    routes = list(_body_routes(spy.app))
    assert len(routes) >= 20 and ("POST", "/api/v1/events") in routes
    garbage = b"[" * 100_000
    with TestClient(spy) as anonymous:
        for method, path in routes:
            spy.read.clear()
            response = anonymous.request(
                method, path, content=garbage, headers={"Content-Type": "application/json"}
            )
            assert problem(response, 401)["title"] == "Unauthorized", (method, path)
            assert spy.read == [], (method, path)


def test_out_of_scope_key_is_refused_before_the_body(
    context: ServiceContext, read_key: str
) -> None:
    spy = BodySpy(create_app(quiet(), context=context))
    with TestClient(spy, headers={"Authorization": f"Bearer {read_key}"}) as reader:
        response = reader.post(
            "/api/v1/customers", content=b"{" * 50_000, headers={"Content-Type": "application/json"}
        )
    assert "scope 'read'" in problem(response, 403)["detail"]
    assert spy.read == []


def _client(context: ServiceContext, admin_key: str, **settings: Any) -> TestClient:
    app = create_app(quiet(**settings), context=context)
    return TestClient(app, headers={"Authorization": f"Bearer {admin_key}"})


def test_a_declared_body_over_the_limit_is_413_unread(
    context: ServiceContext, admin_key: str
) -> None:
    # Defect 3: a 100 MB ingest body (and customer metadata) used to be stored.
    spy = BodySpy(create_app(quiet(max_body_bytes=2_000), context=context))
    with TestClient(spy, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        for path, kind in (
            ("/api/v1/events", "application/cloudevents-batch+json"),
            ("/api/v1/customers", "application/json"),
        ):
            response = client.post(path, content=b" " * 2_001, headers={"Content-Type": kind})
            assert "larger than 2000 bytes" in problem(response, 413)["detail"], path
        assert spy.read == []
        small = client.post("/api/v1/customers", json={"name": "ACME", "key": "acme"})
        assert small.status_code == 201


def test_a_streamed_body_over_the_limit_is_413(context: ServiceContext, admin_key: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "subject": "a"}'
        for _ in range(100):
            yield b" " * 100

    with _client(context, admin_key, max_body_bytes=1_000) as client:
        for path in ("/api/v1/events", "/api/v1/subjects"):
            response = client.post(
                path, content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert problem(response, 413)["status"] == 413, path
        assert client.get("/api/v1/events").json() == []


def test_the_body_limit_is_configurable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOTMENT_MAX_BODY_BYTES", "12345")
    monkeypatch.setenv("ALLOTMENT_MAX_METADATA_BYTES", "99")
    settings = Settings()
    assert (settings.max_body_bytes, settings.max_metadata_bytes) == (12345, 99)
    assert settings.max_batch_events > 0 and settings.max_event_data_bytes > 0


def test_metadata_and_lists_over_their_limits_are_413_naming_the_field(
    context: ServiceContext, admin_key: str
) -> None:
    with _client(context, admin_key, max_metadata_bytes=100, max_array_items=3) as client:
        big = {"name": "ACME", "key": "acme", "metadata": {"notes": "x" * 200}}
        body = problem(client.post("/api/v1/customers", json=big), 413)
        assert fields_of(body) == ["metadata"]
        many = [{"key": f"s{i}"} for i in range(4)]
        assert fields_of(problem(client.post("/api/v1/subjects", json=many), 413)) == ["body"]
        nested = [{"key": "a", "metadata": {"deep": "y" * 200}}]
        assert fields_of(problem(client.post("/api/v1/subjects", json=nested), 413)) == [
            "[0].metadata"
        ]
        assert client.get("/api/v1/customers").json()["items"] == []
        assert client.get("/api/v1/subjects").json() == []


def test_deep_nesting_is_400_not_a_recursion_error(client: TestClient) -> None:
    # Defect 8: subject metadata ~500 deep raised RecursionError (a 500).
    for depth in (40, 500, 100_000):
        nested = "[" * depth + "]" * depth
        body = f'[{{"key": "acme", "metadata": {{"a": {nested}}}}}]'
        response = client.post(
            "/api/v1/subjects", content=body, headers={"Content-Type": "application/json"}
        )
        detail = problem(response, 400)["detail"]
        assert "nested more than 32 levels" in detail, depth
    assert client.get("/api/v1/subjects").json() == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400"])
def test_numbers_metadata_cannot_keep_are_refused(client: TestClient, number: str) -> None:
    # Defect 9: NaN, Infinity and 1e400 were stored as null (1e-400 as 0).
    body = f'[{{"key": "acme", "metadata": {{"n": {number}}}}}]'
    response = client.post(
        "/api/v1/subjects", content=body, headers={"Content-Type": "application/json"}
    )
    problem(response, 400)
    assert client.get("/api/v1/subjects").json() == []


def test_metadata_numbers_are_kept_exactly_or_refused(client: TestClient) -> None:
    body = (
        '[{"key": "acme", "metadata": {"ratio": 0.1, "big": 123456789012345678901234567890,'
        ' "exp": 1e300}}]'
    )
    stored = client.post(
        "/api/v1/subjects", content=body, headers={"Content-Type": "application/json"}
    )
    assert stored.status_code == 200, stored.text
    metadata = client.get("/api/v1/subjects/acme").json()["metadata"]
    # The values as written (PostgreSQL's jsonb writes 1e300 back in full digits).
    assert {key: Decimal(str(value)) for key, value in metadata.items()} == {
        "ratio": Decimal("0.1"),
        "big": Decimal("123456789012345678901234567890"),
        "exp": Decimal("1e300"),
    }
    # 20 significant digits: a double would round them, so they are refused, not changed.
    long = '[{"key": "beta", "metadata": {"n": 0.12345678901234567891}}]'
    response = client.post(
        "/api/v1/subjects", content=long, headers={"Content-Type": "application/json"}
    )
    assert fields_of(problem(response, 400)) == ["[0].metadata.n"]


def test_amounts_with_long_fractions_are_kept_exactly(
    client: TestClient, context: ServiceContext
) -> None:
    setup_catalogue(client)
    created = client.post(
        "/api/v1/customers",
        json={"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": ["acme"]}},
    )
    assert created.status_code == 201
    entitlement = client.post(
        "/api/v2/customers/acme/entitlements",
        json={"type": "metered", "featureKey": "ai_tokens", "usagePeriod": MONTHLY},
    )
    assert entitlement.status_code == 201, entitlement.text
    amount = "1000.123456789012345678"
    grant = client.post(
        "/api/v2/customers/acme/entitlements/ai_tokens/grants",
        content='{"amount": ' + amount + ', "effectiveAt": "2024-01-01T00:00:00Z"}',
        headers={"Content-Type": "application/json"},
    )
    assert grant.status_code == 201, grant.text
    # Stored with every digit (through a double it would have been 1000.1234567890124).
    listed = grants.list_entitlement_grants(context, CustomerOwner("acme"), "ai_tokens")
    assert [view.grant.amount for view in listed.items] == [Decimal(amount)]


def test_duplicate_keys_are_refused(client: TestClient) -> None:
    # Defect 11: duplicate keys silently kept the last value.
    response = client.post(
        "/api/v1/customers",
        content='{"name": "ACME", "key": "acme", "key": "evil"}',
        headers={"Content-Type": "application/json"},
    )
    assert "duplicate key 'key'" in problem(response, 400)["detail"]
    nested = client.post(
        "/api/v1/subjects",
        content='[{"key": "a", "metadata": {"x": 1, "x": 2}}]',
        headers={"Content-Type": "application/json"},
    )
    assert "duplicate key 'x'" in problem(nested, 400)["detail"]
    assert client.get("/api/v1/customers").json()["items"] == []


def test_a_long_url_is_414_problem(client: TestClient) -> None:
    response = client.get("/api/v1/customers", params={"key": "k" * 9_000})
    assert "longer than 8192 bytes" in problem(response, 414)["detail"]
    assert client.get("/api/v1/customers", params={"key": "k" * 100}).status_code == 200


def test_405_allow_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.patch("/api/v1/customers/acme")
    problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, HEAD, PUT"
    response = client.put("/api/v1/meters")
    assert response.headers["allow"] == "GET, HEAD, POST"


def test_openapi_documents_404_409_and_the_limits(anonymous_client: TestClient) -> None:
    document = anonymous_client.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    get_customer = paths["/api/v1/customers/{customerIdOrKey}"]["get"]["responses"]
    assert {"404", "429", "503"} <= set(get_customer)
    create_customer = paths["/api/v1/customers"]["post"]["responses"]
    assert {"409", "413"} <= set(create_customer)
    void = paths["/api/v1/grants/{grantId}"]["delete"]
    assert "422" in void["responses"]
    assert "Idempotency-Key" in [p["name"] for p in void["parameters"]]


def test_docs_page_loads_nothing_from_another_origin(anonymous_client: TestClient) -> None:
    page = anonymous_client.get("/api/v1/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/api/v1/docs/assets/") for source in sources)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for source in sources:
        asset = anonymous_client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 10, source


def test_docs_can_be_turned_off(context: ServiceContext) -> None:
    with TestClient(create_app(quiet(docs_enabled=False), context=context)) as client:
        assert client.get("/api/v1/docs").status_code == 404
        assert client.get("/api/v1/openapi.json").status_code == 404


@pytest.fixture
def read_key(context: ServiceContext) -> str:
    from allotment.services import api_keys

    _key, secret = api_keys.create_key(context, "read")
    return secret
