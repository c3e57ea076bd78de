"""Who may do what: a read-only session sees every page but every write route refuses it, every
write needs the session's CSRF token, and a session ends when its key is revoked."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from allotment.domain.api_keys import Scope
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.storage import tables
from tests.dashboard.conftest import Catalogue, Keys, csrf_of, sign_in
from tests.dashboard.routes import write_pages, write_routes


def _state(context: ServiceContext) -> dict[str, object]:
    """Everything a write could change, to show that a refused one changed nothing."""
    with context.database.engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (
                tables.meters,
                tables.features,
                tables.customers,
                tables.entitlements,
                tables.grants,
                tables.usage_resets,
                tables.api_keys,
            )
        }
        counts["voided"] = connection.execute(
            select(func.count())
            .select_from(tables.grants)
            .where(tables.grants.c.voided_at.is_not(None))
        ).scalar_one()
        counts["revoked"] = connection.execute(
            select(func.count())
            .select_from(tables.api_keys)
            .where(tables.api_keys.c.revoked_at.is_not(None))
        ).scalar_one()
        counts["archived"] = connection.execute(
            select(func.count())
            .select_from(tables.features)
            .where(tables.features.c.archived_at.is_not(None))
        ).scalar_one()
        counts["ended"] = connection.execute(
            select(func.count())
            .select_from(tables.entitlements)
            .where(tables.entitlements.c.deleted_at.is_not(None))
        ).scalar_one()
    return counts


def write_forms(html: str) -> list[str]:
    """Where the page's POST forms go, but signing out."""
    return [
        a for a in re.findall(r'<form method="post" action="([^"]*)"', html) if a != "/ui/logout"
    ]


def _admin_key_id(context: ServiceContext) -> str:
    return next(k.id for k in api_keys.list_keys(context) if k.scope is Scope.ADMIN)


def test_every_write_route_refuses_a_read_only_session(
    read_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    routes = write_routes(context, catalogue, _admin_key_id(context))
    assert len(routes) >= 12  # meters, features, customers, entitlements, grants, keys
    csrf = read_ui.headers["x-test-csrf"]
    before = _state(context)
    for path in routes:
        form = {
            "csrf": csrf,
            "amount": "1000",
            "slug": "stolen",
            "eventType": "x",
            "aggregation": "COUNT",
            "key": "stolen",
            "name": "Stolen",
            "type": "boolean",
            "featureKey": "sso",
            "scope": "admin",
        }
        response = read_ui.post(path, data=form)
        assert response.status_code == 403, path
        assert "read key" in response.text, path
    assert _state(context) == before


def test_every_write_page_refuses_a_read_only_session(
    read_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    for path in write_pages(write_routes(context, catalogue, _admin_key_id(context))):
        response = read_ui.get(path)
        assert response.status_code == 403, path
        assert write_forms(response.text) == [], path


def test_api_keys_are_for_admins_only(read_ui: TestClient) -> None:
    response = read_ui.get("/ui/api-keys")
    assert response.status_code == 403
    assert "Only an admin key" in response.text


def test_every_write_route_refuses_a_form_without_the_session_token(
    admin_ui: TestClient, read_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    other_session_token = read_ui.headers["x-test-csrf"]
    routes = write_routes(context, catalogue, _admin_key_id(context))
    before = _state(context)
    for path in routes:
        for form in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": other_session_token}):
            response = admin_ui.post(path, data={**form, "amount": "1000", "name": "x"})
            assert response.status_code == 403, (path, form)
            assert "This form has expired" in response.text
    assert _state(context) == before
    # Signing out is a form too: another site cannot sign a person out either.
    assert admin_ui.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    assert admin_ui.get("/ui/").status_code == 200


def test_the_admin_session_token_does_write(
    admin_ui: TestClient, context: ServiceContext, catalogue: Catalogue
) -> None:
    """The same request with the right token goes through: the refusals above are about the
    token, not about the route."""
    response = admin_ui.post(
        f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/grants",
        data={"csrf": admin_ui.headers["x-test-csrf"], "amount": "1,000"},
    )
    assert response.status_code == 200
    assert "Granted 1,000 of ai_tokens to ACME." in response.text


def test_revoking_a_key_ends_its_sessions(
    ui: TestClient, context: ServiceContext, keys: Keys
) -> None:
    sign_in(ui, keys.read)
    assert ui.get("/ui/customers").status_code == 200
    read_key = next(k for k in api_keys.list_keys(context) if k.scope is Scope.READ)
    api_keys.revoke_key(context, read_key.id)
    response = ui.get("/ui/customers", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fcustomers&why=revoked"
    page = ui.get(response.headers["location"])
    assert "The key you signed in with was revoked" in page.text


def test_an_htmx_request_without_a_session_is_sent_to_sign_in(ui: TestClient) -> None:
    response = ui.get("/ui/customers?q=a", headers={"HX-Request": "true"}, follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/ui/login")


def test_a_tampered_session_cookie_is_no_session(ui: TestClient, keys: Keys) -> None:
    sign_in(ui, keys.admin)
    cookie = ui.cookies.get("allotment_session")
    assert cookie
    ui.cookies.clear()
    assert ui.get("/ui/", headers={"Cookie": f"allotment_session={cookie}"}).status_code == 200
    tampered = cookie[:-2] + ("xy" if not cookie.endswith("xy") else "yx")
    response = ui.get(
        "/ui/", headers={"Cookie": f"allotment_session={tampered}"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert "why=expired" in response.headers["location"]


def test_a_read_only_session_shows_no_write_control(
    read_ui: TestClient, catalogue: Catalogue
) -> None:
    page = read_ui.get(f"/ui/customers/{catalogue.customer_id}").text
    assert write_forms(page) == []
    for control in (
        "Grant usage",
        "Add entitlement",
        "Void…",
        "Override…",
        "Delete…",
        "Reset usage…",
    ):
        assert control not in page
    assert "10,500,000" in page  # the numbers are all there
    assert csrf_of(page)  # only the sign-out form
