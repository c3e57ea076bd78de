"""Entitlements: create, override, delete, read and list, for customers and subjects alike.

One active entitlement per customer and feature key: a second create is a Conflict naming the
existing one (the database's partial unique index decides under concurrency). Deleting ends an
entitlement and its grants at one instant and keeps the rows, so reads of earlier times still see
it. Override ends the live one and starts a fresh one (no grants carried, usage measured from
now) in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from allotment.domain.customers import Customer
from allotment.domain.entitlement_requests import (
    EntitlementRequest,
    MeasureUsageFromPreset,
    check_request,
    default_grant,
    new_entitlement,
)
from allotment.domain.entitlements import (
    Entitlement,
    EntitlementFilter,
    EntitlementOrderBy,
    GrantRecord,
    OwnerKeys,
    already_entitled,
)
from allotment.domain.features import Feature
from allotment.domain.grant_requests import GrantDefaults, new_grant, with_prefix
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.periods import Period
from allotment.domain.snapshots import Change, invalid_from
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_text
from allotment.domain.usage_periods import ManualReset
from allotment.errors import ErrorList, InvalidInput, NotFound
from allotment.ids import is_ulid, new_id
from allotment.services import idempotency
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import (
    ENTITLEMENT_FIELD,
    Owner,
    find_owner,
    lock_entitlement,
    owner_keys,
    provision_owner,
    require_live,
    require_owner,
    resolve_entitlement,
)
from allotment.services.features import find_feature
from allotment.services.notification_queue import note_change
from allotment.storage import UnitOfWork


@dataclass(frozen=True)
class EntitlementView:
    """An entitlement as responses show it, with what is computed at read time."""

    entitlement: Entitlement
    owner: OwnerKeys
    current_usage_period: Period | None
    last_reset: datetime | None


def create_entitlement(
    context: ServiceContext, owner: Owner, request: EntitlementRequest
) -> EntitlementView:
    """Creates the entitlement, with its `issueAfterReset` grant or its v2 `grants`.

    A subject owner without a customer gets one created on the fly. Raises InvalidInput for a
    request that breaks a rule, NotFound for an unknown or archived feature, Conflict when the
    customer already has a live entitlement for the feature.
    """
    check_request(request)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        customer = provision_owner(uow, owner, now)
        entitlement = add_entitlement(uow, customer, request, now)
        noted = entitlement.is_metered and note_change(uow, now, entitlement_ids=[entitlement.id])
        uow.commit()
    if noted:
        context.caches.wake_maintenance()
    return view_with_resets(entitlement, owner_keys(customer), [], now)


def add_entitlement(
    uow: UnitOfWork,
    customer: Customer,
    request: EntitlementRequest,
    now: datetime,
    *,
    active_from: datetime | None = None,
    active_to: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Entitlement:
    """The create rules and writes inside the caller's unit (entitlement creates and
    subscriptions share them); the caller has run `check_request`. Active on
    `[active_from, active_to)` (default: from now, no end). Raises NotFound for an unknown or
    archived feature, Conflict when another live entitlement for the feature meets the window.
    """
    feature = _requested_feature(uow, request)
    entitlement = new_entitlement(
        request,
        feature,
        entitlement_id=new_id(),
        customer_id=customer.id,
        now=now,
        active_from=active_from,
        active_to=active_to,
    )
    if annotations:
        entitlement = replace(entitlement, annotations=dict(annotations))
    existing = uow.entitlements.overlapping(
        customer.id, feature.key, entitlement.active_from, entitlement.active_to
    )
    if existing is not None:
        raise already_entitled(feature.key, existing.id)
    grants = _initial_grants(entitlement, request, now)
    uow.entitlements.add(entitlement)
    for grant in grants:
        uow.grants.add(grant)
    return entitlement


def override_entitlement(
    context: ServiceContext,
    owner: Owner,
    id_or_feature_key: str,
    request: EntitlementRequest,
    idempotency_claim: idempotency.IdempotencyClaim[EntitlementView] | None = None,
) -> EntitlementView:
    """Ends the live entitlement and starts a new one for the same feature, atomically.

    The new one starts fresh: no grants are carried over and usage is measured from now unless
    the request says otherwise. Raises NotFound when there is no such entitlement, InvalidInput
    when it is deleted, the feature differs, or it started at this very instant.
    """
    check_request(request)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        idempotency.check(uow, idempotency_claim, now)
        customer = require_owner(uow, owner)
        old = lock_entitlement(uow, resolve_entitlement(uow, customer, id_or_feature_key, now=now))
        require_live(old, "only a live entitlement can be overridden")
        feature = _requested_feature(uow, request)
        if feature.key != old.feature_key:
            raise InvalidInput(
                f"an override keeps the feature: entitlement {old.id} is for "
                f"'{old.feature_key}', the request names '{feature.key}'",
                field=request.feature_field,
            )
        if now <= old.active_from:
            raise InvalidInput(
                f"entitlement {old.id} became active at {old.active_from.isoformat()}; an "
                "override must start after it",
                field=ENTITLEMENT_FIELD,
            )
        entitlement = new_entitlement(
            request,
            feature,
            entitlement_id=new_id(),
            customer_id=customer.id,
            now=now,
            measure_usage_default=MeasureUsageFromPreset.NOW,
        )
        grants = _initial_grants(entitlement, request, now)
        uow.entitlements.end(old.id, now)
        uow.grants.delete_for_entitlement(old.id, now)
        uow.checkpoints.delete_from(old.id, invalid_from(Change.GRANT_VOIDED, now))
        uow.entitlements.add(entitlement)
        for grant in grants:
            uow.grants.add(grant)
        view = view_with_resets(entitlement, owner_keys(customer), [], now)
        idempotency.remember(uow, idempotency_claim, view, now)
        noted = entitlement.is_metered and note_change(uow, now, entitlement_ids=[entitlement.id])
        uow.commit()
    if noted:
        context.caches.wake_maintenance()
    return view


def delete_entitlement(context: ServiceContext, owner: Owner, id_or_feature_key: str) -> None:
    """Ends the entitlement now and voids its grants at the same instant; the rows stay."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        customer = require_owner(uow, owner)
        entitlement = lock_entitlement(
            uow, resolve_entitlement(uow, customer, id_or_feature_key, now=now)
        )
        if entitlement.deleted_at is not None:
            raise NotFound(
                f"entitlement {entitlement.id} is already deleted", field=ENTITLEMENT_FIELD
            )
        uow.entitlements.end(entitlement.id, now)
        uow.grants.delete_for_entitlement(entitlement.id, now)
        uow.checkpoints.delete_from(entitlement.id, invalid_from(Change.GRANT_VOIDED, now))
        uow.commit()


