"""`allotment entitlements ...`: give customers features, check their value, history and resets.

A customer is named by id or key, an entitlement by id or by its feature's key, exactly as on the
v2 API paths; the same services answer, so the rules and messages are the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any

import typer

from allotment.cli.entitlement_output import (
    entitlement_document,
    history_document,
    value_document,
)
from allotment.cli.options import (
    TIME_HELP,
    AtOption,
    CustomerArgument,
    CustomerFilterArgument,
    JsonV2Flag,
    MetadataOption,
    customer_ids,
    option_names,
    parse_amount,
    parse_pairs,
    parse_recurrence,
    parse_time,
)
from allotment.cli.output import (
    amount_text,
    period_text,
    plain_errors,
    print_exact_json,
    print_record,
    print_records,
    print_rows,
    recurrence_text,
    time_cell,
)
from allotment.cli.paging import every_page
from allotment.cli.state import STATE
from allotment.domain.access import EntitlementValue
from allotment.domain.entitlement_requests import EntitlementRequest, MeasureUsageFromPreset
from allotment.domain.entitlements import EntitlementFilter, EntitlementType
from allotment.domain.history import History, WindowSize
from allotment.services import (
    entitlement_history,
    entitlement_resets,
    entitlement_values,
    entitlements,
)
from allotment.services.entitlement_owners import CustomerOwner
from allotment.services.entitlements import EntitlementView

app = typer.Typer(
    help="Give customers features (metered, static, boolean); check value, history, resets.",
    no_args_is_help=True,
)

Feature = Annotated[str, typer.Argument(metavar="FEATURE", help="The feature's key")]
EntitlementOrFeature = Annotated[
    str,
    typer.Argument(
        metavar="ENTITLEMENT_OR_FEATURE", help="An entitlement id, or its feature's key"
    ),
]

# What each wire field the services name is called on this command line.
OPTIONS = {
    "customerIdOrKey": "CUSTOMER",
    "entitlementIdOrFeatureKey": "ENTITLEMENT_OR_FEATURE",
    "featureKey": "FEATURE",
    "featureId": "FEATURE",
    "usagePeriod": "--interval",
    "usagePeriod.anchor": "--anchor",
    "isSoftLimit": "--soft-limit",
    "issueAfterReset": "--issue-after-reset",
    "issueAfterResetPriority": "--priority",
    "preserveOverageAtReset": "--preserve-overage",
    "measureUsageFrom": "--measure-usage-from",
    "config": "--config",
    "metadata": "--metadata",
    "time": "--at",
    "effectiveAt": "--at",
    "from": "--from",
    "to": "--to",
    "windowSize": "--window",
    "windowTimeZone": "--tz",
}


# -- create and override ----------------------------------------------------------------------

EntitlementKind = Annotated[
    EntitlementType,
    typer.Option("--type", case_sensitive=False, help="metered, static or boolean"),
]
Interval = Annotated[
    str | None,
    typer.Option(
        "--interval",
        help="Usage period (metered: required): DAY, WEEK, MONTH, YEAR or ISO 8601 (P2W, PT6H)",
    ),
]
Anchor = Annotated[
    str | None,
    typer.Option("--anchor", help=f"Where usage periods start (default now); {TIME_HELP}"),
]
IssueAfterReset = Annotated[
    str | None,
    typer.Option(
        "--issue-after-reset",
        help="Metered: the allowance, granted anew at every reset (e.g. 10000000)",
    ),
]
IssuePriority = Annotated[
    int | None,
    typer.Option("--priority", help="Metered: priority of that allowance, 1 (first) to 255"),
]
SoftLimit = Annotated[
    bool,
    typer.Option("--soft-limit", help="Metered: keep access after the balance runs out"),
]
PreserveOverage = Annotated[
    bool,
    typer.Option("--preserve-overage", help="Metered: carry overage into the next period"),
]
MeasureUsageFrom = Annotated[
    str | None,
    typer.Option(
        "--measure-usage-from",
        help="Metered: CURRENT_PERIOD_START (create's default), NOW (override's) or a time",
    ),
]
Config = Annotated[
    str | None,
    typer.Option("--config", help='Static (required): JSON, e.g. \'{"allowed": ["gpt-4o"]}\''),
]


@dataclass(frozen=True)
class _Terms:
    """The options create and override share, as typed: each command declares them (Typer reads
    the signature) and reads them back from its context by these names."""

    interval: str | None
    anchor: str | None
    issue_after_reset: str | None
    priority: int | None
    soft_limit: bool
    preserve_overage: bool
    measure_usage_from: str | None
    config: str | None
    metadata: list[str] | None

    @classmethod
    def given(cls, invocation: typer.Context) -> _Terms:
        return cls(**{field.name: invocation.params[field.name] for field in fields(cls)})

    def request(self, kind: EntitlementType, feature: str) -> EntitlementRequest:
        """The request the API would build; a flag left off is "not sent", so a boolean or
        static entitlement refuses only the metered options actually given."""
        return EntitlementRequest(
            type=kind,
            feature_key=feature,
            metadata=parse_pairs(self.metadata, "--metadata"),
            usage_period=parse_recurrence(self.interval, self.anchor, "--interval", "--anchor"),
            is_soft_limit=True if self.soft_limit else None,
            issue_after_reset=parse_amount(self.issue_after_reset, "--issue-after-reset"),
            issue_after_reset_priority=self.priority,
            preserve_overage_at_reset=True if self.preserve_overage else None,
            measure_usage_from=_measure_usage_from(self.measure_usage_from),
            config=self.config,
        )


def _measure_usage_from(text: str | None) -> MeasureUsageFromPreset | datetime | None:
    if text is None:
        return None
    if text.strip().upper() in MeasureUsageFromPreset.__members__:
        return MeasureUsageFromPreset(text.strip().upper())
    return parse_time(text, "--measure-usage-from")


@app.command("create")
def create(
    invocation: typer.Context,
    customer: CustomerArgument,
    feature: Feature,
    kind: EntitlementKind,
    interval: Interval = None,
    anchor: Anchor = None,
    issue_after_reset: IssueAfterReset = None,
    priority: IssuePriority = None,
    soft_limit: SoftLimit = False,
    preserve_overage: PreserveOverage = False,
    measure_usage_from: MeasureUsageFrom = None,
    config: Config = None,
    metadata: MetadataOption = None,
    as_json: JsonV2Flag = False,
) -> None:
    """Give a customer a feature. One live entitlement per customer and feature.

    Examples:
    allotment entitlements create acme ai_tokens --type metered --interval MONTH --issue-after-reset 10000000
    allotment entitlements create acme saml_sso --type boolean
    allotment entitlements create acme models --type static --config '{"allowed": ["gpt-4o-mini"]}'
    """  # noqa: E501 - examples are shown as typed
    with plain_errors(), option_names(OPTIONS):
        request = _Terms.given(invocation).request(kind, feature)
        view = entitlements.create_entitlement(STATE.context, CustomerOwner(customer), request)
    _show(view, "Created entitlement", as_json)


@app.command("override")
def override(
    invocation: typer.Context,
    customer: CustomerArgument,
    entitlement: EntitlementOrFeature,
    kind: EntitlementKind,
    interval: Interval = None,
    anchor: Anchor = None,
    issue_after_reset: IssueAfterReset = None,
    priority: IssuePriority = None,
    soft_limit: SoftLimit = False,
    preserve_overage: PreserveOverage = False,
    measure_usage_from: MeasureUsageFrom = None,
    config: Config = None,
    metadata: MetadataOption = None,
    as_json: JsonV2Flag = False,
) -> None:
    """Replace a live entitlement with a new one for the same feature, in one step.

    The old one ends now (its history stays); the new one starts fresh: no grants carried over,
    usage measured from now unless --measure-usage-from says otherwise.
    """
    owner = CustomerOwner(customer)
    with plain_errors(), option_names(OPTIONS):
        current = entitlements.get_entitlement(STATE.context, owner, entitlement)
        request = _Terms.given(invocation).request(kind, current.entitlement.feature_key)
        view = entitlements.override_entitlement(STATE.context, owner, entitlement, request)
    _show(view, "New entitlement (override)", as_json)


# -- read, list, delete -----------------------------------------------------------------------


@app.command("get")
def get(
    customer: CustomerArgument, entitlement: EntitlementOrFeature, as_json: JsonV2Flag = False
) -> None:
    """Show one entitlement: by id (deleted ones too), or the live one for a feature key."""
    with plain_errors(), option_names(OPTIONS):
        view = entitlements.get_entitlement(STATE.context, CustomerOwner(customer), entitlement)
    _show(view, "Entitlement", as_json)


@app.command("list")
def list_entitlements(
    customer: CustomerFilterArgument = None,
    features: Annotated[
        list[str] | None,
        typer.Option("--feature", help="Only entitlements to this feature key (repeatable)"),
    ] = None,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Also list deleted and overridden ones")
    ] = False,
    as_json: JsonV2Flag = False,
) -> None:
    """List entitlements, oldest first."""
    with plain_errors(), option_names(OPTIONS):
        criteria = EntitlementFilter(
            customer_ids=customer_ids(STATE.context, customer),
            features=features or (),
            include_deleted=include_deleted,
        )
        views = every_page(
            lambda window: entitlements.list_entitlements(STATE.context, criteria, window=window)
        )
    print_records(
        "Entitlements",
        ["customer", "feature", "type", "terms", "active", "id"],
        [
            [
                _customer_text(view),
                view.entitlement.feature_key,
                view.entitlement.type.value,
                _terms_text(view),
                _active_text(view),
                view.entitlement.id,
            ]
            for view in views
        ],
        [entitlement_document(view) for view in views],
        as_json,
        prose={"terms"},
    )


@app.command("delete")
def delete(customer: CustomerArgument, entitlement: EntitlementOrFeature) -> None:
    """End an entitlement now, with its grants. Its history stays readable."""
    owner = CustomerOwner(customer)
    with plain_errors(), option_names(OPTIONS):
        view = entitlements.get_entitlement(STATE.context, owner, entitlement)
        entitlements.delete_entitlement(STATE.context, owner, view.entitlement.id)
    typer.echo(
        f"deleted the {view.entitlement.feature_key} entitlement of {_customer_text(view)} "
        f"({view.entitlement.id})",
        err=True,
    )


# -- value, history, reset --------------------------------------------------------------------


@app.command("value")
def value(
    customer: CustomerArgument,
    entitlement: EntitlementOrFeature,
    at: AtOption = None,
    as_json: JsonV2Flag = False,
) -> None:
    """Check access: has the customer access to the feature, and what is left?

    A feature the customer has no entitlement for answers "no access", not an error.
    """
    with plain_errors(), option_names(OPTIONS):
        result = entitlement_values.entitlement_value(
            STATE.context, CustomerOwner(customer), entitlement, parse_time(at, "--at")
        )
    print_record(
        f"{entitlement} for {customer}", value_rows(result), value_document(result), as_json
    )


def value_rows(result: EntitlementValue) -> list[list[str]]:
    rows = [["has access", "yes" if result.has_access else "no"]]
    for label, amount in (
        ("balance", result.balance),
        ("usage", result.usage),
        ("overage", result.overage),
        ("total available", result.total_available_grant_amount),
    ):
        if amount is not None:
            rows.append([label, amount_text(amount)])
    if result.config is not None:
        rows.append(["config", result.config])
    for grant_id, balance in sorted((result.grant_balances or {}).items()):
        rows.append([f"grant {grant_id}", amount_text(balance)])
    return rows


@app.command("history")
def history(
    customer: CustomerArgument,
    entitlement: EntitlementOrFeature,
    window: Annotated[
        WindowSize, typer.Option("--window", case_sensitive=False, help="Window size")
    ],
    start: Annotated[
        str | None, typer.Option("--from", help=f"Default: the last reset; {TIME_HELP}")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Default: now")] = None,
    time_zone: Annotated[
        str, typer.Option("--tz", help="Align windows in this IANA time zone")
    ] = "UTC",
    as_json: JsonV2Flag = False,
) -> None:
    """Usage and balance of a metered entitlement, window by window."""
    with plain_errors(), option_names(OPTIONS):
        result = entitlement_history.entitlement_history(
            STATE.context,
            CustomerOwner(customer),
            entitlement,
            window_size=window.value,
            start=parse_time(start, "--from"),
            end=parse_time(end, "--to"),
            time_zone=time_zone,
        )
    if as_json:
        print_exact_json(history_document(result))
        return
    _print_history(f"{entitlement} for {customer}, by {window.value.lower()}", result)


def _print_history(title: str, result: History) -> None:
    print_rows(
        title,
        ["from", "to", "usage", "balance at start"],
        [
            [
                time_cell(w.period.start),
                time_cell(w.period.end),
                amount_text(w.usage),
                amount_text(w.balance_at_start),
            ]
            for w in result.windows
        ],
    )


@app.command("reset")
def reset(
    customer: CustomerArgument,
    entitlement: EntitlementOrFeature,
    at: Annotated[
        str | None,
        typer.Option("--at", help=f"When (default now; not in the future); {TIME_HELP}"),
    ] = None,
    retain_anchor: Annotated[
        bool,
        typer.Option("--retain-anchor", help="Keep the usage period's anchor (default: move it)"),
    ] = False,
    preserve_overage: Annotated[
        bool | None,
        typer.Option(
            "--preserve-overage/--no-preserve-overage",
            help="Carry overage over (default: the entitlement's setting)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Reset a metered entitlement's usage: a new usage period starts at --at."""
    owner = CustomerOwner(customer)
    with plain_errors(), option_names(OPTIONS):
        entitlement_resets.reset_entitlement(
            STATE.context,
            owner,
            entitlement,
            effective_at=parse_time(at, "--at"),
            retain_anchor=retain_anchor,
            preserve_overage=preserve_overage,
        )
        view = entitlements.get_entitlement(STATE.context, owner, entitlement)
    typer.echo(
        f"reset the {view.entitlement.feature_key} entitlement of {_customer_text(view)}; "
        f"current period {period_text(view.current_usage_period)}",
        err=True,
    )


