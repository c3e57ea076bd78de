"""The customer portal: tokens (created, listed and invalidated with an API key) and the meter
query a portal token may make, for its own subject only."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from allotment.api.deps import Context
from allotment.api.progress import ProgressTracker
from allotment.api.routes.meters import (
    FILTER_GROUP_BY_PARAMETER,
    QUERY_RESPONSES,
    query_parameters,
    query_result_response,
)
from allotment.api.routing import MANAGE, READ, ApiRoute, PortalRoute, portal_token
from allotment.api.schemas.meters import MeterQueryRequest, MeterQueryResultResource
from allotment.api.schemas.portal import (
    PortalTokenCreate,
    PortalTokenInvalidate,
    PortalTokenResource,
)
from allotment.domain.meters import SLUG_LENGTH_MAX, SLUG_PATTERN
from allotment.domain.portal import PortalToken
from allotment.services import portal as portal_service
from allotment.settings import Settings

router = APIRouter(route_class=ApiRoute, tags=["portal"])
# Its own router: these routes take a portal token, and no API key.
query_router = APIRouter(route_class=PortalRoute, tags=["portal"])


@router.post(
    "/api/v1/portal/tokens",
    dependencies=[MANAGE],
    response_model=PortalTokenResource,
    response_model_exclude_none=True,
    summary="Create consumer portal token",
    description="200 as OpenMeter answers; the token's secret is in this answer only.",
)
def create_portal_token(
    request: Request, context: Context, body: PortalTokenCreate
) -> PortalTokenResource:
    settings: Settings = request.app.state.settings
    token, secret = portal_service.create_token(
        context,
        body.subject,
        allowed_meter_slugs=body.allowed_meter_slugs,
        expires_at=body.expires_at,
        lifetime=timedelta(hours=settings.portal_token_ttl_hours),
    )
    return PortalTokenResource.of(token, context.clock(), secret)


@router.get(
    "/api/v1/portal/tokens",
    dependencies=[READ],
    response_model=list[PortalTokenResource],
    response_model_exclude_none=True,
    summary="List consumer portal tokens",
    description="Newest first, expired and invalidated ones too; never their secrets.",
)
def list_portal_tokens(
    context: Context,
    limit: Annotated[int, Query(ge=1, le=portal_service.LIST_LIMIT_MAX)] = 25,
) -> list[PortalTokenResource]:
    now = context.clock()
    return [PortalTokenResource.of(t, now) for t in portal_service.list_tokens(context, limit)]


@router.post(
    "/api/v1/portal/tokens/invalidate",
    dependencies=[MANAGE],
    status_code=204,
    response_class=Response,
    summary="Invalidate portal tokens",
    description="By `id`, or every token of a `subject`.",
)
def invalidate_portal_tokens(context: Context, body: PortalTokenInvalidate) -> Response:
    portal_service.invalidate(context, token_id=body.id, subject=body.subject)
    return Response(status_code=204)


@query_router.get(
    "/api/v1/portal/meters/{meterSlug}/query",
    response_model=MeterQueryResultResource,
    responses=QUERY_RESPONSES,
    openapi_extra={"parameters": [FILTER_GROUP_BY_PARAMETER]},
    summary="Query meter (portal)",
    description=(
        "Authenticated by a portal token (`Authorization: Bearer <token>`): the token's "
        "subject's usage only, grouped by it; `subject` and `filterCustomerId` are ignored."
    ),
)
def query_portal_meter(
    request: Request,
    context: Context,
    meter_slug: Annotated[
        str,
        Path(alias="meterSlug", min_length=1, max_length=SLUG_LENGTH_MAX, pattern=SLUG_PATTERN),
    ],
    token: Annotated[PortalToken, Depends(portal_token)],
    parameters: Annotated[MeterQueryRequest, Depends(query_parameters)],
) -> Response:
    tracker: ProgressTracker = request.app.state.progress
    with tracker.track(parameters.client_id):
        result = portal_service.query_meter(context, token, meter_slug, parameters.to_query())
    return query_result_response(request, result)
