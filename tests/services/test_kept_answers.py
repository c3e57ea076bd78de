"""Answers given again (services/answer_cache.py) are the answers a fresh read gives.

The property replays the random histories of the checkpoint property (usage, late events,
grants, voids, resets, corrections, checkpoints, compaction) written by one "process" and read
by another (its own Database object, hence its own mapping of the change board, and its own
caches), at sub-minute instants so that answers may be kept: after every step, and again after
a few seconds more, the kept-or-computed answer equals the value from measurement start over
the raw events. The worked examples pin down each way an answer stops being given again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allotment.domain.grant_requests import GrantDefaults
from allotment.services import answer_cache, entitlement_values, entitlements, grants
from allotment.services.context import ServiceContext
from allotment.services.entitlement_owners import CustomerOwner
from allotment.storage import Database, DatabaseOptions
from tests.conftest import SettableClock, _clean
from tests.factories import grant, make_customer, make_feature, make_meter, metered, send_usage
from tests.services.test_checkpoint_equivalence import (
    START,
    Step,
    _apply,
    _from_scratch,
    _shape,
    histories,
)

ACME = CustomerOwner("acme")
KEY = ("test", "acme", "ai_tokens")
EXAMPLES = int(os.environ.get("ALLOTMENT_KEPT_ANSWER_EXAMPLES", "10"))


def _answer(reader: ServiceContext) -> tuple[object, ...]:
    def compute() -> tuple[tuple[object, ...], answer_cache.ReadScope | None]:
        value, scope = entitlement_values.entitlement_value_now(reader, ACME, "ai_tokens")
        return _shape(value), scope

    return answer_cache.answer(reader, KEY, compute)


@pytest.fixture
def second_process(database: Database) -> Iterator[Database]:
    """The same database opened again, as another worker process would."""
    other = Database(database.url, pool_size=2)
    yield other
    other.dispose()


def _reader(database: Database, clock: SettableClock) -> ServiceContext:
    return ServiceContext(database=database, clock=clock)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, offsets=st.lists(st.integers(1, 58), min_size=2, max_size=2))
def test_an_answer_given_again_is_the_answer_a_fresh_read_gives(
    database: Database,
    second_process: Database,
    history: list[tuple[int, Step]],
    offsets: list[int],
) -> None:
    _clean(database)
    clock = SettableClock(START)
    writer = ServiceContext(database=database, clock=clock)
    reading_clock = SettableClock(START)
    reader = _reader(second_process, reading_clock)
    make_meter(writer)
    make_feature(writer)
    make_customer(writer)
    entitlements.create_entitlement(
        writer,
        ACME,
        metered(interval="DAY", anchor=START, issue_after_reset=100, measure_usage_from=START),
    )
    live: list[str] = []
    first, second = sorted(offsets)
    for advance, step in history:
        clock.advance(timedelta(minutes=advance))
        # The reader keeps an answer from before the write, in the same minute.
        reading_clock.set(clock() + timedelta(seconds=first))
        assert _answer(reader) == _from_scratch(writer, reading_clock())
        _apply(writer, clock, step, live)
        for seconds in (first, second):
            reading_clock.set(clock() + timedelta(seconds=seconds))
            assert _answer(reader) == _from_scratch(writer, reading_clock()), (step, seconds)
    answers = reader.caches.answers
    event(f"answers given again: {min(answers.hits, 5)}")


# -- worked examples --------------------------------------------------------------------------

NOON = datetime(2024, 1, 15, 12, 0, 20, tzinfo=UTC)
"""Twenty seconds into a minute: answers may be kept."""


def _entitled(context: ServiceContext) -> str:
    make_meter(context)
    make_feature(context)
    make_customer(context)
    view = entitlements.create_entitlement(context, ACME, metered(issue_after_reset=1000))
    return view.entitlement.id


def _balance(context: ServiceContext) -> object:
    return _answer(context)[1]


def test_a_second_read_in_the_same_minute_sends_no_statement(
    database: Database, second_process: Database
) -> None:
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    send_usage(writer, 100, NOON - timedelta(hours=1))
    reader = _reader(second_process, clock)
    assert _balance(reader) == 900
    sent: list[str] = []

    def count(*args: object) -> None:
        sent.append(str(args[2]))

    from sqlalchemy import event as sql_event

    sql_event.listen(second_process.engine, "before_cursor_execute", count)
    try:
        clock.advance(timedelta(seconds=30))
        assert _balance(reader) == 900
    finally:
        sql_event.remove(second_process.engine, "before_cursor_execute", count)
    assert sent == []
    assert reader.caches.answers.hits == 1


@pytest.mark.parametrize("write", ["usage", "late usage", "grant", "other customer's usage"])
def test_a_write_in_another_process_is_seen_by_the_very_next_read(
    database: Database, second_process: Database, write: str
) -> None:
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    make_customer(writer, key="globex", subject_keys=("globex",))
    reader = _reader(second_process, clock)
    assert _balance(reader) == 1000
    if write == "usage":
        send_usage(writer, 7, NOON)
        expected = 993
    elif write == "late usage":
        send_usage(writer, 7, NOON - timedelta(days=10))
        expected = 993
    elif write == "grant":
        request = grant(5, NOON - timedelta(minutes=1))
        grants.create_grant(writer, ACME, "ai_tokens", request, GrantDefaults.V2)
        expected = 1005
    else:
        send_usage(writer, 7, NOON, subject="globex")
        expected = 1000
    assert _balance(reader) == expected
    hits = reader.caches.answers.hits
    assert hits == (1 if write == "other customer's usage" else 0)


def test_a_new_minute_computes_afresh(database: Database, second_process: Database) -> None:
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    # Usage stamped a little ahead of the clock (a client's clock runs fast): it counts from
    # the minute it falls in, which no answer of this minute may hide.
    send_usage(writer, 40, NOON.replace(second=45))
    send_usage(writer, 60, NOON.replace(minute=1, second=5))
    reader = _reader(second_process, clock)
    assert _balance(reader) == 960
    clock.set(NOON.replace(second=59))
    assert _balance(reader) == 960
    clock.set(NOON.replace(minute=1, second=1))
    assert _balance(reader) == 900
    assert reader.caches.answers.hits == 1


def test_the_first_instant_of_a_minute_is_never_kept(
    database: Database, second_process: Database
) -> None:
    clock = SettableClock(NOON.replace(second=0))
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    reader = _reader(second_process, clock)
    assert _balance(reader) == 1000
    assert _balance(reader) == 1000
    assert reader.caches.answers.hits == 0


def test_an_entitlement_ending_inside_the_minute_ends_its_answer(
    database: Database, second_process: Database
) -> None:
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    entitlement_id = _entitled(writer)
    # Scheduled to end 15 s later, inside this minute (as a subscription's cancel may be).
    ends = NOON + timedelta(seconds=15)
    with database.unit_of_work(write=True) as uow:
        uow.entitlements.set_active_to(entitlement_id, ends, NOON)
        uow.commit()
    reader = _reader(second_process, clock)
    assert _answer(reader)[0] is True
    clock.set(ends - timedelta(microseconds=1))
    assert _answer(reader)[0] is True
    clock.set(ends)
    assert _answer(reader)[0] is False
    assert reader.caches.answers.hits == 1


def test_with_the_board_off_nothing_is_kept(database: Database) -> None:
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    off = Database(database.url, options=DatabaseOptions(change_board="off"))
    try:
        reader = _reader(off, clock)
        assert _balance(reader) == 1000
        assert _balance(reader) == 1000
        assert reader.caches.answers.hits == 0
        assert off.board() is None
    finally:
        off.dispose()


def test_a_write_committed_while_an_answer_is_computed_is_not_hidden(
    database: Database, second_process: Database
) -> None:
    # The reader's snapshot predates a usage write that commits before the reader keeps its
    # answer: the board was copied before the read, so the answer is not given again.
    clock = SettableClock(NOON)
    writer = ServiceContext(database=database, clock=clock)
    _entitled(writer)
    reader = _reader(second_process, clock)

    def compute() -> tuple[tuple[object, ...], answer_cache.ReadScope | None]:
        value, scope = entitlement_values.entitlement_value_now(reader, ACME, "ai_tokens")
        send_usage(writer, 9, NOON)  # after the read, before the answer is kept
        return _shape(value), scope

    assert answer_cache.answer(reader, KEY, compute)[1] == 1000
    assert _balance(reader) == 991


def test_the_board_is_one_file_whatever_the_url_spelling(database: Database) -> None:
    if database.dialect != "postgresql":
        board = database.board()
        assert board is not None
        assert str(board.path) == f"{database._path}-changes"  # beside the file, as its WAL
        return
    respelled = Database(database.url.replace("127.0.0.1", "localhost"))
    try:
        first, second = database.board(), respelled.board()
        assert first is not None and second is not None
        assert first.path == second.path
    finally:
        respelled.dispose()


def test_auto_turns_the_board_off_for_a_remote_postgresql() -> None:
    remote = Database("postgresql://db.example.internal/allotment")
    local = Database("postgresql://127.0.0.1/allotment")
    socket = Database("postgresql:///allotment?host=/var/run/postgresql")
    forced = Database(
        "postgresql://db.example.internal/allotment",
        options=DatabaseOptions(change_board="on"),
    )
    try:
        assert remote.board() is None  # no connection needed to say so
        assert local._board_wanted and socket._board_wanted and forced._board_wanted
    finally:
        for database in (remote, local, socket, forced):
            database.dispose()


def test_times_are_utc() -> None:
    # The minute arithmetic reads Unix time: a clock in another zone names the same minute.
    from datetime import timezone

    elsewhere = NOON.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert answer_cache._minute(elsewhere) == answer_cache._minute(NOON)
    assert answer_cache._minute(NOON.replace(second=0)) is None
