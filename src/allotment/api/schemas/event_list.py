"""`GET /api/v2/events` on the wire: the `filter` parameter (JSON text) and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.api.schemas.events import IngestedEvent
from allotment.domain.event_filters import EventListFilter, parse_event_list_filter
from allotment.domain.events import EventPosition
from allotment.errors import InvalidInput

_FILTER_TEXT_LENGTH_MAX = 8192
_INSTANT: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)
_CURSOR = re.compile(r"(\d{1,19}):(\d{1,19})")


class IngestedEventPage(WireModel):
    """`IngestedEventCursorPaginatedResponse`: `nextCursor` only when more events follow."""

    items: list[IngestedEvent]
    next_cursor: str | None = None


def _read_instant(value: object, field: str) -> datetime:
    try:
        return _INSTANT.validate_python(value)
    except ValidationError:
        raise InvalidInput(
            f"{field}: must be an RFC 3339 date-time, e.g. 2024-01-15T10:00:00Z", field=field
        ) from None


def parse_filter_parameter(text: str | None) -> EventListFilter | None:
    if text is None or text == "":
        return None
    parsed: Any = None
    if len(text) <= _FILTER_TEXT_LENGTH_MAX:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise InvalidInput(
            'must be a JSON object such as {"subject": {"$eq": "acme"}}', field="filter"
        )
    return parse_event_list_filter(parsed, _read_instant)


def encode_cursor(position: EventPosition) -> str:
    micros = int(position.time.timestamp()) * 1_000_000 + position.time.microsecond
    return base64.urlsafe_b64encode(f"{micros}:{position.seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> EventPosition | None:
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise InvalidInput("is not a cursor this server gave out", field="cursor")
    micros, seq = int(match.group(1)), int(match.group(2))
    try:
        time = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        raise InvalidInput("is not a cursor this server gave out", field="cursor") from None
    return EventPosition(time, seq)
