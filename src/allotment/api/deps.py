"""FastAPI dependencies: the service context and the caller's API key."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from allotment.domain.api_keys import Action, ApiKey
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import InvalidInput
from allotment.services import api_keys
from allotment.services.context import ServiceContext


def get_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(get_context)]


def required_action(request: Request) -> Action:
    """What a request needs its key to allow: ingest for POST /api/v1/events, read for GETs and
    for the POST form of a meter query (a read with a body), manage for every other write."""
    path = request.url.path.rstrip("/")
    if request.method == "POST" and path == "/api/v1/events":
        return Action.INGEST
    if request.method in ("GET", "HEAD"):
        return Action.READ
    if request.method == "POST" and _METER_QUERY.match(path):
        return Action.READ
    return Action.MANAGE


_METER_QUERY = re.compile(r"^/api/v1/meters/[^/]+/query$")


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authenticate(request: Request, context: Context) -> ApiKey:
    key = api_keys.authenticate(context, _bearer_token(request), required_action(request))
    request.state.api_key = key
    return key


def refuse_unstorable_parameters(request: Request) -> None:
    """Path and query parameters reach SQL filters, and so do some names (`filterGroupBy[key]`);
    text a database cannot hold (a NUL, a lone surrogate) in either is a 400 naming the parameter
    here, for every route at once."""
    parameters = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in parameters:
        if not is_storable_text(name) or (isinstance(value, str) and not is_storable_text(value)):
            field = "".join(character for character in name if is_storable_text(character))
            raise InvalidInput(f"{field} {UNSTORABLE_TEXT}", field=field)
