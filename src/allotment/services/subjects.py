"""Listing, upserting, reading and deleting subjects.

`find_subject` and `ensure_subjects` work inside a caller's unit of work, for use cases that touch
subjects as part of something larger (customers, subject-keyed entitlements).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from allotment.domain.subjects import (
    Subject,
    SubjectUpsert,
    apply_upsert,
    new_subject,
    validate_upsert,
)
from allotment.domain.text import is_storable_text
from allotment.errors import ErrorList, NotFound
from allotment.ids import is_ulid, new_id
from allotment.services.context import ServiceContext
from allotment.storage import UnitOfWork


def list_subjects(context: ServiceContext) -> list[Subject]:
    """Live subjects, by key."""
    with context.database.unit_of_work() as uow:
        return uow.subjects.list_live()


def upsert_subjects(context: ServiceContext, upserts: Sequence[SubjectUpsert]) -> list[Subject]:
    """Creates the subjects whose keys are new and updates the named fields of the others.

    One transaction: a bad entry anywhere stores nothing. Entries apply in order, so a key listed
    twice ends with the later entry's fields; each returned subject is the state after its entry.
    """
    errors = ErrorList()
    for index, upsert in enumerate(upserts):
        validate_upsert(upsert, errors, prefix=f"{index}.")
    errors.raise_if_any("invalid subjects")
    at = context.clock()
    results: list[Subject] = []
    with context.database.unit_of_work(write=True) as uow:
        for upsert in upserts:
            results.append(_upsert_one(uow, upsert, at))
        uow.commit()
    return results


def _upsert_one(uow: UnitOfWork, upsert: SubjectUpsert, at: datetime) -> Subject:
    existing = uow.subjects.get_live_by_key(upsert.key)
    if existing is None:
        created = new_subject(upsert, subject_id=new_id(), at=at)
        if uow.subjects.add_if_absent(created):
            return created
        # Another transaction created the key between our read and our insert.
        existing = uow.subjects.get_live_by_key(upsert.key)
        assert existing is not None
    updated = apply_upsert(existing, upsert, at=at)
    uow.subjects.update(updated)
    return updated


def get_subject(context: ServiceContext, id_or_key: str) -> Subject:
    with context.database.unit_of_work() as uow:
        return _require(uow, id_or_key)


def delete_subject(context: ServiceContext, id_or_key: str) -> None:
    """Soft delete: the key is free again; customers listing it keep it."""
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        subject = _require(uow, id_or_key)
        uow.subjects.delete(subject.id, at)
        uow.commit()


def find_subject(uow: UnitOfWork, id_or_key: str) -> Subject | None:
    """The live subject with this id (tried first when it looks like a ULID) or key."""
    if not is_storable_text(id_or_key):
        return None
    if is_ulid(id_or_key):
        by_id = uow.subjects.get(id_or_key)
        if by_id is not None and not by_id.is_deleted:
            return by_id
    return uow.subjects.get_live_by_key(id_or_key)


def ensure_subjects(uow: UnitOfWork, keys: Iterable[str], at: datetime) -> None:
    """Creates a bare subject for each key that has no live one (a write unit of work)."""
    wanted = set(keys)
    for key in sorted(wanted - uow.subjects.live_keys_among(wanted)):
        uow.subjects.add_if_absent(new_subject(SubjectUpsert(key=key), subject_id=new_id(), at=at))


def _require(uow: UnitOfWork, id_or_key: str) -> Subject:
    subject = find_subject(uow, id_or_key)
    if subject is None:
        raise NotFound(f"subject not found: {id_or_key}", field="subjectIdOrKey")
    return subject
