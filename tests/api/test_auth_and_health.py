"""Every /api route needs a Bearer key with the right scope; health needs none."""

from __future__ import annotations

from fastapi.testclient import TestClient

from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.api.problems import problem


def test_health_needs_no_key_and_reports_migrated_database(anonymous_client: TestClient) -> None:
    assert anonymous_client.get("/healthz").json() == {"status": "ok"}
    ready = anonymous_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}


def test_missing_key_is_401_problem(anonymous_client: TestClient) -> None:
    response = anonymous_client.get("/api/v1/meters")
    body = problem(response, 401)
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert "missing API key" in body["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(anonymous_client: TestClient) -> None:
    response = anonymous_client.get(
        "/api/v1/meters", headers={"Authorization": "Bearer alt_not-a-real-key"}
    )
    assert "invalid or revoked" in problem(response, 401)["detail"]


def test_revoked_key_is_rejected(anonymous_client: TestClient, context: ServiceContext) -> None:
    key, secret = api_keys.create_key(context, "read")
    headers = {"Authorization": f"Bearer {secret}"}
    assert anonymous_client.get("/api/v1/meters", headers=headers).status_code == 200
    api_keys.revoke_key(context, key.id)
    assert anonymous_client.get("/api/v1/meters", headers=headers).status_code == 401


def test_scopes(anonymous_client: TestClient, context: ServiceContext) -> None:
    _, ingest = api_keys.create_key(context, "ingest")
    _, read = api_keys.create_key(context, "read")
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "test",
        "type": "prompt",
        "subject": "acme",
    }

    def call(method: str, path: str, secret: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {secret}", **kwargs.pop("headers", {})}
        return anonymous_client.request(method, path, headers=headers, **kwargs)

    # An ingest key may send events and nothing else.
    assert call("POST", "/api/v1/events", ingest, json=event).status_code == 204
    forbidden = call("GET", "/api/v1/meters", ingest)
    assert "scope 'ingest'" in problem(forbidden, 403)["detail"]
    # A read key may read but not write.
    assert call("GET", "/api/v1/meters", read).status_code == 200
    assert call("POST", "/api/v1/events", read, json=event).status_code == 403
    meter = {"slug": "m", "aggregation": "COUNT", "eventType": "prompt"}
    assert call("POST", "/api/v1/meters", read, json=meter).status_code == 403
    # Querying a meter is a read, in its POST form too (the SDK's meters.query uses it).
    _, admin = api_keys.create_key(context, "admin")
    assert call("POST", "/api/v1/meters", admin, json=meter).status_code == 201
    query = call("POST", "/api/v1/meters/m/query", read, json={})
    assert query.status_code == 200
    assert query.json()["data"][0]["value"] == 1
    assert call("POST", "/api/v1/meters/m/query", ingest, json={}).status_code == 403


def test_openapi_document_is_served_and_declares_bearer_auth(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert document["info"]["title"] == "Allotment"
    assert "bearer" in str(document["components"]["securitySchemes"]).lower()


def test_openapi_documents_problem_responses_not_fastapi_422(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    create_meter = document["paths"]["/api/v1/meters"]["post"]["responses"]
    assert "422" not in create_meter
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for status in ("400", "401", "403"):
        assert create_meter[status]["content"]["application/problem+json"]["schema"] == problem_ref
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "validationErrors" in str(document["components"]["schemas"]["Problem"])
    # The document describes the v1 and v2 entitlement paths the SDKs call.
    assert (
        "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value"
        in (document["paths"])
    )


def test_absurd_page_numbers_are_400_not_500(client: TestClient) -> None:
    # Found by schemathesis: an offset past 64 bits used to reach the database and fail there.
    for path in ("/api/v1/customers", "/api/v2/grants", "/api/v1/features", "/api/v1/meters"):
        response = client.get(path, params={"page": 39577413075702917365760, "pageSize": 170})
        assert response.status_code == 400, path
        assert response.json()["extensions"]["validationErrors"][0]["field"] == "page"
    response = client.get("/api/v1/grants", params={"offset": 10**20})
    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "offset"
    assert client.get("/api/v1/customers", params={"page": 1_000_000_000}).json()["items"] == []


def test_text_no_database_can_store_is_400_in_any_parameter(client: TestClient) -> None:
    # Found by schemathesis on PostgreSQL: a NUL in a list filter reached the driver.
    response = client.get("/api/v1/features", params={"meterSlug": ["ok", "a\x00b"]})
    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "meterSlug"
    response = client.get("/api/v1/customers/ac%00me")
    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "customerIdOrKey"
    # Some names reach SQL as well (a group-by key): the problem names the parameter without it.
    response = client.get("/api/v1/meters/tokens/query", params={"filterGroupBy[mo\x00del]": "x"})
    assert response.status_code == 400
    assert response.json()["extensions"]["validationErrors"][0]["field"] == "filterGroupBy[model]"
