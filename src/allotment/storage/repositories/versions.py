"""Version stamps of definitions, which in-process caches compare against (`catalog_versions`).

- "meters": every meter write. Ingest holds this row FOR SHARE (PostgreSQL) for its whole
  transaction, so a meter write, which updates it first, waits for ingests in flight and holds
  new ones back until it commits (storage/rollups.py explains why roll-ups need that).
- "catalog": features, customers and their subjects, meters: what resolving an owner and a
  feature key depends on.

Per-customer changes (entitlements, grants, resets) bump `customers.revision` instead
(CustomerRepository.bump_revision), so a top-up for one customer reloads no other's cache.
"""

from __future__ import annotations

from allotment.storage.repositories.base import DefinitionChanges, Repository

METERS = "meters"
CATALOG = "catalog"


class VersionRepository(Repository):
    def _mark(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def hold_meters_for_ingest(self) -> int:
        """The meters version, held FOR SHARE until commit on PostgreSQL (module docstring)."""
        lock = "" if self.dialect == "sqlite" else " FOR SHARE"
        row = self.connection.exec_driver_sql(
            f"SELECT version FROM catalog_versions WHERE name = 'meters'{lock}"
        ).first()
        return int(row[0]) if row is not None else 0

    def hold_meters_for_change(self) -> None:
        """Take the meters version row FOR UPDATE without changing it (PostgreSQL): ingests in
        flight finish first and new ones wait until this transaction ends."""
        if self.dialect != "sqlite":
            self.connection.exec_driver_sql(
                "SELECT version FROM catalog_versions WHERE name = 'meters' FOR UPDATE"
            )

    def bump(self, name: str) -> None:
        """A definition changed: caches keyed on this version reload."""
        mark = self._mark()
        self.connection.exec_driver_sql(
            f"INSERT INTO catalog_versions AS v (name, version) VALUES ({mark}, 1) "
            "ON CONFLICT (name) DO UPDATE SET version = v.version + 1",
            (name,),
        )

    def publish(self, changes: DefinitionChanges) -> set[str]:
        """Bump the stamps of a transaction's definition changes, once each; returns the ids
        of the customers whose revision moved."""
        if changes.catalog:
            self.bump(CATALOG)
        mark = self._mark()
        changed: set[str] = set()
        for customer_id in sorted(changes.customer_ids):
            self.connection.exec_driver_sql(
                f"UPDATE customers SET revision = revision + 1 WHERE id = {mark}", (customer_id,)
            )
            changed.add(customer_id)
        for entitlement_id in sorted(changes.entitlement_ids):
            owner = self.connection.exec_driver_sql(
                "UPDATE customers SET revision = revision + 1 WHERE id = "
                f"(SELECT customer_id FROM entitlements WHERE id = {mark}) RETURNING id",
                (entitlement_id,),
            ).first()
            if owner is not None:
                changed.add(str(owner[0]))
        return changed

    def get(self, name: str) -> int:
        row = self.connection.exec_driver_sql(
            f"SELECT version FROM catalog_versions WHERE name = {self._mark()}", (name,)
        ).first()
        return int(row[0]) if row is not None else 0
