"""Features: create, list, read, archive; and finding a feature for other use cases.

`find_feature(uow, id_or_key, include_archived=...)` and `resolve_feature(...)` work inside the
caller's unit of work. By key they find the live feature (with `include_archived`, failing that,
the one archived last); by id any feature, archived only with `include_archived`.
"""

from __future__ import annotations

from dataclasses import replace

from allotment.domain.features import (
    Feature,
    FeatureFilter,
    MeterFacts,
    NewFeature,
    validate_meter_fits,
    validate_new_feature,
)
from allotment.domain.listing import ListResult, Window
from allotment.domain.text import is_storable_text
from allotment.errors import Conflict, NotFound
from allotment.ids import is_ulid, new_id
from allotment.services.context import ServiceContext
from allotment.storage import UnitOfWork


def create_feature(context: ServiceContext, new: NewFeature) -> Feature:
    validate_new_feature(new)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        if new.meter_slug is not None:
            meter = uow.meters.get_live_by_slug(new.meter_slug)
            if meter is None:
                raise NotFound(f"meter not found: {new.meter_slug}", field="meterSlug")
            facts = MeterFacts(
                slug=meter.slug,
                aggregation=meter.aggregation.value,
                group_by_keys=frozenset(meter.group_by),
            )
            validate_meter_fits(new, facts)
        feature = Feature(
            id=new_id(),
            key=new.key,
            name=new.name,
            meter_slug=new.meter_slug,
            group_by_filters=dict(new.group_by_filters),
            metadata=new.metadata,
            created_at=at,
            updated_at=at,
            unit_cost=new.unit_cost,
        )
        if not uow.features.add_if_key_free(feature):
            holder = uow.features.get_by_key(new.key)
            raise Conflict(
                f"a feature with key '{new.key}' already exists; archive it to reuse the key",
                field="key",
                conflicting_entity_id=holder.id if holder else None,
            )
        uow.commit()
    return feature


def list_features(
    context: ServiceContext, criteria: FeatureFilter, window: Window
) -> ListResult[Feature]:
    with context.database.unit_of_work() as uow:
        return uow.features.list_matching(criteria, window)


def get_feature(context: ServiceContext, id_or_key: str) -> Feature:
    """Live features only: an archived one is 404 by id and by key, as in OpenMeter."""
    with context.database.unit_of_work() as uow:
        return resolve_feature(uow, id_or_key)


def archive_feature(context: ServiceContext, id_or_key: str) -> Feature:
    """Archives the feature (its key becomes free; its entitlements keep working).

    Archiving an archived feature by id changes nothing; by key there is no live one to archive.
    """
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        feature = resolve_feature(uow, id_or_key, include_archived=is_ulid(id_or_key))
        if feature.is_archived:
            return feature
        uow.features.archive(feature.id, at)
        uow.commit()
    return replace(feature, archived_at=at, updated_at=at)


def find_feature(
    uow: UnitOfWork, id_or_key: str, *, include_archived: bool = False
) -> Feature | None:
    if not is_storable_text(id_or_key):
        return None
    if is_ulid(id_or_key):
        by_id = uow.features.get(id_or_key)
        if by_id is not None and (include_archived or not by_id.is_archived):
            return by_id
    return uow.features.get_by_key(id_or_key, include_archived=include_archived)


def resolve_feature(uow: UnitOfWork, id_or_key: str, *, include_archived: bool = False) -> Feature:
    """`find_feature`, raising NotFound when nothing matches."""
    feature = find_feature(uow, id_or_key, include_archived=include_archived)
    if feature is None:
        raise NotFound(f"feature not found: {id_or_key}", field="featureId")
    return feature
