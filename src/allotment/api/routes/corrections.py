"""Routes for repairing bad data: excluding stored events from usage, and the audit trail.

An Allotment extension (OpenMeter has no way to correct stored usage), under the events path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from allotment.api.deps import Context
from allotment.api.request_info import API_KEY
from allotment.api.routing import MANAGE, ApiRoute
from allotment.api.schemas.corrections import EventCorrectionBody, EventCorrectionResponse
from allotment.domain.api_keys import ApiKey
from allotment.domain.corrections import EventRef
from allotment.errors import InvalidInput
from allotment.services import corrections
from allotment.services.corrections import CORRECTIONS_LIST_LIMIT_MAX

router = APIRouter(route_class=ApiRoute, tags=["events"])


@router.post(
    "/api/v1/events/corrections",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
    summary="Exclude a stored event from usage, or restore it",
)
def correct_event(
    request: Request, context: Context, body: EventCorrectionBody
) -> EventCorrectionResponse:
    """`action: exclude` keeps the event `(source, id)` out of every meter query, entitlement
    value and roll-up from now on (it stays stored, deduplicates retries and is listed, with
    `validationError` saying it is excluded); `restore` counts it again. Both need a `reason`,
    recorded with the key that made the change. 404 for an unknown event, 409 when the event is
    already in that state."""
    key: ApiKey = request.scope[API_KEY]
    made = corrections.correct(context, body.event(), body.action, body.reason, key.id)
    return EventCorrectionResponse.of(made)


@router.get(
    "/api/v1/events/corrections",
    dependencies=[MANAGE],
    response_model_exclude_none=True,
    summary="List event corrections",
)
def list_corrections(
    context: Context,
    source: Annotated[str | None, Query(description="With id: one event's corrections.")] = None,
    id: Annotated[str | None, Query(description="With source: one event's corrections.")] = None,
    limit: Annotated[int, Query(ge=1, le=CORRECTIONS_LIST_LIMIT_MAX)] = 100,
) -> list[EventCorrectionResponse]:
    """Newest first."""
    if (source is None) != (id is None):
        missing = "id" if id is None else "source"
        raise InvalidInput("name an event with both source and id", field=missing)
    event = EventRef(source=source, id=id) if source is not None and id is not None else None
    found = corrections.list_corrections(context, limit, event)
    return [EventCorrectionResponse.of(item) for item in found]
