"""CloudEvents on the wire: parsing an ingest body in one pass, and the listing's items.

Parsing is on the ingest hot path, so a whole body goes through one pydantic-core call
(`TypeAdapter.validate_json` on the raw bytes, into plain dicts), which checks every event of a
batch at once and reports each problem by its place (`[3].subject`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NoReturn, NotRequired

import orjson
from fastapi import Request
from pydantic import AwareDatetime, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict

from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.domain.events import SPEC_VERSION, Event, ListedEvent
from allotment.domain.instants import EARLIEST, LATEST
from allotment.domain.text import is_storable_document
from allotment.domain.time import rfc3339
from allotment.errors import FieldError, InvalidInput

SINGLE_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
JSON_CONTENT_TYPE = "application/json"
ERRORS_LISTED_MAX = 1000

_Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CloudEventBody(TypedDict):
    """One CloudEvent as sent. Unknown attributes (CloudEvents extensions) are ignored.

    `specversion` may be left out and then means "1.0": the official OpenMeter SDK does not fill
    it in, and there is no other CloudEvents version to confuse it with, so a missing version is
    accepted rather than turning every SDK-built event away.
    """

    id: _Text256
    source: _Text256
    specversion: NotRequired[Literal["1.0"]]
    type: _Text256
    subject: _Text256
    time: NotRequired[Annotated[AwareDatetime, Field(strict=True, ge=EARLIEST, lt=LATEST)] | None]
    datacontenttype: NotRequired[Literal["application/json"] | None]
    dataschema: NotRequired[Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None]
    data: NotRequired[dict[str, Any] | None]


_STORED_FIELDS = frozenset(CloudEventBody.__annotations__)
_single = TypeAdapter(CloudEventBody)
_batch = TypeAdapter(list[CloudEventBody])


def _field(location: tuple[int | str, ...], batch: bool) -> str:
    """pydantic's location to the wire: (3, 'subject') -> "[3].subject"."""
    if not location:
        return "body"
    parts = list(location)
    head = f"[{parts.pop(0)}]" if batch and isinstance(parts[0], int) else ""
    tail = ".".join(str(part) for part in parts)
    if head and tail:
        return f"{head}.{tail}"
    return head or tail


def _is_non_finite(value: object) -> bool:
    """True when a float anywhere in `value` is NaN or infinite (JSON has no such numbers;
    `NaN`, `Infinity` or an out-of-range literal would otherwise be stored as something else).

    Runs for every event with data, so it is written as plain loops over exact types."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()  # type: ignore[attr-defined]
    elif kind is list:
        items = value
    else:
        return kind is float and value - value != 0.0  # type: ignore[operator]
    for item in items:
        item_kind = type(item)
        if item_kind is float:
            if item - item != 0.0:
                return True
        elif (item_kind is dict or item_kind is list) and _is_non_finite(item):
            return True
    return False


async def reject_nul_in_body(request: Request) -> None:
    """Refuse U+0000 in a JSON body (400), where the escape is the only way to carry it:
    PostgreSQL can neither store nor compare text holding it."""
    body = await request.body()
    if b"\\u0000" not in body:
        return
    try:
        parsed = from_json(body)
    except ValueError:
        return  # malformed JSON: the body's own validation reports it
    if not is_storable_document(parsed):
        raise InvalidInput(_NUL_MESSAGE, field="body")


# pydantic's JSON parser already refuses lone surrogates, so a parsed body that is not storable
# text holds a NUL.
_NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_events(body: bytes, content_type: str | None) -> list[Event]:
    """Validate an ingest body (one event or a batch) in one pass; raise InvalidInput naming
    every bad event and field, so either the whole batch is good or nothing is stored."""
    kind = media_type(content_type)
    if kind == SINGLE_CONTENT_TYPE:
        batch = False
    elif kind == BATCH_CONTENT_TYPE:
        batch = True
    elif kind == JSON_CONTENT_TYPE:
        batch = body.lstrip()[:1] == b"["
    else:
        raise InvalidInput(
            f"invalid content type: {kind or 'none'}; send {SINGLE_CONTENT_TYPE}, "
            f"{BATCH_CONTENT_TYPE} or {JSON_CONTENT_TYPE}",
            field="Content-Type",
        )
    if not body.strip():
        raise InvalidInput("no events found: the body is empty", field="body")
    check_nul = b"\\u0000" in body
    try:
        raw = _batch.validate_json(body) if batch else [_single.validate_json(body)]
    except ValidationError as error:
        errors = [
            FieldError(field=_field(tuple(e["loc"]), batch), message=e["msg"], code=e["type"])
            for e in error.errors(include_url=False, include_input=False)
        ]
        # Name the events whose only fault is their content too, so one answer lists them all.
        errors += _content_errors(_loose_items(body, batch), batch, check_nul)
        _raise(errors)
    if not raw:
        raise InvalidInput("no events found: the batch is empty", field="body")
    errors = _content_errors(raw, batch, check_nul)
    if errors:
        _raise(errors)
    # Positional arguments: this runs once per event on the ingest path.
    return [
        Event(
            item["id"],
            item["source"],
            item["type"],
            item["subject"],
            item.get("time"),
            item.get("specversion", SPEC_VERSION),
            item.get("datacontenttype"),
            item.get("dataschema"),
            item.get("data"),
        )
        for item in raw
    ]


def _event_order(error: FieldError) -> tuple[int, str]:
    head = error.field.split("]", 1)[0]
    return (int(head[1:]) if head.startswith("[") and head[1:].isdigit() else -1, error.field)


def _loose_items(body: bytes, batch: bool) -> list[Any]:
    """The body's events as plain JSON, whatever their shape (only on the error path)."""
    try:
        parsed = from_json(body)
    except ValueError:
        return []
    if not batch:
        return [parsed]
    return parsed if isinstance(parsed, list) else []


