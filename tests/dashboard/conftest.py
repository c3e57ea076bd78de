"""Dashboard fixtures: an in-process client (over https, as the session cookie is Secure), keys of
each scope, signing in, and a catalogue to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from allotment.api.app import create_app
from allotment.dashboard import create_dashboard
from allotment.domain.entitlement_requests import EntitlementRequest
from allotment.domain.entitlements import EntitlementType
from allotment.domain.events import Event
from allotment.domain.grant_requests import GrantDefaults, GrantRequest, RecurrenceRequest
from allotment.services import api_keys, entitlements, events, grants
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from tests.conftest import SettableClock
from tests.factories import make_customer, make_feature, make_meter

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, secret: str) -> str:
    """Signs `client` in with `secret`; returns the session's CSRF token."""
    page = client.get("/ui/login")
    response = client.post(
        "/ui/login", data={"csrf": csrf_of(page.text), "key": secret, "next": "/ui/"}
    )
    assert response.status_code == 200, response.text
    return csrf_of(response.text)  # the sign-out form of the overview carries it


@dataclass
class Keys:
    admin: str
    read: str
    ingest: str


@pytest.fixture
def keys(context: ServiceContext) -> Keys:
    return Keys(
        admin=api_keys.create_key(context, "admin", "test admin")[1],
        read=api_keys.create_key(context, "read", "support")[1],
        ingest=api_keys.create_key(context, "ingest", "chat service")[1],
    )


def dashboard_only(context: ServiceContext) -> Starlette:
    """The dashboard mounted at /ui as the API app mounts it, without building the API's
    routes for every test (the crawler and the browser tests use the whole app)."""
    return Starlette(routes=[Mount("/ui", app=create_dashboard(context))])


@pytest.fixture
def ui(context: ServiceContext) -> Iterator[TestClient]:
    with TestClient(dashboard_only(context), base_url="https://testserver") as client:
        yield client


@pytest.fixture
def whole_app_ui(context: ServiceContext, keys: Keys) -> Iterator[TestClient]:
    """Signed in as admin to the real server app (API and dashboard)."""
    with TestClient(create_app(context=context), base_url="https://testserver") as client:
        client.headers["x-test-csrf"] = sign_in(client, keys.admin)
        yield client


@pytest.fixture
def admin_ui(ui: TestClient, keys: Keys) -> TestClient:
    ui.headers["x-test-csrf"] = sign_in(ui, keys.admin)
    return ui


@pytest.fixture
def read_ui(context: ServiceContext, keys: Keys) -> Iterator[TestClient]:
    with TestClient(dashboard_only(context), base_url="https://testserver") as client:
        client.headers["x-test-csrf"] = sign_in(client, keys.read)
        yield client


@dataclass
class Catalogue:
    customer_id: str
    entitlement_id: str
    grant_id: str
    feature_id: str


@pytest.fixture
def catalogue(context: ServiceContext, clock: SettableClock) -> Catalogue:
    """Meter `tokens`, metered feature `ai_tokens` and boolean `sso`, customer ACME with a
    monthly 10,000,000-token allowance, a top-up, 1,500 tokens used and a reset."""
    make_meter(context)
    feature_id = make_feature(context)
    make_feature(context, "sso", meter_slug=None)
    customer_id = make_customer(context)
    owner = CustomerOwner(customer_id)
    start = clock()
    view = entitlements.create_entitlement(
        context,
        owner,
        EntitlementRequest(
            type=EntitlementType.METERED,
            feature_key="ai_tokens",
            usage_period=RecurrenceRequest("MONTH", start - timedelta(days=3)),
            issue_after_reset=Decimal(10_000_000),
        ),
    )
    entitlements.create_entitlement(
        context, owner, EntitlementRequest(type=EntitlementType.BOOLEAN, feature_key="sso")
    )
    grant = grants.create_grant(
        context,
        owner,
        "ai_tokens",
        GrantRequest(amount=Decimal(500_000), effective_at=clock()),
        GrantDefaults.V2,
    )
    events.ingest(
        context,
        [
            Event(
                "e1",
                "test",
                "prompt",
                "acme",
                clock() - timedelta(hours=1),
                data={"tokens": 1000, "model": "gpt-4o"},
            ),
            Event(
                "e2",
                "test",
                "prompt",
                "acme",
                clock() - timedelta(minutes=30),
                data={"tokens": 500, "model": "o1"},
            ),
            Event(
                "e3",
                "test",
                "prompt",
                "acme",
                clock() - timedelta(minutes=20),
                data={"model": "o1"},
            ),
            Event("e4", "test", "unknown_type", "globex", clock() - timedelta(minutes=10)),
        ],
    )
    clock.advance(timedelta(hours=2))
    return Catalogue(customer_id, view.entitlement.id, grant.grant.id, feature_id)
