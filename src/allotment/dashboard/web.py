"""Rendering pages and answering forms: the Jinja2 environment, redirects with a flash message,
and links that stay inside wherever the dashboard is mounted."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from allotment.dashboard import formatting
from allotment.dashboard.forms import FormErrors
from allotment.dashboard.sessions import FLASH_COOKIE, FLASH_SECONDS, Session, Signer
from allotment.services.context import ServiceContext

environment = Environment(
    loader=PackageLoader("allotment.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    number=formatting.number,
    percent=formatting.percent,
    when=formatting.when,
    input_time=formatting.input_time,
    compact_json=formatting.compact_json,
)
# What the error summary calls each input.
LABELS = {
    "featureKey": "Feature",
    "usagePeriod.interval": "Usage period",
    "usagePeriod.anchor": "Period start",
    "issueAfterReset": "Allowance each period",
    "issueAfterResetPriority": "Allowance priority",
    "measureUsageFrom": "Count usage from",
    "measureUsageFromTime": "Count usage from",
    "isSoftLimit": "Soft limit",
    "preserveOverageAtReset": "Carry overage",
    "config": "Configuration",
    "amount": "Amount",
    "expiration": "Expires",
    "priority": "Priority",
    "effectiveAt": "Effective from",
    "maxRolloverAmount": "Most carried over",
    "minRolloverAmount": "At least after a reset",
    "slug": "Slug",
    "eventType": "Event type",
    "valueProperty": "Value property",
    "groupBy": "Group by",
    "eventFrom": "Count events from",
    "meterSlug": "Meter",
    "filters": "Group-by filters",
    "key": "Key",
    "name": "Name",
    "subjectKeys": "Other subjects",
    "primaryEmail": "Email",
    "currency": "Currency",
    "tz": "Time zone",
    "split": "Split by",
    "window": "Window",
    "from": "From",
    "to": "To",
    "q": "Search",
}
environment.globals.update(
    quote=lambda text: quote(str(text), safe=""), urlencode=urlencode, labels=LABELS
)


def context_of(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


def signer_of(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (`/ui`), so links work under any prefix."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    *,
    session: Session | None,
    status_code: int = 200,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    **page: Any,
) -> HTMLResponse:
    """The page, with the flash message a redirect left (then cleared)."""
    flash = signer_of(request).loads("flash", request.cookies.get(FLASH_COOKIE), FLASH_SECONDS)
    html = environment.get_template(template).render(
        request=request,
        ui=base_path(request),
        path=request.url.path,
        session=session,
        errors=errors or FormErrors(),
        values=values or {},
        flash=flash,
        **page,
    )
    response = HTMLResponse(html, status_code=status_code)
    if FLASH_COOKIE in request.cookies:
        clear_cookie(request, response, FLASH_COOKIE)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """Every dashboard cookie: Secure, HttpOnly, SameSite=Lax, scoped to the dashboard."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base_path(request) or "/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=base_path(request) or "/", secure=True, httponly=True, samesite="lax"
    )


def redirect(
    request: Request, to: str, *, flash: str | None = None, level: str = "success"
) -> RedirectResponse:
    """303 to `to` (a path inside the dashboard), leaving `flash` for the next page."""
    response = RedirectResponse(base_path(request) + to, status_code=303)
    if flash is not None:
        message = flash if flash.endswith((".", "!", "?")) else flash + "."
        payload = {"message": message, "level": level}
        set_cookie(
            request,
            response,
            FLASH_COOKIE,
            signer_of(request).dumps("flash", payload),
            FLASH_SECONDS,
        )
    return response
