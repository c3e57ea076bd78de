"""Who is asking: the session behind a request, and the checks every write makes.

Every route that changes something takes `Writer`: a signed-in session whose key may write (an
admin key; read keys only look), and a form carrying that session's CSRF token. Routes reading
admin-only data take `AdminSession`. Pages take `CurrentSession`, which sends a person without a
valid session to the sign-in page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from allotment.dashboard.forms import FormErrors, FormInput
from allotment.dashboard.sessions import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Session,
    same_token,
)
from allotment.dashboard.web import context_of, signer_of
from allotment.domain.api_keys import Scope
from allotment.services import api_keys


class SignInRequired(Exception):
    """No session, or one that ended; `reason` says why, for the sign-in page."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """A request the session may not make (403), shown as a page that says why."""

    def __init__(self, title: str, message: str, status_code: int = 403) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status_code = status_code


def session_of(request: Request) -> Session | None:
    """The request's live session, or None (no cookie, forged, expired, key revoked)."""
    try:
        return current_session(request)
    except SignInRequired:
        return None


def current_session(request: Request) -> Session:
    cookie = request.cookies.get(SESSION_COOKIE)
    settings = request.app.state.settings
    payload = signer_of(request).loads("session", cookie, settings.session_hours * 3600)
    if payload is None:
        raise SignInRequired("expired" if cookie else "")
    key_id, csrf = payload.get("key"), payload.get("csrf")
    if not isinstance(key_id, str) or not isinstance(csrf, str):
        raise SignInRequired("expired")
    key = api_keys.get_key(context_of(request), key_id)
    if key is None or not key.is_active:
        raise SignInRequired("revoked")
    if key.scope is Scope.INGEST:
        raise SignInRequired("ingest")
    return Session(key=key, csrf=csrf)


CurrentSession = Annotated[Session, Depends(current_session)]


def read_only() -> Refused:
    return Refused(
        "Read-only access",
        "You signed in with a read key, so you can look but not change anything. Sign in with "
        "an admin key to make changes.",
    )


def writer_page(session: CurrentSession) -> Session:
    """A page whose only purpose is a write form (new meter, confirm a void): writers only."""
    if not session.can_write:
        raise read_only()
    return session


WriterPage = Annotated[Session, Depends(writer_page)]


def admin_session(session: CurrentSession) -> Session:
    if not session.is_admin:
        raise Refused("Admins only", "Only an admin key may see and manage API keys.")
    return session


AdminSession = Annotated[Session, Depends(admin_session)]


async def submitted_form(request: Request) -> FormData:
    return await request.form()


@dataclass(frozen=True)
class Submission:
    """A write: the session making it, the form it sent, and errors found reading the form."""

    session: Session
    form: FormInput
    errors: FormErrors


def checked_form(session: Session, form: FormData) -> Submission:
    sent = form.get(CSRF_FIELD)
    if not same_token(sent if isinstance(sent, str) else None, session.csrf):
        raise Refused(
            "This form has expired",
            "The form was not sent from this session (or the session changed since the page "
            "was opened). Go back, reload the page and try again.",
        )
    errors = FormErrors()
    return Submission(session, FormInput.of(form, errors), errors)


def writer(
    session: CurrentSession, form: Annotated[FormData, Depends(submitted_form)]
) -> Submission:
    if not session.can_write:
        raise read_only()
    return checked_form(session, form)


Writer = Annotated[Submission, Depends(writer)]


def any_signed_in(
    session: CurrentSession, form: Annotated[FormData, Depends(submitted_form)]
) -> Submission:
    """A form every session may send (signing out)."""
    return checked_form(session, form)


SignedInForm = Annotated[Submission, Depends(any_signed_in)]
