"""Storage for balance checkpoints: saved engine states of metered entitlements.

A checkpoint row is immutable; it is only ever deleted, by the writes that make it wrong
(domain/snapshots.py `invalid_from`): grants, voids, resets and attribution changes in their
own transactions, late usage when maintenance folds it into the roll-ups. Until then a read
also refuses a checkpoint when usage before it is still waiting in `usage_deltas`
(`has_pending_usage_before`), so a checkpoint is never used while something it missed exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from allotment.domain.burn import EngineState
from allotment.storage.repositories.base import Repository
from allotment.storage.types import from_micros, to_micros


def state_to_text(state: EngineState) -> str:
    """The stored form of a state; canonical (keys sorted), so equal states have equal texts:
    a read recognises the very checkpoint it loaded by its instant and its text."""
    return orjson.dumps(
        {
            "grant_balances": {k: str(v) for k, v in state.grant_balances.items()},
            "overage": str(state.overage),
            "period_usage": str(state.period_usage),
            "period_grant_usage": str(state.period_grant_usage),
            "period_start": to_micros(state.period_start),
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def state_of_text(at: datetime, text: str) -> EngineState:
    fields: dict[str, Any] = orjson.loads(text)
    return EngineState(
        at=at,
        grant_balances={k: Decimal(v) for k, v in fields["grant_balances"].items()},
        overage=Decimal(fields["overage"]),
        period_usage=Decimal(fields["period_usage"]),
        period_grant_usage=Decimal(fields["period_grant_usage"]),
        period_start=from_micros(int(fields["period_start"])),
    )


class CheckpointRepository(Repository):
    def _mark(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def save(self, entitlement_id: str, state: EngineState, created_at: datetime) -> None:
        mark = self._mark()
        self.connection.exec_driver_sql(
            "INSERT INTO balance_checkpoints (entitlement_id, at, state, created_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT DO NOTHING",
            (entitlement_id, to_micros(state.at), state_to_text(state), to_micros(created_at)),
        )

    def newest(self, entitlement_id: str, at_most: datetime) -> EngineState | None:
        """The latest checkpoint at or before `at_most`."""
        mark = self._mark()
        row = self.connection.exec_driver_sql(
            "SELECT at, state FROM balance_checkpoints WHERE entitlement_id = "
            f"{mark} AND at <= {mark} ORDER BY at DESC LIMIT 1",
            (entitlement_id, to_micros(at_most)),
        ).first()
        return None if row is None else state_of_text(from_micros(int(row[0])), row[1])

    def newest_of(self, entitlement_ids: Sequence[str]) -> dict[str, EngineState]:
        """The latest checkpoint of each entitlement, in one query."""
        if not entitlement_ids:
            return {}
        marks = ", ".join([self._mark()] * len(entitlement_ids))
        rows = self.connection.exec_driver_sql(
            "SELECT c.entitlement_id, c.at, c.state FROM balance_checkpoints AS c JOIN ("
            "SELECT entitlement_id, max(at) AS at FROM balance_checkpoints "
            f"WHERE entitlement_id IN ({marks}) GROUP BY entitlement_id) AS newest "
            "ON newest.entitlement_id = c.entitlement_id AND newest.at = c.at",
            tuple(entitlement_ids),
        )
        return {row[0]: state_of_text(from_micros(int(row[1])), row[2]) for row in rows}

    def at_or_before(self, entitlement_id: str, at_most: datetime) -> list[datetime]:
        """The instants of every checkpoint at or before `at_most`, newest first."""
        mark = self._mark()
        rows = self.connection.exec_driver_sql(
            "SELECT at FROM balance_checkpoints WHERE entitlement_id = "
            f"{mark} AND at <= {mark} ORDER BY at DESC",
            (entitlement_id, to_micros(at_most)),
        )
        return [from_micros(int(at)) for (at,) in rows]

    def get(self, entitlement_id: str, at: datetime) -> EngineState | None:
        mark = self._mark()
        row = self.connection.exec_driver_sql(
            f"SELECT state FROM balance_checkpoints WHERE entitlement_id = {mark} AND at = {mark}",
            (entitlement_id, to_micros(at)),
        ).first()
        return None if row is None else state_of_text(at, row[0])

    def delete_from(self, entitlement_id: str, first_invalid: datetime) -> None:
        """Drop every checkpoint at or after `first_invalid` (`snapshots.invalid_from`)."""
        mark = self._mark()
        self.connection.exec_driver_sql(
            f"DELETE FROM balance_checkpoints WHERE entitlement_id = {mark} AND at >= {mark}",
            (entitlement_id, to_micros(first_invalid)),
        )

    def delete_for_customer(self, customer_id: str) -> None:
        """Drop every checkpoint of the customer's entitlements (its usage attribution
        changed, so every past balance may differ)."""
        mark = self._mark()
        self.connection.exec_driver_sql(
            "DELETE FROM balance_checkpoints WHERE entitlement_id IN "
            f"(SELECT id FROM entitlements WHERE customer_id = {mark})",
            (customer_id,),
        )

    def delete_for_late_usage(self, changes: Sequence[tuple[int, int]]) -> None:
        """Late usage reached the roll-ups: for each `(series_id, minute)`, drop the
        checkpoints after that minute of every entitlement the series' usage may count for
        (the feature reads the series' meter and the customer owns its subject; a wider set
        than needed only costs a recomputation).

        Set-based, a handful of statements whatever the number of series: a batch of events
        spread over the past touches a thousand series at once."""
        if not changes:
            return
        mark = self._mark()
        earliest = min(minute for _series, minute in changes)
        # Nothing saved after the earliest change: nothing to drop (the common case).
        if (
            self.connection.exec_driver_sql(
                f"SELECT 1 FROM balance_checkpoints WHERE at > {mark} LIMIT 1", (earliest,)
            ).first()
            is None
        ):
            return
        by_series = dict(changes)
        series: dict[int, tuple[str, str]] = {}  # id -> (meter slug, subject)
        ids = sorted(by_series)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join([mark] * len(chunk))
            for series_id, slug, subject in self.connection.exec_driver_sql(
                "SELECT s.id, m.slug, s.subject FROM usage_series AS s "
                f"JOIN meters AS m ON m.id = s.meter_id WHERE s.id IN ({marks})",
                tuple(chunk),
            ):
                series[int(series_id)] = (slug, subject)
        # (customer, meter slug) -> the earliest late minute of its subjects' series.
        subjects = sorted({subject for _slug, subject in series.values()})
        owners: dict[str, set[str]] = {}
        for start in range(0, len(subjects), 500):
            names = subjects[start : start + 500]
            marks = ", ".join([mark] * len(names))
            for subject, customer_id in self.connection.exec_driver_sql(
                f"SELECT key, id FROM customers WHERE key IN ({marks}) "
                "UNION SELECT subject_key, customer_id FROM customer_subjects "
                f"WHERE subject_key IN ({marks})",
                tuple(names) * 2,
            ):
                owners.setdefault(subject, set()).add(customer_id)
        late: dict[tuple[str, str], int] = {}
        for series_id, (slug, subject) in series.items():
            for customer_id in owners.get(subject, ()):
                key = (customer_id, slug)
                late[key] = min(late.get(key, by_series[series_id]), by_series[series_id])
        if not late:
            return
        customer_ids = sorted({customer for customer, _slug in late})
        doomed: list[tuple[str, int]] = []
        for start in range(0, len(customer_ids), 500):
            owned_by = customer_ids[start : start + 500]
            marks = ", ".join([mark] * len(owned_by))
            for entitlement_id, customer_id, slug in self.connection.exec_driver_sql(
                "SELECT e.id, e.customer_id, f.meter_slug FROM entitlements AS e "
                "JOIN features AS f ON f.id = e.feature_id "
                f"WHERE e.customer_id IN ({marks}) AND EXISTS (SELECT 1 FROM "
                "balance_checkpoints AS c WHERE c.entitlement_id = e.id)",
                tuple(owned_by),
            ):
                minute = late.get((customer_id, slug))
                if minute is not None:
                    doomed.append((entitlement_id, minute))
        if doomed:
            self.connection.exec_driver_sql(
                f"DELETE FROM balance_checkpoints WHERE entitlement_id = {mark} AND at > {mark}",
                doomed,
            )
