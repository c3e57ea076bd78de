"""`allotment meters ...`: create, list, show and delete the meters features count usage with."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from allotment.cli.options import (
    TIME_HELP,
    JsonFlag,
    MetadataOption,
    option_names,
    parse_pairs,
    parse_time,
)
from allotment.cli.output import (
    plain_errors,
    print_record,
    print_records,
    time_cell,
    time_text,
    without_unset,
)
from allotment.cli.state import STATE
from allotment.domain.meters import Aggregation, Meter, MeterDefinition
from allotment.services import meters

app = typer.Typer(help="Create, list, show and delete meters.", no_args_is_help=True)

MeterArgument = Annotated[str, typer.Argument(metavar="METER", help="The meter's slug or id")]

OPTIONS = {
    "meterIdOrSlug": "METER",
    "slug": "--slug",
    "aggregation": "--aggregation",
    "eventType": "--event-type",
    "eventFrom": "--event-from",
    "valueProperty": "--value-property",
    "groupBy": "--group-by",
    "name": "--name",
    "description": "--description",
    "metadata": "--metadata",
}


def meter_document(meter: Meter) -> dict[str, Any]:
    """The meter as the API shows it (camelCase, unset fields left out)."""
    document: dict[str, Any] = {
        "id": meter.id,
        "slug": meter.slug,
        "name": meter.name,
        "description": meter.description,
        "metadata": None if meter.metadata is None else dict(meter.metadata),
        "aggregation": meter.aggregation.value,
        "eventType": meter.event_type,
        "eventFrom": time_text(meter.event_from),
        "valueProperty": meter.value_property,
        "groupBy": dict(meter.group_by) or None,
        "createdAt": time_text(meter.created_at),
        "updatedAt": time_text(meter.updated_at),
        "deletedAt": time_text(meter.deleted_at),
    }
    return without_unset(document)


@app.command("create")
def create(
    slug: Annotated[str, typer.Option("--slug", help="e.g. tokens")],
    event_type: Annotated[str, typer.Option("--event-type", help="Events of this type count")],
    aggregation: Annotated[
        Aggregation, typer.Option("--aggregation", case_sensitive=False, help="How to add up")
    ],
    value_property: Annotated[
        str | None,
        typer.Option("--value-property", help="JSONPath of the value, e.g. $.tokens (not COUNT)"),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="KEY=JSONPATH, e.g. model=$.model (repeatable)"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Default: the slug")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    event_from: Annotated[
        str | None, typer.Option("--event-from", help=f"Ignore earlier events; {TIME_HELP}")
    ] = None,
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a meter.

    Example: allotment meters create --slug tokens --event-type prompt --aggregation SUM
    --value-property '$.tokens' --group-by 'model=$.model'
    """
    with plain_errors(), option_names(OPTIONS):
        definition = MeterDefinition(
            slug=slug,
            aggregation=aggregation,
            event_type=event_type,
            name=name,
            description=description,
            metadata=parse_pairs(metadata, "--metadata"),
            event_from=parse_time(event_from, "--event-from"),
            value_property=value_property,
            group_by=parse_pairs(group_by, "--group-by") or {},
        )
        meter = meters.create_meter(STATE.context, definition)
    _show(meter, "Created meter", as_json)


@app.command("list")
def list_meters(
    include_deleted: Annotated[bool, typer.Option("--include-deleted")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List meters by slug."""
    with plain_errors():
        items = meters.list_meters(STATE.context, include_deleted=include_deleted)
    print_records(
        "Meters",
        ["slug", "aggregation", "event type", "value", "group by", "deleted", "id"],
        [
            [
                m.slug,
                m.aggregation.value,
                m.event_type,
                m.value_property or "",
                _group_by_text(m),
                time_cell(m.deleted_at),
                m.id,
            ]
            for m in items
        ],
        [meter_document(meter) for meter in items],
        as_json,
        prose={"group by"},
    )


@app.command("get")
def get(meter: MeterArgument, as_json: JsonFlag = False) -> None:
    """Show one meter."""
    with plain_errors(), option_names(OPTIONS):
        found = meters.get_meter(STATE.context, meter)
    _show(found, "Meter", as_json)


@app.command("delete")
def delete(meter: MeterArgument) -> None:
    """Delete a meter; refused while a live feature reads it."""
    with plain_errors(), option_names(OPTIONS):
        found = meters.get_meter(STATE.context, meter)
        meters.delete_meter(STATE.context, found.id)
    typer.echo(f"deleted meter {found.slug} ({found.id})", err=True)


def _group_by_text(meter: Meter) -> str:
    return ", ".join(f"{key}={path}" for key, path in sorted(meter.group_by.items()))


def _show(meter: Meter, title: str, as_json: bool) -> None:
    rows: list[list[Any]] = [
        ["id", meter.id],
        ["slug", meter.slug],
        ["name", meter.name],
        ["aggregation", meter.aggregation.value],
        ["event type", meter.event_type],
        ["value", meter.value_property or ""],
        ["group by", _group_by_text(meter)],
    ]
    if meter.event_from is not None:
        rows.append(["events from", time_cell(meter.event_from)])
    if meter.description:
        rows.append(["description", meter.description])
    rows.append(["created", time_cell(meter.created_at)])
    if meter.deleted_at is not None:
        rows.append(["deleted", time_cell(meter.deleted_at)])
    print_record(title, rows, meter_document(meter), as_json)
