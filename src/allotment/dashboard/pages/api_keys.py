"""API keys, for admins: the list, creating one (its secret shown once), revoking."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from allotment.dashboard.auth import AdminSession, Writer
from allotment.dashboard.forms import FormErrors
from allotment.dashboard.sessions import Session
from allotment.dashboard.web import context_of, redirect, render
from allotment.errors import AllotmentError, NotFound
from allotment.services import api_keys

router = APIRouter()

KeyId = Annotated[str, Path(min_length=1, max_length=64)]
SCOPES = (
    ("read", "Read: look at everything, change nothing (support, dashboards)"),
    ("ingest", "Ingest: send usage events only (your services)"),
    ("admin", "Admin: everything, including API keys"),
)


def _page(
    request: Request,
    session: Session,
    *,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    created: tuple[object, str] | None = None,
    status_code: int = 200,
) -> Response:
    keys = sorted(
        api_keys.list_keys(context_of(request), include_revoked=True),
        key=lambda k: (k.revoked_at is not None, k.created_at),
        reverse=False,
    )
    return render(
        request,
        "api_keys.html",
        session=session,
        keys=keys,
        scopes=SCOPES,
        errors=errors,
        values=values or {"scope": "read"},
        created=created,
        status_code=status_code,
    )


@router.get("/api-keys")
def keys_page(request: Request, session: AdminSession) -> Response:
    return _page(request, session)


@router.post("/api-keys")
def create_key(request: Request, submission: Writer) -> Response:
    form, errors = submission.form, submission.errors
    if not submission.session.is_admin:  # pragma: no cover - writers are admins today
        return _page(request, submission.session, status_code=403)
    name = form.optional("name")
    if name is not None and len(name) > 256:
        errors.add("name", "must be at most 256 characters")
    if not errors:
        try:
            key, secret = api_keys.create_key(context_of(request), form.text("scope"), name)
        except AllotmentError as error:
            errors.add_error(error)
        else:
            # Shown in this response only: no redirect, so the secret is never in a URL,
            # a cookie or the server's storage.
            return _page(request, submission.session, created=(key, secret), status_code=201)
    return _page(request, submission.session, errors=errors, values=form.values, status_code=400)


@router.get("/api-keys/{key_id}/revoke")
def revoke_page(request: Request, session: AdminSession, key_id: KeyId) -> Response:
    key = api_keys.get_key(context_of(request), key_id)
    if key is None or not key.is_active:
        raise NotFound(f"no active API key with id {key_id}", field="key")
    own = key.id == session.key.id
    return render(request, "api_key_revoke.html", session=session, key=key, own=own)


@router.post("/api-keys/{key_id}/revoke")
def revoke_key(request: Request, submission: Writer, key_id: KeyId) -> Response:
    key = api_keys.get_key(context_of(request), key_id)
    if key is None or not key.is_active:
        raise NotFound(f"no active API key with id {key_id}", field="key")
    api_keys.revoke_key(context_of(request), key.id)
    if key.id == submission.session.key.id:
        return redirect(request, "/login?why=revoked")
    return redirect(request, "/api-keys", flash=f"Key {key.name} ({key.prefix}…) revoked.")
