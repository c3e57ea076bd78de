"""The migrations build exactly the schema `storage/tables.py` declares, on both databases."""

from __future__ import annotations

from allotment.storage import Database
from allotment.storage.migrations import check


def test_migrated_schema_matches_the_tables_in_code(database: Database) -> None:
    # Raises (naming every difference) when a table change has no migration, or the reverse.
    check(database.url)
