"""Customers: attribution rules, full replace, soft delete, lookups used by entitlements."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from allotment.domain.customers import Address, CustomerDetails, CustomerFilter, CustomerOrderBy
from allotment.domain.listing import SortOrder, Window
from allotment.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from allotment.services import customers, subjects
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock
from tests.factories import add_boolean_entitlement_row


def _details(name: str = "ACME Inc.", **fields: object) -> CustomerDetails:
    return CustomerDetails(name=name, **fields)  # type: ignore[arg-type]


def test_create_keeps_every_field_and_creates_missing_subjects(
    context: ServiceContext, clock: SettableClock
) -> None:
    address = Address(country="US", city="Springfield", line1="1 Main St")
    created = customers.create_customer(
        context,
        _details(
            key="acme",
            subject_keys=("acme-prod", "acme-dev", "acme-prod"),
            description="our first customer",
            primary_email="billing@acme.test",
            currency="USD",
            billing_address=address,
            metadata={"crmId": "42"},
        ),
    )

    assert created.subject_keys == ("acme-dev", "acme-prod")
    assert created.created_at == created.updated_at == clock()
    assert customers.get_customer(context, created.id) == created
    assert customers.get_customer(context, "acme") == created
    assert [s.key for s in subjects.list_subjects(context)] == ["acme-dev", "acme-prod"]


def test_key_or_subject_keys_are_required(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as raised:
        customers.create_customer(context, _details())
    assert [e.field for e in raised.value.errors] == ["key", "usageAttribution.subjectKeys"]
    only_subjects = customers.create_customer(context, _details(subject_keys=("s1",)))
    assert only_subjects.key is None
    assert only_subjects.attribution_keys == ("s1",)


def test_invalid_fields_are_named(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as raised:
        customers.create_customer(
            context,
            _details(
                name="",
                key="k" * 257,
                subject_keys=("",),
                currency="usd",
                billing_address=Address(country="USA"),
            ),
        )
    assert [e.field for e in raised.value.errors] == [
        "name",
        "key",
        "usageAttribution.subjectKeys.0",
        "currency",
        "billingAddress.country",
    ]


def test_attribution_keys_of_live_customers_never_overlap(context: ServiceContext) -> None:
    acme = customers.create_customer(context, _details(key="acme", subject_keys=("acme", "a-1")))

    clashes = [
        (_details(key="acme"), "key", "the key"),
        (_details(key="a-1"), "key", "a subject key"),
        (_details(key="beta", subject_keys=("a-1",)), "usageAttribution.subjectKeys", "a subject"),
        (_details(subject_keys=("acme",)), "usageAttribution.subjectKeys", "the key"),
        (_details(key=acme.id), "key", "id of another customer"),
    ]
    for details, field, wording in clashes:
        with pytest.raises(Conflict) as raised:
            customers.create_customer(context, details)
        assert raised.value.field == field
        assert wording in raised.value.message
        assert raised.value.conflicting_entity_id == acme.id

    customers.delete_customer(context, "acme")
    reused = customers.create_customer(context, _details(key="acme", subject_keys=("a-1",)))
    assert customers.get_customer(context, "acme") == reused


def test_replace_is_a_full_replace(context: ServiceContext, clock: SettableClock) -> None:
    created = customers.create_customer(
        context,
        _details(key="acme", subject_keys=("s1", "s2"), currency="EUR", metadata={"a": "b"}),
    )
    clock.advance(timedelta(minutes=5))

    updated = customers.replace_customer(
        context, "acme", _details(name="ACME", key="acme", subject_keys=("s2", "s3"))
    )

    assert updated.id == created.id
    assert (updated.name, updated.subject_keys) == ("ACME", ("s2", "s3"))
    assert (updated.currency, updated.metadata) == (None, None)
    assert updated.created_at == created.created_at
    assert updated.updated_at == created.created_at + timedelta(minutes=5)
    assert customers.get_customer(context, created.id) == updated
    # The dropped subject key is free for another customer; the new one got a subject record.
    customers.create_customer(context, _details(key="other", subject_keys=("s1",)))
    assert "s3" in [s.key for s in subjects.list_subjects(context)]


def test_replace_may_keep_its_own_keys_but_not_take_others(context: ServiceContext) -> None:
    customers.create_customer(context, _details(key="acme", subject_keys=("acme",)))
    other = customers.create_customer(context, _details(key="other"))
    same = customers.replace_customer(
        context, "acme", _details(name="renamed", key="acme", subject_keys=("acme",))
    )
    assert same.name == "renamed"
    with pytest.raises(Conflict) as raised:
        customers.replace_customer(context, "acme", _details(key="acme", subject_keys=("other",)))
    assert raised.value.conflicting_entity_id == other.id


def test_deleted_customer_reads_by_id_only_and_refuses_changes(
    context: ServiceContext, clock: SettableClock
) -> None:
    created = customers.create_customer(context, _details(key="acme", subject_keys=("s1",)))
    clock.advance(timedelta(minutes=1))
    customers.delete_customer(context, created.id)

    deleted = customers.get_customer(context, created.id)
    assert deleted.deleted_at == clock()
    assert deleted.subject_keys == ()
    with pytest.raises(NotFound):
        customers.get_customer(context, "acme")
    with pytest.raises(PreconditionFailed):
        customers.replace_customer(context, created.id, _details(key="acme"))
    with pytest.raises(NotFound):
        customers.delete_customer(context, created.id)


def test_delete_is_refused_while_entitlements_are_active(
    context: ServiceContext, clock: SettableClock
) -> None:
    acme = customers.create_customer(context, _details(key="acme"))
    entitlement_id = add_boolean_entitlement_row(
        context, acme.id, active_to=clock() + timedelta(days=1)
    )

    with pytest.raises(Conflict) as raised:
        customers.delete_customer(context, "acme")
    assert "1 active entitlement" in raised.value.message
    assert raised.value.conflicting_entity_id == entitlement_id

    clock.advance(timedelta(days=1))  # the entitlement has ended by now
    customers.delete_customer(context, "acme")
    assert customers.get_customer(context, acme.id).deleted_at == clock()


def test_list_filters_orders_and_pages(context: ServiceContext, clock: SettableClock) -> None:
    for name, key, email, subject in [
        ("Charlie", "c-key", "c@x.test", "sub-charlie"),
        ("alpha", "a-key", "A@X.test", "sub-alpha"),
        ("Bravo", "b-key", None, "sub-bravo"),
    ]:
        customers.create_customer(
            context, _details(name=name, key=key, primary_email=email, subject_keys=(subject,))
        )
        clock.advance(timedelta(seconds=1))
    customers.delete_customer(context, "b-key")

    def names(criteria: CustomerFilter, window: Window = Window()) -> list[str]:
        return [c.name for c in customers.list_customers(context, criteria, window).items]

    by_creation = CustomerFilter(order_by=CustomerOrderBy.CREATED_AT)
    assert names(by_creation) == ["Charlie", "alpha"]
    assert names(CustomerFilter(include_deleted=True, order_by=CustomerOrderBy.CREATED_AT)) == [
        "Charlie",
        "alpha",
        "Bravo",
    ]
    assert names(CustomerFilter(primary_email="a@x")) == ["alpha"]
    assert names(CustomerFilter(key="C-K")) == ["Charlie"]
    assert names(CustomerFilter(subject="ALPH")) == ["alpha"]
    assert names(CustomerFilter(name="%")) == []
    desc = CustomerFilter(order_by=CustomerOrderBy.CREATED_AT, order=SortOrder.DESC)
    page = customers.list_customers(context, desc, Window.of_page(page=2, page_size=1))
    assert ([c.name for c in page.items], page.total_count) == (["Charlie"], 2)


def test_customer_for_subject_and_on_the_fly_creation(
    context: ServiceContext, clock: SettableClock
) -> None:
    acme = customers.create_customer(context, _details(key="acme", subject_keys=("acme-dev",)))
    with context.database.unit_of_work(write=True) as uow:
        assert customers.customer_for_subject(uow, "acme") == acme
        assert customers.customer_for_subject(uow, "acme-dev") == acme
        assert customers.customer_for_subject(uow, "newcomer") is None
        assert customers.ensure_customer_for_subject(uow, "acme-dev", clock()) == acme

        created = customers.ensure_customer_for_subject(uow, "newcomer", clock())
        uow.commit()

    assert (created.key, created.name, created.subject_keys) == (
        "newcomer",
        "newcomer",
        ("newcomer",),
    )
    assert created.annotations == {"allotment.provisionedFor": "newcomer"}
    assert customers.get_customer(context, "newcomer") == created
    assert subjects.get_subject(context, "newcomer").key == "newcomer"


def test_on_the_fly_customer_for_a_subject_shaped_like_a_customer_id(
    context: ServiceContext, clock: SettableClock
) -> None:
    acme = customers.create_customer(context, _details(key="acme"))
    with context.database.unit_of_work(write=True) as uow:
        created = customers.ensure_customer_for_subject(uow, acme.id, clock())
        uow.commit()
    assert (created.key, created.subject_keys) == (None, (acme.id,))


def test_concurrent_on_the_fly_creation_makes_one_customer(
    context: ServiceContext, clock: SettableClock
) -> None:
    barrier = threading.Barrier(4)
    results: list[str] = []
    failures: list[BaseException] = []

    def provision() -> None:
        try:
            barrier.wait()
            with context.database.unit_of_work(write=True) as uow:
                customer = customers.ensure_customer_for_subject(uow, "racer", clock())
                uow.commit()
            results.append(customer.id)
        except BaseException as error:  # reported below; a thread must not swallow it
            failures.append(error)

    threads = [threading.Thread(target=provision) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(set(results)) == 1
    listed = customers.list_customers(context, CustomerFilter(key="racer"), Window())
    assert listed.total_count == 1


def test_resolve_customer_reports_deleted_ids_as_precondition_failed(
    context: ServiceContext,
) -> None:
    acme = customers.create_customer(context, _details(key="acme"))
    customers.delete_customer(context, "acme")
    with context.database.unit_of_work() as uow:
        with pytest.raises(PreconditionFailed):
            customers.resolve_customer(uow, acme.id)
        assert customers.resolve_customer(uow, acme.id, include_deleted=True).id == acme.id
        with pytest.raises(NotFound) as raised:
            customers.resolve_customer(uow, "acme")
    assert raised.value.field == "customerIdOrKey"