# -- presentation -----------------------------------------------------------------------------


def _customer_text(view: EntitlementView) -> str:
    return view.owner.customer_key or view.owner.customer_id


def _active_text(view: EntitlementView) -> str:
    e = view.entitlement
    if e.ends_at is None:
        return f"since {time_cell(e.active_from)}"
    return f"{time_cell(e.active_from)} →\n{time_cell(e.ends_at)}"


def _terms_text(view: EntitlementView) -> str:
    """What the customer gets, in a few words: allowance and limits, or the static config."""
    e = view.entitlement
    if e.type is EntitlementType.STATIC:
        return e.config or ""
    if not e.is_metered:
        return ""
    parts = [e.usage_period.interval.api_name if e.usage_period is not None else ""]
    if e.issue_after_reset is not None:
        parts.append(f"{amount_text(e.issue_after_reset)} a period")
    parts.append("soft limit" if e.is_soft_limit else "hard limit")
    if e.preserve_overage_at_reset:
        parts.append("overage carried over")
    return ", ".join(parts)


def _detail_rows(view: EntitlementView) -> list[list[Any]]:
    e = view.entitlement
    rows: list[list[Any]] = [
        ["id", e.id],
        ["customer", f"{_customer_text(view)} ({view.owner.customer_id})"],
        ["feature", f"{e.feature_key} ({e.feature_id})"],
        ["type", e.type.value],
    ]
    if e.usage_period is not None:
        rows.append(["usage period", recurrence_text(e.usage_period)])
        rows.append(["current period", period_text(view.current_usage_period)])
    if e.is_metered:
        rows += [
            ["measure usage from", time_cell(e.measure_usage_from)],
            ["last reset", time_cell(view.last_reset)],
            [
                "issue after reset",
                ""
                if e.issue_after_reset is None
                else f"{amount_text(e.issue_after_reset)} "
                f"(priority {e.issue_after_reset_priority or 1})",
            ],
            ["soft limit", "yes" if e.is_soft_limit else "no"],
            ["preserve overage", "yes" if e.preserve_overage_at_reset else "no"],
        ]
    if e.config is not None:
        rows.append(["config", e.config])
    for key, text in sorted(e.metadata.items()):
        rows.append([f"metadata {key}", text])
    rows.append(["active from", time_cell(e.active_from)])
    if e.ends_at is not None:
        rows.append(["ended", time_cell(e.ends_at)])
    return rows


def _show(view: EntitlementView, title: str, as_json: bool) -> None:
    print_record(title, _detail_rows(view), entitlement_document(view), as_json)
