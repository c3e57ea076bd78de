"""Usage of a meter for the credit engine: many windows, one round trip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from allotment.domain.group_filters import StringFilter
from allotment.domain.meters import Aggregation, Meter
from allotment.errors import InvalidInput
from allotment.storage.meter_sql import EventScope, for_dialect, to_decimal, usage_in_ranges
from allotment.storage.repositories.base import Repository

UsageWindow = tuple[datetime, datetime, datetime]
"""`(start, end, period_start)`: usage over `[start, end)` inside the period from `period_start`."""


class UsageRepository(Repository):
    def usage_in_windows(
        self,
        meter: Meter,
        subjects: Sequence[str],
        group_filters: Mapping[str, str],
        windows: Sequence[UsageWindow],
        advanced_filters: Mapping[str, StringFilter] | None = None,
    ) -> list[Decimal]:
        """The meter's usage in each window, for events of `subjects` whose group-by values
        equal `group_filters`, in one query. Events before the meter's `event_from` never count.

        - SUM, COUNT (and AVG, MIN, MAX, which features do not allow): the aggregate over
          `[start, end)`, 0 when the window holds no countable event.
        - UNIQUE_COUNT: values first seen in the window, within its period:
          `unique(period_start, end) - unique(period_start, start)`, so a value already seen
          earlier in the period is not counted again.
        - LATEST: the latest value in the window, 0 when there is none.
        """
        if not windows:
            return []
        unknown = sorted((set(group_filters) | set(advanced_filters or {})) - set(meter.group_by))
        if unknown:
            raise InvalidInput(
                f"meter {meter.slug} has no group-by key {', '.join(map(repr, unknown))}",
                field="meterGroupByFilters",
            )
        if not subjects:
            return [Decimal(0)] * len(windows)
        ranges: list[tuple[datetime, datetime]] = []
        for start, end, period_start in windows:
            if meter.aggregation is Aggregation.UNIQUE_COUNT:
                ranges.append((period_start, end))
                ranges.append((period_start, start))
            else:
                ranges.append((start, end))
        scope = EventScope(
            subjects=list(dict.fromkeys(subjects)),
            group_filters={key: [value] for key, value in group_filters.items()},
            advanced_filters=advanced_filters,
        )
        statement = usage_in_ranges(meter, for_dialect(self.dialect), scope, ranges)
        found = {
            int(index): to_decimal(value)
            for index, value in self.connection.execute(statement)
            if value is not None
        }
        zero = Decimal(0)
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            return [
                found.get(2 * i, zero) - found.get(2 * i + 1, zero) for i in range(len(windows))
            ]
        return [found.get(i, zero) for i in range(len(windows))]
