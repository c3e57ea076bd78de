"""The `Idempotency-Key` header (grant create and void, reset, override, subscription create
and change), as Stripe has it.

The same key (per API key) with the same method, path, query and body gets the first answer again
with `Idempotent-Replayed: true`, and nothing changes; the same key with anything different is a
422. Keys are remembered for `idempotency_key_ttl_hours`. A request that failed stored nothing,
so its retry runs afresh.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response
from pydantic import BaseModel

from allotment.api import metrics
from allotment.api.request_info import API_KEY, JSON_DOCUMENT
from allotment.domain.api_keys import ApiKey
from allotment.domain.idempotency import StoredAnswer
from allotment.errors import InvalidInput
from allotment.services.idempotency import IdempotencyClaim, Rendered, Replay

T = TypeVar("T")

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Any unique text (e.g. a UUID). Sent again with the same request, it replays the "
        "first answer (header Idempotent-Replayed: true) and changes nothing; with a different "
        "request it is a 422."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


OPENAPI_EXTRA: dict[str, Any] = {"parameters": [OPENAPI_PARAMETER]}


def json_answer(status: int, model: BaseModel) -> Rendered:
    return (
        status,
        "application/json",
        model.model_dump_json(by_alias=True, exclude_none=True).encode(),
    )


def no_content(_result: None) -> Rendered:
    return 204, None, b""


def claim_of(request: Request, render: Callable[[T], Rendered]) -> IdempotencyClaim[T] | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise InvalidInput(f"{HEADER} must be 1 to 255 visible ASCII characters", field=HEADER)
    api_key: ApiKey = request.scope[API_KEY]
    document = request.scope.get(JSON_DOCUMENT)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    query = urlencode(sorted(request.query_params.multi_items()))
    text = "\n".join((request.method, request.url.path, query, canonical))
    hours = request.app.state.settings.idempotency_key_ttl_hours
    return IdempotencyClaim(
        api_key_id=api_key.id,
        key=key,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
        ttl=timedelta(hours=hours),
        render=render,
    )


def _response(answer: StoredAnswer, *, replayed: bool) -> Response:
    return Response(
        content=answer.body,
        status_code=answer.status_code,
        media_type=answer.media_type,
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


def answer(
    claim: IdempotencyClaim[T] | None, operation: Callable[[], T], fresh: Callable[[T], Any]
) -> Any:
    """Runs the use case; the stored answer when it was replayed or just stored, else `fresh`
    of its result (no key sent)."""
    try:
        result = operation()
    except Replay as replay:
        metrics.IDEMPOTENT_REPLAYS.inc()
        return _response(replay.answer, replayed=True)
    if claim is not None and claim.answer is not None:
        return _response(claim.answer, replayed=False)
    return fresh(result)
