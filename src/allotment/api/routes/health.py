"""Liveness, readiness and metrics; no API key needed.

All three are coroutines on the event loop, not on the worker threads: when a hung database holds
every worker thread, /healthz and /metrics still answer at once, and /readyz answers 503 within
`readiness_timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from allotment.api import metrics
from allotment.services import health as health_service
from allotment.services.context import ServiceContext

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


class ReadinessProbe:
    """Runs the database check on a thread of its own, one check at a time: a check stuck on a
    hung database keeps that one thread, and the next probes answer 503 without waiting."""

    def __init__(self, context: ServiceContext, timeout_seconds: float) -> None:
        self._context = context
        self._timeout = timeout_seconds
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="allotment-readiness"
        )
        self._running: concurrent.futures.Future[str | None] | None = None

    async def problem(self) -> str | None:
        if self._running is not None and not self._running.done():
            return "the database has not answered the previous readiness check"
        self._running = self._executor.submit(health_service.readiness_problem, self._context)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._running), self._timeout)
        except TimeoutError:
            return f"the database did not answer within {self._timeout:g} s"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (never touches the database)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready, with the reason"}})
async def readyz(request: Request) -> Response:
    """The database answers within the readiness timeout, takes writes, and is migrated."""
    probe: ReadinessProbe = request.app.state.readiness
    problem = await probe.problem()
    if problem is not None:
        return JSONResponse(
            {"status": "unavailable", "reason": problem},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse({"status": "ok"})


@metrics_router.get("/metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus text format: requests, latency, ingest, access checks, pool, 503s, 429s."""
    body, content_type = metrics.exposition()
    return Response(content=body, media_type=content_type)
