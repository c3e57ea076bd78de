"""One benchmark figure: its value, the reference measured in the same run, the ratio, the
target and whether it was met; printed one line each, and kept for the JSON results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    id: str
    database: str
    what: str
    value: float | None
    unit: str
    reference: float | None = None
    reference_what: str = ""
    target: str = ""
    judge: Callable[[float | None, float | None], bool] | None = None
    tool: str = ""
    lower_bound: bool = False
    """The value is at least this (an open-loop run ended with requests still unanswered)."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference

    @property
    def passed(self) -> bool | None:
        if self.judge is None or self.value is None:
            return None
        return self.judge(self.value, self.ratio)

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: "-"}[self.passed]

    def line(self) -> str:
        value = _number(self.value, self.unit, self.lower_bound)
        reference = _number(self.reference, self.unit, False) if self.reference is not None else "-"
        ratio = f"{self.ratio:.3f}x" if self.ratio is not None else "-"
        return (
            f"{self.id:<4} {self.database:<8} {self.what:<46} {value:>14}  ref {reference:>12}"
            f" ({self.reference_what})  ratio {ratio:>8}  target {self.target or '-'}"
            f"  {self.verdict}  [{self.tool}]"
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("judge")
        data.update(ratio=self.ratio, passed=self.passed)
        return data


def _number(value: float | None, unit: str, lower_bound: bool) -> str:
    if value is None:
        return "n/a"
    prefix = ">=" if lower_bound else ""
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}"
    return f"{prefix}{text} {unit}"
