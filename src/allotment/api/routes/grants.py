"""Routes for grants: per entitlement (v1 subject-keyed, v2 customer-keyed), every customer's,
and voiding.

v1 and v2 run the same service; they differ in defaults (v1 requires an expiration and rolls
nothing over unless told; v2 may never expire and rolls over up to the amount) and list shapes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from allotment.api import idempotency
from allotment.api.deps import Context
from allotment.api.routes.entitlements import (
    ByCustomer,
    BySubject,
    EntitlementIdOrFeatureKey,
    EntitlementIdOrFeatureKeyV2,
    Features,
    IncludeDeleted,
    Order,
)
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page, UtcDateTime
from allotment.api.schemas.grants import GrantCreateV1, GrantCreateV2, GrantV1, GrantV2
from allotment.api.schemas.query_params import LegacyList, V2List
from allotment.domain.entitlements import GrantFilter, GrantOrderBy
from allotment.domain.grant_requests import GrantDefaults
from allotment.domain.listing import SortOrder
from allotment.services import grants
from allotment.services.grants import GrantView
from allotment.services.idempotency import IdempotencyClaim

router = APIRouter(route_class=ApiRoute, tags=["grants"])

GrantOrder = Annotated[GrantOrderBy, Query(alias="orderBy")]


@router.post(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    dependencies=[MANAGE],
    status_code=201,
    response_model=GrantV1,
    response_model_exclude_none=True,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def create_subject_grant(
    request: Request,
    context: Context,
    owner: BySubject,
    entitlement: EntitlementIdOrFeatureKey,
    body: GrantCreateV1,
) -> Any:
    """Metered entitlements only (400 otherwise); `effectiveAt` not before the current period."""
    claim: IdempotencyClaim[GrantView] | None = idempotency.claim_of(
        request, lambda view: idempotency.json_answer(201, GrantV1.of(view))
    )
    return idempotency.answer(
        claim,
        lambda: grants.create_grant(
            context, owner, entitlement, body.to_request(), GrantDefaults.V1, claim
        ),
        GrantV1.of,
    )


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def list_subject_grants(
    context: Context,
    owner: BySubject,
    entitlement: EntitlementIdOrFeatureKey,
    include_deleted: IncludeDeleted = False,
    order_by: GrantOrder = GrantOrderBy.UPDATED_AT,
) -> list[GrantV1]:
    result = grants.list_entitlement_grants(
        context,
        owner,
        entitlement,
        include_deleted=include_deleted,
        order_by=order_by,
    )
    return [GrantV1.of(view) for view in result.items]


@router.post(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    dependencies=[MANAGE],
    status_code=201,
    response_model=GrantV2,
    response_model_exclude_none=True,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def create_customer_grant(
    request: Request,
    context: Context,
    owner: ByCustomer,
    entitlement: EntitlementIdOrFeatureKeyV2,
    body: GrantCreateV2,
) -> Any:
    """Metered entitlements only (400 otherwise); `effectiveAt` not before the current period."""
    claim: IdempotencyClaim[GrantView] | None = idempotency.claim_of(
        request, lambda view: idempotency.json_answer(201, GrantV2.of(view))
    )
    return idempotency.answer(
        claim,
        lambda: grants.create_grant(
            context, owner, entitlement, body.to_request(), GrantDefaults.V2, claim
        ),
        GrantV2.of,
    )


@router.get(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/grants",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def list_customer_grants(
    context: Context,
    owner: ByCustomer,
    entitlement: EntitlementIdOrFeatureKeyV2,
    shape: V2List,
    include_deleted: IncludeDeleted = False,
    order: Order = SortOrder.ASC,
    order_by: GrantOrder = GrantOrderBy.CREATED_AT,
) -> Page[GrantV2]:
    result = grants.list_entitlement_grants(
        context,
        owner,
        entitlement,
        include_deleted=include_deleted,
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.paginated([GrantV2.of(view) for view in result.items], result.total_count)


@router.get(
    "/api/v1/grants",
    dependencies=[READ],
    response_model=list[GrantV1] | Page[GrantV1],
    response_model_exclude_none=True,
)
def list_all_grants_v1(
    context: Context,
    shape: LegacyList,
    feature: Features = [],  # noqa: B006 - FastAPI copies query defaults
    subject: Annotated[list[str], Query(description="Subject keys")] = [],  # noqa: B006
    include_deleted: IncludeDeleted = False,
    order: Order = SortOrder.ASC,
    order_by: GrantOrder = GrantOrderBy.EFFECTIVE_AT,
) -> list[GrantV1] | Page[GrantV1]:
    """A bare array unless `page` or `pageSize` is sent (then the paginated object)."""
    result = grants.list_grants(
        context,
        GrantFilter(features=feature, subject_keys=subject, include_deleted=include_deleted),
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.wrap([GrantV1.of(view) for view in result.items], result.total_count)


@router.get("/api/v2/grants", dependencies=[READ], response_model_exclude_none=True)
def list_all_grants_v2(
    context: Context,
    shape: V2List,
    feature: Features = [],  # noqa: B006
    customer: Annotated[list[str], Query(description="Customer ids or keys")] = [],  # noqa: B006
    include_deleted: IncludeDeleted = False,
    order: Order = SortOrder.ASC,
    order_by: GrantOrder = GrantOrderBy.CREATED_AT,
) -> Page[GrantV2]:
    """Page mode, or limit/offset mode (then `page` and `pageSize` read 0)."""
    result = grants.list_grants(
        context,
        GrantFilter(features=feature, customers=customer, include_deleted=include_deleted),
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.paginated([GrantV2.of(view) for view in result.items], result.total_count)


@router.delete(
    "/api/v1/grants/{grantId}",
    dependencies=[MANAGE],
    status_code=204,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def void_grant(
    request: Request,
    context: Context,
    grant_id: Annotated[str, Path(alias="grantId")],
    at: Annotated[
        UtcDateTime | None,
        Query(description="When the grant stops counting (default now, floored to the minute)"),
    ] = None,
) -> Response:
    """400 when already voided, in the future, or before the current usage period starts."""
    claim = idempotency.claim_of(request, idempotency.no_content)
    result: Response = idempotency.answer(
        claim,
        lambda: grants.void_grant(context, grant_id, at, claim),
        lambda _: Response(status_code=204),
    )
    return result
