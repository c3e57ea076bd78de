"""Recent events with filters, and for each one why a meter cannot count it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession
from allotment.dashboard.forms import FormErrors, parse_time
from allotment.dashboard.web import context_of, render
from allotment.domain.events import EventFilter
from allotment.domain.text import is_storable_text
from allotment.errors import InvalidInput
from allotment.services import events as events_service
from allotment.services import meters as meters_service

router = APIRouter()

LIMITS = (25, 50, 100)
EVENT_INPUTS = {"ingestedAtFrom": "from", "ingestedAtTo": "to"}


@router.get("/events")
def events_page(
    request: Request,
    session: CurrentSession,
    subject: Annotated[str, Query(max_length=256)] = "",
    event_id: Annotated[str, Query(alias="id", max_length=256)] = "",
    from_text: Annotated[str, Query(alias="from", max_length=64)] = "",
    to_text: Annotated[str, Query(alias="to", max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    problems: Annotated[bool, Query()] = False,
) -> Response:
    context = context_of(request)
    errors = FormErrors()
    values = {"subject": subject, "id": event_id, "from": from_text, "to": to_text}
    for name, value in values.items():
        if not is_storable_text(value):
            errors.add(name, "contains characters that cannot be used")
    listed = []
    if not errors:
        event_filter = EventFilter(
            limit=limit,
            subject_contains=subject.strip() or None,
            id_contains=event_id.strip() or None,
            time_from=parse_time(from_text.strip() or None, "from", errors),
            time_to=parse_time(to_text.strip() or None, "to", errors),
        )
        if not errors:
            try:
                listed = events_service.list_events(context, event_filter)
            except InvalidInput as error:
                errors.add_error(error, inputs=EVENT_INPUTS)
    read_types = {m.event_type for m in meters_service.list_meters(context)}
    if problems:
        listed = [
            e
            for e in listed
            if e.validation_error is not None or e.stored.event.type not in read_types
        ]
    return render(
        request,
        "events.html",
        session=session,
        errors=errors,
        values=values,
        events=listed,
        read_types=read_types,
        limit=limit,
        limits=LIMITS,
        problems=problems,
        status_code=400 if errors else 200,
    )
