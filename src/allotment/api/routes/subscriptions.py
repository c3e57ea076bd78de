"""Routes for subscriptions (OpenMeter v1): create, read, a customer's list, change, cancel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel

from allotment.api import idempotency
from allotment.api.deps import Context
from allotment.api.routes.customers import CustomerIdOrKey
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page
from allotment.api.schemas.query_params import PageList
from allotment.api.schemas.subscriptions import (
    CancelBody,
    SubscriptionChangeBody,
    SubscriptionChangeOut,
    SubscriptionCreateBody,
    SubscriptionExpandedOut,
    SubscriptionOut,
)
from allotment.domain.listing import SortOrder
from allotment.domain.subscriptions import SubscriptionStatus
from allotment.services import subscriptions
from allotment.services.idempotency import IdempotencyClaim, Rendered
from allotment.services.subscriptions import ChangeResult, SubscriptionView

router = APIRouter(route_class=ApiRoute, tags=["subscriptions"])

SubscriptionId = Annotated[str, Path(alias="subscriptionId")]


@router.post(
    "/api/v1/subscriptions",
    dependencies=[MANAGE],
    status_code=201,
    response_model=SubscriptionOut,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def create_subscription(request: Request, context: Context, body: SubscriptionCreateBody) -> Any:
    """From a published plan (`plan: {key, version?}`) or a per-customer `customPlan`; the
    plan's entitlements are created in the same transaction. 409 when the customer already
    has a subscription then."""

    def fresh(view: SubscriptionView) -> SubscriptionOut:
        # The clock after the use case: a status "now" before the subscription's start would
        # read scheduled.
        return SubscriptionOut.of(view.subscription, context.clock())

    claim: IdempotencyClaim[SubscriptionView] | None = idempotency.claim_of(
        request, lambda view: _json(201, fresh(view))
    )
    return idempotency.answer(
        claim, lambda: subscriptions.create_subscription(context, body.to_request(), claim), fresh
    )


@router.get("/api/v1/subscriptions/{subscriptionId}", dependencies=[READ])
def get_subscription(context: Context, subscription_id: SubscriptionId) -> SubscriptionExpandedOut:
    """With its phases, and each item's feature and entitlement."""
    view = subscriptions.get_subscription(context, subscription_id)
    return SubscriptionExpandedOut.of_view(view, context.clock())


@router.get("/api/v1/customers/{customerIdOrKey}/subscriptions", dependencies=[READ])
def list_customer_subscriptions(
    context: Context,
    customer: CustomerIdOrKey,
    shape: PageList,
    status: Annotated[list[SubscriptionStatus] | None, Query()] = None,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[Literal["activeFrom", "activeTo"], Query(alias="orderBy")] = "activeFrom",
) -> Page[SubscriptionOut]:
    result = subscriptions.list_customer_subscriptions(
        context,
        customer,
        statuses=tuple(status or ()),
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    now = context.clock()
    return shape.paginated([SubscriptionOut.of(s, now) for s in result.items], result.total_count)


@router.post(
    "/api/v1/subscriptions/{subscriptionId}/change",
    dependencies=[MANAGE],
    response_model=SubscriptionChangeOut,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def change_subscription(
    request: Request,
    context: Context,
    subscription_id: SubscriptionId,
    body: SubscriptionChangeBody,
) -> Any:
    """Upgrade or downgrade: the subscription ends at `timing` and the new plan's starts there.
    Usage counted this period and top-ups carry over to the new plan's entitlements."""

    def fresh(result: ChangeResult) -> SubscriptionChangeOut:
        return SubscriptionChangeOut.of(result, context.clock())

    claim: IdempotencyClaim[ChangeResult] | None = idempotency.claim_of(
        request, lambda result: _json(200, fresh(result))
    )
    return idempotency.answer(
        claim,
        lambda: subscriptions.change_subscription(
            context, subscription_id, body.to_request(), claim
        ),
        fresh,
    )


def _json(status: int, model: BaseModel) -> Rendered:
    # Not `idempotency.json_answer`: these models leave out unset fields themselves and keep
    # the nulls OpenMeter's schema requires.
    return status, "application/json", model.model_dump_json().encode()


@router.post("/api/v1/subscriptions/{subscriptionId}/cancel", dependencies=[MANAGE])
def cancel_subscription(
    context: Context,
    subscription_id: SubscriptionId,
    body: Annotated[CancelBody | None, Body()] = None,
) -> SubscriptionOut:
    """Immediately unless `timing` says otherwise; its entitlements end with it."""
    timing = (body or CancelBody()).to_timing()
    canceled = subscriptions.cancel_subscription(context, subscription_id, timing)
    return SubscriptionOut.of(canceled, context.clock())


@router.post("/api/v1/subscriptions/{subscriptionId}/unschedule-cancelation", dependencies=[MANAGE])
def unschedule_cancelation(context: Context, subscription_id: SubscriptionId) -> SubscriptionOut:
    restored = subscriptions.unschedule_cancelation(context, subscription_id)
    return SubscriptionOut.of(restored, context.clock())
