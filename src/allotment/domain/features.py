"""Features: what a customer may be entitled to, optionally metered by a meter.

Rules:
- `key` is lowercase snake case (`^[a-z0-9]+(?:_[a-z0-9]+)*$`), at most 64 characters, and not
  shaped like a ULID (paths accept an id or a key and try the id first).
- A key names at most one live feature; archiving frees it. An archived feature stays readable by
  id for history and keeps its entitlements working, but takes no new entitlements.
- A metered feature names a meter whose aggregation is SUM, COUNT, UNIQUE_COUNT or LATEST (the
  ones a balance can be burnt from).
- Group-by filters restrict the meter's usage to events whose group-by values match (any
  `FilterString` operator, with the meaning of `group_filters.py`, balances included); each
  filter names one of the meter's group-by keys. A feature without a meter has no filters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from allotment.domain.group_filters import StringFilter, filter_text, parse_filter
from allotment.domain.listing import SortOrder
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import ErrorList, InvalidInput
from allotment.ids import is_ulid

KEY_PATTERN = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
KEY_MAX_LENGTH = 64
NAME_MAX_LENGTH = 256
METERED_AGGREGATIONS = frozenset({"SUM", "COUNT", "UNIQUE_COUNT", "LATEST"})


@dataclass(frozen=True)
class MeterFacts:
    """What a feature needs to know about its meter."""

    slug: str
    aggregation: str
    group_by_keys: frozenset[str]


@dataclass(frozen=True)
class Feature:
    id: str
    key: str
    name: str
    meter_slug: str | None
    group_by_filters: Mapping[str, StringFilter]
    metadata: Mapping[str, str] | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    unit_cost: Mapping[str, Any] | None = None
    """OpenMeter's `unitCost` (`manual` or `llm`), kept as sent: Allotment prices nothing."""

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_metered(self) -> bool:
        return self.meter_slug is not None

    @property
    def equality_filters(self) -> dict[str, str]:
        """The plain `$eq` filters, as the legacy `meterGroupByFilters` map shows them."""
        return {
            key: filter_.operand
            for key, filter_ in self.group_by_filters.items()
            if filter_.operator == "$eq" and isinstance(filter_.operand, str)
        }


@dataclass(frozen=True)
class NewFeature:
    key: str
    name: str
    meter_slug: str | None = None
    group_by_filters: Mapping[str, StringFilter] = field(default_factory=dict)
    metadata: Mapping[str, str] | None = None
    unit_cost: Mapping[str, Any] | None = None


def is_valid_key(key: str) -> bool:
    return (
        0 < len(key) <= KEY_MAX_LENGTH
        and re.match(KEY_PATTERN, key) is not None
        and not is_ulid(key)
    )


def group_by_filters_from_wire(
    equality: Mapping[str, str] | None, advanced: Mapping[str, Any] | None
) -> dict[str, StringFilter]:
    """Both wire forms as one map: `{"model": "gpt-4"}` means `{"model": {"$eq": "gpt-4"}}`.

    Sending both forms at once is refused: which should win would be a guess.
    """
    if equality and advanced:
        raise InvalidInput(
            "send meterGroupByFilters or advancedMeterGroupByFilters, not both",
            field="advancedMeterGroupByFilters",
        )
    errors = ErrorList()
    filters: dict[str, StringFilter] = {}
    wire_name = "meterGroupByFilters" if equality else "advancedMeterGroupByFilters"
    documents: Mapping[str, object] = equality or advanced or {}
    for key, document in documents.items():
        if not is_storable_text(key):
            errors.add(wire_name, f"group-by keys {UNSTORABLE_TEXT}")
            continue
        with errors.collecting():
            if equality:
                filters[key] = StringFilter("$eq", filter_text(document, f"{wire_name}.{key}"))
            else:
                filters[key] = parse_filter(document, f"{wire_name}.{key}")
    errors.raise_if_any("invalid group-by filters")
    return filters


def validate_new_feature(feature: NewFeature) -> None:
    """Raises InvalidInput naming every bad field that needs no lookup to judge."""
    errors = ErrorList()
    if not is_valid_key(feature.key):
        errors.add(
            "key",
            "must be lowercase letters, digits and single underscores (e.g. ai_tokens), "
            f"at most {KEY_MAX_LENGTH} characters, and not shaped like a ULID",
            code="pattern",
        )
    if feature.meter_slug is not None and not (
        len(feature.meter_slug) <= KEY_MAX_LENGTH and re.match(KEY_PATTERN, feature.meter_slug)
    ):
        errors.add("meterSlug", "must be a meter slug: lowercase letters, digits and underscores")
    # An empty name is allowed, as OpenMeter's schema allows it.
    if len(feature.name) > NAME_MAX_LENGTH:
        errors.add("name", f"must be at most {NAME_MAX_LENGTH} characters")
    elif not is_storable_text(feature.name):
        errors.add("name", UNSTORABLE_TEXT)
    if feature.metadata is not None and not is_storable_document(feature.metadata):
        errors.add("metadata", UNSTORABLE_TEXT)
    if feature.unit_cost is not None and not is_storable_document(feature.unit_cost):
        errors.add("unitCost", UNSTORABLE_TEXT)
    if feature.group_by_filters and feature.meter_slug is None:
        errors.add("meterGroupByFilters", "group-by filters need a meterSlug")
    errors.raise_if_any("invalid feature")


def validate_meter_fits(feature: NewFeature, meter: MeterFacts) -> None:
    """Raises InvalidInput unless `meter` (the live meter the feature names) can meter it."""
    errors = ErrorList()
    if meter.aggregation not in METERED_AGGREGATIONS:
        allowed = ", ".join(sorted(METERED_AGGREGATIONS))
        errors.add(
            "meterSlug",
            f"meter '{meter.slug}' aggregates {meter.aggregation}; a feature's meter must "
            f"aggregate one of {allowed}",
        )
    for key in sorted(feature.group_by_filters):
        if key not in meter.group_by_keys:
            known = ", ".join(sorted(meter.group_by_keys)) or "none"
            errors.add(
                f"meterGroupByFilters.{key}",
                f"'{key}' is not a group-by key of meter '{meter.slug}' (its keys: {known})",
            )
    errors.raise_if_any("invalid feature")


class FeatureOrderBy(StrEnum):
    ID = "id"
    KEY = "key"
    NAME = "name"
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"


@dataclass(frozen=True)
class FeatureFilter:
    meter_slugs: tuple[str, ...] = ()
    include_archived: bool = False
    order_by: FeatureOrderBy = FeatureOrderBy.KEY
    order: SortOrder = SortOrder.ASC
