"""The usage-period timeline: first period, automatic and manual resets, reset validation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from allotment.domain.periods import Interval, Period, Recurrence
from allotment.domain.time import utc
from allotment.domain.usage_periods import ManualReset, ResetPoint, UsagePeriodTimeline
from allotment.errors import InvalidInput


def daily(anchor: datetime, measure_from: datetime, *resets: ManualReset) -> UsagePeriodTimeline:
    return UsagePeriodTimeline(measure_from, Recurrence(Interval.parse("DAY"), anchor), resets)


def test_the_first_period_starts_at_measure_usage_from() -> None:
    monthly = UsagePeriodTimeline(
        utc(2024, 6, 15, 9, 30), Recurrence(Interval.parse("MONTH"), utc(2024, 1, 1))
    )
    assert monthly.current_period_at(utc(2024, 6, 20)) == Period(
        utc(2024, 6, 15, 9, 30), utc(2024, 7, 1)
    )
    assert monthly.current_period_at(utc(2024, 7, 1)) == Period(utc(2024, 7, 1), utc(2024, 8, 1))
    # Before measurement starts there is only the first period.
    assert monthly.current_period_at(utc(2024, 1, 1)) == Period(
        utc(2024, 6, 15, 9, 30), utc(2024, 7, 1)
    )
    assert monthly.last_reset == utc(2024, 6, 15, 9, 30)


def test_a_reset_without_retained_anchor_restarts_the_grid_there() -> None:
    start = utc(2024, 1, 1)
    timeline = daily(start + timedelta(hours=1), start)
    reset_time = start + timedelta(hours=5, seconds=1)
    moved, reset = timeline.with_manual_reset(
        reset_time, retain_anchor=False, preserve_overage=False
    )
    assert reset == ManualReset(at=start + timedelta(hours=5), anchor=start + timedelta(hours=5))
    assert moved.last_reset == start + timedelta(hours=5)
    assert moved.current_period_at(start + timedelta(hours=6)) == Period(
        start + timedelta(hours=5), start + timedelta(days=1, hours=5)
    )


def test_a_reset_with_retained_anchor_keeps_the_grid_and_shortens_the_period() -> None:
    start = utc(2024, 1, 1)
    timeline = daily(start + timedelta(hours=1), start)
    kept, reset = timeline.with_manual_reset(
        start + timedelta(hours=5), retain_anchor=True, preserve_overage=True
    )
    assert reset.anchor == start + timedelta(hours=1)
    assert reset.preserve_overage is True
    assert kept.current_period_at(start + timedelta(hours=6)) == Period(
        start + timedelta(hours=5), start + timedelta(days=1, hours=1)
    )
    assert kept.last_reset == start + timedelta(hours=5)


def test_resets_between_lists_automatic_and_manual_resets_once_each() -> None:
    start = utc(2024, 1, 1)
    manual_on_boundary = ManualReset(
        at=utc(2024, 1, 3), anchor=utc(2024, 1, 3), preserve_overage=True
    )
    manual_mid_day = ManualReset(at=utc(2024, 1, 4, 12), anchor=utc(2024, 1, 4, 12))
    timeline = daily(start, start, manual_on_boundary, manual_mid_day)
    resets = timeline.resets_between(start, utc(2024, 1, 6))
    assert resets == [
        ResetPoint(utc(2024, 1, 2)),
        ResetPoint(utc(2024, 1, 3), manual_on_boundary),
        ResetPoint(utc(2024, 1, 4)),
        ResetPoint(utc(2024, 1, 4, 12), manual_mid_day),
        ResetPoint(utc(2024, 1, 5, 12)),
    ]
    assert resets[1].preserves_overage(default=False) is True
    assert resets[0].preserves_overage(default=True) is True
    assert timeline.is_reset(utc(2024, 1, 4, 12))
    assert not timeline.is_reset(utc(2024, 1, 5))
    assert not timeline.is_reset(start)  # measurement start is not a reset


def test_manual_resets_must_increase() -> None:
    start = utc(2024, 1, 1)
    with pytest.raises(ValueError, match="strictly increasing"):
        daily(start, start, ManualReset(at=start, anchor=start))
    with pytest.raises(ValueError, match="strictly increasing"):
        daily(
            start,
            start,
            ManualReset(at=utc(2024, 1, 3), anchor=utc(2024, 1, 3)),
            ManualReset(at=utc(2024, 1, 2), anchor=utc(2024, 1, 2)),
        )


class TestResetValidation:
    """OpenMeter's reset rules: not in the future, not before the period, after the last."""

    start = utc(2024, 1, 1)
    now = utc(2024, 1, 1, 3, 0, 40)

    def timeline(self) -> UsagePeriodTimeline:
        return daily(self.start, self.start)

    def test_a_reset_now_or_earlier_in_the_period_is_accepted(self) -> None:
        assert self.timeline().validate_manual_reset(self.now, self.now) == utc(2024, 1, 1, 3, 0)
        assert self.timeline().validate_manual_reset(utc(2024, 1, 1, 1), self.now) == utc(
            2024, 1, 1, 1
        )

    def test_a_reset_at_an_automatic_boundary_is_accepted(self) -> None:
        now = utc(2024, 1, 2, 5)
        assert self.timeline().validate_manual_reset(utc(2024, 1, 2), now) == utc(2024, 1, 2)

    @pytest.mark.parametrize(
        ("requested", "message"),
        [
            (utc(2024, 1, 1, 3, 1), "in the future"),
            (utc(2023, 12, 31, 23), "before the current usage period start"),
            (utc(2024, 1, 1), "must be after the last reset"),
        ],
    )
    def test_rejected_resets(self, requested: datetime, message: str) -> None:
        with pytest.raises(InvalidInput, match=message) as raised:
            self.timeline().validate_manual_reset(requested, self.now)
        assert raised.value.field == "effectiveAt"

    def test_two_resets_in_the_same_minute_are_refused(self) -> None:
        first = self.timeline().validate_manual_reset(utc(2024, 1, 1, 3, 0, 10), self.now)
        after, _ = self.timeline().with_manual_reset(
            first, retain_anchor=False, preserve_overage=False
        )
        with pytest.raises(InvalidInput, match="must be after the last reset"):
            after.validate_manual_reset(utc(2024, 1, 1, 3, 0, 30), self.now)

    def test_a_reset_before_an_earlier_manual_reset_is_refused(self) -> None:
        after, _ = self.timeline().with_manual_reset(
            utc(2024, 1, 1, 2), retain_anchor=False, preserve_overage=False
        )
        with pytest.raises(InvalidInput, match="before the current usage period start"):
            after.validate_manual_reset(utc(2024, 1, 1, 1, 59), self.now)

    def test_a_reset_before_a_later_reset_is_refused_even_if_it_lies_in_the_future(self) -> None:
        # A stored reset after `now` (clock skew between servers) still closes the past.
        after, _ = self.timeline().with_manual_reset(
            utc(2024, 1, 1, 4), retain_anchor=True, preserve_overage=False
        )
        with pytest.raises(InvalidInput, match="must be after the last reset"):
            after.validate_manual_reset(utc(2024, 1, 1, 2), self.now)