def get_entitlement(
    context: ServiceContext, owner: Owner, id_or_feature_key: str
) -> EntitlementView:
    """By id (deleted ones too), or the live one for a feature key."""
    now = context.clock()
    with context.database.unit_of_work() as uow:
        customer = require_owner(uow, owner)
        entitlement = resolve_entitlement(uow, customer, id_or_feature_key)
        return _views(uow, [entitlement], now, owner=customer)[0]


def get_entitlement_by_id(context: ServiceContext, entitlement_id: str) -> EntitlementView:
    """Any customer's entitlement by id, deleted ones too."""
    now = context.clock()
    with context.database.unit_of_work() as uow:
        entitlement = None
        if is_storable_text(entitlement_id) and is_ulid(entitlement_id):
            entitlement = uow.entitlements.get(entitlement_id)
        if entitlement is None:
            raise NotFound(f"entitlement not found: {entitlement_id}", field="entitlementId")
        return _views(uow, [entitlement], now)[0]


def list_owner_entitlements(
    context: ServiceContext,
    owner: Owner,
    *,
    include_deleted: bool = False,
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: EntitlementOrderBy = EntitlementOrderBy.CREATED_AT,
) -> ListResult[EntitlementView]:
    """One owner's entitlements; a subject that belongs to no customer has none."""
    now = context.clock()
    with context.database.unit_of_work() as uow:
        customer = find_owner(uow, owner)
        if customer is None:
            return ListResult(items=[], total_count=0)
        filters = EntitlementFilter(customer_ids=[customer.id], include_deleted=include_deleted)
        items, total = uow.entitlements.search(
            filters, order_by=order_by, order=order, window=window
        )
        return ListResult(items=_views(uow, items, now, owner=customer), total_count=total)


