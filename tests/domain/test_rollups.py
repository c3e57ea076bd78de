"""The roll-up rules of `domain/rollups.py`: pieces cover a range exactly, partials merge
exactly in any grouping and order, and a batch's contributions are what each event adds."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from allotment.domain.meters import Aggregation
from allotment.domain.rollups import (
    DAY_MICROSECONDS,
    HOUR_MICROSECONDS,
    MINUTE_MICROSECONDS,
    Level,
    Partial,
    RolledMeter,
    RollupBatch,
    accumulate,
    bucket_start,
    distinct_key,
    fold_levels,
    merge_all,
    pieces,
    split_range,
)
from tests.factories import meter

MINUTES_IN_TEN_DAYS = 10 * 24 * 60
minutes = st.integers(0, MINUTES_IN_TEN_DAYS)


def _buckets_of(piece_list: list[object]) -> list[tuple[int, int]]:
    """Every (start, end) bucket the pieces name, in order."""
    spans = []
    for piece in piece_list:
        unit = piece.level.microseconds  # type: ignore[attr-defined]
        for start in range(piece.start, piece.end, unit):  # type: ignore[attr-defined]
            spans.append((start, start + unit))
    return spans


@given(minutes, minutes)
def test_pieces_cover_a_minute_aligned_range_exactly_once(a: int, b: int) -> None:
    start, end = sorted((a * MINUTE_MICROSECONDS, b * MINUTE_MICROSECONDS))
    found = pieces(start, end)
    buckets = _buckets_of(found)
    # Contiguous, in order, from start to end: every instant of the range in exactly one bucket.
    position = start
    for bucket_begin, bucket_end in buckets:
        assert bucket_begin == position
        position = bucket_end
    assert position == end
    # Each piece is aligned on its level, and there are at most five.
    assert len(found) <= 5
    for piece in found:
        assert piece.start % piece.level.microseconds == 0
        assert piece.end % piece.level.microseconds == 0


@given(minutes, minutes, st.sampled_from(list(Level)))
def test_pieces_never_use_a_level_coarser_than_asked(a: int, b: int, top: Level) -> None:
    start, end = sorted((a * MINUTE_MICROSECONDS, b * MINUTE_MICROSECONDS))
    assert all(piece.level <= top for piece in pieces(start, end, top))


def test_a_day_and_a_half_is_minutes_hours_a_day_hours_minutes() -> None:
    day = 3 * DAY_MICROSECONDS
    start = day - HOUR_MICROSECONDS - 5 * MINUTE_MICROSECONDS  # 22:55 the day before
    end = day + DAY_MICROSECONDS + 2 * HOUR_MICROSECONDS + 7 * MINUTE_MICROSECONDS
    assert [(p.level, p.start, p.end) for p in pieces(start, end)] == [
        (Level.MINUTE, start, day - HOUR_MICROSECONDS),
        (Level.HOUR, day - HOUR_MICROSECONDS, day),
        (Level.DAY, day, day + DAY_MICROSECONDS),
        (Level.HOUR, day + DAY_MICROSECONDS, day + DAY_MICROSECONDS + 2 * HOUR_MICROSECONDS),
        (Level.MINUTE, day + DAY_MICROSECONDS + 2 * HOUR_MICROSECONDS, end),
    ]


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_split_range_leaves_only_sub_minute_edges_to_raw_events(a: int, b: int) -> None:
    start, end = sorted((a, b))
    split = split_range(start, end)
    covered = [(p.start, p.end) for p in split.pieces] + list(split.edges)
    covered.sort()
    total = sum(high - low for low, high in covered)
    assert total == end - start
    for low, high in split.edges:
        assert high - low < MINUTE_MICROSECONDS or not split.pieces


# -- partials -----------------------------------------------------------------------------------

decimals = st.decimals(
    min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=3, allow_nan=False
)
events = st.lists(
    st.tuples(st.integers(0, 10**9), st.integers(1, 10**6), decimals), min_size=1, max_size=30
)


def _naive(aggregation: Aggregation, items: list[tuple[int, int, Decimal]]) -> Decimal:
    values = [value for _time, _seq, value in items]
    if aggregation is Aggregation.SUM:
        return sum(values, Decimal(0))
    if aggregation is Aggregation.COUNT:
        return Decimal(len(values))
    if aggregation is Aggregation.MIN:
        return min(values)
    if aggregation is Aggregation.MAX:
        return max(values)
    if aggregation is Aggregation.LATEST:
        return max(items, key=lambda item: (item[0], item[1]))[2]
    raise AssertionError(aggregation)


@settings(max_examples=200)
@given(
    st.sampled_from(
        [Aggregation.SUM, Aggregation.COUNT, Aggregation.MIN, Aggregation.MAX, Aggregation.LATEST]
    ),
    events,
    st.randoms(use_true_random=False),
)
def test_partials_merge_to_the_aggregate_of_all_events_in_any_grouping_and_order(
    aggregation: Aggregation, items: list[tuple[int, int, Decimal]], shuffle: random.Random
) -> None:
    # Distinct seq values, as arrival order always is.
    items = [(time, index, value) for index, (time, _seq, value) in enumerate(items)]
    singles = [
        Partial.of_event(
            aggregation, time, seq, None if aggregation is Aggregation.COUNT else value
        )
        for time, seq, value in items
    ]
    shuffle.shuffle(singles)
    # Cut into random groups, merge each, then merge the groups.
    groups = []
    position = 0
    while position < len(singles):
        size = shuffle.randint(1, len(singles) - position)
        groups.append(merge_all(singles[position : position + size]))
        position += size
    merged = merge_all([g for g in groups if g is not None])
    assert merged is not None
    assert merged.value(aggregation) == _naive(aggregation, items)
    assert merged.count == len(items)
    assert merged.first_time == min(time for time, _seq, _value in items)
    assert merged.last_time == max(time for time, _seq, _value in items)


@given(events)
def test_entitlements_count_positive_values_only_and_meter_sums_count_all(
    items: list[tuple[int, int, Decimal]],
) -> None:
    merged = merge_all([Partial.of_event(Aggregation.SUM, t, s, v) for t, s, v in items])
    assert merged is not None
    assert merged.positive_total == sum((v for _t, _s, v in items if v > 0), Decimal(0))
    assert merged.value(Aggregation.SUM) == sum((v for _t, _s, v in items), Decimal(0))


def test_average_of_one_and_two_thirds() -> None:
    merged = merge_all(
        [
            Partial.of_event(Aggregation.AVG, 0, seq, Decimal(v))
            for seq, v in ((1, 1), (2, 0), (3, 1))
        ]
    )
    assert merged is not None
    assert merged.value(Aggregation.AVG) == Decimal("0.666666666666666666666666666667")


# -- batches ------------------------------------------------------------------------------------


def test_a_batch_adds_each_countable_event_once_per_meter_of_its_type() -> None:
    tokens = meter(Aggregation.SUM, group_by={"model": "$.model"})
    users = meter(Aggregation.UNIQUE_COUNT, slug="users", value_property="$.user")
    other = meter(Aggregation.COUNT, slug="other", event_type="other")
    minute = 10 * MINUTE_MICROSECONDS
    batch = accumulate(
        RollupBatch(),
        [RolledMeter(tokens, 1), RolledMeter(users, 2), RolledMeter(other, 1)],
        [
            ("prompt", "acme", minute + 1, 1, {"tokens": 5, "model": "a", "user": "u1"}),
            ("prompt", "acme", minute + 2, 2, {"tokens": "7.5", "model": "a", "user": "u1"}),
            ("prompt", "acme", minute + 3, 3, {"tokens": "x", "model": "b", "user": "u2"}),
            ("prompt", "beta", minute + 4, 4, {"tokens": 1e-70, "user": {"no": 1}}),
        ],
    )
    a_key = (tokens.id, 1, "acme", '{"model":"a"}')
    assert batch.partials[(a_key, minute)].total == Decimal("12.5")
    assert batch.partials[(a_key, minute)].count == 2
    # "x" is not a number and 1e-70 is outside the usage domain: neither is counted.
    assert not any(
        key[0][0] == tokens.id and key[0][3] == '{"model":"b"}' for key in batch.partials
    )
    assert not any(key[0][2] == "beta" and key[0][0] == tokens.id for key in batch.partials)
    users_key = (users.id, 2, "acme", "{}")
    assert {
        (level, value) for key, level, _bucket, value in batch.distinct if key == users_key
    } == {(level, value) for level in (0, 1, 2) for value in ("u1", "u2")}
    # The other meter reads another event type.
    assert not any(key[0][0] == other.id for key in batch.partials)


def test_folding_minute_partials_fills_every_level_without_sharing_objects() -> None:
    first = Partial.of_event(Aggregation.SUM, 0, 1, Decimal(2))
    second = Partial.of_event(Aggregation.SUM, HOUR_MICROSECONDS, 2, Decimal(3))
    folded = fold_levels([(7, 0, first), (7, HOUR_MICROSECONDS, second)])
    assert folded[(7, Level.MINUTE, 0)].total == Decimal(2)
    assert folded[(7, Level.HOUR, HOUR_MICROSECONDS)].total == Decimal(3)
    assert folded[(7, Level.DAY, 0)].total == Decimal(5)
    assert first.total == Decimal(2)  # the input was not merged into
    assert bucket_start(HOUR_MICROSECONDS + 5, Level.HOUR) == HOUR_MICROSECONDS


def test_long_distinct_values_are_kept_as_digests() -> None:
    assert distinct_key("user-1") == "user-1"
    long_value = "x" * 500
    assert distinct_key(long_value).startswith("sha256:")
    assert distinct_key(long_value) != distinct_key(long_value + "y")
