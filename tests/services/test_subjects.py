"""Subject upserts create new keys and change only the fields they name; deletes are soft."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allotment.domain.subjects import SubjectUpsert
from allotment.errors import InvalidInput, NotFound
from allotment.services import subjects
from allotment.services.context import ServiceContext
from tests.conftest import SettableClock

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 2, 1, tzinfo=UTC)


def test_upsert_creates_then_updates_only_named_fields(
    context: ServiceContext, clock: SettableClock
) -> None:
    created_at = clock()
    [created] = subjects.upsert_subjects(
        context,
        [
            SubjectUpsert(
                key="acme",
                display_name="ACME Inc.",
                metadata={"hubspotId": "123", "tier": 2},
                current_period_start=START,
                current_period_end=END,
                stripe_customer_id="cus_123",
            )
        ],
    )
    assert created.created_at == created.updated_at == created_at

    clock.advance(timedelta(hours=1))
    [updated] = subjects.upsert_subjects(context, [SubjectUpsert(key="acme", display_name="ACME")])

    assert updated.id == created.id
    assert updated.display_name == "ACME"
    assert updated.metadata == {"hubspotId": "123", "tier": 2}
    assert (updated.current_period_start, updated.current_period_end) == (START, END)
    assert updated.stripe_customer_id == "cus_123"
    assert updated.created_at == created_at
    assert updated.updated_at == created_at + timedelta(hours=1)
    assert subjects.get_subject(context, "acme") == updated


def test_explicit_null_clears_a_field(context: ServiceContext) -> None:
    subjects.upsert_subjects(
        context, [SubjectUpsert(key="acme", display_name="ACME", stripe_customer_id="cus_1")]
    )
    [cleared] = subjects.upsert_subjects(
        context, [SubjectUpsert(key="acme", display_name=None, metadata=None)]
    )
    assert cleared.display_name is None
    assert cleared.metadata is None
    assert cleared.stripe_customer_id == "cus_1"


def test_batch_returns_request_order_and_applies_repeats_in_order(
    context: ServiceContext,
) -> None:
    result = subjects.upsert_subjects(
        context,
        [
            SubjectUpsert(key="zeta"),
            SubjectUpsert(key="alpha", display_name="first"),
            SubjectUpsert(key="alpha", metadata={"x": 1}),
        ],
    )
    assert [s.key for s in result] == ["zeta", "alpha", "alpha"]
    assert result[1].id == result[2].id
    assert (result[2].display_name, result[2].metadata) == ("first", {"x": 1})
    assert [s.key for s in subjects.list_subjects(context)] == ["alpha", "zeta"]


def test_a_bad_entry_stores_nothing_and_names_its_index(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as raised:
        subjects.upsert_subjects(
            context,
            [
                SubjectUpsert(key="fine"),
                SubjectUpsert(key="bad", stripe_customer_id="acct_1"),
                SubjectUpsert(key=""),
            ],
        )
    assert [e.field for e in raised.value.errors] == ["1.stripeCustomerId", "2.key"]
    assert "cus_" in raised.value.errors[0].message
    assert subjects.list_subjects(context) == []


def test_get_tries_id_first_then_key(context: ServiceContext) -> None:
    [acme] = subjects.upsert_subjects(context, [SubjectUpsert(key="acme")])
    [by_id] = subjects.upsert_subjects(context, [SubjectUpsert(key=acme.id)])
    # "acme"'s id is also the key of another subject: the id wins.
    assert subjects.get_subject(context, acme.id) == acme
    assert subjects.get_subject(context, "acme") == acme
    subjects.delete_subject(context, "acme")
    # Once the id names a deleted subject, the same string finds the live subject keyed by it.
    assert subjects.get_subject(context, acme.id) == by_id


def test_delete_is_soft_and_frees_the_key(context: ServiceContext, clock: SettableClock) -> None:
    [first] = subjects.upsert_subjects(context, [SubjectUpsert(key="acme", display_name="old")])
    subjects.delete_subject(context, first.id)

    with pytest.raises(NotFound) as raised:
        subjects.get_subject(context, "acme")
    assert raised.value.field == "subjectIdOrKey"
    with pytest.raises(NotFound):
        subjects.delete_subject(context, "acme")
    assert subjects.list_subjects(context) == []

    [second] = subjects.upsert_subjects(context, [SubjectUpsert(key="acme")])
    assert second.id != first.id
    assert second.display_name is None


@pytest.mark.parametrize("lookup", ["nul\x00key", "\ud800", ""])
def test_unstorable_lookups_are_not_found(context: ServiceContext, lookup: str) -> None:
    with pytest.raises(NotFound):
        subjects.get_subject(context, lookup)


def test_unstorable_text_is_invalid_input(context: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as raised:
        subjects.upsert_subjects(
            context,
            [SubjectUpsert(key="a\x00b", display_name="\ud800", metadata={"k": "v\x00"})],
        )
    assert [e.field for e in raised.value.errors] == ["0.key", "0.displayName", "0.metadata"]
