"""The first page: counts, today's events, and the customers closest to their limits."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession
from allotment.dashboard.charts import usage_bar
from allotment.dashboard.web import context_of, render
from allotment.services import overview

router = APIRouter()


@router.get("/")
def overview_page(request: Request, session: CurrentSession) -> Response:
    context = context_of(request)
    standings = overview.closest_to_limits(context)
    return render(
        request,
        "overview.html",
        session=session,
        counts=overview.counts(context),
        standings=standings,
        usage_bar=usage_bar,
    )
