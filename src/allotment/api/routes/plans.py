"""Routes for plans (OpenMeter product catalog v1). `{planId}` takes an id or a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from allotment.api.deps import Context
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page
from allotment.api.schemas.plans import PlanCreateBody, PlanOut, PlanUpdateBody
from allotment.api.schemas.query_params import PageList
from allotment.domain.listing import SortOrder
from allotment.domain.plans import PlanFilter, PlanOrderBy, PlanStatus
from allotment.services import plans

router = APIRouter(route_class=ApiRoute, tags=["plans"])

PlanIdOrKey = Annotated[
    str, Path(alias="planId", description="A plan id, or a key (its active version)")
]
NextIdOrKey = Annotated[
    str, Path(alias="planIdOrKey", description="A plan id, or a key (its newest version)")
]


@router.post("/api/v1/plans", dependencies=[MANAGE], status_code=201)
def create_plan(context: Context, body: PlanCreateBody) -> PlanOut:
    """A draft, version 1. 409 when the key has a live version (use `.../next`)."""
    plan = plans.create_plan(context, body.key, body.terms())
    return PlanOut.of(plan, context.clock())


@router.get("/api/v1/plans", dependencies=[READ])
def list_plans(
    context: Context,
    shape: PageList,
    ids: Annotated[list[str] | None, Query(alias="id")] = None,
    keys: Annotated[list[str] | None, Query(alias="key")] = None,
    statuses: Annotated[list[PlanStatus] | None, Query(alias="status")] = None,
    currencies: Annotated[list[str] | None, Query(alias="currency")] = None,
    include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[PlanOrderBy, Query(alias="orderBy")] = PlanOrderBy.CREATED_AT,
) -> Page[PlanOut]:
    filters = PlanFilter(
        ids=tuple(ids or ()),
        keys=tuple(keys or ()),
        statuses=tuple(statuses or ()),
        currencies=tuple(currencies or ()),
        include_deleted=include_deleted,
    )
    result = plans.list_plans(context, filters, window=shape.window, order=order, order_by=order_by)
    now = context.clock()
    return shape.paginated([PlanOut.of(p, now) for p in result.items], result.total_count)


@router.get("/api/v1/plans/{planId}", dependencies=[READ])
def get_plan(
    context: Context,
    plan_id: PlanIdOrKey,
    include_latest: Annotated[bool, Query(alias="includeLatest")] = False,
) -> PlanOut:
    """By key: the active version, or the newest when none is active or `includeLatest`."""
    plan = plans.get_plan(context, plan_id, include_latest=include_latest)
    return PlanOut.of(plan, context.clock())


@router.put("/api/v1/plans/{planId}", dependencies=[MANAGE])
def update_plan(context: Context, plan_id: PlanIdOrKey, body: PlanUpdateBody) -> PlanOut:
    """Only a draft can be edited (409 otherwise); the currency and key stay."""
    # A replace carries no currency: the service keeps the plan's.
    plan = plans.update_plan(context, plan_id, body.to_terms(currency=""))
    return PlanOut.of(plan, context.clock())


@router.delete("/api/v1/plans/{planId}", dependencies=[MANAGE], status_code=204)
def delete_plan(context: Context, plan_id: PlanIdOrKey) -> Response:
    """A draft or archived version; an active one is archived first (409)."""
    plans.delete_plan(context, plan_id)
    return Response(status_code=204)


@router.post("/api/v1/plans/{planId}/publish", dependencies=[MANAGE])
def publish_plan(context: Context, plan_id: PlanIdOrKey) -> PlanOut:
    """The draft becomes active now; the key's previously active version is archived."""
    return PlanOut.of(plans.publish_plan(context, plan_id), context.clock())


@router.post("/api/v1/plans/{planId}/archive", dependencies=[MANAGE])
def archive_plan(context: Context, plan_id: PlanIdOrKey) -> PlanOut:
    """No new subscriptions from now; running ones keep their terms."""
    return PlanOut.of(plans.archive_plan(context, plan_id), context.clock())


@router.post("/api/v1/plans/{planIdOrKey}/next", dependencies=[MANAGE], status_code=201)
def next_plan(context: Context, plan_id: NextIdOrKey) -> PlanOut:
    """A new draft version with the same terms; 409 when the key already has a draft."""
    return PlanOut.of(plans.next_plan(context, plan_id), context.clock())
