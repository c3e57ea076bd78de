"""The sizes of a benchmark run: `quick` for development (about a minute per database), `full`
for the figures of issue 11 (10,000,000 events; tens of minutes, most of it the first build)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Scale:
    name: str
    subjects: int
    """Population subjects, one customer each, with Zipf-skewed usage (rank r gets ~1/r)."""
    population_events: int
    whale_events: int
    """Events in the B3 subject's current period (compared with `small_events`)."""
    b7_customers: int
    b7_events_per_entitlement: int
    b2_customers: int
    """How many distinct customers B2's checks rotate over."""
    b1_events: int
    n1_events: int
    """Events of each of N1's eight passes: at quick scale more than B1's, since a pass of a
    second (20,000 events) varied by a third from one pass to the next, too much to tell a
    tenth apart."""
    duration: float
    """Seconds of each load phase."""
    b5_rounds: int
    stage_fraction: float = 0.1
    """B6 compares memory with this fraction of the population stored (1M of 10M)."""
    small_events: int = 1000
    b7_features: int = 100
    chunk_events: int = 10_000
    zipf_exponent: float = 1.0
    late_fraction: float = 0.02
    duplicate_fraction: float = 0.005

    def parameters(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Scale(
    name="quick",
    subjects=1_000,
    population_events=100_000,
    whale_events=100_000,
    b7_customers=20,
    b7_events_per_entitlement=2,
    b2_customers=200,
    b1_events=20_000,
    n1_events=60_000,
    duration=3.0,
    b5_rounds=10,
)

FULL = Scale(
    name="full",
    subjects=10_000,
    population_events=10_000_000,
    whale_events=10_000_000,
    b7_customers=100,
    b7_events_per_entitlement=10,
    b2_customers=500,
    b1_events=500_000,
    n1_events=500_000,
    duration=10.0,
    b5_rounds=20,
)

TINY = Scale(
    name="tiny",
    subjects=20,
    population_events=2_000,
    whale_events=1_500,
    b7_customers=2,
    b7_events_per_entitlement=1,
    b2_customers=10,
    b1_events=2_000,
    n1_events=2_000,
    duration=0.5,
    b5_rounds=2,
    small_events=100,
    b7_features=5,
    chunk_events=500,
)
"""For the tests of the benchmark itself."""

SCALES = {scale.name: scale for scale in (QUICK, FULL, TINY)}
