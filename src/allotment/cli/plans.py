"""`allotment plans ...`: create from a plan file, list, show, publish, archive, next, delete."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from allotment.cli.options import JsonFlag
from allotment.cli.output import plain_errors, print_exact_json, print_records, time_cell, time_text
from allotment.cli.state import STATE
from allotment.domain.plan_documents import terms_document, terms_from_file
from allotment.domain.plans import Plan, PlanFilter, PlanStatus
from allotment.errors import InvalidInput
from allotment.services import plans

app = typer.Typer(
    help="Plans: versioned bundles of features with entitlement templates.", no_args_is_help=True
)

PlanArgument = Annotated[str, typer.Argument(help="The plan's id, or its key")]


def plan_document(plan: Plan, now: datetime) -> dict[str, Any]:
    """The plan in the API's field names."""
    document: dict[str, Any] = {
        "id": plan.id,
        "key": plan.key,
        "version": plan.version,
        "status": plan.status(now).value,
        **terms_document(plan.terms),
        "effectiveFrom": time_text(plan.effective_from),
        "effectiveTo": time_text(plan.effective_to),
        "createdAt": time_text(plan.created_at),
        "updatedAt": time_text(plan.updated_at),
    }
    for phase in document["phases"]:
        for card in phase["rateCards"]:
            template = card.get("entitlementTemplate") or {}
            if template.get("issueAfterReset") is not None:
                # Stored as text; the API writes an exact number.
                template["issueAfterReset"] = Decimal(template["issueAfterReset"])
    return {name: value for name, value in document.items() if value is not None}


def _features(plan: Plan) -> str:
    keys = {c.feature_key for p in plan.terms.phases for c in p.rate_cards if c.feature_key}
    return ", ".join(sorted(keys))


def _print(title: str, items: list[Plan], as_json: bool) -> None:
    now = STATE.context.clock()
    print_records(
        title,
        ["key", "version", "status", "name", "phases", "features", "id", "effective from"],
        [
            [
                p.key,
                p.version,
                p.status(now).value,
                p.terms.name,
                len(p.terms.phases),
                _features(p),
                p.id,
                time_cell(p.effective_from),
            ]
            for p in items
        ],
        [plan_document(p, now) for p in items],
        as_json,
        prose={"name", "features"},
    )


def _show(plan: Plan, title: str, as_json: bool) -> None:
    if as_json:
        print_exact_json(plan_document(plan, STATE.context.clock()))
    else:
        _print(title, [plan], as_json=False)


def _read_plan_file(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"the plan file is not JSON: {error}", field="--file") from error


@app.command("create")
def create(
    file: Annotated[
        str, typer.Option("--file", help="A plan as JSON (OpenMeter's PlanCreate), or - for stdin")
    ],
    key: Annotated[str | None, typer.Option(help="The plan's key (default: the file's)")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish it at once")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft plan from a plan file."""
    with plain_errors():
        file_key, terms = terms_from_file(_read_plan_file(file))
        chosen = key or file_key
        if chosen is None:
            raise InvalidInput("the plan needs a key (--key, or key in the file)", field="key")
        plan = plans.create_plan(STATE.context, chosen, terms)
        if publish:
            plan = plans.publish_plan(STATE.context, plan.id)
    _show(plan, "Created plan", as_json)


@app.command("list")
def list_plans(
    statuses: Annotated[
        list[PlanStatus] | None, typer.Option("--status", help="Only plans in this status")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List plans, every version, oldest first."""
    filters = PlanFilter(statuses=tuple(statuses or ()))
    with plain_errors():
        result = plans.list_plans(STATE.context, filters)
    _print("Plans", list(result.items), as_json)


@app.command("get")
def get(
    plan: PlanArgument,
    latest: Annotated[
        bool, typer.Option("--latest", help="A key's newest version, even a draft")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a plan (a key names its active version)."""
    with plain_errors():
        found = plans.get_plan(STATE.context, plan, include_latest=latest)
    _show(found, f"Plan {found.key} v{found.version}", as_json)


@app.command("publish")
def publish(plan: PlanArgument, as_json: JsonFlag = False) -> None:
    """Make a draft the key's active version (the one active until now is archived)."""
    with plain_errors():
        published = plans.publish_plan(STATE.context, plan)
    _show(published, "Published plan", as_json)


@app.command("archive")
def archive(plan: PlanArgument, as_json: JsonFlag = False) -> None:
    """No new subscriptions from now; running ones keep their terms."""
    with plain_errors():
        archived = plans.archive_plan(STATE.context, plan)
    _show(archived, "Archived plan", as_json)


@app.command("next")
def next_version(plan: PlanArgument, as_json: JsonFlag = False) -> None:
    """Start the next version of a plan as a draft, with the same terms."""
    with plain_errors():
        created = plans.next_plan(STATE.context, plan)
    _show(created, "New draft", as_json)


@app.command("delete")
def delete(plan: PlanArgument) -> None:
    """Delete a draft or archived plan version."""
    with plain_errors():
        plans.delete_plan(STATE.context, plan)
    typer.echo(f"deleted {plan}", err=True)
