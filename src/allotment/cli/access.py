"""`allotment access CUSTOMER`: every feature a customer has, and what is left of each."""

from __future__ import annotations

from typing import Annotated

import typer

from allotment.cli.entitlement_output import access_document
from allotment.cli.entitlements import OPTIONS
from allotment.cli.options import AtOption, CustomerArgument, option_names, parse_time
from allotment.cli.output import amount_text, plain_errors, print_exact_json, print_rows, time_cell
from allotment.cli.paging import every_page
from allotment.cli.state import STATE
from allotment.domain.entitlements import EntitlementFilter
from allotment.services import customers, entitlement_values, entitlements


def access(
    customer: CustomerArgument,
    at: AtOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the API's /customers/{c}/access shape)")
    ] = False,
) -> None:
    """Check access to every feature the customer has: one row per feature."""
    context = STATE.context
    with plain_errors(), option_names(OPTIONS):
        when = parse_time(at, "--at") or context.clock()
        values = entitlement_values.customer_access(context, customer, when)
        if as_json:
            print_exact_json(access_document(values))
            return
        # The type is not part of a value; the entitlements active at that instant tell it.
        owner = customers.get_customer(context, customer)
        criteria = EntitlementFilter(customer_ids=[owner.id], include_deleted=True, active_at=when)
        types = {
            view.entitlement.feature_key: view.entitlement.type.value
            for view in every_page(
                lambda window: entitlements.list_entitlements(context, criteria, window=window)
            )
        }
    print_rows(
        f"Access of {customer} at {time_cell(when)}",
        ["feature", "type", "has access", "balance", "usage", "overage", "config"],
        [
            [
                feature,
                types.get(feature, ""),
                "yes" if value.has_access else "no",
                amount_text(value.balance),
                amount_text(value.usage),
                amount_text(value.overage),
                value.config or "",
            ]
            for feature, value in sorted(values.items())
        ],
        prose={"config"},
    )
