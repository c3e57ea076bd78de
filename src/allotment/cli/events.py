"""`allotment events ...`: repair bad data by excluding stored events from usage, or restoring
them, and read the audit trail of such corrections."""

from __future__ import annotations

from typing import Annotated

import typer

from allotment.cli.options import JsonFlag
from allotment.cli.output import plain_errors, print_record, print_records, time_cell, time_text
from allotment.cli.state import STATE
from allotment.domain.corrections import CorrectionAction, EventCorrection, EventRef
from allotment.services import corrections

app = typer.Typer(help="Exclude stored events from usage, or restore them.", no_args_is_help=True)

Source = Annotated[str, typer.Option(help="The event's CloudEvents source")]
EventId = Annotated[str, typer.Option("--id", help="The event's CloudEvents id")]
Reason = Annotated[str, typer.Option(help="Why: recorded in the audit trail")]


def _document(correction: EventCorrection) -> dict[str, object]:
    return {
        "id": correction.id,
        "source": correction.event.source,
        "eventId": correction.event.id,
        "eventType": correction.event_type,
        "subject": correction.event_subject,
        "eventTime": time_text(correction.event_time),
        "action": correction.action.value,
        "reason": correction.reason,
        "apiKeyId": correction.api_key_id,
        "createdAt": time_text(correction.created_at),
    }


def _correct(
    source: str, event_id: str, action: CorrectionAction, reason: str, as_json: bool
) -> None:
    with plain_errors():
        made = corrections.correct(STATE.context, EventRef(source, event_id), action, reason, None)
    document = _document(made)
    print_record(
        f"Event {action.value}d",
        [(name, value) for name, value in document.items() if value is not None],
        document,
        as_json,
    )


@app.command("exclude")
def exclude(source: Source, event_id: EventId, reason: Reason, as_json: JsonFlag = False) -> None:
    """Keep a stored event out of every meter query, entitlement value and roll-up."""
    _correct(source, event_id, CorrectionAction.EXCLUDE, reason, as_json)


@app.command("restore")
def restore(source: Source, event_id: EventId, reason: Reason, as_json: JsonFlag = False) -> None:
    """Count an excluded event again."""
    _correct(source, event_id, CorrectionAction.RESTORE, reason, as_json)


@app.command("corrections")
def list_corrections(
    source: Annotated[str | None, typer.Option(help="With --id: one event's corrections")] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="With --source")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail of corrections, newest first."""
    event = EventRef(source, event_id) if source is not None and event_id is not None else None
    with plain_errors():
        found = corrections.list_corrections(STATE.context, limit, event)
    print_records(
        "Event corrections",
        ["when", "action", "source", "id", "subject", "reason", "by key"],
        [
            [
                time_cell(c.created_at),
                c.action.value,
                c.event.source,
                c.event.id,
                c.event_subject,
                c.reason,
                c.api_key_id or "(CLI)",
            ]
            for c in found
        ],
        [_document(c) for c in found],
        as_json,
    )
