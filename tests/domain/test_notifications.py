"""When thresholds are crossed, which one is notified, and the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allotment.domain.access import EntitlementValue
from allotment.domain.notifications import (
    RETRY_DELAYS,
    Threshold,
    ThresholdType,
    is_crossed,
    newly_crossed,
    next_attempt_after,
)

T = ThresholdType


def value(usage: int, total: int) -> EntitlementValue:
    balance = max(total - usage, 0)
    return EntitlementValue(
        has_access=balance > 0,
        balance=Decimal(balance),
        usage=Decimal(usage),
        overage=Decimal(max(usage - total, 0)),
        total_available_grant_amount=Decimal(total),
    )


@pytest.mark.parametrize(
    ("threshold", "usage", "total", "crossed"),
    [
        (Threshold(Decimal(100), T.USAGE_VALUE), 100, 1000, False),  # usage > value, not >=
        (Threshold(Decimal(100), T.USAGE_VALUE), 101, 1000, True),
        (Threshold(Decimal(100), T.NUMBER), 101, 0, True),  # the alias; grants do not matter
        (Threshold(Decimal(50), T.USAGE_PERCENTAGE), 500, 1000, False),
        (Threshold(Decimal(50), T.USAGE_PERCENTAGE), 501, 1000, True),
        (Threshold(Decimal(50), T.PERCENT), 501, 1000, True),
        (Threshold(Decimal(50), T.USAGE_PERCENTAGE), 10, 0, False),  # never without grants
        (Threshold(Decimal("33.3"), T.USAGE_PERCENTAGE), 333, 1000, False),
        (Threshold(Decimal("33.3"), T.USAGE_PERCENTAGE), 334, 1000, True),
        (Threshold(Decimal(100), T.BALANCE_VALUE), 900, 1000, False),  # balance < value
        (Threshold(Decimal(100), T.BALANCE_VALUE), 901, 1000, True),
        (Threshold(Decimal(0), T.BALANCE_VALUE), 999, 1000, False),
        (Threshold(Decimal(0), T.BALANCE_VALUE), 1000, 1000, True),  # 0: balance <= 0
    ],
)
def test_is_crossed(threshold: Threshold, usage: int, total: int, crossed: bool) -> None:
    assert is_crossed(threshold, value(usage, total)) is crossed


def test_a_write_past_several_thresholds_notifies_the_most_advanced_and_fires_them_all() -> None:
    thresholds = [
        Threshold(Decimal(50), T.USAGE_PERCENTAGE),
        Threshold(Decimal(100), T.BALANCE_VALUE),  # crossed at usage 900 of 1000
        Threshold(Decimal(800), T.USAGE_VALUE),
        Threshold(Decimal(99), T.USAGE_PERCENTAGE),
    ]
    chosen, fresh = newly_crossed(thresholds, value(950, 1000), fired=set())
    assert chosen == thresholds[1]
    assert fresh == thresholds[:3]
    again, more = newly_crossed(thresholds, value(995, 1000), {t.key for t in fresh})
    assert again == thresholds[3] and more == [thresholds[3]]
    assert newly_crossed(thresholds, value(999, 1000), {t.key for t in thresholds}) == (None, [])


def test_aliases_name_the_same_threshold() -> None:
    assert (
        Threshold(Decimal("80.0"), T.PERCENT).key == Threshold(Decimal(80), T.USAGE_PERCENTAGE).key
    )
    assert Threshold(Decimal(5), T.NUMBER).key != Threshold(Decimal(5), T.BALANCE_VALUE).key


def test_the_retry_schedule() -> None:
    failed = datetime(2024, 1, 1, tzinfo=UTC)
    delays = [next_attempt_after(n, failed) for n in range(1, 9)]
    assert [d - failed if d else None for d in delays] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
        None,
    ]
    assert len(RETRY_DELAYS) == 8


@given(
    st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=30),
    st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=10, unique=True),
)
def test_each_threshold_fires_at_most_once_whatever_usage_does(
    usages: list[int], values: list[int]
) -> None:
    """Usage that goes up and down in one period (top-ups, late corrections) never notifies a
    threshold twice, and every threshold the usage ever passed counts as fired."""
    thresholds = [Threshold(Decimal(v), T.USAGE_VALUE) for v in values]
    fired: set[str] = set()
    notified: list[str] = []
    for usage in usages:
        chosen, fresh = newly_crossed(thresholds, value(usage, 100), fired)
        if chosen is not None:
            notified.append(chosen.key)
        fired |= {t.key for t in fresh}
    assert len(notified) == len(set(notified))
    assert fired == {t.key for t in thresholds if t.value < max(usages)}
