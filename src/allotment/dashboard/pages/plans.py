"""Plans: every version with its status, and one plan's phases, rate cards and templates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from allotment.dashboard.auth import CurrentSession
from allotment.dashboard.web import context_of, render
from allotment.domain.listing import Window
from allotment.domain.plans import PlanFilter
from allotment.services import plans as plans_service

router = APIRouter()

PAGE_SIZE = 50
PlanId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/plans")
def plans_page(
    request: Request,
    session: CurrentSession,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    context = context_of(request)
    result = plans_service.list_plans(context, PlanFilter(), window=Window.of_page(page, PAGE_SIZE))
    return render(
        request,
        "plans.html",
        session=session,
        plans=result.items,
        now=context.clock(),
        total=result.total_count,
        page=page,
        pages=max(1, -(-result.total_count // PAGE_SIZE)),
    )


@router.get("/plans/{plan_id}")
def plan_page(request: Request, session: CurrentSession, plan_id: PlanId) -> Response:
    context = context_of(request)
    plan = plans_service.get_plan(context, plan_id, include_latest=True)
    return render(request, "plan.html", session=session, plan=plan, now=context.clock())
