"""`allotment grants ...`: top up metered entitlements, list grants, void them.

Grants made here get the v2 API's defaults, the ones that read naturally: a grant never expires
unless told to, and at a reset it keeps its balance up to its whole amount.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from allotment.cli.entitlement_output import grant_document
from allotment.cli.options import (
    TIME_HELP,
    CustomerArgument,
    CustomerFilterArgument,
    JsonV2Flag,
    MetadataOption,
    customer_ids,
    option_names,
    parse_amount,
    parse_expires_in,
    parse_pairs,
    parse_recurrence,
    parse_time,
)
from allotment.cli.output import (
    amount_text,
    plain_errors,
    print_exact_json,
    print_record,
    print_rows,
    recurrence_text,
    time_cell,
)
from allotment.cli.paging import every_page
from allotment.cli.state import STATE
from allotment.domain.entitlements import EntitlementFilter, GrantFilter
from allotment.domain.grant_requests import (
    ExpirationRequest,
    GrantDefaults,
    GrantRequest,
)
from allotment.errors import InvalidInput
from allotment.services import entitlements, grants
from allotment.services.entitlement_owners import CustomerOwner
from allotment.services.grants import GrantView

app = typer.Typer(help="Top up metered entitlements with grants; list and void them.")


OPTIONS = {
    "customerIdOrKey": "CUSTOMER",
    "entitlementIdOrFeatureKey": "FEATURE",
    "grantId": "GRANT_ID",
    "amount": "--amount",
    "priority": "--priority",
    "effectiveAt": "--effective-at",
    "expiration": "--expires-in",
    "maxRolloverAmount": "--max-rollover",
    "minRolloverAmount": "--min-rollover",
    "recurrence": "--recurrence-interval",
    "recurrence.anchor": "--recurrence-anchor",
    "metadata": "--metadata",
    "at": "--at",
}


@app.command("create")
def create(
    customer: CustomerArgument,
    feature: Annotated[
        str,
        typer.Argument(
            metavar="FEATURE", help="The feature's key (or the id of the metered entitlement)"
        ),
    ],
    amount: Annotated[str, typer.Option("--amount", help="How much, e.g. 500000 or 0.5")],
    priority: Annotated[
        int | None, typer.Option("--priority", help="1 (burns first) to 255; default 1")
    ] = None,
    effective_at: Annotated[
        str | None,
        typer.Option(
            "--effective-at",
            help=f"When it starts (default now; not before the current period); {TIME_HELP}",
        ),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            help="Lifetime from --effective-at, e.g. '1 MONTH', '30 DAYS' (default: never)",
        ),
    ] = None,
    expiration_duration: Annotated[
        str | None,
        typer.Option("--expiration-duration", help="HOUR, DAY, WEEK, MONTH or YEAR"),
    ] = None,
    expiration_count: Annotated[
        int | None, typer.Option("--expiration-count", help="How many of those")
    ] = None,
    max_rollover: Annotated[
        str | None,
        typer.Option(
            "--max-rollover", help="Most of its balance kept at a reset (default: the amount)"
        ),
    ] = None,
    min_rollover: Annotated[
        str | None,
        typer.Option("--min-rollover", help="Balance it is topped up to at a reset (default 0)"),
    ] = None,
    recurrence_interval: Annotated[
        str | None,
        typer.Option(
            "--recurrence-interval", help="Refill to the amount every DAY, WEEK, MONTH, YEAR..."
        ),
    ] = None,
    recurrence_anchor: Annotated[
        str | None,
        typer.Option("--recurrence-anchor", help=f"Default: --effective-at; {TIME_HELP}"),
    ] = None,
    metadata: MetadataOption = None,
    as_json: JsonV2Flag = False,
) -> None:
    """Grant usage to a customer's metered entitlement, e.g. a top-up.

    Defaults are the v2 API's (the v1 API requires an expiration and keeps nothing at resets):
    - it never expires unless --expires-in (or --expiration-duration and --expiration-count);
    - at a reset it keeps its balance up to its whole amount (--max-rollover).
    Grants burn in priority order, then the one expiring first.

    Example: allotment grants create acme ai_tokens --amount 500000 --expires-in '1 MONTH'
    """
    with plain_errors(), option_names(OPTIONS):
        request = GrantRequest(
            amount=parse_amount(amount, "--amount"),
            effective_at=parse_time(effective_at, "--effective-at") or STATE.context.clock(),
            priority=priority,
            expiration=_expiration(expires_in, expiration_duration, expiration_count),
            min_rollover_amount=parse_amount(min_rollover, "--min-rollover"),
            max_rollover_amount=parse_amount(max_rollover, "--max-rollover"),
            recurrence=parse_recurrence(
                recurrence_interval,
                recurrence_anchor,
                "--recurrence-interval",
                "--recurrence-anchor",
            ),
            metadata=parse_pairs(metadata, "--metadata"),
        )
        view = grants.create_grant(
            STATE.context, CustomerOwner(customer), feature, request, GrantDefaults.V2
        )
    print_record("Created grant", _detail_rows(view), grant_document(view), as_json)


def _expiration(
    expires_in: str | None, duration: str | None, count: int | None
) -> ExpirationRequest | None:
    if expires_in is not None:
        if duration is not None or count is not None:
            raise InvalidInput(
                "give either --expires-in or --expiration-duration with --expiration-count",
                field="--expires-in",
            )
        return parse_expires_in(expires_in, "--expires-in")
    if duration is None and count is None:
        return None
    if duration is None or count is None:
        missing = "--expiration-duration" if duration is None else "--expiration-count"
        raise InvalidInput(
            "--expiration-duration and --expiration-count go together", field=missing
        )
    return ExpirationRequest(duration=duration, count=count)


@app.command("list")
def list_grants(
    customer: CustomerFilterArgument = None,
    feature: Annotated[
        str | None, typer.Argument(metavar="FEATURE", help="Only grants for this feature key")
    ] = None,
    include_voided: Annotated[
        bool,
        typer.Option(
            "--include-voided", help="Also voided grants, and those ended with their entitlement"
        ),
    ] = False,
    as_json: JsonV2Flag = False,
) -> None:
    """List grants, oldest first: live ones, or every one with --include-voided."""
    context = STATE.context
    with plain_errors(), option_names(OPTIONS):
        only = customer_ids(context, customer)
        criteria = GrantFilter(
            customers=only,
            features=[feature] if feature is not None else [],
            include_deleted=include_voided,
        )
        views = [
            view
            for view in every_page(
                lambda window: grants.list_grants(context, criteria, window=window)
            )
            if include_voided or view.grant.voided_at is None
        ]
    if as_json:
        print_exact_json([grant_document(view) for view in views])
        return
    owners = _owners(only)
    title = (
        "Grants" + (f" of {customer}" if customer else "") + (f" for {feature}" if feature else "")
    )
    now = context.clock()
    rows = []
    for view in views:
        owner, feature_key = owners.get(view.grant.entitlement_id, ("", ""))
        # A column the arguments already fix says nothing; left empty, it is not shown.
        rows.append(
            [
                "" if customer else owner,
                "" if feature else feature_key,
                amount_text(view.grant.amount),
                view.grant.priority,
                f"{time_cell(view.grant.effective_at)} →\n"
                f"{time_cell(view.grant.expires_at) or 'never'}",
                _rollover_text(view),
                _every(view),
                _state(view, now),
                view.grant.id,
            ]
        )
    columns = ["customer", "feature", "amount", "priority", "effective → expires", "rollover",
               "refill", "state", "id"]  # fmt: skip
    print_rows(title, columns, rows, prose={"rollover", "refill", "state"})


def _owners(customer_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(customer, feature) of each entitlement, so a grant row says whose it is."""
    criteria = EntitlementFilter(customer_ids=customer_ids, include_deleted=True)
    views = every_page(
        lambda window: entitlements.list_entitlements(STATE.context, criteria, window=window)
    )
    return {
        view.entitlement.id: (
            view.owner.customer_key or view.owner.customer_id,
            view.entitlement.feature_key,
        )
        for view in views
    }


