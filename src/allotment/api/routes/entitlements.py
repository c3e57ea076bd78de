"""Routes for entitlements: v1 subject-keyed and v2 customer-keyed, over one implementation.

Also the v1 customer check-access routes (`/api/v1/customers/{c}/access` and
`/api/v1/customers/{c}/entitlements/{featureKey}/value`): they answer from the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from allotment.api import idempotency, metrics
from allotment.api.deps import Context
from allotment.api.routes.customers import CustomerIdOrKey
from allotment.api.routes.subjects import SubjectIdOrKey
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import ExactJSONResponse, Page, UtcDateTime
from allotment.api.schemas.entitlements import (
    ULID_PATTERN,
    CustomerAccessOut,
    EntitlementCreate,
    EntitlementCreateV2,
    EntitlementV1,
    EntitlementV2,
    EntitlementValueOut,
    EntitlementValueV2Out,
    ResetBody,
    WindowedBalanceHistoryOut,
    entitlement_v1,
    entitlement_v2,
    value_document,
)
from allotment.api.schemas.query_params import LegacyList, PageList, V2List
from allotment.domain.entitlements import EntitlementFilter, EntitlementOrderBy, EntitlementType
from allotment.domain.features import KEY_PATTERN
from allotment.domain.history import WindowSize
from allotment.domain.listing import SortOrder
from allotment.services import (
    entitlement_history,
    entitlement_resets,
    entitlement_values,
    entitlements,
)
from allotment.services.entitlement_owners import CustomerOwner, Owner, SubjectOwner
from allotment.services.entitlements import EntitlementView
from allotment.services.idempotency import IdempotencyClaim

router = APIRouter(route_class=ApiRoute, tags=["entitlements"])

EntitlementId = Annotated[
    str,
    Path(alias="entitlementId", description="An entitlement id (a feature key works as well)"),
]
EntitlementIdOrFeatureKey = Annotated[
    str,
    Path(
        alias="entitlementIdOrFeatureKey",
        description="An entitlement id, or the key of the feature it is for",
    ),
]
# The v2 customer paths and the lookups by id carry OpenMeter's documented patterns: a path
# breaking one is a 400 naming it, not a 404 (the v1 subject paths document none).
_KEY_OR_ULID = f"{KEY_PATTERN}|{ULID_PATTERN}"
EntitlementIdOrFeatureKeyV2 = Annotated[
    str,
    Path(
        alias="entitlementIdOrFeatureKey",
        min_length=1,
        max_length=64,
        pattern=_KEY_OR_ULID,
        description="An entitlement id, or the key of the feature it is for",
    ),
]
EntitlementUlid = Annotated[
    str, Path(alias="entitlementId", pattern=ULID_PATTERN, description="An entitlement id")
]
FeatureKey = Annotated[
    str, Path(alias="featureKey", min_length=1, max_length=64, pattern=KEY_PATTERN)
]
Time = Annotated[
    UtcDateTime | None,
    Query(description="The instant to evaluate at (default now); RFC 3339 with an offset"),
]
IncludeDeleted = Annotated[bool, Query(alias="includeDeleted")]
Order = Annotated[SortOrder, Query()]
OrderBy = Annotated[EntitlementOrderBy, Query(alias="orderBy")]
Features = Annotated[list[str], Query(alias="feature", description="Feature ids or keys")]
Types = Annotated[list[EntitlementType], Query(alias="entitlementType")]
ExcludeInactive = Annotated[
    bool, Query(alias="excludeInactive", description="Leave out entitlements not active now")
]
HistoryWindowSize = Annotated[WindowSize, Query(alias="windowSize")]
HistoryFrom = Annotated[
    UtcDateTime | None, Query(alias="from", description="Default: the last reset")
]
HistoryTo = Annotated[UtcDateTime | None, Query(alias="to", description="Default: now")]
HistoryTimeZone = Annotated[
    str, Query(alias="windowTimeZone", max_length=64, description="Empty or absent: UTC.")
]
ResetInput = Annotated[ResetBody | None, Body()]


async def _subject_owner(subject: SubjectIdOrKey) -> SubjectOwner:
    return SubjectOwner(subject)


async def _customer_owner(customer: CustomerIdOrKey) -> CustomerOwner:
    return CustomerOwner(customer)


# The owner a path names: v1 routes by `{subjectIdOrKey}`, v2 routes by `{customerIdOrKey}`.
BySubject = Annotated[SubjectOwner, Depends(_subject_owner)]
ByCustomer = Annotated[CustomerOwner, Depends(_customer_owner)]


@dataclass(frozen=True)
class HistoryQuery:
    window_size: WindowSize
    start: datetime | None
    end: datetime | None
    time_zone: str


async def _history_query(
    window_size: HistoryWindowSize,
    start: HistoryFrom = None,
    end: HistoryTo = None,
    time_zone: HistoryTimeZone = "UTC",
) -> HistoryQuery:
    # An empty zone means UTC, as in OpenMeter.
    return HistoryQuery(window_size, start, end, time_zone or "UTC")


History = Annotated[HistoryQuery, Depends(_history_query)]


# -- v1: subject-keyed ------------------------------------------------------------------------


@router.post(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
)
def create_subject_entitlement(
    context: Context, owner: BySubject, body: EntitlementCreate
) -> EntitlementV1:
    """A subject with no customer yet gets one (key = the subject key). 409 when the subject's
    customer already has an active entitlement for the feature."""
    return entitlement_v1(entitlements.create_entitlement(context, owner, body.to_request()))


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def list_subject_entitlements(
    context: Context, owner: BySubject, include_deleted: IncludeDeleted = False
) -> list[EntitlementV1]:
    result = entitlements.list_owner_entitlements(context, owner, include_deleted=include_deleted)
    return [entitlement_v1(view) for view in result.items]


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def get_subject_entitlement(
    context: Context, owner: BySubject, entitlement: EntitlementId
) -> EntitlementV1:
    return entitlement_v1(entitlements.get_entitlement(context, owner, entitlement))


@router.delete(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}",
    dependencies=[MANAGE],
    status_code=204,
)
def delete_subject_entitlement(
    context: Context, owner: BySubject, entitlement: EntitlementId
) -> Response:
    """Ends it now; reads of earlier times still see it. Its grants end with it."""
    return _delete(context, owner, entitlement)


@router.put(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override",
    dependencies=[MANAGE],
    status_code=201,
    response_model=EntitlementV1,
    response_model_exclude_none=True,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def override_subject_entitlement(
    request: Request,
    context: Context,
    owner: BySubject,
    entitlement: EntitlementIdOrFeatureKey,
    body: EntitlementCreate,
) -> Any:
    """Ends the live entitlement and starts this one for the same feature, atomically."""
    claim: IdempotencyClaim[EntitlementView] | None = idempotency.claim_of(
        request, lambda view: idempotency.json_answer(201, entitlement_v1(view))
    )
    return idempotency.answer(
        claim,
        lambda: entitlements.override_entitlement(
            context, owner, entitlement, body.to_request(), claim
        ),
        entitlement_v1,
    )


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value",
    response_model=EntitlementValueOut,
    dependencies=[READ],
    response_model_exclude_none=True,
)
def subject_entitlement_value(
    context: Context, owner: BySubject, entitlement: EntitlementIdOrFeatureKey, time: Time = None
) -> Response:
    """`hasAccess: false` for a feature the subject has no entitlement for."""
    value = entitlement_values.entitlement_value(context, owner, entitlement, time)
    metrics.record_access_check(value.has_access)
    return ExactJSONResponse(value_document(value, with_grant_balances=False))


@router.get(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/history",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def subject_entitlement_history(
    context: Context, owner: BySubject, entitlement: EntitlementId, query: History
) -> WindowedBalanceHistoryOut:
    return _history(context, owner, entitlement, query)


@router.post(
    "/api/v1/subjects/{subjectIdOrKey}/entitlements/{entitlementId}/reset",
    dependencies=[MANAGE],
    status_code=204,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def reset_subject_entitlement(
    request: Request,
    context: Context,
    owner: BySubject,
    entitlement: EntitlementId,
    body: ResetInput = None,
) -> Response:
    return _reset(request, context, owner, entitlement, body)


# -- v2: customer-keyed -----------------------------------------------------------------------


@router.post(
    "/api/v2/customers/{customerIdOrKey}/entitlements",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
)
def create_customer_entitlement(
    context: Context, owner: ByCustomer, body: EntitlementCreateV2
) -> EntitlementV2:
    """409 when the customer already has an active entitlement for the feature."""
    return entitlement_v2(entitlements.create_entitlement(context, owner, body.to_request()))


@router.get(
    "/api/v2/customers/{customerIdOrKey}/entitlements",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def list_customer_entitlements(
    context: Context,
    owner: ByCustomer,
    shape: PageList,
    include_deleted: IncludeDeleted = False,
    order: Order = SortOrder.ASC,
    order_by: OrderBy = EntitlementOrderBy.CREATED_AT,
) -> Page[EntitlementV2]:
    result = entitlements.list_owner_entitlements(
        context,
        owner,
        include_deleted=include_deleted,
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.paginated([entitlement_v2(view) for view in result.items], result.total_count)


@router.get(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def get_customer_entitlement(
    context: Context, owner: ByCustomer, entitlement: EntitlementIdOrFeatureKeyV2
) -> EntitlementV2:
    return entitlement_v2(entitlements.get_entitlement(context, owner, entitlement))


@router.delete(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}",
    dependencies=[MANAGE],
    status_code=204,
)
def delete_customer_entitlement(
    context: Context, owner: ByCustomer, entitlement: EntitlementIdOrFeatureKeyV2
) -> Response:
    """Ends it now; reads of earlier times still see it. Its grants end with it."""
    return _delete(context, owner, entitlement)


@router.put(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/override",
    dependencies=[MANAGE],
    status_code=201,
    response_model=EntitlementV2,
    response_model_exclude_none=True,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def override_customer_entitlement(
    request: Request,
    context: Context,
    owner: ByCustomer,
    entitlement: EntitlementIdOrFeatureKeyV2,
    body: EntitlementCreateV2,
) -> Any:
    """Ends the live entitlement and starts this one for the same feature, atomically."""
    claim: IdempotencyClaim[EntitlementView] | None = idempotency.claim_of(
        request, lambda view: idempotency.json_answer(201, entitlement_v2(view))
    )
    return idempotency.answer(
        claim,
        lambda: entitlements.override_entitlement(
            context, owner, entitlement, body.to_request(), claim
        ),
        entitlement_v2,
    )


@router.get(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/value",
    response_model=EntitlementValueV2Out,
    dependencies=[READ],
    response_model_exclude_none=True,
)
def customer_entitlement_value(
    context: Context, owner: ByCustomer, entitlement: EntitlementIdOrFeatureKeyV2, time: Time = None
) -> Response:
    """`hasAccess: false` for a feature the customer has no entitlement for."""
    value = entitlement_values.entitlement_value(context, owner, entitlement, time)
    metrics.record_access_check(value.has_access)
    return ExactJSONResponse(value_document(value, with_grant_balances=True))


@router.get(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/history",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def customer_entitlement_history(
    context: Context, owner: ByCustomer, entitlement: EntitlementIdOrFeatureKeyV2, query: History
) -> WindowedBalanceHistoryOut:
    return _history(context, owner, entitlement, query)


@router.post(
    "/api/v2/customers/{customerIdOrKey}/entitlements/{entitlementIdOrFeatureKey}/reset",
    dependencies=[MANAGE],
    status_code=204,
    openapi_extra=idempotency.OPENAPI_EXTRA,
)
def reset_customer_entitlement(
    request: Request,
    context: Context,
    owner: ByCustomer,
    entitlement: EntitlementIdOrFeatureKeyV2,
    body: ResetInput = None,
) -> Response:
    return _reset(request, context, owner, entitlement, body)


# -- every customer ---------------------------------------------------------------------------


@router.get(
    "/api/v1/entitlements",
    dependencies=[READ],
    response_model=list[EntitlementV1] | Page[EntitlementV1],
    response_model_exclude_none=True,
)
def list_all_entitlements_v1(
    context: Context,
    shape: LegacyList,
    feature: Features = [],  # noqa: B006 - FastAPI copies query defaults
    subject: Annotated[list[str], Query(description="Subject keys")] = [],  # noqa: B006
    entitlement_type: Types = [],  # noqa: B006
    exclude_inactive: ExcludeInactive = False,
    order: Order = SortOrder.ASC,
    order_by: OrderBy = EntitlementOrderBy.CREATED_AT,
) -> list[EntitlementV1] | Page[EntitlementV1]:
    """A bare array unless `page` or `pageSize` is sent (then the paginated object)."""
    result = entitlements.list_entitlements(
        context,
        EntitlementFilter(subject_keys=subject, features=feature, types=entitlement_type),
        exclude_inactive=exclude_inactive,
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.wrap([entitlement_v1(view) for view in result.items], result.total_count)


@router.get(
    "/api/v1/entitlements/{entitlementId}", dependencies=[READ], response_model_exclude_none=True
)
def get_any_entitlement_v1(context: Context, entitlement: EntitlementUlid) -> EntitlementV1:
    return entitlement_v1(entitlements.get_entitlement_by_id(context, entitlement))


@router.get("/api/v2/entitlements", dependencies=[READ], response_model_exclude_none=True)
def list_all_entitlements_v2(
    context: Context,
    shape: V2List,
    feature: Features = [],  # noqa: B006
    customer_keys: Annotated[list[str], Query(alias="customerKeys")] = [],  # noqa: B006
    customer_ids: Annotated[list[str], Query(alias="customerIds")] = [],  # noqa: B006
    entitlement_type: Types = [],  # noqa: B006
    exclude_inactive: ExcludeInactive = False,
    order: Order = SortOrder.ASC,
    order_by: OrderBy = EntitlementOrderBy.CREATED_AT,
) -> Page[EntitlementV2]:
    """Page mode, or limit/offset mode (then `page` and `pageSize` read 0)."""
    result = entitlements.list_entitlements(
        context,
        EntitlementFilter(
            customer_ids=customer_ids,
            customer_keys=customer_keys,
            features=feature,
            types=entitlement_type,
        ),
        exclude_inactive=exclude_inactive,
        window=shape.window,
        order=order,
        order_by=order_by,
    )
    return shape.paginated([entitlement_v2(view) for view in result.items], result.total_count)


@router.get(
    "/api/v2/entitlements/{entitlementId}", dependencies=[READ], response_model_exclude_none=True
)
def get_any_entitlement_v2(context: Context, entitlement: EntitlementUlid) -> EntitlementV2:
    return entitlement_v2(entitlements.get_entitlement_by_id(context, entitlement))


# -- v1 customer check-access -----------------------------------------------------------------


@router.get(
    "/api/v1/customers/{customerIdOrKey}/access",
    dependencies=[READ],
    tags=["customers"],
    response_model=CustomerAccessOut,
    response_model_exclude_none=True,
)
def customer_access(context: Context, customer: CustomerIdOrKey, time: Time = None) -> Response:
    """The value of every entitlement the customer holds now (or at `time`), by feature key."""
    values = entitlement_values.customer_access(context, customer, time)
    documents = {
        key: value_document(value, with_grant_balances=False) for key, value in values.items()
    }
    return ExactJSONResponse({"entitlements": documents})


@router.get(
    "/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value",
    dependencies=[READ],
    tags=["customers"],
    response_model=EntitlementValueOut,
    response_model_exclude_none=True,
)
def customer_feature_value(
    context: Context, owner: ByCustomer, feature_key: FeatureKey, time: Time = None
) -> Response:
    """`{"hasAccess": false}` when the customer has no entitlement for the feature."""
    value = entitlement_values.entitlement_value(context, owner, feature_key, time)
    metrics.record_access_check(value.has_access)
    return ExactJSONResponse(value_document(value, with_grant_balances=False))


# -- shared -----------------------------------------------------------------------------------


def _history(
    context: Context, owner: Owner, entitlement: str, query: HistoryQuery
) -> WindowedBalanceHistoryOut:
    history = entitlement_history.entitlement_history(
        context,
        owner,
        entitlement,
        window_size=query.window_size.value,
        start=query.start,
        end=query.end,
        time_zone=query.time_zone,
    )
    return WindowedBalanceHistoryOut.of(history)


def _delete(context: Context, owner: Owner, entitlement: str) -> Response:
    entitlements.delete_entitlement(context, owner, entitlement)
    return Response(status_code=204)


def _reset(
    request: Request, context: Context, owner: Owner, entitlement: str, body: ResetBody | None
) -> Response:
    reset = body or ResetBody()
    claim = idempotency.claim_of(request, idempotency.no_content)
    result: Response = idempotency.answer(
        claim,
        lambda: entitlement_resets.reset_entitlement(
            context,
            owner,
            entitlement,
            effective_at=reset.effective_at,
            retain_anchor=bool(reset.retain_anchor),
            preserve_overage=reset.preserve_overage,
            idempotency_claim=claim,
        ),
        lambda _: Response(status_code=204),
    )
    return result
