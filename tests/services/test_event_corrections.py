"""Excluding and restoring stored events, on both databases.

After every correction, every aggregation's meter query (roll-ups, deltas and raw edges, as the
server reads them) equals an aggregation computed here in Python from the events that are not
excluded, and equals the raw-event SQL path; after restoring everything, the first answers
return. Meters created before and after the events (roll-ups written by ingest, or by the
backfill) and pending PostgreSQL deltas are all covered.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allotment.domain.corrections import CorrectionAction, EventRef
from allotment.domain.events import Event
from allotment.domain.meters import Aggregation, MeterDefinition, MeterQuery, WindowSize
from allotment.errors import Conflict, InvalidInput, NotFound
from allotment.services import corrections, entitlement_values, entitlements, maintenance, meters
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from allotment.storage import Database
from tests.conftest import SettableClock, _clean
from tests.factories import event, make_customer, make_feature, make_meter, metered, store_events

T = datetime(2024, 3, 4, tzinfo=UTC)
EXAMPLES = int(os.environ.get("ALLOTMENT_CORRECTION_EXAMPLES", "12"))
AGGREGATIONS = list(Aggregation)


@dataclass(frozen=True)
class Sent:
    id: str
    subject: str
    model: str
    time: datetime
    tokens: int


def _definition(aggregation: Aggregation) -> MeterDefinition:
    return MeterDefinition(
        slug=aggregation.value.lower(),
        aggregation=aggregation,
        event_type="prompt",
        value_property=None if aggregation is Aggregation.COUNT else "$.tokens",
        group_by={"model": "$.model"},
    )


def _expected(
    aggregation: Aggregation, kept: Sequence[tuple[int, Sent]], start: datetime, end: datetime
) -> dict[tuple[datetime, str, str], Decimal]:
    """(hour, subject, model) -> the aggregate of the kept events in `[start, end)`, from
    scratch. `kept` is `(arrival order, event)`: LATEST takes the latest time, then arrival."""
    groups: dict[tuple[datetime, str, str], list[tuple[int, Sent]]] = defaultdict(list)
    for order, sent in kept:
        if start <= sent.time < end:
            hour = sent.time.replace(minute=0, second=0, microsecond=0)
            groups[(hour, sent.subject, sent.model)].append((order, sent))
    found: dict[tuple[datetime, str, str], Decimal] = {}
    for key, members in groups.items():
        values = [Decimal(sent.tokens) for _order, sent in members]
        if aggregation is Aggregation.SUM:
            found[key] = sum(values, Decimal(0))
        elif aggregation is Aggregation.COUNT:
            found[key] = Decimal(len(values))
        elif aggregation is Aggregation.AVG:
            found[key] = Context(prec=30).divide(sum(values, Decimal(0)), len(values))
        elif aggregation is Aggregation.MIN:
            found[key] = min(values)
        elif aggregation is Aggregation.MAX:
            found[key] = max(values)
        elif aggregation is Aggregation.UNIQUE_COUNT:
            found[key] = Decimal(len(set(values)))
        else:
            latest = max(members, key=lambda m: (m[1].time, m[0]))
            found[key] = Decimal(latest[1].tokens)
    return found


def _served(
    context: ServiceContext, aggregation: Aggregation, start: datetime, end: datetime
) -> dict[tuple[datetime, str, str], Decimal]:
    query = MeterQuery(
        from_time=start,
        to_time=end,
        window_size=WindowSize.HOUR,
        subjects=("acme", "beta"),
        group_by=("model",),
    )
    result = meters.query_meter(context, aggregation.value.lower(), query)
    return {
        (row.window_start, row.subject or "", row.group_by["model"] or ""): row.value
        for row in result.rows
    }


def _raw(
    context: ServiceContext, aggregation: Aggregation, start: datetime, end: datetime
) -> dict[tuple[datetime, str, str], Decimal]:
    """The same query over raw events (the SQL path meters without roll-ups take)."""
    query = MeterQuery(
        from_time=start,
        to_time=end,
        window_size=WindowSize.HOUR,
        subjects=("acme", "beta"),
        group_by=("model",),
    )
    with context.database.unit_of_work() as uow:
        meter = uow.meters.find(aggregation.value.lower())
        assert meter is not None
        grouping = meters.check_query(meter, query)[0]
        buckets = uow.meters.aggregate(meter, query, grouping)
    return {(b.window_start, b.subject or "", b.group_values[0] or ""): b.value for b in buckets}


def _assert_all_match(context: ServiceContext, sent: Sequence[Sent], excluded: set[str]) -> None:
    kept = [(order, s) for order, s in enumerate(sent) if s.id not in excluded]
    # Aligned on hours (roll-up buckets only), and cut inside minutes (raw edges too).
    for start, end in (
        (T, T + timedelta(days=3)),
        (T + timedelta(seconds=90), T + timedelta(hours=30, seconds=17)),
    ):
        for aggregation in AGGREGATIONS:
            expected = _expected(aggregation, kept, start, end)
            served = _served(context, aggregation, start, end)
            raw = _raw(context, aggregation, start, end)
            assert served == expected, (aggregation, start)
            assert raw == expected, (aggregation, start)


event_strategy = st.tuples(
    st.sampled_from(["acme", "beta"]),
    st.sampled_from(["a", "b"]),
    # Few distinct minutes, hours and days, so buckets hold several events each.
    st.sampled_from([0, 1, 59, 60, 61, 24 * 60 + 5, 24 * 60 + 6]),
    st.integers(0, 50),  # seconds into the minute
    st.integers(-3, 9),
)
corrections_strategy = st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), max_size=8)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    early=st.lists(event_strategy, min_size=1, max_size=14),
    late=st.lists(event_strategy, max_size=14),
    fixes=corrections_strategy,
    compact_between=st.booleans(),
)
def test_every_read_counts_exactly_the_events_not_excluded(
    database: Database,
    early: list[tuple[str, str, int, int, int]],
    late: list[tuple[str, str, int, int, int]],
    fixes: list[tuple[int, bool]],
    compact_between: bool,
) -> None:
    _clean(database)
    context = ServiceContext(database=database, clock=SettableClock(T + timedelta(days=4)))
    sent: list[Sent] = []

    def send(batch: list[tuple[str, str, int, int, int]]) -> None:
        stored: list[Event] = []
        for subject, model, minute, second, tokens in batch:
            item = Sent(
                f"e{len(sent)}",
                subject,
                model,
                T + timedelta(minutes=minute, seconds=second),
                tokens,
            )
            sent.append(item)
            data = {"tokens": item.tokens, "model": item.model}
            stored.append(event(item.id, item.time, data, subject=item.subject, source="app"))
        if stored:
            store_events(database, stored, context.clock())

    send(early)  # before the meters: the backfill rolls these up
    for aggregation in AGGREGATIONS:
        meters.create_meter(context, _definition(aggregation))
    if compact_between:
        maintenance.run_until_idle(context)
    send(late)  # after: ingest rolls these up (deltas pending on PostgreSQL)
    excluded: set[str] = set()
    _assert_all_match(context, sent, excluded)
    first = {a: _served(context, a, T, T + timedelta(days=3)) for a in AGGREGATIONS}
    for pick, restore in fixes:
        pool = sorted(excluded) if restore else [s.id for s in sent if s.id not in excluded]
        if not pool:
            continue
        chosen = pool[pick % len(pool)]
        action = CorrectionAction.RESTORE if restore else CorrectionAction.EXCLUDE
        corrections.correct(context, EventRef("app", chosen), action, "repair", None)
        (excluded.discard if restore else excluded.add)(chosen)
        _assert_all_match(context, sent, excluded)
        if pick % 3 == 0:
            maintenance.run_until_idle(context)  # compaction and backfill after a correction
            _assert_all_match(context, sent, excluded)
    for chosen in sorted(excluded):
        corrections.correct(context, EventRef("app", chosen), CorrectionAction.RESTORE, "ok", None)
    maintenance.run_until_idle(context)
    last = {a: _served(context, a, T, T + timedelta(days=3)) for a in AGGREGATIONS}
    assert last == first


def test_an_excluded_event_leaves_the_balance_even_before_a_checkpoint(
    context: ServiceContext, clock: SettableClock
) -> None:
    clock.set(T + timedelta(hours=6))
    make_meter(context)
    make_feature(context)
    make_customer(context)
    acme = CustomerOwner("acme")
    entitlements.create_entitlement(
        context, acme, metered(interval="DAY", anchor=T, issue_after_reset=1000)
    )
    usage = [
        event("ok", T + timedelta(hours=1), {"tokens": 100, "model": "m"}, source="app"),
        event("bad", T + timedelta(hours=2), {"tokens": 600, "model": "m"}, source="app"),
    ]
    store_events(context.database, usage, clock())
    assert entitlement_values.entitlement_value(context, acme, "ai_tokens").balance == 300
    with context.database.unit_of_work() as uow:
        entitlement_id = uow.connection.exec_driver_sql("SELECT id FROM entitlements").scalar()
    maintenance.run_until_idle(context)  # compacts, and saves a checkpoint after the events
    maintenance.save_checkpoints(context, [entitlement_id])
    with context.database.unit_of_work() as uow:
        assert uow.checkpoints.at_or_before(entitlement_id, clock()) != []
    bad = EventRef("app", "bad")
    corrections.correct(context, bad, CorrectionAction.EXCLUDE, "load test", None)
    # The checkpoint (hours after the event) counted it: it is gone, and the value is exact.
    with context.database.unit_of_work() as uow:
        left = uow.checkpoints.at_or_before(entitlement_id, clock())
    assert left == []
    value = entitlement_values.entitlement_value(context, acme, "ai_tokens")
    assert (value.balance, value.usage) == (900, 100)
    corrections.correct(context, bad, CorrectionAction.RESTORE, "it was real", None)
    value = entitlement_values.entitlement_value(context, acme, "ai_tokens")
    assert (value.balance, value.usage) == (300, 700)


def test_corrections_are_refused_when_they_would_change_nothing(
    context: ServiceContext, clock: SettableClock
) -> None:
    make_meter(context)
    store_events(context.database, [event("e1", T, {"tokens": 5}, source="app")])
    ref = EventRef("app", "e1")
    with pytest.raises(NotFound) as missing:
        corrections.correct(context, EventRef("app", "nope"), CorrectionAction.EXCLUDE, "x", None)
    assert missing.value.field == "id"
    with pytest.raises(Conflict) as not_excluded:
        corrections.correct(context, ref, CorrectionAction.RESTORE, "x", None)
    assert not_excluded.value.field == "action"
    with pytest.raises(InvalidInput) as blank:
        corrections.correct(context, ref, CorrectionAction.EXCLUDE, "   ", None)
    assert blank.value.field == "reason"
    corrections.correct(context, ref, CorrectionAction.EXCLUDE, "duplicate send", "key1")
    clock.advance(timedelta(seconds=1))
    with pytest.raises(Conflict):
        corrections.correct(context, ref, CorrectionAction.EXCLUDE, "again", None)
    corrections.correct(context, ref, CorrectionAction.RESTORE, "was fine", None)
    trail = corrections.list_corrections(context, 10, ref)
    assert [(c.action, c.reason, c.api_key_id) for c in trail] == [
        (CorrectionAction.RESTORE, "was fine", None),
        (CorrectionAction.EXCLUDE, "duplicate send", "key1"),
    ]
    assert corrections.list_corrections(context, 10, EventRef("app", "other")) == []
