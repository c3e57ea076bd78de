"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPBearer

from allotment import __version__
from allotment.api import docs, metrics, problems
from allotment.api.cors import ClosedCors, Cors
from allotment.api.deps import refuse_unstorable_parameters
from allotment.api.edge import Edge
from allotment.api.fast_reads import FastValueReads
from allotment.api.json_body import JsonLimits
from allotment.api.notification_payloads import render_payload_data
from allotment.api.openapi import build_openapi
from allotment.api.progress import ProgressTracker
from allotment.api.rate_limits import RateLimits
from allotment.api.routes import ROUTERS, health
from allotment.api.routing import Guard
from allotment.api.schemas.events import IngestLimits
from allotment.dashboard import create_dashboard
from allotment.services.caches import ServiceCaches
from allotment.services.context import ServiceContext
from allotment.services.maintenance import MaintenanceWorker
from allotment.services.notification_sender import Sender, SenderWorker
from allotment.settings import Settings
from allotment.storage import Database

# Declared for the OpenAPI document (so docs and generated clients know to send a Bearer token);
# the check itself is `allotment.api.routing.authenticate`, run before the body is read.
_bearer_scheme = HTTPBearer(auto_error=False, description="An Allotment API key")


def create_app(
    settings: Settings | None = None, *, context: ServiceContext | None = None
) -> FastAPI:
    settings = settings or Settings()
    if context is None:
        context = ServiceContext(
            database=Database(settings.database_url, options=settings.database_options()),
            caches=ServiceCaches(api_key_seconds=settings.api_key_cache_seconds),
        )

    readiness = health.ReadinessProbe(context, settings.readiness_timeout_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if settings.maintenance_interval_seconds > 0:
            worker = MaintenanceWorker(
                context,
                timedelta(seconds=settings.maintenance_interval_seconds),
                render=render_payload_data,
            )
            worker.start()
        sender = None
        if settings.webhook_sender_enabled:
            sender = SenderWorker(
                context,
                Sender(
                    context,
                    timeout=settings.webhook_timeout_seconds,
                    observe=metrics.record_webhook_attempt,
                ),
            )
            sender.start()
        try:
            yield
        finally:
            if sender is not None:
                sender.stop()
            if worker is not None:
                worker.stop()
            readiness.close()
            context.database.dispose()

    app = FastAPI(
        title="Allotment",
        version=__version__,
        description="Usage metering and feature entitlements, wire-compatible with OpenMeter.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.ingest_limits = IngestLimits(
        batch_events_max=settings.max_batch_events,
        event_data_bytes_max=settings.max_event_data_bytes,
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.progress = ProgressTracker(context.clock)
    app.state.guard = Guard(
        context=context,
        rate_limits=RateLimits(settings),
        json_limits=JsonLimits.of(settings),
    )
    metrics.watch_database(context.database)
    problems.install(app)
    app.include_router(health.router)
    if settings.metrics_enabled:
        app.include_router(health.metrics_router)
    if settings.docs_enabled:
        app.include_router(docs.router)

    api = APIRouter(dependencies=[Depends(_bearer_scheme), Depends(refuse_unstorable_parameters)])
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    # The web dashboard: its own pages, sessions and error pages, over the same services.
    app.mount("/ui", create_dashboard(context))

    # Outermost last: the edge sees every request and response, CORS answers preflights, and
    # inside them the check-access common case skips FastAPI's routing (api/fast_reads.py).
    app.add_middleware(FastValueReads, context=context, rate_limits=app.state.guard.rate_limits)
    if settings.cors_allow_origins:
        app.add_middleware(Cors, settings=settings)
    else:
        app.add_middleware(ClosedCors)
    app.add_middleware(Edge, settings=settings)
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one worker process of `allotment serve --workers N`: each worker builds its
    own, with its own database pool, from the `ALLOTMENT_*` environment."""
    return create_app(Settings())
