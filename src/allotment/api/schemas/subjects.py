"""Wire models of subjects (OpenMeter `Subject`, `SubjectUpsert`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from allotment.api.schemas.common import RequestModel, UtcDateTime, WireModel
from allotment.domain import subjects as rules
from allotment.domain.subjects import UNSET, Subject, SubjectUpsert


class SubjectUpsertBody(RequestModel):
    """Fields left out of the JSON stay as they are; an explicit null clears those OpenMeter
    declares nullable (the others refuse null)."""

    nullable = frozenset({"display_name", "metadata", "stripe_customer_id"})

    key: str = Field(min_length=1, max_length=rules.KEY_MAX_LENGTH)
    display_name: str | None = Field(default=None, max_length=rules.DISPLAY_NAME_MAX_LENGTH)
    metadata: dict[str, Any] | None = None
    current_period_start: UtcDateTime | None = None
    current_period_end: UtcDateTime | None = None
    stripe_customer_id: str | None = Field(
        default=None,
        max_length=rules.STRIPE_CUSTOMER_ID_MAX_LENGTH,
        description=f"Must start with '{rules.STRIPE_CUSTOMER_ID_PREFIX}'.",
    )

    def to_upsert(self) -> SubjectUpsert:
        named = self.model_fields_set

        def given(name: str) -> Any:
            return getattr(self, name) if name in named else UNSET

        return SubjectUpsert(
            key=self.key,
            display_name=given("display_name"),
            metadata=given("metadata"),
            current_period_start=given("current_period_start"),
            current_period_end=given("current_period_end"),
            stripe_customer_id=given("stripe_customer_id"),
        )


class SubjectResponse(WireModel):
    id: str
    key: str
    display_name: str | None = None
    metadata: dict[str, Any] | None = None
    current_period_start: UtcDateTime | None = None
    current_period_end: UtcDateTime | None = None
    stripe_customer_id: str | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None

    @classmethod
    def of(cls, subject: Subject) -> SubjectResponse:
        return cls(
            id=subject.id,
            key=subject.key,
            display_name=subject.display_name,
            metadata=None if subject.metadata is None else dict(subject.metadata),
            current_period_start=subject.current_period_start,
            current_period_end=subject.current_period_end,
            stripe_customer_id=subject.stripe_customer_id,
            created_at=subject.created_at,
            updated_at=subject.updated_at,
            deleted_at=subject.deleted_at,
        )
