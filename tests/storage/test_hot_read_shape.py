"""The check-access statement of a customer with many checkpointed features stays small and
seeks the roll-ups by their key (a customer with 100 such features once took 17 s to read)."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from allotment.storage import hot_read
from allotment.storage.hot_read import ReadShape
from tests.factories import meter


def _shape(entitlements: int) -> ReadShape:
    meters = [meter(slug=f"m{n}") for n in range(entitlements)]
    return ReadShape.of(
        customer_id="c1",
        checkpoint_checks=entitlements,
        newer_checks=0,
        scopes=[(m, 1, None) for m in meters],
    )


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()])
def test_the_statement_grows_linearly_with_the_entitlements(dialect: object) -> None:
    small = hot_read.prepared(dialect, _shape(10)).sql  # type: ignore[arg-type]
    large = hot_read.prepared(dialect, _shape(40)).sql  # type: ignore[arg-type]
    # Four times the entitlements, about four times the text (it was sixteen: every
    # entitlement's checkpoint check held every entitlement's series).
    assert len(large) < 5 * len(small)
    # The series table is read once for all of them, and the map of each entitlement's series
    # is referenced a fixed number of times (SQLite generates a common table's code once per
    # reference: one per entitlement took most of a second to prepare at 100 features).
    assert large.count("FROM usage_series") == small.count("FROM usage_series") == 1
    assert large.count("series_map") == small.count("series_map")


def test_sqlite_walks_pieces_then_series_then_the_rollups_key() -> None:
    sql = hot_read.prepared(sqlite.dialect(), _shape(3)).sql  # type: ignore[arg-type]
    assert "CROSS JOIN usage_rollups ON" in sql
    assert "CROSS JOIN usage_deltas ON" in sql