def _content_errors(items: list[Any], batch: bool, check_nul: bool) -> list[FieldError]:
    """What the schema cannot see: non-finite numbers in data, NUL characters anywhere."""
    errors = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        prefix = f"[{index}]." if batch else ""
        data = item.get("data")
        if data is not None and _is_non_finite(data):
            errors.append(
                FieldError(
                    field=f"{prefix}data",
                    message="numbers must be finite (no NaN, Infinity or out-of-range values)",
                    code="number_not_finite",
                )
            )
        if check_nul:
            errors.extend(
                FieldError(
                    field=f"{prefix}{name}",
                    message=_NUL_MESSAGE,
                    code="string_nul",
                )
                for name, value in item.items()
                if name in _STORED_FIELDS and not is_storable_document(value)
            )
    return errors


def _raise(errors: list[FieldError]) -> NoReturn:
    errors = sorted(errors, key=_event_order)
    bad_events = sorted({e.field.split(".", 1)[0] for e in errors if e.field.startswith("[")})
    listed = errors[:ERRORS_LISTED_MAX]
    summary = "; ".join(f"{e.field}: {e.message}" for e in listed[:10])
    if len(errors) > 10:
        summary += f"; and {len(errors) - 10} more"
    prefix = f"invalid events {', '.join(bad_events[:10])}" if bad_events else "invalid event"
    if len(bad_events) > 10:
        prefix += f" and {len(bad_events) - 10} more"
    raise InvalidInput(f"{prefix}: {summary}; nothing was stored", errors=listed)


# ---------------------------------------------------------------------------------------------
# Output


def dumps(body: Any) -> bytes:
    """JSON bytes of a response body; event data may hold integers wider than 64 bits, which
    orjson refuses and the standard library writes."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def listed_event_to_wire(item: ListedEvent) -> dict[str, Any]:
    event = item.stored.event
    wire_event: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "specversion": event.specversion,
        "type": event.type,
        "subject": event.subject,
        "time": rfc3339(item.stored.time),
    }
    if event.dataschema is not None:
        wire_event["dataschema"] = event.dataschema
    if event.data is not None:
        wire_event["datacontenttype"] = event.datacontenttype or JSON_CONTENT_TYPE
        wire_event["data"] = event.data
    wire: dict[str, Any] = {"event": wire_event}
    if item.customer_id is not None:
        wire["customerId"] = item.customer_id
    if item.validation_error is not None:
        wire["validationError"] = item.validation_error
    ingested_at = rfc3339(item.stored.ingested_at)
    wire["ingestedAt"] = ingested_at
    # Stored in the same transaction that acknowledged it: stored when ingested.
    wire["storedAt"] = ingested_at
    return wire


class CloudEvent(WireModel):
    """A CloudEvent as listed (documentation of the listing's shape)."""

    id: str
    source: str
    specversion: str = SPEC_VERSION
    type: str
    subject: str
    time: UtcDateTime
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Mapping[str, Any] | None = None


class IngestedEvent(WireModel):
    event: CloudEvent
    customer_id: str | None = None
    validation_error: str | None = Field(
        None, description="Why meters of this event's type cannot count it; absent when valid."
    )
    ingested_at: UtcDateTime
    stored_at: UtcDateTime


def ingest_request_body_openapi() -> dict[str, Any]:
    """The request body of POST /api/v1/events for the OpenAPI document (parsed by hand)."""
    single = _single.json_schema(ref_template="#/components/schemas/{model}")
    batch = {"type": "array", "items": single, "minItems": 1}
    return {
        "requestBody": {
            "required": True,
            "content": {
                SINGLE_CONTENT_TYPE: {"schema": single},
                BATCH_CONTENT_TYPE: {"schema": batch},
                JSON_CONTENT_TYPE: {"schema": {"oneOf": [single, batch]}},
            },
        }
    }
