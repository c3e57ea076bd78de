"""The dashboard application, mounted by the API app at /ui."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from allotment.dashboard import error_pages
from allotment.dashboard.pages import ROUTERS
from allotment.dashboard.sessions import Signer
from allotment.dashboard.settings import DashboardSettings
from allotment.services.context import ServiceContext

# Everything is served from here: scripts, styles and images alike; no inline script or style,
# no framing, forms post only back to the dashboard.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.url.path.startswith(f"{request.scope.get('root_path', '')}/static/"):
        # Pages show balances and, once, new API keys: never from a cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_dashboard(context: ServiceContext, settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()
    app = FastAPI(title="Allotment dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = context
    app.state.settings = settings
    app.state.signer = Signer(settings.session_secret or secrets.token_urlsafe(32))
    app.mount("/static", StaticFiles(packages=[("allotment.dashboard", "static")]), name="static")
    for router in ROUTERS:
        app.include_router(router)
    error_pages.install(app)
    app.middleware("http")(_security_headers)
    return app
