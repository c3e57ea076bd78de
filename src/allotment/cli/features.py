"""`allotment features ...`: create, list, show and archive features."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from allotment.cli.output import plain_errors, print_json, print_table
from allotment.cli.state import STATE
from allotment.domain.features import (
    Feature,
    FeatureFilter,
    NewFeature,
    group_by_filters_from_wire,
)
from allotment.domain.listing import MAX_PAGE_SIZE, Window
from allotment.errors import InvalidInput
from allotment.services import features

app = typer.Typer(help="Create, list, show and archive features.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape)")]


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def feature_document(feature: Feature) -> dict[str, Any]:
    """The feature as the API shows it (camelCase, unset fields left out)."""
    document: dict[str, Any] = {
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "metadata": dict(feature.metadata) if feature.metadata else None,
        "meterSlug": feature.meter_slug,
        "meterGroupByFilters": feature.equality_filters or None,
        "advancedMeterGroupByFilters": {
            key: value.to_document() for key, value in feature.group_by_filters.items()
        }
        or None,
        "createdAt": _time(feature.created_at),
        "updatedAt": _time(feature.updated_at),
        "archivedAt": _time(feature.archived_at),
    }
    return {name: value for name, value in document.items() if value is not None}


def _filters_text(feature: Feature) -> str:
    return ", ".join(
        f"{key} {value.operator} {value.operand}"
        if value.operator != "$eq"
        else f"{key}={value.operand}"
        for key, value in sorted(feature.group_by_filters.items())
    )


def _print_features(title: str, items: list[Feature]) -> None:
    print_table(
        title,
        ["key", "name", "meter", "filters", "id", "created", "archived"],
        [
            [
                f.key,
                f.name,
                f.meter_slug or "",
                _filters_text(f),
                f.id,
                _time(f.created_at),
                _time(f.archived_at) or "",
            ]
            for f in items
        ],
    )


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """`model=gpt-4` options as a map; the first `=` separates key from value."""
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, text = value.partition("=")
        if not separator or not key:
            raise InvalidInput(f"{option} expects KEY=VALUE, got {value!r}", field=option)
        pairs[key] = text
    return pairs


@app.command("create")
def create(
    key: Annotated[str, typer.Option(help="Lowercase snake case, e.g. ai_tokens")],
    name: Annotated[str, typer.Option(help="A human-readable name")],
    meter_slug: Annotated[
        str | None, typer.Option("--meter-slug", help="The meter that measures its usage")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="Count only usage with this group-by value: KEY=VALUE (repeatable)"
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", help="KEY=VALUE (repeatable)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a feature."""
    with plain_errors():
        new = NewFeature(
            key=key,
            name=name,
            meter_slug=meter_slug,
            group_by_filters=group_by_filters_from_wire(_pairs(filters or [], "--filter"), None),
            metadata=_pairs(metadata, "--metadata") if metadata else None,
        )
        feature = features.create_feature(STATE.context, new)
    if as_json:
        print_json(feature_document(feature))
        return
    _print_features("Created feature", [feature])


@app.command("list")
def list_features(
    include_archived: Annotated[bool, typer.Option("--include-archived")] = False,
    meter_slugs: Annotated[
        list[str] | None, typer.Option("--meter-slug", help="Only features of this meter")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List features by key (live ones unless --include-archived)."""
    criteria = FeatureFilter(
        meter_slugs=tuple(meter_slugs or ()), include_archived=include_archived
    )
    items: list[Feature] = []
    with plain_errors():
        while True:
            window = Window(offset=len(items), limit=MAX_PAGE_SIZE)
            result = features.list_features(STATE.context, criteria, window)
            items.extend(result.items)
            if len(items) >= result.total_count or not result.items:
                break
    if as_json:
        print_json([feature_document(feature) for feature in items])
        return
    _print_features("Features", items)


@app.command("get")
def get(
    feature: Annotated[str, typer.Argument(help="The feature's key or id")],
    as_json: JsonFlag = False,
) -> None:
    """Show one live feature."""
    with plain_errors():
        found = features.get_feature(STATE.context, feature)
    if as_json:
        print_json(feature_document(found))
        return
    _print_features(f"Feature {found.key}", [found])


@app.command("archive")
def archive(feature: Annotated[str, typer.Argument(help="The feature's key or id")]) -> None:
    """Archive a feature: its key is free again; its entitlements keep working."""
    with plain_errors():
        archived = features.archive_feature(STATE.context, feature)
    typer.echo(f"archived {archived.key} ({archived.id})", err=True)
