"""Wire models of customers (OpenMeter `Customer`, `CustomerCreate`, `CustomerReplaceUpdate`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from allotment.api.schemas.common import RequestModel, UtcDateTime, WireModel
from allotment.domain import customers as rules
from allotment.domain import subjects as subject_rules
from allotment.domain.customers import Address, Customer, CustomerDetails

SubjectKey = Annotated[
    str, StringConstraints(min_length=1, max_length=subject_rules.KEY_MAX_LENGTH)
]


class UsageAttribution(WireModel):
    subject_keys: list[SubjectKey] = Field(
        description="Event subjects whose usage is the customer's; each belongs to one customer."
    )


class AddressBody(WireModel):
    country: str | None = Field(default=None, pattern=rules.COUNTRY_PATTERN)
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None

    def to_address(self) -> Address:
        return Address(
            country=self.country,
            postal_code=self.postal_code,
            state=self.state,
            city=self.city,
            line1=self.line1,
            line2=self.line2,
            phone_number=self.phone_number,
        )

    @classmethod
    def of(cls, address: Address) -> AddressBody:
        return cls.model_validate(address.lines())


class CustomerBody(RequestModel):
    nullable = frozenset({"metadata"})
    """Create and full replace: either `key` or a non-empty `usageAttribution.subjectKeys`."""

    name: str = Field(min_length=1, max_length=rules.NAME_MAX_LENGTH)
    key: str | None = Field(default=None, min_length=1, max_length=rules.KEY_MAX_LENGTH)
    usage_attribution: UsageAttribution | None = None
    description: str | None = Field(default=None, max_length=rules.DESCRIPTION_MAX_LENGTH)
    primary_email: str | None = Field(default=None, max_length=rules.PRIMARY_EMAIL_MAX_LENGTH)
    currency: str | None = Field(default=None, pattern=rules.CURRENCY_PATTERN)
    billing_address: AddressBody | None = None
    metadata: dict[str, str] | None = None

    def to_details(self) -> CustomerDetails:
        return CustomerDetails(
            name=self.name,
            key=self.key,
            subject_keys=tuple(self.usage_attribution.subject_keys)
            if self.usage_attribution
            else (),
            description=self.description,
            primary_email=self.primary_email,
            currency=self.currency,
            billing_address=self.billing_address.to_address() if self.billing_address else None,
            metadata=self.metadata,
        )


class CustomerResponse(WireModel):
    id: str
    name: str
    key: str | None = None
    usage_attribution: UsageAttribution
    description: str | None = None
    primary_email: str | None = None
    currency: str | None = None
    billing_address: AddressBody | None = None
    metadata: dict[str, str] | None = None
    annotations: dict[str, Any] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None
    current_subscription_id: str | None = None

    @classmethod
    def of(cls, customer: Customer) -> CustomerResponse:
        return cls(
            id=customer.id,
            name=customer.name,
            key=customer.key,
            usage_attribution=UsageAttribution(subject_keys=list(customer.subject_keys)),
            description=customer.description,
            primary_email=customer.primary_email,
            currency=customer.currency,
            billing_address=AddressBody.of(customer.billing_address)
            if customer.billing_address
            else None,
            metadata=None if customer.metadata is None else dict(customer.metadata),
            annotations=None if customer.annotations is None else dict(customer.annotations),
            created_at=customer.created_at,
            updated_at=customer.updated_at,
            deleted_at=customer.deleted_at,
            current_subscription_id=customer.current_subscription_id,
        )
