"""Roll-ups answer exactly what the raw events answer, on both databases.

Random histories of event batches (duplicates, late and out-of-order events, decimal, negative,
invalid and out-of-domain values, group-by values present and missing) against meters of every
aggregation, some created before their events and some after (backfill), with compaction and
backfill steps at random points in between. Then every meter query and every entitlement usage
read through the usage store is compared with the same read computed from the raw events
(`MeterRepository.aggregate`, `UsageRepository.usage_in_windows`, the pre-roll-up code paths).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allotment.domain.events import Event
from allotment.domain.meters import (
    Aggregation,
    Grouping,
    Meter,
    MeterBucket,
    MeterQuery,
    WindowSize,
)
from allotment.services import maintenance
from allotment.services.context import ServiceContext
from allotment.storage import Database
from tests.conftest import SettableClock, _clean
from tests.factories import meter, save_meter

T0 = datetime(2024, 3, 9, 22, tzinfo=UTC)  # a Saturday night: days, a month end nearby
EXAMPLES = int(os.environ.get("ALLOTMENT_ROLLUP_EXAMPLES", "12"))

METERS = [
    ("tokens", Aggregation.SUM, "$.tokens"),
    ("calls", Aggregation.COUNT, None),
    ("users", Aggregation.UNIQUE_COUNT, "$.user"),
    ("mean", Aggregation.AVG, "$.tokens"),
    ("low", Aggregation.MIN, "$.tokens"),
    ("high", Aggregation.MAX, "$.tokens"),
    ("seats", Aggregation.LATEST, "$.tokens"),
]

values = st.sampled_from(
    [1, 2, 5, 40, -3, "7.25", "0.1", "-0.5", "x", None, "1e-70", 10**30, True, "12"]
)
users = st.sampled_from(["u1", "u2", "u3", 12, "12", 12.5, True, None, {"o": 1}])
models = st.sampled_from(["m1", "m2", None, 7])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    value = draw(values)
    if value is not None:
        data["tokens"] = value
    user = draw(users)
    if user is not None:
        data["user"] = user
    model = draw(models)
    if model is not None:
        data["model"] = model
    return {
        "id": f"e{draw(st.integers(0, 40))}",  # a small pool: duplicates happen
        "subject": draw(st.sampled_from(["a", "b", "c"])),
        "seconds": draw(st.integers(0, 3 * 86_400)),
        "data": data if draw(st.booleans()) or data else None,
    }


@dataclass(frozen=True)
class Step:
    kind: str  # "batch", "meters" (create the late meters), "compact", "backfill"
    batch: tuple[dict[str, Any], ...] = ()
    size: int = 0


steps = st.one_of(
    st.builds(Step, st.just("batch"), st.lists(events(), min_size=1, max_size=12).map(tuple)),
    st.builds(Step, st.just("compact"), st.just(()), st.integers(1, 30)),
    st.builds(Step, st.just("backfill"), st.just(()), st.integers(1, 40)),
)
histories = st.tuples(
    st.lists(steps, min_size=1, max_size=6),
    st.lists(steps, min_size=0, max_size=6),
    st.sets(st.sampled_from([name for name, _a, _p in METERS]), max_size=4),
)


def _store(context: ServiceContext, batch: tuple[dict[str, Any], ...], number: int) -> None:
    events_ = [
        Event(
            id=e["id"],
            source="history",
            type="prompt",
            subject=e["subject"],
            time=T0 + timedelta(seconds=e["seconds"]),
            data=e["data"],
        )
        for e in batch
    ]
    with context.database.unit_of_work(write=True) as uow:
        uow.usage_store.ingest(events_, T0 + timedelta(days=5, seconds=number))
        uow.commit()


def _run(context: ServiceContext, step: Step, number: int) -> None:
    if step.kind == "batch":
        _store(context, step.batch, number)
    elif step.kind == "compact":
        maintenance.compact(context, limit=step.size)
    else:
        maintenance.backfill(context, span=step.size)


def _meters(names: set[str], *, late: bool) -> list[Meter]:
    made = []
    for slug, aggregation, path in METERS:
        if (slug in names) == late:
            made.append(
                meter(aggregation, slug=slug, value_property=path, group_by={"model": "$.model"})
            )
    return made


def _key(bucket: MeterBucket, aggregation: Aggregation) -> tuple[Any, ...]:
    value = bucket.value
    if aggregation is Aggregation.AVG:
        value = round(value, 12)  # averages differ in their last digits between stores
    return (
        bucket.window_start,
        bucket.subject,
        bucket.customer_id,
        bucket.group_values,
        value,
        bucket.earliest,
        bucket.latest,
    )


def _keys(buckets: list[MeterBucket], definition: Meter) -> list[tuple[Any, ...]]:
    return sorted((_key(b, definition.aggregation) for b in buckets), key=repr)


QUERIES = [
    (MeterQuery(), Grouping(False, False, ())),
    (MeterQuery(), Grouping(True, False, ("model",))),
    (MeterQuery(window_size=WindowSize.HOUR), Grouping(True, False, ())),
    (
        MeterQuery(window_size=WindowSize.DAY, time_zone="Europe/Paris"),
        Grouping(False, False, ("model",)),
    ),
    (MeterQuery(window_size=WindowSize.HOUR, time_zone="Asia/Kolkata"), Grouping(False, False, ())),
    (
        MeterQuery(window_size=WindowSize.MONTH, time_zone="America/Los_Angeles"),
        Grouping(True, False, ()),
    ),
    (
        MeterQuery(
            from_time=T0 + timedelta(hours=1, seconds=30),
            to_time=T0 + timedelta(days=2, minutes=7, seconds=5),
            window_size=WindowSize.MINUTE,
        ),
        Grouping(False, False, ()),
    ),
    (
        MeterQuery(
            from_time=T0 + timedelta(minutes=90, seconds=1),
            to_time=T0 + timedelta(days=1, hours=3),
            subjects=("a", "b"),
            filter_group_by={"model": ("m1", "7")},
        ),
        Grouping(True, False, ("model",)),
    ),
]


def _windows(number: int) -> list[tuple[datetime, datetime, datetime]]:
    """Entitlement windows: minute-aligned, in a period starting at T0 (or a day later)."""
    minute = timedelta(minutes=1)
    windows = []
    for start_minutes, length_minutes in ((0, 61), (17, 3 * 24 * 60), (1440 + 5, 200), (3000, 1)):
        start = T0 + start_minutes * minute
        period_start = T0 if start_minutes < 1440 else T0 + timedelta(days=1)
        windows.append((start, start + length_minutes * minute, period_start))
    return windows[: 1 + number % 4]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_rollups_answer_what_raw_events_answer(
    database: Database,
    history: tuple[list[Step], list[Step], set[str]],
) -> None:
    _clean(database)
    context = ServiceContext(database=database, clock=SettableClock(T0 + timedelta(days=6)))
    before, after, late_names = history
    meters = [save_meter(database, m) for m in _meters(late_names, late=False)]
    number = 0
    for step in before:
        _run(context, step, number := number + 1)
    for late in _meters(late_names, late=True):
        with database.unit_of_work(write=True) as uow:
            uow.versions.bump("meters")
            uow.meters.add(late)
            uow.rollups.start(late)
            uow.commit()
        meters.append(late)
    for step in after:
        _run(context, step, number := number + 1)

    with database.unit_of_work() as uow:
        for definition in meters:
            for query, grouping in QUERIES:
                rolled = uow.usage_store.aggregate(definition, query, grouping)
                raw = uow.meters.aggregate(definition, query, grouping)
                assert _keys(rolled, definition) == _keys(raw, definition), (
                    definition.slug,
                    query,
                    grouping,
                )
            if definition.aggregation in (Aggregation.AVG, Aggregation.MIN, Aggregation.MAX):
                continue  # features cannot read these
            for subjects in (["a"], ["a", "c"]):
                windows = _windows(len(subjects) + number)
                rolled_usage = uow.usage_store.usage_in_windows(definition, subjects, windows)
                raw_usage = uow.usage.usage_in_windows(definition, subjects, {}, windows)
                assert rolled_usage == raw_usage, (definition.slug, subjects, windows)
    # Whatever maintenance did so far, finishing it changes no answer.
    maintenance.run_until_idle(context)
    with database.unit_of_work() as uow:
        for definition in meters:
            assert uow.usage_store.status(definition) is not None  # backfills are done
            query, grouping = QUERIES[2]
            rolled = uow.usage_store.aggregate(definition, query, grouping)
            raw = uow.meters.aggregate(definition, query, grouping)
            assert _keys(rolled, definition) == _keys(raw, definition)


def test_a_worked_history_folds_to_the_same_totals(database: Database) -> None:
    """One history by hand: 3 events, one duplicate, one late by two days, a meter created
    afterwards; before and after compaction and backfill the day totals are the same."""
    context = ServiceContext(database=database, clock=SettableClock(T0 + timedelta(days=6)))
    tokens = save_meter(database, meter(Aggregation.SUM, group_by={"model": "$.model"}))
    batch = (
        {"id": "1", "subject": "a", "seconds": 60, "data": {"tokens": 5, "model": "m1"}},
        {"id": "1", "subject": "a", "seconds": 60, "data": {"tokens": 5, "model": "m1"}},
        {"id": "2", "subject": "a", "seconds": 86_400 * 2, "data": {"tokens": "2.5"}},
    )
    _store(context, batch, 1)
    _store(context, ({"id": "3", "subject": "a", "seconds": 30, "data": {"tokens": -1}},), 2)
    daily = MeterQuery(window_size=WindowSize.DAY)
    with database.unit_of_work() as uow:
        rows = uow.usage_store.aggregate(tokens, daily, Grouping(False, False, ()))
    assert sorted((r.window_start, r.value) for r in rows) == [
        (datetime(2024, 3, 9, tzinfo=UTC), Decimal(4)),
        (datetime(2024, 3, 11, tzinfo=UTC), Decimal("2.5")),
    ]
    maintenance.run_until_idle(context)
    with database.unit_of_work() as uow:
        assert [
            (r.window_start, r.value)
            for r in sorted(
                uow.usage_store.aggregate(tokens, daily, Grouping(False, False, ())),
                key=lambda r: r.window_start or T0,
            )
        ] == [
            (datetime(2024, 3, 9, tzinfo=UTC), Decimal(4)),
            (datetime(2024, 3, 11, tzinfo=UTC), Decimal("2.5")),
        ]
        # An entitlement counts the refund as nothing: 5 + 2.5.
        usage = uow.usage_store.usage_in_windows(tokens, ["a"], [(T0, T0 + timedelta(days=3), T0)])
        assert usage == [Decimal("7.5")]
