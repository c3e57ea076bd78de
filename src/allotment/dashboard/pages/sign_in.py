"""Signing in with an API key, and signing out.

The sign-in form carries a CSRF token of its own (a short-lived signed cookie), so another site
cannot sign a browser in with the other site's key. A successful sign-in starts a new session
with a new CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from allotment.dashboard.auth import SignedInForm, session_of, submitted_form
from allotment.dashboard.forms import FormErrors
from allotment.dashboard.sessions import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    new_csrf_token,
    same_token,
)
from allotment.dashboard.web import (
    base_path,
    clear_cookie,
    context_of,
    redirect,
    render,
    set_cookie,
    signer_of,
)
from allotment.domain.api_keys import Scope
from allotment.domain.text import is_storable_text
from allotment.services import api_keys

router = APIRouter()

REASONS = {
    "expired": "Your session has ended. Sign in again.",
    "revoked": "The key you signed in with was revoked. Sign in with another key.",
    "ingest": "An ingest key can only send events. Sign in with an admin or read key.",
    "signed_out": "You are signed out.",
}


def _safe_next(request: Request, target: str | None) -> str:
    """A path inside the dashboard to go to after signing in (never another site)."""
    base = base_path(request)
    if (
        target
        and target.startswith(base + "/")
        and not target.startswith("//")
        and "\\" not in target
        and is_storable_text(target)
        and not target.startswith(base + "/login")
    ):
        return target[len(base) :]
    return "/"


def _form(
    request: Request,
    *,
    next_path: str,
    status_code: int = 200,
    errors: FormErrors | None = None,
    notice: str | None = None,
) -> Response:
    token = new_csrf_token()
    response = render(
        request,
        "sign_in.html",
        session=None,
        status_code=status_code,
        errors=errors,
        csrf=token,
        next_path=next_path,
        notice=notice,
    )
    set_cookie(
        request,
        response,
        SIGN_IN_COOKIE,
        signer_of(request).dumps("sign_in", {"csrf": token}),
        SIGN_IN_SECONDS,
    )
    return response


@router.get("/login")
def sign_in_page(
    request: Request,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    why: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if session_of(request) is not None:
        return redirect(request, _safe_next(request, next_path))
    return _form(
        request,
        next_path=base_path(request) + _safe_next(request, next_path),
        notice=REASONS.get(why or ""),
    )


@router.post("/login")
def sign_in(request: Request, form: Annotated[FormData, Depends(submitted_form)]) -> Response:
    errors = FormErrors()
    next_field = form.get("next")
    next_path = _safe_next(request, next_field if isinstance(next_field, str) else None)
    expected = signer_of(request).loads(
        "sign_in", request.cookies.get(SIGN_IN_COOKIE), SIGN_IN_SECONDS
    )
    sent = form.get(CSRF_FIELD)
    if expected is None or not same_token(
        sent if isinstance(sent, str) else None, str(expected.get("csrf"))
    ):
        errors.add("", "The sign-in form expired. Paste your key again.")
        return _form(
            request, next_path=base_path(request) + next_path, status_code=400, errors=errors
        )
    secret_field = form.get("key")
    secret = secret_field.strip() if isinstance(secret_field, str) else ""
    key = None
    if not secret:
        errors.add("key", "Paste an API key (it starts with alt_).")
    elif not is_storable_text(secret) or len(secret) > 200:
        errors.add("key", "That is not an API key: keys start with alt_ and are 47 characters.")
    else:
        key = api_keys.identify(context_of(request), secret)
        if key is None:
            errors.add(
                "key",
                "No API key matches. Check for a typo: a key starts with alt_ and is shown "
                "only once, when it is created.",
            )
        elif not key.is_active:
            errors.add("key", f"This key ({key.name}) was revoked. Ask an admin for a new key.")
        elif key.scope is Scope.INGEST:
            errors.add("key", REASONS["ingest"])
    if errors or key is None:
        return _form(
            request, next_path=base_path(request) + next_path, status_code=401, errors=errors
        )
    response = redirect(request, next_path)
    settings = request.app.state.settings
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        signer_of(request).dumps("session", {"key": key.id, "csrf": new_csrf_token()}),
        settings.session_hours * 3600,
    )
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/logout")
def sign_out(request: Request, submission: SignedInForm) -> Response:
    response = redirect(request, "/login?why=signed_out")
    clear_cookie(request, response, SESSION_COOKIE)
    return response
