"""How a figure is judged and printed: the ratio is value over reference, a lower bound is
marked, and a figure without a judge is context, never a pass."""

from __future__ import annotations

from bench.dataset import ranks_for_b2
from bench.figures import Figure
from bench.scales import FULL, QUICK
from bench.suite import Expectations


def _figure(value: float | None, reference: float | None, **options: object) -> Figure:
    return Figure(
        "B2a",
        "sqlite",
        "check",
        value,
        "req/s",
        reference,
        "bare",
        ">= 0.5x",
        lambda _v, r: r is not None and r >= 0.5,
        "loadgen",
        **options,  # type: ignore[arg-type]
    )


def test_ratio_and_verdict() -> None:
    assert _figure(60, 100).ratio == 0.6
    assert _figure(60, 100).verdict == "pass"
    assert _figure(40, 100).verdict == "MISS"
    assert _figure(None, 100).verdict == "-"
    assert _figure(40, 0).ratio is None


def test_line_carries_every_part_and_marks_lower_bounds() -> None:
    line = _figure(4150, 10.9, lower_bound=True).line()
    for part in (
        ">=4,150 req/s",
        "10.9 req/s",
        "(bare)",
        "380.734x",
        ">= 0.5x",
        "pass",
        "[loadgen]",
    ):
        assert part in line


def test_context_figures_are_never_judged() -> None:
    context = Figure("B2c", "sqlite", "context", 3.0, "ms", 1.0)
    assert (context.passed, context.verdict) == (None, "-")
    assert context.as_json()["ratio"] == 3.0


def test_expectations_follow_every_write() -> None:
    expected = Expectations({"s": {"a": 5, "b": 7}})
    expected.add("s", "a", 3)
    expected.add("t", "c", 1)
    assert (expected.usage("s"), expected.usage("t"), expected.usage("u")) == (15, 1, 0)


def test_b2_customers_skip_the_heaviest_and_stay_in_range() -> None:
    for scale in (QUICK, FULL):
        ranks = ranks_for_b2(scale)
        assert len(ranks) == scale.b2_customers
        assert len(set(ranks)) == len(ranks)
        assert min(ranks) >= max(2, scale.subjects // 100)
        assert max(ranks) <= scale.subjects
