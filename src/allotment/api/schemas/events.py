"""CloudEvents on the wire: parsing an ingest body in one pass, and the listing's items.

Parsing is on the ingest hot path: the body is read by jiter in one call (numbers exact as
Decimals, duplicate keys refused), then each event is checked by plain code written for the
job: one loop, no model object per event. Every problem is reported by its place
(`[3].subject`), so a batch is either all good or nothing is stored. The rules:

- `id`, `source`, `type`, `subject`: strings of 1 to 256 characters; `specversion` "1.0" or
  "0.3" (may be left out: the official SDK does); `time`: RFC 3339 with an offset, 1970 to 7999;
  `datacontenttype`: "application/json" or absent; `dataschema`: a URI of 1 to 1024 characters;
  `data`: a JSON object or absent. Other attributes (CloudEvents extensions) are ignored.
- Numbers in `data` are kept exactly as sent (`0.1` stays `0.1`, `1e-400` stays `1E-400`);
  NaN and Infinity are refused, and so are numbers no database can hold
  (`EVENT_EXPONENT_MAX`). Whether a meter can count a number is the meter's business
  (domain/meters.py, the usage domain), not a reason to refuse the event.
- Text holding NUL is refused (PostgreSQL cannot store it); nesting deeper than
  `EVENT_DEPTH_MAX` is refused; a batch longer than `max_batch_events`, or an event whose data
  is longer than `max_event_data_bytes`, is a 413.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, NoReturn, NotRequired

import jiter
from fastapi import Request
from pydantic import AwareDatetime, Field, StringConstraints, TypeAdapter
from pydantic_core import from_json
from typing_extensions import TypedDict

from allotment import json_exact
from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.domain.events import SPEC_VERSION, SPEC_VERSIONS, Event, ListedEvent
from allotment.domain.instants import EARLIEST, LATEST
from allotment.domain.text import is_storable_document, is_storable_text
from allotment.domain.time import rfc3339
from allotment.errors import AllotmentError, FieldError, InvalidInput, TooLarge

SINGLE_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
JSON_CONTENT_TYPE = "application/json"
ERRORS_LISTED_MAX = 1000
TEXT_LENGTH_MAX: Final = 256
DATASCHEMA_LENGTH_MAX: Final = 1024
EVENT_DEPTH_MAX: Final = 32
"""Objects and arrays nested deeper than this inside one event are refused."""
EVENT_EXPONENT_MAX: Final = 16_000
"""Numbers whose decimal exponent is beyond ±this are refused: PostgreSQL's jsonb holds at
most 16,383 digits after the point."""
BATCH_EVENTS_DEFAULT: Final = 10_000
EVENT_DATA_BYTES_DEFAULT: Final = 64 * 1024

_Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CloudEventBody(TypedDict):
    """One CloudEvent as sent (documents the request body in the OpenAPI document; the parser
    below applies the same rules by hand)."""

    id: _Text256
    source: _Text256
    specversion: NotRequired[Literal["1.0", "0.3"]]
    type: _Text256
    subject: _Text256
    time: NotRequired[Annotated[AwareDatetime, Field(strict=True, ge=EARLIEST, lt=LATEST)] | None]
    datacontenttype: NotRequired[Literal["application/json"] | None]
    dataschema: NotRequired[Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None]
    data: NotRequired[dict[str, Any] | None]


_single = TypeAdapter(CloudEventBody)


@dataclass(frozen=True)
class IngestLimits:
    batch_events_max: int = BATCH_EVENTS_DEFAULT
    event_data_bytes_max: int = EVENT_DATA_BYTES_DEFAULT


@dataclass(frozen=True)
class ParsedBatch:
    events: list[Event]
    data_texts: list[str | None]
    """Each event's data as the exact JSON text that is stored."""


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


_NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"
_NOT_FINITE = "numbers must be finite (no NaN, Infinity or out-of-range values)"


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})"
)
# An absolute URI as OpenMeter's schema has it (`format: uri`): a scheme, then no whitespace.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*\Z")
_EARLIEST_SECONDS = EARLIEST.timestamp()
_LATEST_SECONDS = LATEST.timestamp()
# Tokens only a body with exotic numbers contains: such bodies get the slower checks.
_EXOTIC_NUMBERS = re.compile(rb"NaN|Infinity|[eE][+-]?\d{5,}|\d{4000,}")


def parse_events(
    body: bytes, content_type: str | None, limits: IngestLimits = IngestLimits()
) -> ParsedBatch:
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
    try:
        parsed = jiter.from_json(
            body, float_mode="decimal", catch_duplicate_keys=True, allow_inf_nan=True
        )
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", field="body") from None
    if batch:
        if not isinstance(parsed, list):
            raise InvalidInput("a batch is a JSON array of CloudEvents", field="body")
        items = parsed
    else:
        items = [parsed]
    if not items:
        raise InvalidInput("no events found: the batch is empty", field="body")
    try:
        if len(items) > limits.batch_events_max:
            raise TooLarge(
                f"a batch holds at most {limits.batch_events_max} events; this one has "
                f"{len(items)} (send several batches)",
                field="body",
            )
        careful = _EXOTIC_NUMBERS.search(body) is not None
        check_text = b"\\u0000" in body
        check_depth = body.count(b"{") + body.count(b"[") > 3 * len(items)
        errors: list[FieldError] = []
        events: list[Event] = []
        texts: list[str | None] = []
        for index, item in enumerate(items):
            prefix = f"[{index}]." if batch else ""
            before = len(errors)
            event = _event(item, prefix, errors, careful, check_text, check_depth)
            if event is None or len(errors) > before:
                continue
            text = None if event.data is None else json_exact.dumps(event.data).decode()
            if text is not None and len(text) > limits.event_data_bytes_max:
                raise TooLarge(
                    f"{prefix}data is {len(text)} bytes; an event's data may have at most "
                    f"{limits.event_data_bytes_max}",
                    field=f"{prefix}data",
                )
            events.append(event)
            texts.append(text)
        if errors:
            _raise(errors)
        return ParsedBatch(events, texts)
    except AllotmentError as error:
        # The whole batch is refused: the metrics count every event of it.
        setattr(error, _REFUSED_EVENTS, len(items))
        raise


_REFUSED_EVENTS = "allotment_refused_events"


def refused_events(error: AllotmentError) -> int:
    """How many events a refused ingest body held (1 when it was no list of events at all)."""
    return int(getattr(error, _REFUSED_EVENTS, 1))


def _event(
    item: Any,
    prefix: str,
    errors: list[FieldError],
    careful: bool,
    check_text: bool,
    check_depth: bool,
) -> Event | None:
    if type(item) is not dict:
        errors.append(FieldError(prefix.rstrip(".") or "body", "must be a CloudEvent object"))
        return None
    fields: list[str] = []
    for name in ("id", "source", "type", "subject"):
        value = item.get(name)
        if type(value) is not str:
            missing = "is required" if value is None else "must be a string"
            errors.append(FieldError(f"{prefix}{name}", missing, "string_type"))
        elif not 0 < len(value) <= TEXT_LENGTH_MAX:
            errors.append(
                FieldError(f"{prefix}{name}", f"must be 1 to {TEXT_LENGTH_MAX} characters")
            )
        elif check_text and not is_storable_text(value):
            errors.append(FieldError(f"{prefix}{name}", _NUL_MESSAGE, "string_nul"))
        else:
            fields.append(value)
    specversion = item.get("specversion", SPEC_VERSION)
    if type(specversion) is not str or specversion not in SPEC_VERSIONS:
        errors.append(FieldError(f"{prefix}specversion", "must be '1.0' or '0.3'"))
        specversion = SPEC_VERSION
    time = _time(item.get("time"), f"{prefix}time", errors)
    content_type = item.get("datacontenttype")
    if content_type is not None and content_type != JSON_CONTENT_TYPE:
        errors.append(
            FieldError(f"{prefix}datacontenttype", f"must be {JSON_CONTENT_TYPE!r} or absent")
        )
    schema = item.get("dataschema")
    if schema is not None and (
        type(schema) is not str or not 0 < len(schema) <= DATASCHEMA_LENGTH_MAX
    ):
        errors.append(
            FieldError(f"{prefix}dataschema", f"must be 1 to {DATASCHEMA_LENGTH_MAX} characters")
        )
    elif schema is not None and _URI.match(schema) is None:
        errors.append(
            FieldError(f"{prefix}dataschema", "must be a URI, e.g. https://example.com/s.json")
        )
    elif check_text and schema is not None and not is_storable_text(schema):
        errors.append(FieldError(f"{prefix}dataschema", _NUL_MESSAGE, "string_nul"))
    data = item.get("data")
    if data is not None:
        if type(data) is not dict:
            errors.append(FieldError(f"{prefix}data", "must be a JSON object", "dict_type"))
        else:
            found = _data_problem(data, careful, check_text, check_depth)
            if found is not None:
                errors.append(FieldError(f"{prefix}data", *found))
    if len(fields) != 4:
        return None
    return Event(
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        time,
        specversion,
        content_type,
        schema,
        data,
    )