def _every(view: GrantView) -> str:
    recurrence = view.grant.recurrence
    return "" if recurrence is None else f"every {recurrence.interval.api_name}"


def _rollover_text(view: GrantView) -> str:
    minimum, maximum = view.grant.min_rollover_amount, view.grant.max_rollover_amount
    if minimum == maximum:
        return amount_text(maximum)
    return f"{amount_text(minimum)} to {amount_text(maximum)}"


def _state(view: GrantView, now: datetime) -> str:
    g = view.grant
    if g.deleted_at is not None and g.deleted_at <= now:
        return "ended with its entitlement"
    if g.voided_at is not None and g.voided_at <= now:
        return "voided"
    if now < g.effective_at:
        return "not yet effective"
    if g.expires_at is not None and g.expires_at <= now:
        return "expired"
    return "active"


def _detail_rows(view: GrantView) -> list[list[Any]]:
    g = view.grant
    rows: list[list[Any]] = [
        ["id", g.id],
        ["entitlement", g.entitlement_id],
        ["amount", amount_text(g.amount)],
        ["priority", g.priority],
        ["effective", time_cell(g.effective_at)],
        ["expires", time_cell(g.expires_at) or "never"],
        ["rollover at reset", _rollover_text(view)],
    ]
    if g.recurrence is not None:
        rows.append(["recurrence", recurrence_text(g.recurrence)])
        rows.append(["next refill", time_cell(view.next_recurrence)])
    for key, text in sorted(g.metadata.items()):
        rows.append([f"metadata {key}", text])
    return rows


@app.command("void")
def void(
    grant_id: Annotated[str, typer.Argument(metavar="GRANT_ID", help="The grant's id")],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help=f"From when (default now; not in the future, not before the current "
            f"period); {TIME_HELP}",
        ),
    ] = None,
) -> None:
    """Void a grant: from then on it has no balance; what it covered before stays covered."""
    with plain_errors(), option_names(OPTIONS):
        grants.void_grant(STATE.context, grant_id, parse_time(at, "--at"))
    typer.echo(f"voided grant {grant_id}", err=True)
