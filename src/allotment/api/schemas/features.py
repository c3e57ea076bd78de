"""Wire models of features (OpenMeter `Feature`, `FeatureCreateInputs`, `FilterString`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.domain import features as rules
from allotment.domain.features import Feature, NewFeature, group_by_filters_from_wire
from allotment.domain.group_filters import StringFilter


class FilterString(WireModel):
    """Exactly one operator per object; `$and`/`$or` combine nested filters."""

    # Unknown operators are refused rather than ignored: a filter that silently matched
    # everything would count usage the customer should not be charged for.
    model_config = ConfigDict(extra="forbid")

    eq: str | None = Field(default=None, alias="$eq")
    ne: str | None = Field(default=None, alias="$ne")
    in_: list[str] | None = Field(default=None, alias="$in")
    nin: list[str] | None = Field(default=None, alias="$nin")
    like: str | None = Field(default=None, alias="$like")
    nlike: str | None = Field(default=None, alias="$nlike")
    ilike: str | None = Field(default=None, alias="$ilike")
    nilike: str | None = Field(default=None, alias="$nilike")
    gt: str | None = Field(default=None, alias="$gt")
    gte: str | None = Field(default=None, alias="$gte")
    lt: str | None = Field(default=None, alias="$lt")
    lte: str | None = Field(default=None, alias="$lte")
    and_: list[FilterString] | None = Field(default=None, alias="$and")
    or_: list[FilterString] | None = Field(default=None, alias="$or")

    def to_document(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True)

    @classmethod
    def of(cls, string_filter: StringFilter) -> FilterString:
        return cls.model_validate(string_filter.to_document())


class FeatureCreateBody(WireModel):
    key: str = Field(min_length=1, max_length=rules.KEY_MAX_LENGTH, pattern=rules.KEY_PATTERN)
    name: str = Field(min_length=1, max_length=rules.NAME_MAX_LENGTH)
    meter_slug: str | None = Field(
        default=None, min_length=1, max_length=rules.KEY_MAX_LENGTH, pattern=rules.KEY_PATTERN
    )
    meter_group_by_filters: dict[str, str] | None = Field(
        default=None,
        description="Deprecated form of advancedMeterGroupByFilters: each value means `$eq`.",
    )
    advanced_meter_group_by_filters: dict[str, FilterString] | None = None
    metadata: dict[str, str] | None = None

    def to_new_feature(self) -> NewFeature:
        advanced = self.advanced_meter_group_by_filters
        filters = group_by_filters_from_wire(
            self.meter_group_by_filters,
            None if advanced is None else {k: v.to_document() for k, v in advanced.items()},
        )
        return NewFeature(
            key=self.key,
            name=self.name,
            meter_slug=self.meter_slug,
            group_by_filters=filters,
            metadata=self.metadata,
        )


class FeatureResponse(WireModel):
    id: str
    key: str
    name: str
    metadata: dict[str, str] | None = None
    meter_slug: str | None = None
    meter_group_by_filters: dict[str, str] | None = Field(
        default=None, description="The plain `$eq` filters of advancedMeterGroupByFilters."
    )
    advanced_meter_group_by_filters: dict[str, FilterString] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    archived_at: UtcDateTime | None = None

    @classmethod
    def of(cls, feature: Feature) -> FeatureResponse:
        filters = feature.group_by_filters
        return cls(
            id=feature.id,
            key=feature.key,
            name=feature.name,
            metadata=None if feature.metadata is None else dict(feature.metadata),
            meter_slug=feature.meter_slug,
            meter_group_by_filters=feature.equality_filters or None,
            advanced_meter_group_by_filters={
                key: FilterString.of(value) for key, value in filters.items()
            }
            or None,
            created_at=feature.created_at,
            updated_at=feature.updated_at,
            archived_at=feature.archived_at,
        )
