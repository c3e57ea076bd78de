"""The official `openmeter` SDK against a running server: subjects, customers, features."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from corehttp.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from openmeter.models import (
    CustomerCreate,
    CustomerReplaceUpdate,
    CustomerUsageAttribution,
    FeatureCreateInputs,
    SubjectUpsert,
)

from allotment.services.context import ServiceContext
from tests.api.conftest import LiveServer
from tests.factories import make_meter

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def test_subjects_upsert_list_get_delete(sdk: Any, live_server: LiveServer) -> None:
    upserted = sdk.subjects.upsert(
        [
            SubjectUpsert(key="acme", display_name="ACME", metadata={"tier": "gold"}),
            SubjectUpsert(key="beta", stripe_customer_id="cus_beta"),
        ]
    )
    assert [s.key for s in upserted] == ["acme", "beta"]
    assert upserted[0].display_name == "ACME"
    assert upserted[0].created_at == NOW
    assert upserted[1].stripe_customer_id == "cus_beta"

    [renamed] = sdk.subjects.upsert([SubjectUpsert(key="acme", display_name="ACME Inc.")])
    assert renamed.id == upserted[0].id
    assert renamed.metadata == {"tier": "gold"}

    assert [s.key for s in sdk.subjects.list()] == ["acme", "beta"]
    assert sdk.subjects.get(upserted[1].id).key == "beta"
    sdk.subjects.delete("acme")
    with pytest.raises(ResourceNotFoundError):
        sdk.subjects.get("acme")
    with pytest.raises(HttpResponseError) as raised:
        sdk.subjects.upsert([SubjectUpsert(key="x", stripe_customer_id="acct_1")])
    assert raised.value.status_code == 400


def test_customers_create_list_get_update_delete(sdk: Any, live_server: LiveServer) -> None:
    created = sdk.customers.create(
        CustomerCreate(
            name="ACME Inc.",
            key="acme",
            usage_attribution=CustomerUsageAttribution(subject_keys=["acme-prod"]),
            primary_email="billing@acme.test",
            currency="USD",
        )
    )
    assert (created.key, created.usage_attribution.subject_keys) == ("acme", ["acme-prod"])
    assert created.created_at == NOW
    sdk.customers.create(CustomerCreate(name="Beta", key="beta"))

    page = sdk.customers.list(page=1, page_size=1, order_by="name")
    assert (page.total_count, page.page, page.page_size) == (2, 1, 1)
    assert [c.name for c in page["items"]] == ["ACME Inc."]
    assert [c.key for c in sdk.customers.list(subject="PROD")["items"]] == ["acme"]

    assert sdk.customers.get("acme").id == created.id
    updated = sdk.customers.update(
        created.id,
        CustomerReplaceUpdate(
            name="ACME",
            key="acme",
            usage_attribution=CustomerUsageAttribution(subject_keys=["acme-prod", "acme-dev"]),
        ),
    )
    assert updated.usage_attribution.subject_keys == ["acme-dev", "acme-prod"]
    assert updated.primary_email is None  # a PUT replaces everything

    with pytest.raises(ResourceExistsError):
        sdk.customers.create(CustomerCreate(name="Again", key="acme"))
    with pytest.raises(HttpResponseError) as raised:
        sdk.customers.create(CustomerCreate(name="Nobody"))
    assert raised.value.status_code == 400

    sdk.customers.delete("acme")
    with pytest.raises(ResourceNotFoundError):
        sdk.customers.get("acme")
    assert sdk.customers.get(created.id).deleted_at == NOW
    assert [c.key for c in sdk.customers.list()["items"]] == ["beta"]


def test_features_create_list_get_delete(
    sdk: Any, live_server: LiveServer, context: ServiceContext
) -> None:
    make_meter(context, "tokens", group_by={"model": "$.model"})
    created = sdk.features.create(
        FeatureCreateInputs(
            key="gpt4_tokens",
            name="GPT-4 tokens",
            meter_slug="tokens",
            meter_group_by_filters={"model": "gpt-4"},
        )
    )
    assert created.meter_group_by_filters == {"model": "gpt-4"}
    assert created.advanced_meter_group_by_filters["model"]["$eq"] == "gpt-4"
    sdk.features.create(FeatureCreateInputs(key="sso", name="SAML SSO"))

    # A union result: the SDK hands back plain JSON (a list, or a page object).
    listed = sdk.features.list()
    assert [f["key"] for f in listed] == ["gpt4_tokens", "sso"]
    paged = sdk.features.list(page=1, page_size=1, meter_slug=["tokens"])
    assert (paged["totalCount"], [f["key"] for f in paged["items"]]) == (1, ["gpt4_tokens"])

    assert sdk.features.get("gpt4_tokens").id == created.id
    with pytest.raises(ResourceExistsError):
        sdk.features.create(FeatureCreateInputs(key="sso", name="again"))
    with pytest.raises(ResourceNotFoundError):
        sdk.features.create(FeatureCreateInputs(key="other", name="x", meter_slug="nope"))

    sdk.features.delete(created.id)
    with pytest.raises(ResourceNotFoundError):
        sdk.features.get(created.id)
    archived = sdk.features.list(include_archived=True)
    assert [(f["key"], "archivedAt" in f) for f in archived] == [
        ("gpt4_tokens", True),
        ("sso", False),
    ]
