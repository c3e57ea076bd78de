"""Forms apply the API's rules: a broken one comes back with the message next to its field and
everything typed still there; one that passes does what the API would have done."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from allotment.services import api_keys, entitlement_values, features, grants, meters
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from tests.dashboard.conftest import Catalogue


def _post(client: TestClient, path: str, **fields: str) -> object:
    return client.post(path, data={"csrf": client.headers["x-test-csrf"], **fields})


def field_error(page: str, name: str) -> str:
    """The message shown under the input `name`."""
    match = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', page)
    assert match is not None, f"no error shown next to {name}"
    return html.unescape(match.group(1))


def kept(page: str, name: str) -> str:
    """What the input `name` holds (text inputs and textareas)."""
    input_match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    if input_match:
        return html.unescape(input_match.group(1))
    area = re.search(rf'name="{re.escape(name)}"[^>]*>([^<]*)</textarea>', page)
    assert area is not None, f"no input {name}"
    return html.unescape(area.group(1))


@pytest.fixture
def entitlement_form(admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext) -> str:
    features.create_feature(
        context,
        __import__("allotment.domain.features", fromlist=["NewFeature"]).NewFeature(
            key="gpt4", name="GPT-4", meter_slug="tokens"
        ),
    )
    return f"/ui/customers/{catalogue.customer_id}/entitlements/new"


ENTITLEMENT_MISTAKES: list[tuple[dict[str, str], str, str]] = [
    ({"issueAfterReset": "-5"}, "issueAfterReset", "must not be negative"),
    ({"issueAfterReset": "lots"}, "issueAfterReset", "is not a number"),
    (
        {"issueAfterReset": "1e30"},
        "issueAfterReset",
        "must be at most 1,000,000,000,000,000,000",
    ),
    (
        {"issueAfterReset": "5", "issueAfterResetPriority": "300"},
        "issueAfterResetPriority",
        "must be from 1 to 255",
    ),
    ({"issueAfterResetPriority": "2"}, "issueAfterResetPriority", "needs issueAfterReset"),
    ({"usagePeriod.interval": "P1X"}, "usagePeriod.interval", "invalid interval 'P1X'"),
    ({"usagePeriod.interval": "PT30M"}, "usagePeriod.interval", "at least one hour"),
    ({"usagePeriod.interval": ""}, "usagePeriod.interval", "needs a usage period"),
    ({"usagePeriod.anchor": "tomorrow"}, "usagePeriod.anchor", "is not a time"),
    ({"usagePeriod.anchor": "1900-01-01T00:00"}, "usagePeriod.anchor", "from the year 1970"),
    ({"featureKey": "sso"}, "featureKey", "has no meter"),
    ({"featureKey": "nope"}, "featureKey", "feature not found"),
    ({"featureKey": ""}, "featureKey", "either featureKey or featureId is required"),
]


def test_a_metered_entitlement_form_shows_the_apis_errors_next_to_the_field(
    admin_ui: TestClient, entitlement_form: str
) -> None:
    for fields, name, message in ENTITLEMENT_MISTAKES:
        sent = {"type": "metered", "featureKey": "gpt4", "usagePeriod.interval": "MONTH", **fields}
        response = _post(admin_ui, entitlement_form, **sent)
        assert response.status_code == 400, fields
        assert message in field_error(response.text, name), fields
        for input_name, value in sent.items():
            if input_name not in ("type", "featureKey", "usagePeriod.interval"):
                assert kept(response.text, input_name) == value, fields
        assert "Please correct the highlighted fields" in response.text


def test_a_static_entitlement_keeps_its_config_and_refuses_broken_json(
    admin_ui: TestClient, entitlement_form: str, context: ServiceContext, catalogue: Catalogue
) -> None:
    features.create_feature(
        context,
        __import__("allotment.domain.features", fromlist=["NewFeature"]).NewFeature(
            key="models", name="Models"
        ),
    )
    broken = '{"allowed": ["gpt-4o"'
    response = _post(admin_ui, entitlement_form, type="static", featureKey="models", config=broken)
    assert "valid JSON" in field_error(response.text, "config")
    assert kept(response.text, "config") == broken
    fine = '{"allowed": ["gpt-4o"]}'
    response = _post(admin_ui, entitlement_form, type="static", featureKey="models", config=fine)
    assert response.status_code == 200
    value = entitlement_values.entitlement_value(
        context, CustomerOwner(catalogue.customer_id), "models"
    )
    assert value.config == fine  # kept exactly as typed


def test_a_second_entitlement_for_a_feature_is_a_conflict_shown_at_the_feature(
    admin_ui: TestClient, entitlement_form: str
) -> None:
    response = _post(admin_ui, entitlement_form, type="boolean", featureKey="sso")
    assert "already has an active entitlement for feature 'sso'" in field_error(
        response.text, "featureKey"
    )


def test_a_metered_entitlement_from_the_form_matches_the_api(
    admin_ui: TestClient, entitlement_form: str, context: ServiceContext, catalogue: Catalogue
) -> None:
    response = _post(
        admin_ui,
        entitlement_form,
        type="metered",
        featureKey="gpt4",
        issueAfterReset="2,500,000.5",
        **{"usagePeriod.interval": "WEEK"},
        isSoftLimit="on",
    )
    assert response.status_code == 200
    assert "is now entitled to gpt4" in response.text
    value = entitlement_values.entitlement_value(
        context, CustomerOwner(catalogue.customer_id), "gpt4"
    )
    assert value.balance == Decimal("2500000.5")
    assert value.has_access
    assert "2,500,000.5" in response.text


GRANT_MISTAKES: list[tuple[dict[str, str], str, str]] = [
    ({"amount": ""}, "amount", "how much to grant"),
    ({"amount": "0"}, "amount", "must be positive"),
    ({"amount": "1.0000000000000000001"}, "amount", "at most 18 digits"),
    ({"amount": "NaN"}, "amount", "is not a number"),
    ({"amount": "100", "priority": "0"}, "priority", "from 1 to 255"),
    ({"amount": "100", "priority": "one"}, "priority", "not a whole number"),
    ({"amount": "100", "expiration": "5 EONS"}, "expiration", "invalid expiration duration"),
    ({"amount": "100", "expiration": "5000 DAY"}, "expiration", "from 1 to 1000"),
    (
        {"amount": "100", "effectiveAt": "2024-01-01T00:00"},
        "effectiveAt",
        "before the current usage period",
    ),
    ({"amount": "100", "maxRolloverAmount": "1e19"}, "maxRolloverAmount", "must be at most"),
]


def test_a_grant_form_shows_the_apis_errors_next_to_the_field(
    admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext
) -> None:
    path = f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/grants"
    owner = CustomerOwner(catalogue.customer_id)
    before = grants.list_entitlement_grants(context, owner, "ai_tokens").total_count
    for fields, name, message in GRANT_MISTAKES:
        response = _post(admin_ui, path, **fields)
        assert response.status_code == 400, fields
        assert message in field_error(response.text, name), fields
        if fields.get("amount"):
            assert kept(response.text, "amount") == fields["amount"], fields
    assert grants.list_entitlement_grants(context, owner, "ai_tokens").total_count == before


def test_a_top_up_adds_exactly_the_amount_typed(
    admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext
) -> None:
    owner = CustomerOwner(catalogue.customer_id)
    before = entitlement_values.entitlement_value(context, owner, "ai_tokens").balance
    path = f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/grants"
    response = _post(admin_ui, path, amount="1,234,567.89", expiration="1 WEEK", priority="3")
    assert response.status_code == 200
    after = entitlement_values.entitlement_value(context, owner, "ai_tokens").balance
    assert after - before == Decimal("1234567.89")
    newest = grants.list_entitlement_grants(context, owner, "ai_tokens").items[-1].grant
    assert (newest.priority, newest.expiration and newest.expiration.duration.value) == (3, "WEEK")


def test_meter_feature_and_customer_forms_report_each_bad_field(
    admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext
) -> None:
    response = _post(
        admin_ui,
        "/ui/meters/new",
        slug="Bad Slug",
        eventType="",
        aggregation="COUNT",
        valueProperty="$.x",
        groupBy="1bad=$.y",
    )
    assert response.status_code == 400
    assert "must match" in field_error(response.text, "slug")
    assert "1 to 256 characters" in field_error(response.text, "eventType")
    assert "not allowed when the aggregation is COUNT" in field_error(
        response.text, "valueProperty"
    )
    assert "group-by key must match" in field_error(response.text, "groupBy")
    assert kept(response.text, "groupBy") == "1bad=$.y"
    response = _post(
        admin_ui, "/ui/meters/new", slug="tokens", eventType="prompt", aggregation="COUNT"
    )
    assert "already exists" in field_error(response.text, "slug")
    response = _post(admin_ui, "/ui/meters/new", slug="x", eventType="p", aggregation="MEDIAN")
    assert "choose one of" in field_error(response.text, "aggregation")

    response = _post(
        admin_ui,
        "/ui/features/new",
        key="gpt",
        name="GPT",
        meterSlug="tokens",
        filters="colour=red\nnonsense",
    )
    assert "expected key=value" in field_error(response.text, "filters")
    assert kept(response.text, "filters") == "colour=red\nnonsense"
    response = _post(
        admin_ui,
        "/ui/features/new",
        key="gpt",
        name="GPT",
        meterSlug="tokens",
        filters="colour=red",
    )
    assert "not a group-by key of meter 'tokens'" in field_error(response.text, "filters")
    response = _post(
        admin_ui,
        "/ui/features/new",
        key="gpt",
        name="GPT",
        meterSlug="tokens",
        filters='model={"$in": ["gpt-4o", "o1"]}',
    )
    assert response.status_code == 200
    feature = features.get_feature(context, "gpt")
    assert feature.group_by_filters["model"].to_document() == {"$in": ["gpt-4o", "o1"]}

    response = _post(admin_ui, "/ui/customers/new", name="Globex", key="acme", currency="usd")
    assert "three-letter ISO 4217" in field_error(response.text, "currency")
    response = _post(admin_ui, "/ui/customers/new", name="Globex", key="acme")
    assert "already" in field_error(response.text, "key")
    assert kept(response.text, "name") == "Globex"


def test_archiving_a_feature_frees_its_key(
    admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext
) -> None:
    response = _post(admin_ui, f"/ui/features/{catalogue.feature_id}/archive")
    assert "Feature ai_tokens archived." in response.text
    assert features.find_feature.__name__  # the key is free again:
    response = _post(
        admin_ui, "/ui/features/new", key="ai_tokens", name="AI tokens v2", meterSlug="tokens"
    )
    assert response.status_code == 200
    assert meters.get_meter(context, "tokens").slug == "tokens"


def test_override_reset_and_delete_from_the_customer_page(
    admin_ui: TestClient, catalogue: Catalogue, context: ServiceContext, clock: object
) -> None:
    owner = CustomerOwner(catalogue.customer_id)
    base = f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}"
    response = _post(admin_ui, base + "/reset")
    assert "Usage of ai_tokens was reset." in response.text
    assert "No manual resets" not in response.text
    assert entitlement_values.entitlement_value(context, owner, "ai_tokens").usage == 0
    again = _post(admin_ui, base + "/reset")  # the same minute: the API refuses it too
    assert again.status_code == 400
    assert "This did not work" in again.text or "Please correct" in again.text

    form = admin_ui.get(base + "/override").text
    assert kept(form, "issueAfterReset") == "10,000,000"  # prefilled with the current terms
    clock.advance(__import__("datetime").timedelta(minutes=1))  # type: ignore[attr-defined]
    response = _post(
        admin_ui,
        base + "/override",
        type="metered",
        featureKey="ai_tokens",
        issueAfterReset="20,000,000",
        **{"usagePeriod.interval": "MONTH"},
    )
    assert "was overridden" in response.text
    value = entitlement_values.entitlement_value(context, owner, "ai_tokens")
    assert value.balance == Decimal(20_000_000)

    new_id = re.search(r'href="#ent-([0-9A-Z]{26})"', response.text)
    assert new_id is not None
    response = _post(
        admin_ui, f"/ui/customers/{catalogue.customer_id}/entitlements/{new_id.group(1)}/delete"
    )
    assert "was deleted" in response.text
    assert not entitlement_values.entitlement_value(context, owner, "ai_tokens").has_access


def test_an_admin_creates_and_revokes_keys_and_the_secret_is_shown_once(
    admin_ui: TestClient, context: ServiceContext
) -> None:
    response = _post(admin_ui, "/ui/api-keys", name="billing job", scope="ingest")
    assert response.status_code == 201
    secret = re.search(
        r'id="new-secret" class="secret-value" readonly value="(alt_[^"]+)"', response.text
    )
    assert secret is not None
    created = next(k for k in api_keys.list_keys(context) if k.name == "billing job")
    assert created.scope.value == "ingest"
    assert secret.group(1) not in admin_ui.get("/ui/api-keys").text  # never shown again
    bad = _post(admin_ui, "/ui/api-keys", name="x", scope="root")
    assert "unknown scope 'root'" in html.unescape(bad.text)
    response = _post(admin_ui, f"/ui/api-keys/{created.id}/revoke")
    assert "billing job" in response.text and "revoked" in response.text
    assert api_keys.get_key(context, created.id).revoked_at is not None  # type: ignore[union-attr]
    own = next(k for k in api_keys.list_keys(context) if k.name == "test admin")
    response = admin_ui.post(
        f"/ui/api-keys/{own.id}/revoke", data={"csrf": admin_ui.headers["x-test-csrf"]}
    )
    assert "The key you signed in with was revoked" in response.text