def _time(value: Any, field: str, errors: list[FieldError]) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str or _RFC3339.fullmatch(value) is None:
        errors.append(
            FieldError(field, "must be an RFC 3339 time with an offset, e.g. 2024-01-15T10:00:00Z")
        )
        return None
    try:
        parsed = datetime.fromisoformat(value)
        instant = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        errors.append(FieldError(field, "is not a valid date and time"))
        return None
    if not _EARLIEST_SECONDS <= instant.timestamp() < _LATEST_SECONDS:
        errors.append(
            FieldError(field, f"must be from the year {EARLIEST.year} to {LATEST.year - 1} (UTC)")
        )
        return None
    return instant


def _data_problem(
    data: dict[str, Any], careful: bool, check_text: bool, check_depth: bool
) -> tuple[str, str] | None:
    """What the parser alone cannot see in an event's data (only bodies that may hold such
    values are walked)."""
    if careful and not _numbers_storable(data):
        return _NOT_FINITE, "number_not_finite"
    if check_text and not is_storable_document(data):
        return _NUL_MESSAGE, "string_nul"
    if check_depth and _too_deep(data, EVENT_DEPTH_MAX):
        return f"may nest objects and arrays at most {EVENT_DEPTH_MAX} deep", "too_deep"
    return None


def _numbers_storable(value: object) -> bool:
    kind = type(value)
    if kind is dict:
        return all(_numbers_storable(item) for item in value.values())  # type: ignore[attr-defined]
    if kind is list:
        return all(_numbers_storable(item) for item in value)  # type: ignore[attr-defined]
    if kind is Decimal:
        number: Decimal = value  # type: ignore[assignment]
        return number.is_finite() and -EVENT_EXPONENT_MAX <= number.adjusted() <= EVENT_EXPONENT_MAX
    return True


def _too_deep(value: object, remaining: int) -> bool:
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    if remaining <= 0:
        return True
    items: Any = value.values() if kind is dict else value  # type: ignore[attr-defined]
    return any(_too_deep(item, remaining - 1) for item in items)


def _event_order(error: FieldError) -> tuple[int, str]:
    head = error.field.split("]", 1)[0]
    return (int(head[1:]) if head.startswith("[") and head[1:].isdigit() else -1, error.field)


def _raise(errors: list[FieldError]) -> NoReturn:
    errors = sorted(errors, key=_event_order)
    bad_events = list(
        dict.fromkeys(e.field.split(".", 1)[0] for e in errors if e.field.startswith("["))
    )
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
    """JSON bytes of a response body, event data exactly as stored (integers of any width,
    decimals as written)."""
    return json_exact.dumps(body)


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
