"""Meters on the wire: create/update bodies, the Meter resource, and query results (JSON, CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import Field

from allotment.api.schemas.common import RequestModel, UtcDateTime, WireModel
from allotment.domain.group_filters import parse_filter
from allotment.domain.meters import (
    DESCRIPTION_LENGTH_MAX,
    EVENT_TYPE_LENGTH_MAX,
    NAME_LENGTH_MAX,
    SLUG_LENGTH_MAX,
    SLUG_PATTERN,
    Aggregation,
    Meter,
    MeterDefinition,
    MeterQuery,
    MeterQueryResult,
    WindowSize,
)
from allotment.domain.time import rfc3339

_VALUE_PROPERTY_HELP = (
    "JSONPath into the event's data ($.tokens, $.usage.input, $['a b'], $.items[0]); "
    "required by every aggregation but COUNT, which takes none."
)
_GROUP_BY_HELP = "Group-by key -> JSONPath of its value in the event's data."


class MeterCreate(RequestModel):
    nullable = frozenset({"metadata"})
    slug: str = Field(min_length=1, max_length=SLUG_LENGTH_MAX, pattern=SLUG_PATTERN)
    aggregation: Aggregation
    event_type: str = Field(min_length=1, max_length=EVENT_TYPE_LENGTH_MAX)
    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_LENGTH_MAX)
    metadata: dict[str, str] | None = None
    event_from: UtcDateTime | None = Field(None, description="Events before it never count.")
    value_property: str | None = Field(None, min_length=1, description=_VALUE_PROPERTY_HELP)
    group_by: dict[str, str] | None = Field(None, description=_GROUP_BY_HELP)

    def to_definition(self) -> MeterDefinition:
        return MeterDefinition(
            slug=self.slug,
            aggregation=self.aggregation,
            event_type=self.event_type,
            name=self.name,
            description=self.description,
            metadata=self.metadata,
            event_from=self.event_from,
            value_property=self.value_property,
            group_by=self.group_by or {},
        )


class MeterUpdate(RequestModel):
    """A replace: an omitted name falls back to the slug, an omitted groupBy clears them."""

    nullable = frozenset({"metadata"})

    name: str | None = Field(None, min_length=1, max_length=NAME_LENGTH_MAX)
    description: str | None = Field(None, max_length=DESCRIPTION_LENGTH_MAX)
    metadata: dict[str, str] | None = None
    group_by: dict[str, str] | None = Field(None, description=_GROUP_BY_HELP)


class MeterResource(WireModel):
    id: str
    slug: str
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    aggregation: Aggregation
    event_type: str
    event_from: UtcDateTime | None = None
    value_property: str | None = None
    group_by: dict[str, str] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None

    @classmethod
    def from_meter(cls, meter: Meter) -> MeterResource:
        return cls(
            id=meter.id,
            slug=meter.slug,
            name=meter.name,
            description=meter.description,
            metadata=dict(meter.metadata) if meter.metadata is not None else None,
            aggregation=meter.aggregation,
            event_type=meter.event_type,
            event_from=meter.event_from,
            value_property=meter.value_property,
            group_by=dict(meter.group_by) or None,
            created_at=meter.created_at,
            updated_at=meter.updated_at,
            deleted_at=meter.deleted_at,
        )


class MeterQueryRequest(RequestModel):
    """The POST form of a meter query (the GET form takes the same names as parameters)."""

    client_id: str | None = Field(None, min_length=1, max_length=36)
    from_time: UtcDateTime | None = Field(None, alias="from", description="Inclusive.")
    to_time: UtcDateTime | None = Field(None, alias="to", description="Exclusive.")
    window_size: WindowSize | None = None
    window_time_zone: str = Field("UTC", description="Empty: UTC, as in OpenMeter.")
    subject: list[str] | None = Field(None, description="Filters by subject and groups by it.")
    filter_customer_id: list[str] | None = None
    filter_group_by: dict[str, list[str]] | None = Field(
        None, description="Group-by key -> accepted values (exact match)."
    )
    advanced_meter_group_by_filters: dict[str, Any] | None = Field(
        None,
        description="Group-by key -> filter ($eq $ne $in $nin $like $nlike $ilike $nilike "
        "$gt $gte $lt $lte $and $or); not together with filterGroupBy.",
    )
    group_by: list[str] | None = None

    def to_query(self) -> MeterQuery:
        field = "advancedMeterGroupByFilters"
        advanced = self.advanced_meter_group_by_filters or {}
        return MeterQuery(
            from_time=self.from_time,
            to_time=self.to_time,
            window_size=self.window_size,
            time_zone=self.window_time_zone or "UTC",
            subjects=tuple(self.subject or ()),
            customer_ids=tuple(self.filter_customer_id or ()),
            group_by=tuple(self.group_by or ()),
            filter_group_by={key: tuple(v) for key, v in (self.filter_group_by or {}).items()},
            advanced_filters={
                key: parse_filter(value, f"{field}.{key}") for key, value in advanced.items()
            },
        )


class MeterQueryRowResource(WireModel):
    value: float = Field(description="Exact: every digit of the stored sum, at any size.")
    window_start: UtcDateTime
    window_end: UtcDateTime
    subject: str | None
    customer_id: str | None = None
    group_by: dict[str, str | None]


class MeterQueryResultResource(WireModel):
    from_time: UtcDateTime | None = Field(None, alias="from")
    to_time: UtcDateTime | None = Field(None, alias="to")
    window_size: WindowSize | None = None
    data: list[MeterQueryRowResource]


_INTEGER_DIGITS_MAX = 60


def _json_number(value: Decimal) -> orjson.Fragment:
    """The exact value as a JSON number, whatever its size or digits (2 * 2**64 is
    36893488147419103232, 0.1 + 0.2 is 0.3): written as decimal text, never through a double."""
    if not value.is_finite():
        raise ValueError(f"a meter value is not finite: {value}")
    if value == value.to_integral_value() and value.adjusted() < _INTEGER_DIGITS_MAX:
        return orjson.Fragment(str(int(value)))
    # Fractions, and integers too long to write out digit by digit (9e999): exponent form.
    return orjson.Fragment(str(value.normalize()))


def query_result_to_wire(result: MeterQueryResult) -> dict[str, Any]:
    """The JSON body, built directly (a query can return many rows): `from`, `to` and
    `windowSize` echo the request; `subject` is null unless rows are grouped by subject."""
    query = result.query
    body: dict[str, Any] = {}
    if query.from_time is not None:
        body["from"] = rfc3339(query.from_time)
    if query.to_time is not None:
        body["to"] = rfc3339(query.to_time)
    if query.window_size is not None:
        body["windowSize"] = query.window_size.value
    data = []
    for row in result.rows:
        wire: dict[str, Any] = {
            "value": _json_number(row.value),
            "windowStart": rfc3339(row.window_start),
            "windowEnd": rfc3339(row.window_end),
            "subject": row.subject,
            "groupBy": dict(row.group_by),
        }
        if result.grouping.by_customer:
            wire["customerId"] = row.customer_id
        data.append(wire)
    body["data"] = data
    return body


def _csv_time(value: datetime) -> str:
    return rfc3339(value.astimezone(UTC).replace(microsecond=0))


def query_result_to_json(result: MeterQueryResult) -> bytes:
    return orjson.dumps(query_result_to_wire(result))


def query_result_to_csv(result: MeterQueryResult) -> str:
    """`window_start,window_end[,subject[,subject_display_name]][,customer_id][,<group keys>],
    value`; times in seconds, values with six decimals. `subject_display_name` is there, as in
    OpenMeter, when some row's subject has a display name (empty for those without)."""
    grouping = result.grouping
    header = ["window_start", "window_end"]
    names = result.subject_display_names if grouping.by_subject else {}
    if grouping.by_subject:
        header.append("subject")
        if names:
            header.append("subject_display_name")
    if grouping.by_customer:
        header.append("customer_id")
    header.extend(grouping.keys)
    header.append("value")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in result.rows:
        line = [_csv_time(row.window_start), _csv_time(row.window_end)]
        if grouping.by_subject:
            line.append(row.subject or "")
            if names:
                line.append(names.get(row.subject or "", ""))
        if grouping.by_customer:
            line.append(row.customer_id or "")
        group_values: Mapping[str, str | None] = row.group_by
        line.extend(group_values.get(key) or "" for key in grouping.keys)
        line.append(f"{row.value:.6f}")
        writer.writerow(line)
    return buffer.getvalue()
