"""FastAPI dependencies: the service context, the caller's API key, parameter checks.

Which key a route needs is declared by the route itself (`READ`, `INGEST`, `MANAGE` from
`allotment.api.routing`), and checked there before the body is read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.errors import InvalidInput
from allotment.services.context import ServiceContext


async def get_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(get_context)]


async def refuse_unstorable_parameters(request: Request) -> None:
    """Path and query parameters reach SQL filters, and so do some names (`filterGroupBy[key]`);
    text a database cannot hold (a NUL, a lone surrogate) in either is a 400 naming the parameter
    here, for every route at once."""
    parameters = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in parameters:
        if not is_storable_text(name) or (isinstance(value, str) and not is_storable_text(value)):
            field = "".join(character for character in name if is_storable_text(character))
            raise InvalidInput(f"{field} {UNSTORABLE_TEXT}", field=field)
