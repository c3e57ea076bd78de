"""Routes for meters: CRUD, usage queries (JSON or CSV), subjects and group-by values."""

from __future__ import annotations

import ast
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from allotment.api.deps import Context
from allotment.api.progress import ProgressTracker
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import UtcDateTime
from allotment.api.schemas.events import reject_nul_in_body
from allotment.api.schemas.meters import (
    MeterCreate,
    MeterQueryRequest,
    MeterQueryResultResource,
    MeterResource,
    MeterUpdate,
    query_result_to_csv,
    query_result_to_json,
)
from allotment.api.schemas.query_params import ClientId, FromTime, PageNumber, PageSize, ToTime
from allotment.domain.listing import SortOrder
from allotment.domain.meters import SLUG_PATTERN, MeterQuery, MeterQueryResult, WindowSize
from allotment.errors import InvalidInput
from allotment.services import meters as meters_service
from allotment.services.context import ServiceContext
from allotment.services.meters import MeterOrder

router = APIRouter(
    route_class=ApiRoute, tags=["meters"], dependencies=[Depends(reject_nul_in_body)]
)

# OpenMeter's documented pattern: a slug or a ULID (anything else is a 400 naming the path).
MeterIdOrSlug = Annotated[
    str,
    Path(
        alias="meterIdOrSlug",
        min_length=1,
        max_length=64,
        pattern=f"{SLUG_PATTERN}|^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{{25}}$",
    ),
]

QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The usage, as JSON, or as CSV when the request accepts text/csv.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/api/v1/meters",
    dependencies=[READ],
    response_model=list[MeterResource],
    response_model_exclude_none=True,
)
def list_meters(
    context: Context,
    page: PageNumber = None,
    page_size: PageSize = None,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[MeterOrder, Query(alias="orderBy")] = "key",
    include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
) -> list[MeterResource]:
    meters = meters_service.list_meters(
        context,
        order_by=order_by,
        descending=order is SortOrder.DESC,
        include_deleted=include_deleted,
        page=page,
        page_size=page_size,
    )
    return [MeterResource.from_meter(meter) for meter in meters]


@router.post(
    "/api/v1/meters",
    dependencies=[MANAGE],
    status_code=201,
    response_model=MeterResource,
    response_model_exclude_none=True,
)
def create_meter(context: Context, body: MeterCreate) -> MeterResource:
    return MeterResource.from_meter(meters_service.create_meter(context, body.to_definition()))


@router.get(
    "/api/v1/meters/{meterIdOrSlug}",
    dependencies=[READ],
    response_model=MeterResource,
    response_model_exclude_none=True,
)
def get_meter(context: Context, meter_id_or_slug: MeterIdOrSlug) -> MeterResource:
    return MeterResource.from_meter(meters_service.get_meter(context, meter_id_or_slug))


@router.put(
    "/api/v1/meters/{meterIdOrSlug}",
    dependencies=[MANAGE],
    response_model=MeterResource,
    response_model_exclude_none=True,
)
def update_meter(
    context: Context, meter_id_or_slug: MeterIdOrSlug, body: MeterUpdate
) -> MeterResource:
    meter = meters_service.update_meter(
        context,
        meter_id_or_slug,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        group_by=body.group_by or {},
    )
    return MeterResource.from_meter(meter)


@router.delete(
    "/api/v1/meters/{meterIdOrSlug}",
    dependencies=[MANAGE],
    status_code=204,
    response_class=Response,
)
def delete_meter(context: Context, meter_id_or_slug: MeterIdOrSlug) -> Response:
    meters_service.delete_meter(context, meter_id_or_slug)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Queries

_DEEP_OBJECT = re.compile(r"^filterGroupBy\[(.+)\]$")
_FILTER_TEXT_LENGTH_MAX = 8192


def _filter_values(key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise InvalidInput(
            "filterGroupBy values must be strings or lists of strings",
            field=f"filterGroupBy.{key}",
        )
    return values


def _filter_group_by_parameters(request: Request) -> dict[str, list[str]]:
    """`filterGroupBy[model]=gpt-4` (deepObject, repeatable), or one `filterGroupBy` holding an
    object: JSON, or the Python-literal form the official Python SDK sends."""
    filters: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        match = _DEEP_OBJECT.match(name)
        if match is not None:
            filters.setdefault(match.group(1), []).append(value)
        elif name == "filterGroupBy":
            for key, values in _parse_filter_object(value).items():
                filters.setdefault(key, []).extend(_filter_values(key, values))
    return filters


def _parse_filter_object(text: str) -> dict[str, Any]:
    parsed: Any = None
    if len(text) <= _FILTER_TEXT_LENGTH_MAX:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:
                # Literals only (strings, lists, dicts): never evaluates code.
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(key, str) for key in parsed):
        raise InvalidInput(
            'filterGroupBy must be an object such as {"model": ["gpt-4"]}, or use '
            "filterGroupBy[model]=gpt-4",
            field="filterGroupBy",
        )
    return parsed


