"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPBearer

from allotment import __version__
from allotment.api import problems
from allotment.api.deps import authenticate, refuse_unstorable_parameters
from allotment.api.openapi import build_openapi
from allotment.api.routes import ROUTERS, health
from allotment.api.schemas.events import IngestLimits
from allotment.dashboard import create_dashboard
from allotment.services.caches import ServiceCaches
from allotment.services.context import ServiceContext
from allotment.services.maintenance import MaintenanceWorker
from allotment.settings import Settings
from allotment.storage import Database

# Declared for the OpenAPI document (so docs and generated clients know to send a Bearer token);
# the check itself is `authenticate`, which also enforces the key's scope.
_bearer_scheme = HTTPBearer(auto_error=False, description="An Allotment API key")


def create_app(
    settings: Settings | None = None, *, context: ServiceContext | None = None
) -> FastAPI:
    settings = settings or Settings()
    if context is None:
        context = ServiceContext(
            database=Database(settings.database_url, pool_size=settings.pool_size),
            caches=ServiceCaches(api_key_seconds=settings.api_key_cache_seconds),
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if settings.maintenance_interval_seconds > 0:
            worker = MaintenanceWorker(
                context, timedelta(seconds=settings.maintenance_interval_seconds)
            )
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            context.database.dispose()

    app = FastAPI(
        title="Allotment",
        version=__version__,
        description="Usage metering and feature entitlements, wire-compatible with OpenMeter.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.ingest_limits = IngestLimits(
        batch_events_max=settings.max_batch_events,
        event_data_bytes_max=settings.max_event_data_bytes,
    )
    problems.install(app)
    app.include_router(health.router)

    api = APIRouter(
        dependencies=[
            Depends(_bearer_scheme),
            Depends(authenticate),
            Depends(refuse_unstorable_parameters),
        ]
    )
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    # The web dashboard: its own pages, sessions and error pages, over the same services.
    app.mount("/ui", create_dashboard(context))
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one worker process of `allotment serve --workers N`: each worker builds its
    own, with its own database pool, from the `ALLOTMENT_*` environment."""
    return create_app(Settings())
