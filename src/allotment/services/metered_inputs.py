"""Everything the credit engine needs about metered entitlements, read in few queries.

The engine (`domain/burn.py`) never fetches: it takes the usage-period timeline, the grants, and
usage as data. This module gathers the first two for a batch of entitlements (one query for all
their grants, one for all their resets) and answers the engine's usage windows with one meter
query per entitlement, restricted to the customer's subjects and the feature's group-by filters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from allotment.domain.burn import MeteredTerms, UsageMode, UsageWindow
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement
from allotment.domain.features import Feature
from allotment.domain.grants import Grant
from allotment.domain.group_filters import StringFilter
from allotment.domain.meters import Meter
from allotment.errors import PreconditionFailed
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class MeteredInputs:
    """One metered entitlement, ready for the engine."""

    entitlement: Entitlement
    terms: MeteredTerms
    grants: tuple[Grant, ...]
    meter: Meter
    subject_keys: tuple[str, ...]
    group_filters: Mapping[str, StringFilter]
    """The feature's group-by filters: only the usage they match counts."""


def metered_inputs(
    uow: UnitOfWork, customer: Customer, entitlements: Sequence[Entitlement]
) -> dict[str, MeteredInputs]:
    """Inputs for each metered entitlement of `customer` in `entitlements`, by id."""
    metered = [e for e in entitlements if e.is_metered]
    if not metered:
        return {}
    ids = [e.id for e in metered]
    grants = uow.grants.for_entitlements(ids)
    resets = uow.entitlements.resets_of(ids)
    features: dict[str, Feature] = {}
    meters: dict[str, Meter] = {}
    result: dict[str, MeteredInputs] = {}
    for entitlement in metered:
        feature = features.get(entitlement.feature_id)
        if feature is None:
            found = uow.features.get(entitlement.feature_id)
            assert found is not None  # an entitlement's feature is archived, never removed
            feature = features[found.id] = found
        meter = _meter(uow, meters, entitlement, feature)
        result[entitlement.id] = MeteredInputs(
            entitlement=entitlement,
            terms=MeteredTerms(
                timeline=entitlement.timeline(resets[entitlement.id]),
                preserve_overage_at_reset=entitlement.preserve_overage_at_reset,
                usage_mode=UsageMode.for_aggregation(meter.aggregation.value),
                is_soft_limit=entitlement.is_soft_limit,
            ),
            grants=tuple(g.to_engine() for g in grants[entitlement.id]),
            meter=meter,
            subject_keys=customer.attribution_keys,
            group_filters=feature.group_by_filters,
        )
    return result


def _meter(
    uow: UnitOfWork, meters: dict[str, Meter], entitlement: Entitlement, feature: Feature
) -> Meter:
    slug = feature.meter_slug
    if slug is None:
        raise PreconditionFailed(
            f"feature '{feature.key}' of entitlement {entitlement.id} has no meter",
            field="featureKey",
        )
    meter = meters.get(slug)
    if meter is None:
        # A deleted meter's events still measure the entitlements it backed.
        meter = uow.meters.get_live_by_slug(slug) or uow.meters.find(slug)
        if meter is None:
            raise PreconditionFailed(
                f"meter '{slug}' of feature '{feature.key}' no longer exists, so the usage of "
                f"entitlement {entitlement.id} cannot be measured",
                field="featureKey",
            )
        meters[slug] = meter
    return meter


def usage_in(
    uow: UnitOfWork, inputs: MeteredInputs, windows: Sequence[UsageWindow]
) -> dict[UsageWindow, Decimal]:
    """The usage of every window the engine planned, in one meter query (the windows travel as
    one parameter, so a long history costs no extra round trips)."""
    unique = list(dict.fromkeys(windows))
    values = uow.usage_store.usage_in_windows(
        inputs.meter,
        inputs.subject_keys,
        [(w.start, w.end, w.period_start) for w in unique],
        advanced_filters=inputs.group_filters,
    )
    return dict(zip(unique, values, strict=True))
