"""No input makes the dashboard fail: every form field, query parameter and path segment gets
text a person or an attacker might send, and every answer is a page (4xx at worst), never a
server error. The test client raises on any server error, so a 500 fails the test outright."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.testclient import TestClient

from allotment.domain.api_keys import Scope
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.dashboard.conftest import Catalogue
from tests.dashboard.routes import write_pages, write_routes

HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "-1",
    "0",
    "1e999999",
    "-1e-999999",
    "NaN",
    "sNaN",
    "Infinity",
    "9" * 5000,
    "1,2,3",
    "9999-12-31T23:59",
    "0001-01-01T00:00+14:00",
    "2024-02-30T25:61",
    "P9999999999Y",
    "5 YEAR",
    "<script>alert(1)</script>",
    "'; DROP TABLE customers; --",
    '{"$where": "1"}',
    '{"$in": [1, {"a": []}]}',
    "model=$..x\n=\nk=",
    "🙂" * 100,
    "x" * 30_000,
]
FIELDS = [
    "type",
    "featureKey",
    "usagePeriod.interval",
    "usagePeriod.anchor",
    "issueAfterReset",
    "issueAfterResetPriority",
    "isSoftLimit",
    "preserveOverageAtReset",
    "measureUsageFrom",
    "measureUsageFromTime",
    "config",
    "amount",
    "expiration",
    "priority",
    "effectiveAt",
    "maxRolloverAmount",
    "minRolloverAmount",
    "slug",
    "name",
    "description",
    "eventType",
    "aggregation",
    "valueProperty",
    "groupBy",
    "eventFrom",
    "key",
    "meterSlug",
    "filters",
    "subjectKeys",
    "primaryEmail",
    "currency",
    "scope",
    "retainAnchor",
    "preserveOverage",
]


def _key_id(context: ServiceContext) -> str:
    return next(k.id for k in api_keys.list_keys(context) if k.scope is Scope.READ)


def test_no_form_input_is_a_server_error(
    admin_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    csrf = admin_ui.headers["x-test-csrf"]
    routes = [r for r in write_routes(context, catalogue, _key_id(context)) if "revoke" not in r]
    for path in routes:
        for value in HOSTILE:
            response = admin_ui.post(path, data={"csrf": csrf, **dict.fromkeys(FIELDS, value)})
            assert response.status_code < 500, (path, value[:20])
            assert "<!doctype html>" in response.text


def test_no_address_is_a_server_error(
    admin_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    for value in [*HOSTILE[:12], "%ff", "..%2f..%2f", "%ED%A0%80"]:
        _every_address_with(admin_ui, context, catalogue, value)


def _every_address_with(
    admin_ui: TestClient, context: ServiceContext, catalogue: Catalogue, value: str
) -> None:
    text = quote(value, safe="%") if not value.startswith("%") and "%2f" not in value else value
    queries = [
        f"/ui/customers?q={text}&page={text}",
        f"/ui/events?subject={text}&id={text}&from={text}&to={text}&limit={text}&problems={text}",
        f"/ui/meters/tokens?range={text}&from={text}&to={text}&window={text}&tz={text}&split={text}",
        f"/ui/meters/tokens?range=custom&from={text}&to={text}&tz={text}",
        f"/ui/features?archived={text}&page={text}",
        f"/ui/login?next={text}&why={text}",
        f"/ui/customers/{catalogue.customer_id}/entitlements/new?type={text}",
    ]
    segments = [
        f"/ui/customers/{text}",
        f"/ui/meters/{text}",
        f"/ui/features/{text}/archive",
        f"/ui/api-keys/{text}/revoke",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{text}/override",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{text}/grants/new",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/grants/{text}/void",
    ]
    for path in queries + segments:
        response = admin_ui.get(path)
        assert response.status_code < 500, path


def test_every_write_page_opens_for_an_admin(
    admin_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    for path in write_pages(write_routes(context, catalogue, _key_id(context))):
        assert admin_ui.get(path).status_code == 200, path


def test_a_range_of_custom_times_is_checked_not_crashed_on(
    admin_ui: TestClient, catalogue: Catalogue
) -> None:
    for start, end in (
        ("2024-01-15T00:00", "2024-01-14T00:00"),
        ("1960-01-01T00:00", "2024-01-01T00:00"),
        ("2024-01-01T00:00", "9999-01-01T00:00"),
    ):
        response = admin_ui.get(
            f"/ui/meters/tokens?range=custom&from={start}&to={end}&window=MINUTE"
        )
        assert response.status_code == 400
        assert 'class="error"' in response.text
