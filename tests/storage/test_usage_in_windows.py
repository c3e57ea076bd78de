"""`uow.usage.usage_in_windows`: the credit engine's one-round-trip usage read, both databases."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import event as sqlalchemy_event

from allotment.domain.group_filters import parse_filter
from allotment.domain.meters import Aggregation, Meter
from allotment.domain.time import utc
from allotment.errors import InvalidInput
from allotment.storage import Database
from tests.factories import event, meter, store_events

PERIOD = utc(2024, 1, 1)
# Three segments of one period, and a later period.
WINDOWS = [
    (utc(2024, 1, 1), utc(2024, 1, 10), PERIOD),
    (utc(2024, 1, 10), utc(2024, 1, 20), PERIOD),
    (utc(2024, 1, 20), utc(2024, 2, 1), PERIOD),
    (utc(2024, 2, 1), utc(2024, 3, 1), utc(2024, 2, 1)),
]


@pytest.fixture
def usage(database: Database) -> Database:
    """acme's prompts: Jan 2 (100, alice), Jan 5 (50, bob), Jan 12 (25, alice),
    Jan 12 ("7.5" as text, carol), Jan 25 ("n/a", bob: no number), Feb 3 (10, alice);
    plus another subject and another event type that never count for acme."""
    store_events(
        database,
        [
            event("1", utc(2024, 1, 2), {"tokens": 100, "user": "alice", "model": "gpt-4"}),
            event("2", utc(2024, 1, 5), {"tokens": 50, "user": "bob", "model": "gpt-4"}),
            event("3", utc(2024, 1, 12), {"tokens": 25, "user": "alice", "model": "mini"}),
            event("4", utc(2024, 1, 12, 1), {"tokens": "7.5", "user": "carol", "model": "gpt-4"}),
            event("5", utc(2024, 1, 25), {"tokens": "n/a", "user": "bob", "model": "gpt-4"}),
            event("6", utc(2024, 2, 3), {"tokens": 10, "user": "alice", "model": "gpt-4"}),
            event("7", utc(2024, 1, 3), {"tokens": 1000, "user": "zed"}, subject="other"),
            event("8", utc(2024, 1, 3), {"tokens": 1000, "user": "zed"}, type="upload"),
        ],
    )
    return database


def read(
    database: Database,
    definition: Meter,
    subjects: list[str] | None = None,
    group_filters: dict[str, str] | None = None,
    windows: list[tuple[datetime, datetime, datetime]] | None = None,
) -> list[Decimal]:
    with database.unit_of_work() as uow:
        return uow.usage.usage_in_windows(
            definition,
            ["acme"] if subjects is None else subjects,
            group_filters or {},
            WINDOWS if windows is None else windows,
        )


def test_sum_per_window_with_zero_for_empty_windows(usage: Database) -> None:
    assert read(usage, meter()) == [Decimal(150), Decimal("32.5"), Decimal(0), Decimal(10)]


def test_count_counts_every_event_of_the_type(usage: Database) -> None:
    assert read(usage, meter(Aggregation.COUNT)) == [2, 2, 1, 1]


def test_subjects_and_group_filters(usage: Database) -> None:
    both = read(usage, meter(), subjects=["acme", "other"])
    assert both == [Decimal(1150), Decimal("32.5"), Decimal(0), Decimal(10)]
    model_meter = meter(group_by={"model": "$.model"})
    assert read(usage, model_meter, group_filters={"model": "gpt-4"}) == [
        Decimal(150),
        Decimal("7.5"),
        Decimal(0),
        Decimal(10),
    ]
    assert read(usage, model_meter, subjects=[]) == [0, 0, 0, 0]
    with usage.unit_of_work() as uow:
        not_gpt = uow.usage.usage_in_windows(
            model_meter,
            ["acme"],
            {},
            WINDOWS,
            advanced_filters={"model": parse_filter({"$nlike": "gpt%"}, "model")},
        )
    assert not_gpt == [Decimal(0), Decimal(25), Decimal(0), Decimal(0)]


def test_unique_count_counts_a_value_once_per_period(usage: Database) -> None:
    users = meter(Aggregation.UNIQUE_COUNT, value_property="$.user")
    # Jan 1-10: alice, bob. Jan 10-20: alice again (seen) and carol (new). Jan 20-: bob (seen).
    # February is a new period: alice counts again.
    assert read(usage, users) == [2, 1, 0, 1]


def test_latest_is_the_latest_value_in_each_window(usage: Database) -> None:
    assert read(usage, meter(Aggregation.LATEST)) == [
        Decimal(50),
        Decimal("7.5"),
        Decimal(0),
        Decimal(10),
    ]


def test_averages_and_extremes_do_not_fail(usage: Database) -> None:
    assert read(usage, meter(Aggregation.AVG))[:2] == [Decimal(75), Decimal("16.25")]
    assert read(usage, meter(Aggregation.MIN))[:2] == [Decimal(50), Decimal("7.5")]
    assert read(usage, meter(Aggregation.MAX))[:2] == [Decimal(100), Decimal(25)]


def test_event_from_hides_earlier_events(usage: Database) -> None:
    late = meter(event_from=utc(2024, 1, 4))
    assert read(usage, late) == [Decimal(50), Decimal("32.5"), Decimal(0), Decimal(10)]


def test_unknown_group_filter_is_an_error(usage: Database) -> None:
    with pytest.raises(InvalidInput, match="no group-by key 'colour'") as raised:
        read(usage, meter(), group_filters={"colour": "red"})
    assert raised.value.field == "meterGroupByFilters"


def test_many_windows_take_one_statement(usage: Database) -> None:
    windows = [(utc(2024, 1, 1, h), utc(2024, 1, 1, h + 1), PERIOD) for h in range(23)]
    windows += [(utc(2024, 1, d), utc(2024, 1, d + 1), PERIOD) for d in range(2, 31)]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sqlalchemy_event.listen(usage.engine, "before_cursor_execute", count)
    try:
        values = read(
            usage, meter(Aggregation.UNIQUE_COUNT, value_property="$.user"), windows=windows
        )
    finally:
        sqlalchemy_event.remove(usage.engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 1
    assert sum(values) == 3  # alice, bob, carol in January
    assert values[23] == 1 and values[24] == 0  # Jan 2: alice; Jan 3: nothing
