"""Notification rules and the delivery log: what fires, where it goes, how delivery went."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession
from allotment.dashboard.web import context_of, render
from allotment.domain.listing import Window
from allotment.domain.notifications import EventFilter
from allotment.services import notification_definitions as definitions
from allotment.services import notification_events as events
from allotment.services.notification_definitions import ListCriteria

router = APIRouter()

EVENTS_SHOWN = 50


@router.get("/notifications")
def notifications_page(request: Request, session: CurrentSession) -> Response:
    context = context_of(request)
    criteria = ListCriteria(include_disabled=True)
    rules = definitions.list_rules(context, criteria, Window(limit=1000)).items
    channels = {
        c.id: c for c in definitions.list_channels(context, criteria, Window(limit=1000)).items
    }
    recent = events.list_events(
        context, EventFilter(descending=True), Window(limit=EVENTS_SHOWN)
    ).items
    return render(
        request,
        "notifications.html",
        session=session,
        rules=rules,
        channels=channels,
        events=recent,
    )
