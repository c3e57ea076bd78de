"""Balance history of a metered entitlement: usage and balance per window, and the burn-down
segments behind them, computed from the same engine run as the value."""

from __future__ import annotations

from datetime import datetime

from allotment.domain.history import History, build_history, history_query, plan_history
from allotment.domain.instants import checked_instant
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import (
    Owner,
    require_metered,
    require_owner,
    resolve_entitlement,
)
from allotment.services.metered_inputs import metered_inputs, usage_in


def entitlement_history(
    context: ServiceContext,
    owner: Owner,
    id_or_feature_key: str,
    *,
    window_size: str,
    start: datetime | None = None,
    end: datetime | None = None,
    time_zone: str = "UTC",
) -> History:
    """History over `[start, end)` (default: last reset to now) in `window_size` windows
    aligned in `time_zone`.

    Raises InvalidInput for a non-metered entitlement, a start before measurement start, an end
    not after the start, an unknown window size or time zone, or too many windows.
    """
    now = context.clock()
    start = None if start is None else checked_instant(start, "from")
    end = None if end is None else checked_instant(end, "to")
    with context.database.unit_of_work() as uow:
        customer = require_owner(uow, owner)
        entitlement = resolve_entitlement(uow, customer, id_or_feature_key)
        require_metered(entitlement, "have a balance history")
        assert entitlement.measure_usage_from is not None  # every metered entitlement has one
        inputs = metered_inputs(uow, customer, [entitlement])[entitlement.id]
        query = history_query(
            start or inputs.terms.timeline.last_reset,
            end or now,
            window_size,
            time_zone,
            entitlement.measure_usage_from,
        )
        windows = plan_history(inputs.terms, inputs.grants, query)
        return build_history(inputs.terms, inputs.grants, query, usage_in(uow, inputs, windows))
