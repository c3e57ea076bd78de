"""Plans: create, edit a draft, publish, archive, delete, start the next version, read, list.

A key's versions are rows of their own. `{planId}` accepts an id or a key: a key stands for its
active version, or its newest one when none is active (or when the caller asks for the latest).
Every rate card's feature must be live, and a metered template's feature metered, when a plan
is written and again when it is published.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from allotment.domain.entitlements import EntitlementType
from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.plans import (
    Plan,
    PlanFilter,
    PlanOrderBy,
    PlanStatus,
    PlanTerms,
    check_key,
    check_terms,
    rate_card_field,
)
from allotment.domain.text import is_storable_text
from allotment.errors import Conflict, ErrorList, NotFound
from allotment.ids import is_ulid, new_id
from allotment.services.context import ServiceContext
from allotment.services.entitlements import check_filter_values
from allotment.services.features import find_feature
from allotment.storage import UnitOfWork

PLAN_FIELD = "planId"


def create_plan(context: ServiceContext, key: str, terms: PlanTerms) -> Plan:
    """Version 1 of a new key (or the next number after deleted versions), as a draft. Raises
    Conflict when the key has a live version: `next_plan` makes the next one."""
    check_key(key)
    check_terms(terms)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        uow.plans.lock_key(key)
        if uow.plans.versions_of(key):
            raise Conflict(
                f"plan '{key}' exists; POST /api/v1/plans/{key}/next starts its next version",
                field="key",
            )
        check_features(uow, terms)
        plan = Plan(
            id=new_id(),
            key=key,
            version=uow.plans.highest_version(key) + 1,
            terms=terms,
            created_at=now,
            updated_at=now,
        )
        uow.plans.add(plan)
        uow.commit()
    return plan


def update_plan(context: ServiceContext, id_or_key: str, terms: PlanTerms) -> Plan:
    """Replaces a draft's terms; key, version and currency stay (`terms.currency` is ignored:
    OpenMeter's replace carries none). Conflict unless it is a draft."""
    check_terms(terms)
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        plan = _require_status(uow, id_or_key, now, {PlanStatus.DRAFT}, "edited", latest=True)
        terms = replace(terms, currency=plan.terms.currency)
        check_features(uow, terms)
        uow.plans.replace_terms(plan.id, terms, now)
        uow.commit()
    return replace(plan, terms=terms, updated_at=now)


def publish_plan(context: ServiceContext, id_or_key: str) -> Plan:
    """Makes a draft the key's active version from now; the version active until now ends."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        plan = _require_status(uow, id_or_key, now, {PlanStatus.DRAFT}, "published", latest=True)
        uow.plans.lock_key(plan.key)
        check_features(uow, plan.terms)
        for other in uow.plans.versions_of(plan.key):
            if other.id != plan.id and other.status(now) in (
                PlanStatus.ACTIVE,
                PlanStatus.SCHEDULED,
            ):
                uow.plans.set_effective(other.id, now, start=other.effective_from, end=now)
        uow.plans.set_effective(plan.id, now, start=now, end=None)
        uow.commit()
    return replace(plan, effective_from=now, updated_at=now)


def archive_plan(context: ServiceContext, id_or_key: str) -> Plan:
    """Ends an active version now: no new subscriptions; running ones keep their copy."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        plan = _require_status(
            uow, id_or_key, now, {PlanStatus.ACTIVE, PlanStatus.SCHEDULED}, "archived"
        )
        uow.plans.set_effective(plan.id, now, start=plan.effective_from, end=now)
        uow.commit()
    return replace(plan, effective_to=now, updated_at=now)


