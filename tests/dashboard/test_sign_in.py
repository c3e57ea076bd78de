"""Signing in: each way a key can fail gets its own plain message, the session cookie is Secure,
HttpOnly and SameSite, the sign-in form has a CSRF token of its own, and `next` never leaves
the dashboard."""

from __future__ import annotations

from fastapi.testclient import TestClient

from allotment.domain.api_keys import Scope
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from tests.dashboard.conftest import Keys, csrf_of


def _attempt(client: TestClient, key: str, next_path: str = "/ui/") -> object:
    page = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"csrf": csrf_of(page.text), "key": key, "next": next_path},
        follow_redirects=False,
    )


def test_a_wrong_key_is_told_apart_from_a_revoked_one_and_an_ingest_one(
    ui: TestClient, context: ServiceContext, keys: Keys
) -> None:
    wrong = _attempt(ui, "alt_" + "x" * 43)
    assert wrong.status_code == 401
    assert "No API key matches" in wrong.text
    assert 'id="e-key"' in wrong.text and 'aria-invalid="true"' in wrong.text

    read_key = next(k for k in api_keys.list_keys(context) if k.scope is Scope.READ)
    api_keys.revoke_key(context, read_key.id)
    revoked = _attempt(ui, keys.read)
    assert revoked.status_code == 401
    assert "This key (support) was revoked" in revoked.text

    ingest = _attempt(ui, keys.ingest)
    assert ingest.status_code == 401
    assert "An ingest key can only send events" in ingest.text

    for nonsense in ("", "   ", "x" * 5000, "alt_\x00"):
        response = _attempt(ui, nonsense)
        assert response.status_code == 401
        assert 'id="e-key"' in response.text
    assert "allotment_session" not in ui.cookies


def test_the_session_cookie_is_secure_http_only_and_same_site(ui: TestClient, keys: Keys) -> None:
    response = _attempt(ui, keys.admin)
    assert response.status_code == 303
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("allotment_session=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=lax" in cookie and "Path=/ui" in cookie
    assert keys.admin not in cookie  # the cookie names the key, it does not hold it


def test_signing_in_needs_the_sign_in_form_token(ui: TestClient, keys: Keys) -> None:
    ui.get("/ui/login")
    for token in ({}, {"csrf": "forged"}):
        response = ui.post("/ui/login", data={**token, "key": keys.admin}, follow_redirects=False)
        assert response.status_code == 400
        assert "The sign-in form expired" in response.text
    assert "allotment_session" not in ui.cookies


def test_after_signing_in_you_land_where_you_were_going_and_never_elsewhere(
    ui: TestClient, keys: Keys
) -> None:
    first = ui.get("/ui/customers?q=acme", follow_redirects=False)
    assert first.headers["location"] == "/ui/login?next=%2Fui%2Fcustomers"
    assert _attempt(ui, keys.admin, "/ui/customers").headers["location"] == "/ui/customers"
    ui.cookies.clear()
    for hostile in (
        "https://evil.example/",
        "//evil.example/ui/",
        "/ui\\..\\x",
        "/uix",
        "javascript:alert(1)",
        "/ui/login",
    ):
        response = _attempt(ui, keys.admin, hostile)
        assert response.headers["location"] == "/ui/", hostile
        ui.cookies.clear()


def test_signing_out_ends_the_session(admin_ui: TestClient) -> None:
    response = admin_ui.post("/ui/logout", data={"csrf": admin_ui.headers["x-test-csrf"]})
    assert "You are signed out." in response.text
    assert admin_ui.get("/ui/", follow_redirects=False).status_code == 303


def test_pages_say_what_they_are_and_are_not_cached(admin_ui: TestClient) -> None:
    response = admin_ui.get("/ui/")
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "<title>Overview · Allotment</title>" in response.text
