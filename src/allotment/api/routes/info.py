"""Small endpoints the SDKs call: supported currencies, the progress of a meter query sent with
a `clientId`, and OpenMeter's debug event counters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field

from allotment.api.deps import Context
from allotment.api.progress import ProgressTracker
from allotment.api.routing import READ, ApiRoute
from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.domain.currencies import CURRENCIES
from allotment.errors import NotFound
from allotment.services import events as events_service

router = APIRouter(route_class=ApiRoute, tags=["info"])


class CurrencyOut(WireModel):
    code: str
    name: str
    symbol: str
    subunits: int = Field(description="Decimal places of the minor unit.")


class ProgressOut(WireModel):
    success: int
    failed: int
    total: int
    updated_at: UtcDateTime


@router.get("/api/v1/info/currencies", dependencies=[READ], response_model=list[CurrencyOut])
def list_currencies() -> list[CurrencyOut]:
    return [
        CurrencyOut(code=c.code, name=c.name, symbol=c.symbol, subunits=c.subunits)
        for c in CURRENCIES
    ]


@router.get(
    "/api/v1/info/progress/{id}",
    dependencies=[READ],
    response_model=ProgressOut,
    description=(
        "How the meter query sent with this `clientId` ended (queries are answered in one "
        "request, so a known one is complete or failed). Kept per server process for an hour."
    ),
)
def get_progress(
    request: Request, client_id: Annotated[str, Path(alias="id", min_length=1, max_length=36)]
) -> ProgressOut:
    tracker: ProgressTracker = request.app.state.progress
    progress = tracker.get(client_id)
    if progress is None:
        raise NotFound(f"no progress for client id {client_id}", field="id")
    return ProgressOut(
        success=progress.success,
        failed=progress.failed,
        total=progress.total,
        updated_at=progress.updated_at,
    )


class _EventCounters(Collector):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily(
            "openmeter_events", "Number of ingested events since midnight UTC", labels=["subject"]
        )
        for subject, count in sorted(self.counts.items()):
            family.add_metric([subject], count)
        yield family


@router.get(
    "/api/v1/debug/metrics",
    dependencies=[READ],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    description=(
        "OpenMeter's event counters in Prometheus text format: `openmeter_events_total` per "
        "subject, counting events stored since midnight UTC."
    ),
)
def debug_metrics(context: Context) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_EventCounters(events_service.events_today_by_subject(context)))
    return Response(content=generate_latest(registry), media_type="text/plain; version=0.0.4")
