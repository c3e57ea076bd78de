"""Routes for customers (OpenMeter v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from allotment.api.deps import Context
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page
from allotment.api.schemas.customers import CustomerBody, CustomerResponse
from allotment.api.schemas.query_params import PageList
from allotment.domain.customers import CustomerFilter, CustomerOrderBy
from allotment.domain.listing import SortOrder
from allotment.services import customers


class CustomerExpand(StrEnum):
    SUBSCRIPTIONS = "subscriptions"


# OpenMeter's only value; Allotment has no subscriptions, so there is nothing to add. Any other
# value is a 400 naming `expand`, as OpenMeter's schema has it.
Expand = Annotated[
    list[CustomerExpand] | None,
    Query(description="`subscriptions` (accepted; there are none to expand)"),
]

router = APIRouter(route_class=ApiRoute, tags=["customers"])

CustomerIdOrKey = Annotated[
    str, Path(alias="customerIdOrKey", description="A customer id, or else its key")
]


@router.post(
    "/api/v1/customers", dependencies=[MANAGE], status_code=201, response_model_exclude_none=True
)
def create_customer(context: Context, body: CustomerBody) -> CustomerResponse:
    """Also creates a subject for each subject key that has none."""
    return CustomerResponse.of(customers.create_customer(context, body.to_details()))


@router.get("/api/v1/customers", dependencies=[READ], response_model_exclude_none=True)
def list_customers(
    context: Context,
    shape: PageList,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[CustomerOrderBy, Query(alias="orderBy")] = CustomerOrderBy.NAME,
    include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
    key: Annotated[str | None, Query(description="Case-insensitive partial match")] = None,
    name: Annotated[str | None, Query(description="Case-insensitive partial match")] = None,
    primary_email: Annotated[
        str | None, Query(alias="primaryEmail", description="Case-insensitive partial match")
    ] = None,
    subject: Annotated[
        str | None, Query(description="A subject key; case-insensitive partial match")
    ] = None,
    plan_key: Annotated[
        str | None, Query(alias="planKey", description="Plans are not supported: matches none")
    ] = None,
    expand: Expand = None,
) -> Page[CustomerResponse]:
    criteria = CustomerFilter(
        key=key,
        name=name,
        primary_email=primary_email,
        subject=subject,
        plan_key=plan_key,
        include_deleted=include_deleted,
        order_by=order_by,
        order=order,
    )
    result = customers.list_customers(context, criteria, shape.window)
    return shape.paginated([CustomerResponse.of(c) for c in result.items], result.total_count)


@router.get(
    "/api/v1/customers/{customerIdOrKey}", dependencies=[READ], response_model_exclude_none=True
)
def get_customer(
    context: Context, customer_id_or_key: CustomerIdOrKey, expand: Expand = None
) -> CustomerResponse:
    """By id also when deleted (with `deletedAt`); keys name live customers only."""
    return CustomerResponse.of(customers.get_customer(context, customer_id_or_key))


@router.put(
    "/api/v1/customers/{customerIdOrKey}", dependencies=[MANAGE], response_model_exclude_none=True
)
def replace_customer(
    context: Context, customer_id_or_key: CustomerIdOrKey, body: CustomerBody
) -> CustomerResponse:
    """Full replace: fields left out are cleared."""
    replaced = customers.replace_customer(context, customer_id_or_key, body.to_details())
    return CustomerResponse.of(replaced)


@router.delete("/api/v1/customers/{customerIdOrKey}", dependencies=[MANAGE], status_code=204)
def delete_customer(context: Context, customer_id_or_key: CustomerIdOrKey) -> Response:
    """Soft delete; refused (409) while the customer has active entitlements."""
    customers.delete_customer(context, customer_id_or_key)
    return Response(status_code=204)
