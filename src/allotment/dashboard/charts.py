"""Charts drawn on the server as SVG: no JavaScript, no build step, nothing to download.

Geometry is computed in Decimal like every number here and rounded to a tenth of a unit only
where it becomes a coordinate; each point carries its exact value in a tooltip (`<title>`), and
the pages show the same numbers in a table beside the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from markupsafe import Markup, escape

from allotment.dashboard.formatting import number, percent, when, when_short

WIDTH = Decimal(640)
HEIGHT = Decimal(250)
LEFT, RIGHT, TOP, BOTTOM = Decimal(84), Decimal(16), Decimal(12), Decimal(30)
PALETTE_SIZE = 8
_TENTH = Decimal("0.1")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Decimal | None]
    """One value per window; None draws nothing there."""
    kind: Literal["line", "bar"] = "line"


def _coordinate(value: Decimal) -> str:
    return str(value.quantize(_TENTH))


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten)
    that is at least `value`; 1 for nothing to show."""
    if value <= 0:
        return Decimal(1)
    base = Decimal(10) ** value.adjusted()
    for multiple in (
        Decimal(m) for m in ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8", "10")
    ):
        if multiple * base >= value:
            return multiple * base
    return 10 * base  # pragma: no cover - ten times base always suffices


def time_chart(
    windows: Sequence[datetime], series: Sequence[Series], *, label: str, step: bool = False
) -> Markup:
    """Values per time window: bars and lines over one shared scale, a tick per quarter.

    `step` draws lines as steps (a balance holds its value until the next window).
    """
    count = len(windows)
    values = [v for s in series for v in s.values if v is not None]
    high = nice_ceiling(max(values, default=Decimal(0)))
    lowest = min(values, default=Decimal(0))
    low = -nice_ceiling(-lowest) if lowest < 0 else Decimal(0)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(count, 1)

    def y_of(value: Decimal) -> Decimal:
        return TOP + (high - value) / (high - low) * plot_height

    def x_of(index: int) -> Decimal:
        return LEFT + slot * index + slot / 2

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for tick in range(5):
        tick_value = low + (high - low) * tick / 4
        tick_y = _coordinate(y_of(tick_value))
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{tick_y}" y2="{tick_y}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{tick_y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(number(tick_value))}</text>'
        )
    if count:
        label_every = max(1, -(-count // 5))
        for index in range(0, count, label_every):
            # The last label ends at the plot's edge instead of running past it.
            anchor, x = "middle", x_of(index)
            if index == count - 1 and count > 1:
                anchor, x = "end", WIDTH - RIGHT
            parts.append(
                f'<text class="axis" x="{_coordinate(x)}" y="{HEIGHT - 10}" '
                f'text-anchor="{anchor}">{escape(when_short(windows[index]))}</text>'
            )
    bars = [s for s in series if s.kind == "bar"]
    for position, (palette, each) in enumerate(
        (i, s) for i, s in enumerate(series) if s.kind == "bar"
    ):
        width = slot * Decimal("0.8") / len(bars)
        for index, bar_value in enumerate(each.values):
            if bar_value is None:
                continue
            top, bottom = y_of(max(bar_value, Decimal(0))), y_of(min(bar_value, Decimal(0)))
            x = LEFT + slot * index + slot * Decimal("0.1") + width * position
            parts.append(
                f'<rect class="s{palette % PALETTE_SIZE}" x="{_coordinate(x)}" '
                f'y="{_coordinate(top)}" width="{_coordinate(width)}" '
                f'height="{_coordinate(max(bottom - top, Decimal(0)))}">'
                f"<title>{escape(_tooltip(windows[index], each.name, bar_value))}</title></rect>"
            )
    for palette, each in enumerate(series):
        if each.kind != "line":
            continue
        points: list[tuple[Decimal, Decimal]] = []
        marks = []
        for index, point in enumerate(each.values):
            if point is None:
                continue
            x, y = x_of(index), y_of(point)
            if step and points:
                points.append((x, points[-1][1]))
            points.append((x, y))
            marks.append(
                f'<circle class="s{palette % PALETTE_SIZE}" cx="{_coordinate(x)}" '
                f'cy="{_coordinate(y)}" r="{"3" if count <= 60 else "1.5"}">'
                f"<title>{escape(_tooltip(windows[index], each.name, point))}</title></circle>"
            )
        if points:
            path = " ".join(f"{_coordinate(x)},{_coordinate(y)}" for x, y in points)
            parts.append(f'<polyline class="line s{palette % PALETTE_SIZE}" points="{path}"/>')
        parts.extend(marks)
    axis_y = _coordinate(y_of(Decimal(0)))
    parts.append(
        f'<line class="axis-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{axis_y}" y2="{axis_y}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _tooltip(start: datetime, name: str, value: Decimal) -> str:
    return f"{when(start)}: {name} {number(value)}"


def usage_bar(usage: Decimal | None, available: Decimal | None, *, over: bool) -> Markup:
    """Used against available, as a thin bar; full and marked when over the limit."""
    used = usage or Decimal(0)
    total = available or Decimal(0)
    share = Decimal(1) if total == 0 else min(used / total, Decimal(1))
    if total == 0 and used == 0:
        share = Decimal(0)
    text = (
        f"{percent(used / total)} used" if total else ("over the limit" if over else "no allowance")
    )
    state = "over" if over else ("high" if share >= Decimal("0.8") else "ok")
    return Markup(
        f'<svg class="usage-bar {state}" viewBox="0 0 100 8" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(text)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(text)}</title>"
        f'<rect class="track" width="100" height="8" rx="2"/>'
        f'<rect class="used" width="{_coordinate(share * 100)}" height="8" rx="2"/></svg>'
    )