def list_entitlements(
    context: ServiceContext,
    filters: EntitlementFilter,
    *,
    exclude_inactive: bool = False,
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: EntitlementOrderBy = EntitlementOrderBy.CREATED_AT,
) -> ListResult[EntitlementView]:
    """Every customer's entitlements matching `filters` (deleted ones only when asked);
    `exclude_inactive` drops those not active now."""
    now = context.clock()
    check_filter_values(
        ("feature", filters.features),
        ("subject", filters.subject_keys),
        ("customerKeys", filters.customer_keys),
        ("customerIds", filters.customer_ids),
    )
    if exclude_inactive:
        filters = replace(filters, active_at=now)
    with context.database.unit_of_work() as uow:
        items, total = uow.entitlements.search(
            filters, order_by=order_by, order=order, window=window
        )
        return ListResult(items=_views(uow, items, now), total_count=total)


# -- helpers ----------------------------------------------------------------------------------


def check_filter_values(*filters: tuple[str, Sequence[str]]) -> None:
    """List filters are compared in SQL: a value no database can hold is a 400 naming it."""
    errors = ErrorList()
    for field, values in filters:
        if not all(is_storable_text(value) for value in values):
            errors.add(field, UNSTORABLE_TEXT)
    errors.raise_if_any("invalid filter")


def _requested_feature(uow: UnitOfWork, request: EntitlementRequest) -> Feature:
    """The live feature the request names (the id wins over the key), or NotFound."""
    wanted = request.feature_id if request.feature_id is not None else request.feature_key
    assert wanted is not None  # check_request requires one of them
    feature = find_feature(uow, wanted, include_archived=True)
    if feature is None or feature.is_archived:
        state = "archived" if feature is not None else "not found"
        raise NotFound(f"feature {state}: {wanted}", field=request.feature_field)
    return feature


def _initial_grants(
    entitlement: Entitlement, request: EntitlementRequest, now: datetime
) -> list[GrantRecord]:
    """The `issueAfterReset` grant, or the v2 `grants` made with the entitlement."""
    issued = default_grant(entitlement, grant_id=new_id(), now=now)
    if issued is not None:
        return [issued]
    if not request.grants or not entitlement.is_metered:
        return []
    period_start = entitlement.timeline(()).current_period_at(now).start
    grants = []
    for index, grant_request in enumerate(request.grants):
        try:
            grants.append(
                new_grant(
                    grant_request,
                    grant_id=new_id(),
                    entitlement_id=entitlement.id,
                    current_period_start=period_start,
                    now=now,
                    defaults=GrantDefaults.V2,
                )
            )
        except InvalidInput as error:
            raise with_prefix(error, f"grants.{index}.") from error
    return grants


def views_of(
    uow: UnitOfWork,
    entitlements: Sequence[Entitlement],
    now: datetime,
    *,
    owner: Customer | None = None,
) -> list[EntitlementView]:
    """Views of entitlements inside the caller's unit (subscriptions show their items')."""
    return _views(uow, entitlements, now, owner=owner)


def _views(
    uow: UnitOfWork,
    entitlements: Sequence[Entitlement],
    now: datetime,
    *,
    owner: Customer | None = None,
) -> list[EntitlementView]:
    """Views of several entitlements with one query for resets and one for their owners, or
    none for owners when the caller already holds the one `owner` they all belong to."""
    resets = uow.entitlements.resets_of([e.id for e in entitlements if e.is_metered])
    owners = (
        {owner.id: owner_keys(owner)}
        if owner is not None
        else uow.entitlements.owner_keys([e.customer_id for e in entitlements])
    )
    return [
        view_with_resets(e, owners[e.customer_id], resets.get(e.id, []), now) for e in entitlements
    ]


def view_of_entitlement(
    uow: UnitOfWork, entitlement: Entitlement, owner: Customer, now: datetime
) -> EntitlementView:
    """The entitlement as responses show it at `now` (its period from its resets)."""
    resets = uow.entitlements.resets(entitlement.id) if entitlement.is_metered else []
    return view_with_resets(entitlement, owner_keys(owner), resets, now)


def view_with_resets(
    entitlement: Entitlement, owner: OwnerKeys, resets: Sequence[ManualReset], now: datetime
) -> EntitlementView:
    if entitlement.is_metered:
        timeline = entitlement.timeline(resets)
        return EntitlementView(
            entitlement, owner, timeline.current_period_at(now), timeline.last_reset
        )
    period = None
    recurrence = entitlement.usage_period
    if recurrence is not None:
        # Boolean and static periods are only shown; they run from the anchor on.
        period = recurrence.period_containing(max(now, recurrence.anchor))
    return EntitlementView(entitlement, owner, period, None)