def _advanced_filters_object(text: str | None) -> dict[str, Any] | None:
    """`advancedMeterGroupByFilters` on GET: a JSON object as text (group-by key -> filter)."""
    if text is None or text == "":
        return None
    field = "advancedMeterGroupByFilters"
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInput(
            'must be a JSON object such as {"model": {"$in": ["gpt-4", "gpt-4o"]}}', field=field
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidInput("must be an object: group-by key -> filter", field=field)
    return parsed


def _wants_csv(request: Request) -> bool:
    accepted = [
        part.split(";", 1)[0].strip().lower()
        for part in request.headers.get("accept", "").split(",")
    ]
    if "text/csv" not in accepted:
        return False
    return "application/json" not in accepted or accepted.index("text/csv") < accepted.index(
        "application/json"
    )


def _query_response(
    request: Request,
    context: ServiceContext,
    meter_id_or_slug: str,
    query: MeterQuery,
    client_id: str | None,
) -> Response:
    tracker: ProgressTracker = request.app.state.progress
    with tracker.track(client_id):
        result = meters_service.query_meter(context, meter_id_or_slug, query)
    return query_result_response(request, result)


def query_result_response(request: Request, result: MeterQueryResult) -> Response:
    """JSON, or CSV when the request prefers text/csv (the portal's query answers alike)."""
    if _wants_csv(request):
        return Response(
            content=query_result_to_csv(result),
            media_type="text/csv",
            headers={"Content-Disposition": f"attachment; filename={result.meter.slug}.csv"},
        )
    return Response(content=query_result_to_json(result), media_type="application/json")


# Read from the raw query string (deepObject), so declared here for the OpenAPI document.
FILTER_GROUP_BY_PARAMETER = {
    "name": "filterGroupBy",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "description": "Exact-match filters on group-by values: filterGroupBy[model]=gpt-4 "
    "(repeat a key to accept several values).",
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}


async def query_parameters(
    request: Request,
    client_id: ClientId = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    window_size: Annotated[WindowSize | None, Query(alias="windowSize")] = None,
    window_time_zone: Annotated[str, Query(alias="windowTimeZone")] = "UTC",
    subject: Annotated[list[str] | None, Query()] = None,
    filter_customer_id: Annotated[list[str] | None, Query(alias="filterCustomerId")] = None,
    group_by: Annotated[list[str] | None, Query(alias="groupBy")] = None,
    advanced_meter_group_by_filters: Annotated[
        str | None,
        Query(
            alias="advancedMeterGroupByFilters",
            description='A JSON object: group-by key -> filter, e.g. {"model": {"$like": "gpt%"}}.',
        ),
    ] = None,
) -> MeterQueryRequest:
    """The GET form of a query as the POST body it means; every value is already checked."""
    return MeterQueryRequest.model_construct(
        client_id=client_id,
        from_time=from_time,
        to_time=to_time,
        window_size=window_size,
        window_time_zone=window_time_zone or "UTC",
        subject=subject,
        filter_customer_id=filter_customer_id,
        filter_group_by=_filter_group_by_parameters(request),
        advanced_meter_group_by_filters=_advanced_filters_object(advanced_meter_group_by_filters),
        group_by=group_by,
    )


@router.get(
    "/api/v1/meters/{meterIdOrSlug}/query",
    dependencies=[READ],
    response_model=MeterQueryResultResource,
    responses=QUERY_RESPONSES,
    openapi_extra={"parameters": [FILTER_GROUP_BY_PARAMETER]},
    summary="Query meter",
    description=(
        "`from` inclusive, `to` exclusive. `filterGroupBy[key]=value` filters on a group-by "
        "value (repeat for several). Send `Accept: text/csv` for CSV."
    ),
)
def query_meter(
    request: Request,
    context: Context,
    meter_id_or_slug: MeterIdOrSlug,
    parameters: Annotated[MeterQueryRequest, Depends(query_parameters)],
) -> Response:
    return _query_response(
        request, context, meter_id_or_slug, parameters.to_query(), parameters.client_id
    )


@router.post(
    "/api/v1/meters/{meterIdOrSlug}/query",
    dependencies=[READ],
    response_model=MeterQueryResultResource,
    responses=QUERY_RESPONSES,
    summary="Query meter",
    description="The body takes the GET parameters' names; an empty body queries all usage.",
)
def query_meter_post(
    request: Request,
    context: Context,
    meter_id_or_slug: MeterIdOrSlug,
    body: Annotated[MeterQueryRequest | None, Body()] = None,
) -> Response:
    sent = body or MeterQueryRequest()
    return _query_response(request, context, meter_id_or_slug, sent.to_query(), sent.client_id)


@router.get(
    "/api/v1/meters/{meterIdOrSlug}/subjects", dependencies=[READ], response_model=list[str]
)
def list_meter_subjects(
    context: Context,
    meter_id_or_slug: MeterIdOrSlug,
    from_time: FromTime = None,
    to_time: ToTime = None,
) -> list[str]:
    return meters_service.list_meter_subjects(context, meter_id_or_slug, from_time, to_time)


@router.get(
    "/api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values",
    dependencies=[READ],
    response_model=list[str],
)
def list_meter_group_by_values(
    context: Context,
    meter_id_or_slug: MeterIdOrSlug,
    group_by_key: Annotated[str, Path(alias="groupByKey")],
    from_time: Annotated[
        UtcDateTime | None, Query(alias="from", description="Default: 24 hours ago.")
    ] = None,
    to_time: ToTime = None,
) -> list[str]:
    return meters_service.list_group_by_values(
        context, meter_id_or_slug, group_by_key, from_time, to_time
    )
