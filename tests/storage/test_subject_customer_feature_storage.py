"""Subjects, customers and features round-trip through both databases, and the inserts that
race (subject and feature keys) report a taken key instead of failing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from allotment.domain.customers import Address, Customer, CustomerFilter
from allotment.domain.features import Feature
from allotment.domain.group_filters import StringFilter
from allotment.domain.listing import Window
from allotment.domain.subjects import Subject
from allotment.storage import Database
from allotment.storage.tables import customers, entitlements, features, subjects

T0 = datetime(2024, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _subject(subject_id: str, key: str) -> Subject:
    return Subject(
        id=subject_id,
        key=key,
        display_name="Display",
        metadata={"nested": {"list": [1, 2.5, None, "x"]}, "flag": True},
        current_period_start=T0,
        current_period_end=T0 + timedelta(days=31),
        stripe_customer_id="cus_1",
        created_at=T0,
        updated_at=T0,
    )


def _customer(customer_id: str, key: str | None, subject_keys: tuple[str, ...]) -> Customer:
    return Customer(
        id=customer_id,
        name=f"Customer {key}",
        key=key,
        subject_keys=subject_keys,
        description="d",
        primary_email="a@b.test",
        currency="EUR",
        billing_address=Address(country="DE", city="Berlin", phone_number="+49"),
        metadata={"crm": "1"},
        annotations={"allotment.provisionedFor": "x"},
        created_at=T0,
        updated_at=T0,
    )


def _feature(feature_id: str, key: str) -> Feature:
    return Feature(
        id=feature_id,
        key=key,
        name="Tokens",
        meter_slug="tokens",
        group_by_filters={
            "model": StringFilter("$eq", "gpt-4"),
            "type": StringFilter(
                "$or", (StringFilter("$in", ("a", "b")), StringFilter("$like", "x%"))
            ),
        },
        metadata={"k": "v"},
        created_at=T0,
        updated_at=T0,
    )


def test_subject_round_trip_and_live_key_uniqueness(database: Database) -> None:
    first = _subject("01HZZZZZZZZZZZZZZZZZZSUBJ1", "acme")
    with database.unit_of_work(write=True) as uow:
        assert uow.subjects.add_if_absent(first) is True
        assert uow.subjects.add_if_absent(_subject("01HZZZZZZZZZZZZZZZZZZSUBJ2", "acme")) is False
        assert uow.subjects.get_live_by_key("acme") == first
        uow.subjects.delete(first.id, T0 + timedelta(hours=1))
        assert uow.subjects.add_if_absent(_subject("01HZZZZZZZZZZZZZZZZZZSUBJ3", "acme")) is True
        uow.commit()
    with database.unit_of_work() as uow:
        deleted = uow.subjects.get(first.id)
        assert deleted is not None
        assert deleted.deleted_at == deleted.updated_at == T0 + timedelta(hours=1)
        assert [s.id for s in uow.subjects.list_live()] == ["01HZZZZZZZZZZZZZZZZZZSUBJ3"]
        assert uow.subjects.live_keys_among(["acme", "other"]) == {"acme"}


def test_customer_round_trip_replace_and_delete(database: Database) -> None:
    customer = _customer("01HZZZZZZZZZZZZZZZZZZCUST1", "acme", ("s1", "s2"))
    with database.unit_of_work(write=True) as uow:
        uow.customers.lock_attribution()
        uow.customers.add(customer)
        uow.commit()
    with database.unit_of_work() as uow:
        assert uow.customers.get(customer.id) == customer
        assert uow.customers.get_live_by_key("acme") == customer
        assert uow.customers.find_live_by_attribution("s2") == customer
        assert uow.customers.find_live_by_attribution("acme") == customer
        claims = uow.customers.live_claims({"acme", "s1", "zzz"}, excluding_customer_id=None)
        assert [(c.value, c.as_subject_key) for c in claims] == [("acme", False), ("s1", True)]
        assert uow.customers.live_claims({"acme"}, excluding_customer_id=customer.id) == []

    changed = replace(customer, subject_keys=("s2", "s3"), billing_address=None)
    with database.unit_of_work(write=True) as uow:
        uow.customers.replace(changed)
        uow.commit()
    with database.unit_of_work(write=True) as uow:
        assert uow.customers.get(customer.id) == changed
        assert uow.customers.find_live_by_attribution("s1") is None
        uow.customers.delete(customer.id, T0 + timedelta(days=1))
        uow.commit()
    with database.unit_of_work() as uow:
        deleted = uow.customers.get(customer.id)
        assert deleted is not None
        assert (deleted.deleted_at, deleted.subject_keys) == (T0 + timedelta(days=1), ())
        assert uow.customers.find_live_by_attribution("acme") is None
        assert uow.customers.get_live_by_key("acme") is None


def test_customer_text_filters_match_wildcards_literally(database: Database) -> None:
    with database.unit_of_work(write=True) as uow:
        uow.customers.add(_customer("01HZZZZZZZZZZZZZZZZZZCUST1", "100%_real", ("a",)))
        uow.customers.add(_customer("01HZZZZZZZZZZZZZZZZZZCUST2", "100x-real", ("b",)))
        uow.commit()
    with database.unit_of_work() as uow:
        found = uow.customers.list_matching(CustomerFilter(key="0%_R"), Window())
    assert [c.key for c in found.items] == ["100%_real"]


def test_active_entitlements_are_counted_until_they_end(database: Database) -> None:
    customer = _customer("01HZZZZZZZZZZZZZZZZZZCUST1", "acme", ())
    with database.unit_of_work(write=True) as uow:
        uow.customers.add(customer)
        uow.commit()
    with database.engine.begin() as connection:
        connection.execute(
            insert(features).values(
                id="01HZZZZZZZZZZZZZZZZZZFEAT1", key="f", name="F", created_at=T0, updated_at=T0
            )
        )
        for suffix, active_to, deleted_at in [
            ("1", None, None),
            ("2", T0 + timedelta(days=2), None),
            ("3", None, T0),
        ]:
            connection.execute(
                insert(entitlements).values(
                    id=f"01HZZZZZZZZZZZZZZZZZZZENT{suffix}",
                    type="boolean",
                    customer_id=customer.id,
                    feature_id="01HZZZZZZZZZZZZZZZZZZFEAT1",
                    feature_key=f"f{suffix}",
                    active_from=T0,
                    active_to=active_to,
                    created_at=T0,
                    updated_at=T0,
                    deleted_at=deleted_at,
                )
            )
    with database.unit_of_work() as uow:
        assert uow.customers.active_entitlement_ids(customer.id, T0) == [
            "01HZZZZZZZZZZZZZZZZZZZENT1",
            "01HZZZZZZZZZZZZZZZZZZZENT2",
        ]
        later = T0 + timedelta(days=2)
        assert uow.customers.active_entitlement_ids(customer.id, later) == [
            "01HZZZZZZZZZZZZZZZZZZZENT1"
        ]


def test_feature_round_trip_with_advanced_filters(database: Database) -> None:
    feature = _feature("01HZZZZZZZZZZZZZZZZZZFEAT1", "tokens")
    with database.unit_of_work(write=True) as uow:
        assert uow.features.add_if_key_free(feature) is True
        assert uow.features.add_if_key_free(_feature("01HZZZZZZZZZZZZZZZZZZFEAT2", "tokens")) is (
            False
        )
        uow.features.archive(feature.id, T0 + timedelta(minutes=1))
        assert uow.features.add_if_key_free(_feature("01HZZZZZZZZZZZZZZZZZZFEAT3", "tokens"))
        uow.commit()
    with database.unit_of_work() as uow:
        archived = uow.features.get(feature.id)
        live = uow.features.get_by_key("tokens")
    assert archived is not None and live is not None
    assert archived.archived_at == T0 + timedelta(minutes=1)
    assert archived.group_by_filters == feature.group_by_filters
    assert live.id == "01HZZZZZZZZZZZZZZZZZZFEAT3"


def test_absent_documents_are_sql_null(database: Database) -> None:
    bare = replace(_subject("01HZZZZZZZZZZZZZZZZZZSUBJ1", "bare"), metadata=None)
    customer = replace(
        _customer("01HZZZZZZZZZZZZZZZZZZCUST1", "c", ()), metadata=None, billing_address=None
    )
    with database.unit_of_work(write=True) as uow:
        uow.subjects.add_if_absent(bare)
        uow.customers.add(customer)
        uow.commit()
    with database.engine.connect() as connection:
        assert connection.execute(
            select(subjects.c.id).where(subjects.c.metadata.is_(None))
        ).scalars().all() == [bare.id]
        assert connection.execute(
            select(customers.c.id).where(
                customers.c.metadata.is_(None), customers.c.billing_address.is_(None)
            )
        ).scalars().all() == [customer.id]
