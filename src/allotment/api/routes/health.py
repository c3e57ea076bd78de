"""Liveness and readiness probes; no API key needed."""

from __future__ import annotations

from fastapi import APIRouter, Response

from allotment.api.deps import Context
from allotment.services import health as health_service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(context: Context, response: Response) -> dict[str, str]:
    """The database answers and its schema is at the latest migration."""
    problem = health_service.readiness_problem(context)
    if problem is not None:
        response.status_code = 503
        return {"status": "unavailable", "reason": problem}
    return {"status": "ok"}
