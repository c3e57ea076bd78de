"""Routes for events: ingest (one CloudEvent or a batch) and the recent-events listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from allotment.api import metrics
from allotment.api.deps import Context
from allotment.api.routing import INGEST, READ, ApiRoute
from allotment.api.schemas.common import UtcDateTime
from allotment.api.schemas.event_list import (
    IngestedEventPage,
    decode_cursor,
    encode_cursor,
    parse_filter_parameter,
)
from allotment.api.schemas.events import (
    IngestedEvent,
    IngestLimits,
    dumps,
    ingest_request_body_openapi,
    listed_event_to_wire,
    parse_events,
    refused_events,
)
from allotment.api.schemas.query_params import ClientId, FromTime, ToTime
from allotment.domain.events import LIST_LIMIT_MAX, EventFilter
from allotment.errors import AllotmentError, InvalidInput, TooLarge
from allotment.services import events as events_service
from allotment.services.context import ServiceContext

router = APIRouter(route_class=ApiRoute, tags=["events"])


def _ingest(
    context: ServiceContext, body: bytes, content_type: str | None, limits: IngestLimits
) -> None:
    try:
        parsed = parse_events(body, content_type, limits)
    except AllotmentError as error:
        reason = "too_large" if isinstance(error, TooLarge) else "invalid"
        metrics.record_events_rejected(refused_events(error), reason)
        raise
    try:
        events_service.ingest(context, parsed.events, parsed.data_texts)
    except InvalidInput:
        metrics.record_events_rejected(len(parsed.events), "invalid")
        raise
    metrics.record_events_ingested(len(parsed.events))


@router.post(
    "/api/v1/events",
    dependencies=[INGEST],
    status_code=204,
    response_class=Response,
    summary="Ingest events",
    description=(
        "One CloudEvent (`application/cloudevents+json`), a batch "
        "(`application/cloudevents-batch+json`), or either as `application/json`. "
        "The whole batch is stored in one transaction, or nothing is and a 400 names every bad "
        "event. Events are deduplicated by `(source, id)`: a retried batch counts once."
    ),
    openapi_extra=ingest_request_body_openapi(),
)
async def ingest_events(request: Request, context: Context) -> Response:
    body = await request.body()
    # Parsing and the write are blocking work; keep them off the event loop.
    limits: IngestLimits = request.app.state.ingest_limits
    await run_in_threadpool(_ingest, context, body, request.headers.get("content-type"), limits)
    return Response(status_code=204)


@router.get(
    "/api/v1/events",
    dependencies=[READ],
    response_model=list[IngestedEvent],
    response_model_exclude_none=True,
    summary="List ingested events",
    description=(
        "Newest event time first. `validationError` says why the meters of an event's type "
        "cannot count it (missing or non-numeric value property, ...)."
    ),
)
def list_events(
    context: Context,
    client_id: ClientId = None,
    ingested_at_from: Annotated[UtcDateTime | None, Query(alias="ingestedAtFrom")] = None,
    ingested_at_to: Annotated[UtcDateTime | None, Query(alias="ingestedAtTo")] = None,
    id: Annotated[str | None, Query(description="Matches ids containing this text.")] = None,
    subject: Annotated[
        str | None, Query(description="Matches subjects containing this text.")
    ] = None,
    customer_id: Annotated[list[str] | None, Query(alias="customerId")] = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = LIST_LIMIT_MAX,
) -> Response:
    event_filter = EventFilter(
        limit=limit,
        ingested_from=ingested_at_from,
        ingested_to=ingested_at_to,
        time_from=from_time,
        time_to=to_time,
        id_contains=id or None,
        subject_contains=subject or None,
    )
    listed = events_service.list_events(context, event_filter, customer_id or ())
    return Response(
        content=dumps([listed_event_to_wire(item) for item in listed]),
        media_type="application/json",
    )


@router.get(
    "/api/v2/events",
    dependencies=[READ],
    response_model=IngestedEventPage,
    response_model_exclude_none=True,
    summary="List ingested events",
    description=(
        "Newest event time first, `limit` at a time; follow `nextCursor` with `cursor`. "
        '`filter` is a JSON object, e.g. {"subject": {"$eq": "acme"}, '
        '"time": {"$gte": "2024-01-01T00:00:00Z"}}: string filters on id, source, subject and '
        'type, time filters on time and ingestedAt, customerId as {"$in": [...]}.'
    ),
)
def list_events_v2(
    context: Context,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = LIST_LIMIT_MAX,
    client_id: ClientId = None,
    filter: Annotated[str | None, Query(description="A JSON object (see above).")] = None,
) -> Response:
    parsed = parse_filter_parameter(filter)
    event_filter = EventFilter(
        limit=limit,
        matching=parsed.strings if parsed else {},
        times=parsed.times if parsed else {},
        before=decode_cursor(cursor),
    )
    listed, following = events_service.list_event_page(
        context, event_filter, parsed.customer_ids if parsed else None
    )
    body: dict[str, object] = {"items": [listed_event_to_wire(item) for item in listed]}
    if following is not None:
        body["nextCursor"] = encode_cursor(following)
    return Response(content=dumps(body), media_type="application/json")
