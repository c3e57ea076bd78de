"""`allotment features ...`: create, list, show and archive features."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from allotment.cli.options import JsonFlag, MetadataOption, parse_pairs
from allotment.cli.output import (
    plain_errors,
    print_exact_json,
    print_records,
    time_cell,
    time_text,
    without_unset,
)
from allotment.cli.paging import every_page
from allotment.cli.state import STATE
from allotment.domain.features import (
    Feature,
    FeatureFilter,
    NewFeature,
    group_by_filters_from_wire,
)
from allotment.services import features

app = typer.Typer(help="Create, list, show and archive features.", no_args_is_help=True)


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
        "createdAt": time_text(feature.created_at),
        "updatedAt": time_text(feature.updated_at),
        "archivedAt": time_text(feature.archived_at),
    }
    return without_unset(document)


def _filters_text(feature: Feature) -> str:
    return ", ".join(
        f"{key} {value.operator} {value.operand}"
        if value.operator != "$eq"
        else f"{key}={value.operand}"
        for key, value in sorted(feature.group_by_filters.items())
    )


def _print_features(title: str, items: list[Feature], as_json: bool) -> None:
    print_records(
        title,
        ["key", "name", "meter", "filters", "id", "created", "archived"],
        [
            [
                f.key,
                f.name,
                f.meter_slug or "",
                _filters_text(f),
                f.id,
                time_cell(f.created_at),
                time_cell(f.archived_at),
            ]
            for f in items
        ],
        [feature_document(feature) for feature in items],
        as_json,
        prose={"name", "filters"},
    )


def _show(feature: Feature, title: str, as_json: bool) -> None:
    """One feature: its JSON document, or a one-row table like the list's."""
    if as_json:
        print_exact_json(feature_document(feature))
    else:
        _print_features(title, [feature], as_json=False)


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
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a feature."""
    with plain_errors():
        new = NewFeature(
            key=key,
            name=name,
            meter_slug=meter_slug,
            group_by_filters=group_by_filters_from_wire(parse_pairs(filters, "--filter"), None),
            metadata=parse_pairs(metadata, "--metadata"),
        )
        feature = features.create_feature(STATE.context, new)
    _show(feature, "Created feature", as_json)


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
    with plain_errors():
        items = every_page(lambda window: features.list_features(STATE.context, criteria, window))
    _print_features("Features", items, as_json)


@app.command("get")
def get(
    feature: Annotated[str, typer.Argument(help="The feature's key or id")],
    as_json: JsonFlag = False,
) -> None:
    """Show one live feature."""
    with plain_errors():
        found = features.get_feature(STATE.context, feature)
    _show(found, f"Feature {found.key}", as_json)


@app.command("archive")
def archive(feature: Annotated[str, typer.Argument(help="The feature's key or id")]) -> None:
    """Archive a feature: its key is free again; its entitlements keep working."""
    with plain_errors():
        archived = features.archive_feature(STATE.context, feature)
    typer.echo(f"archived {archived.key} ({archived.id})", err=True)
