"""Wire types shared by every resource: timestamps, amounts, lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from allotment import json_exact
from allotment.domain.time import rfc3339


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-05:00: no UTC instant; a 400, not a 500.
        raise ValueError("the time has no UTC equivalent (out of range)") from None


# RFC 3339's date-time, as OpenMeter's schema has it: pydantic alone would also read a number
# (`?time=0`) as seconds since 1970, and a date without a time.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2024-01-15T10:00:00Z")
    return value


# Input: an RFC 3339 time with an offset (naive times and numbers are rejected); stored in UTC.
UtcDateTime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_to_utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]


def _serialise_amount(value: Decimal) -> int | float:
    # JSON numbers, not strings: integral amounts stay exact integers of any size.
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def exact_amount(value: Decimal) -> int | Decimal:
    """An amount as an exact JSON number: an integer, or the decimal's plain digits (written
    as they are by `ExactJSONResponse`, never through a binary float)."""
    if value == value.to_integral_value():
        return int(value)
    return Decimal(format(value.normalize(), "f"))


class ExactJSONResponse(Response):
    """JSON whose numbers are exact: Decimals are written digit for digit."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_exact.dumps(content)


# Amounts: parsed exactly as Decimal (never through a binary float), sent as JSON numbers.
AmountValue = Annotated[
    Decimal,
    PlainSerializer(_serialise_amount, return_type=int | float, when_used="json"),
]


class WireModel(BaseModel):
    """Base of every wire model: camelCase on the wire, extra fields ignored as OpenMeter does."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", serialize_by_alias=True
    )


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("must not be null (leave the field out instead)")
    return value


class RequestModel(WireModel):
    """Base of request bodies: an optional field sent as `null` is refused (400 naming it), as
    OpenMeter's schema refuses it, unless the schema declares it nullable (`nullable`, by
    Python name). Leaving a field out is always fine."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, info in cls.model_fields.items():
            if name in cls.nullable or info.is_required():
                continue
            if not any(getattr(m, "func", None) is _not_null for m in info.metadata):
                # Explicit values are validated, defaults are not: only a sent null fails.
                info.metadata.append(BeforeValidator(_not_null))
                changed = True
        if changed:
            cls.model_rebuild(force=True)


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """`{items, page, pageSize, totalCount}`, the paginated list shape."""

    items: list[T]
    page: int
    page_size: int
    total_count: int
