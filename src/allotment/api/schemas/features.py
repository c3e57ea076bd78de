"""Wire models of features (OpenMeter `Feature`, `FeatureCreateInputs`, `FilterString`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter, model_validator
from pydantic.alias_generators import to_camel

from allotment.api.schemas.common import RequestModel, UtcDateTime, WireModel
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


_NUMERIC = r"^\-?[0-9]+(\.[0-9]+)?$"


class ManualUnitCost(RequestModel):
    """A fixed cost per unit; `amount` is OpenMeter's `Numeric` (a decimal as a string)."""

    type: Literal["manual"]
    amount: str = Field(pattern=_NUMERIC, max_length=64)


class LlmUnitCost(RequestModel):
    """Where an LLM cost lookup finds provider, model and token type: a meter group-by
    property or a fixed value for each (not both). Stored and returned; Allotment has no cost
    database, so `pricing` is never filled in."""

    type: Literal["llm"]
    provider_property: str | None = Field(None, min_length=1, max_length=256)
    provider: str | None = Field(None, min_length=1, max_length=256)
    model_property: str | None = Field(None, min_length=1, max_length=256)
    model: str | None = Field(None, min_length=1, max_length=256)
    token_type_property: str | None = Field(None, min_length=1, max_length=256)
    token_type: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_of_each(self) -> LlmUnitCost:
        for fixed, property_ in (
            ("provider", "provider_property"),
            ("model", "model_property"),
            ("token_type", "token_type_property"),
        ):
            if getattr(self, fixed) is not None and getattr(self, property_) is not None:
                raise ValueError(f"{to_camel(fixed)} and {to_camel(property_)} exclude each other")
        return self


UnitCost = Annotated[ManualUnitCost | LlmUnitCost, Field(discriminator="type")]
_UNIT_COST: TypeAdapter[ManualUnitCost | LlmUnitCost] = TypeAdapter(UnitCost)


class FeatureCreateBody(RequestModel):
    key: str = Field(min_length=1, max_length=rules.KEY_MAX_LENGTH, pattern=rules.KEY_PATTERN)
    name: str = Field(max_length=rules.NAME_MAX_LENGTH)
    meter_slug: str | None = Field(
        default=None, min_length=1, max_length=rules.KEY_MAX_LENGTH, pattern=rules.KEY_PATTERN
    )
    meter_group_by_filters: dict[str, str] | None = Field(
        default=None,
        description="Deprecated form of advancedMeterGroupByFilters: each value means `$eq`.",
    )
    advanced_meter_group_by_filters: dict[str, FilterString] | None = None
    metadata: dict[str, str] | None = None
    unit_cost: UnitCost | None = None

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
            unit_cost=None
            if self.unit_cost is None
            else self.unit_cost.model_dump(by_alias=True, exclude_none=True),
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
    unit_cost: UnitCost | None = None
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
            unit_cost=None
            if feature.unit_cost is None
            else _UNIT_COST.validate_python(dict(feature.unit_cost)),
            created_at=feature.created_at,
            updated_at=feature.updated_at,
            archived_at=feature.archived_at,
        )
