"""Wire shapes of event corrections (an Allotment extension: OpenMeter has no such API)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from allotment.api.schemas.common import UtcDateTime, WireModel
from allotment.domain.corrections import (
    REASON_LENGTH_MAX,
    CorrectionAction,
    EventCorrection,
    EventRef,
)

# The bounds ingest puts on source and id: no stored event has a longer one.
_EVENT_KEY = Annotated[str, Field(min_length=1, max_length=256)]


class EventCorrectionBody(WireModel):
    source: _EVENT_KEY
    id: _EVENT_KEY
    action: CorrectionAction
    reason: Annotated[str, Field(min_length=1, max_length=REASON_LENGTH_MAX)]

    def event(self) -> EventRef:
        return EventRef(source=self.source, id=self.id)


class EventCorrectionResponse(WireModel):
    id: str
    source: str
    event_id: str
    event_type: str
    subject: str
    event_time: UtcDateTime
    action: CorrectionAction
    reason: str
    api_key_id: str | None = None
    created_at: UtcDateTime

    @classmethod
    def of(cls, correction: EventCorrection) -> EventCorrectionResponse:
        return cls(
            id=correction.id,
            source=correction.event.source,
            event_id=correction.event.id,
            event_type=correction.event_type,
            subject=correction.event_subject,
            event_time=correction.event_time,
            action=correction.action,
            reason=correction.reason,
            api_key_id=correction.api_key_id,
            created_at=correction.created_at,
        )
