"""Everything the credit engine needs about metered entitlements, read in few queries.

The engine (`domain/burn.py`) never fetches: it takes the usage-period timeline, the grants, and
usage as data. This module gathers the first two for a batch of entitlements (one query for all
their grants, one for all their resets) and answers the engine's usage windows with one meter
query per entitlement, restricted to the customer's subjects and the feature's group-by filters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from allotment.domain.burn import (
    EngineState,
    MeteredTerms,
    UsageMode,
    UsageWindow,
    plan_usage_windows,
    run,
)
from allotment.domain.customers import Customer
from allotment.domain.entitlements import Entitlement
from allotment.domain.features import Feature
from allotment.domain.grants import Grant
from allotment.domain.group_filters import StringFilter
from allotment.domain.meters import Meter
from allotment.errors import PreconditionFailed
from allotment.storage import UnitOfWork
from allotment.storage.rollups import RollupStatus
from allotment.storage.usage_store import UsageRequest

log = logging.getLogger(__name__)


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
    return metered_inputs_of(uow, [(customer, entitlements)])


def metered_inputs_of(
    uow: UnitOfWork, owned: Sequence[tuple[Customer, Sequence[Entitlement]]]
) -> dict[str, MeteredInputs]:
    """Inputs for each metered entitlement in `owned` (each with the customer that holds it),
    by id; the same few queries however many customers there are."""
    metered = [(c, e) for c, entitlements in owned for e in entitlements if e.is_metered]
    if not metered:
        return {}
    ids = [e.id for _c, e in metered]
    grants = uow.grants.for_entitlements(ids)
    resets = uow.entitlements.resets_of(ids)
    features = uow.features.get_many(list({e.feature_id for _c, e in metered}))
    slugs = sorted({f.meter_slug for f in features.values() if f.meter_slug is not None})
    # A deleted meter's events still measure the entitlements it backed.
    meters = uow.meters.for_slugs(slugs)
    result: dict[str, MeteredInputs] = {}
    for customer, entitlement in metered:
        feature = features[entitlement.feature_id]  # archived, never removed
        meter = _meter(meters, entitlement, feature)
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


def _meter(meters: Mapping[str, Meter], entitlement: Entitlement, feature: Feature) -> Meter:
    slug = feature.meter_slug
    if slug is None:
        raise PreconditionFailed(
            f"feature '{feature.key}' of entitlement {entitlement.id} has no meter",
            field="featureKey",
        )
    meter = meters.get(slug)
    if meter is None:
        raise PreconditionFailed(
            f"meter '{slug}' of feature '{feature.key}' no longer exists, so the usage of "
            f"entitlement {entitlement.id} cannot be measured",
            field="featureKey",
        )
    return meter


def usage_request(
    inputs: MeteredInputs, windows: Sequence[UsageWindow], status: RollupStatus | None
) -> UsageRequest:
    """The usage-store request for the windows the engine planned for one entitlement, for
    reads that take many entitlements' usage in one statement (`UsageStore.read`). `status`:
    the meter's ready roll-ups; None reads the raw events."""
    return UsageRequest(
        inputs.meter,
        inputs.subject_keys,
        [(w.start, w.end, w.period_start) for w in windows],
        inputs.group_filters,
        status,
    )


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


def checkpoint_start(
    uow: UnitOfWork, inputs: MeteredInputs, at_most: datetime
) -> EngineState | None:
    """The newest checkpoint of the entitlement at or before `at_most` that a run may start
    from: none is used while usage before it still waits in the deltas (the checkpoint may
    have missed it), and none for a meter whose late events are not tracked (a deleted one)."""
    if not uow.usage_store.tracks_late_usage(inputs.meter):
        return None
    entitlement_id = inputs.entitlement.id
    for at in uow.checkpoints.at_or_before(entitlement_id, at_most):
        if at < inputs.terms.timeline.measure_usage_from:
            return None
        if uow.usage_store.has_pending_usage_before(
            inputs.meter, inputs.subject_keys, inputs.group_filters, at
        ):
            continue
        state = uow.checkpoints.get(entitlement_id, at)
        if state is not None and fits(inputs, state):
            return state
    return None


def fits(inputs: MeteredInputs, state: EngineState) -> bool:
    """Whether `state` agrees with the entitlement's grants and timeline; one that does not is a
    bug somewhere, logged and ignored rather than trusted."""
    try:
        plan_usage_windows(inputs.terms, inputs.grants, state, state.at)
        run(inputs.terms, inputs.grants, state, state.at, lambda _window: Decimal(0))
    except ValueError:
        log.exception("checkpoint of %s at %s does not fit", inputs.entitlement.id, state.at)
        return False
    return True