def delete_plan(context: ServiceContext, id_or_key: str) -> None:
    """Deletes a draft or an archived version; an active one must be archived first."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        plan = _require_status(
            uow, id_or_key, now, {PlanStatus.DRAFT, PlanStatus.ARCHIVED}, "deleted", latest=True
        )
        uow.plans.delete(plan.id, now)
        uow.commit()


def next_plan(context: ServiceContext, id_or_key: str) -> Plan:
    """A new draft version copying the named version's terms (a key names its newest)."""
    now = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        source = resolve_plan(uow, id_or_key, now, latest=True)
        uow.plans.lock_key(source.key)
        for other in uow.plans.versions_of(source.key):
            if other.status(now) is PlanStatus.DRAFT:
                raise Conflict(
                    f"plan '{source.key}' already has a draft: version {other.version} "
                    f"({other.id})",
                    field=PLAN_FIELD,
                )
        plan = Plan(
            id=new_id(),
            key=source.key,
            version=uow.plans.highest_version(source.key) + 1,
            terms=source.terms,
            created_at=now,
            updated_at=now,
        )
        uow.plans.add(plan)
        uow.commit()
    return plan


def get_plan(context: ServiceContext, id_or_key: str, *, include_latest: bool = False) -> Plan:
    now = context.clock()
    with context.database.unit_of_work() as uow:
        return resolve_plan(uow, id_or_key, now, latest=include_latest)


def list_plans(
    context: ServiceContext,
    filters: PlanFilter,
    *,
    window: Window | None = None,
    order: SortOrder = SortOrder.ASC,
    order_by: PlanOrderBy = PlanOrderBy.CREATED_AT,
) -> ListResult[Plan]:
    now = context.clock()
    check_filter_values(
        ("id", filters.ids), ("key", filters.keys), ("key", list(filters.key_versions))
    )
    with context.database.unit_of_work() as uow:
        return uow.plans.search(filters, now, order_by=order_by, order=order, window=window)


# -- shared with subscriptions ------------------------------------------------------------------


def resolve_plan(
    uow: UnitOfWork,
    id_or_key: str,
    now: datetime,
    *,
    latest: bool = False,
    version: int | None = None,
    field: str = PLAN_FIELD,
) -> Plan:
    """The plan with this id, or a version of this key: `version` if given, else the active
    one (unless `latest`), else the newest. Deleted plans are not found."""
    plan: Plan | None = None
    if is_storable_text(id_or_key):
        if is_ulid(id_or_key):
            plan = uow.plans.get(id_or_key)
        else:
            versions = uow.plans.versions_of(id_or_key)
            if version is not None:
                versions = [p for p in versions if p.version == version]
            active = [p for p in versions if p.status(now) is PlanStatus.ACTIVE]
            chosen = active if active and not latest else versions
            plan = chosen[0] if chosen else None
    if plan is None or plan.deleted_at is not None:
        suffix = "" if version is None else f" version {version}"
        raise NotFound(f"plan not found: {id_or_key}{suffix}", field=field)
    return plan


def check_features(uow: UnitOfWork, terms: PlanTerms, prefix: str = "") -> None:
    """Each rate card's feature is live, and metered when its template is."""
    errors = ErrorList()
    for phase_index, phase in enumerate(terms.phases):
        for card_index, card in enumerate(phase.rate_cards):
            if card.feature_key is None:
                continue
            where = f"{prefix}{rate_card_field(phase_index, card_index)}.featureKey"
            feature = find_feature(uow, card.feature_key)
            if feature is None:
                errors.add(where, f"feature not found: {card.feature_key}", code="not_found")
                continue
            template = card.entitlement_template
            if (
                template is not None
                and template.type is EntitlementType.METERED
                and not feature.is_metered
            ):
                errors.add(
                    where,
                    f"feature '{feature.key}' has no meter, so it cannot back a metered "
                    "entitlement",
                )
    errors.raise_if_any("invalid plan")


def _require_status(
    uow: UnitOfWork,
    id_or_key: str,
    now: datetime,
    allowed: set[PlanStatus],
    action: str,
    *,
    latest: bool = False,
) -> Plan:
    plan = resolve_plan(uow, id_or_key, now, latest=latest)
    status = plan.status(now)
    if status not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise Conflict(
            f"plan {plan.id} is {status.value}; only a {wanted} plan can be {action}",
            field=PLAN_FIELD,
        )
    return plan
