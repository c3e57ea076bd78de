"""`allotment customers ...`: create, list, show and delete the customers entitlements belong to."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from allotment.cli.options import (
    CustomerArgument,
    JsonFlag,
    MetadataOption,
    option_names,
    parse_pairs,
)
from allotment.cli.output import (
    plain_errors,
    print_record,
    print_records,
    time_cell,
    time_text,
    without_unset,
)
from allotment.cli.paging import every_page
from allotment.cli.state import STATE
from allotment.domain.customers import Customer, CustomerDetails, CustomerFilter
from allotment.services import customers

app = typer.Typer(help="Create, list, show and delete customers.", no_args_is_help=True)

OPTIONS = {
    "customerIdOrKey": "CUSTOMER",
    "name": "--name",
    "key": "--key",
    "usageAttribution": "--subject",
    "description": "--description",
    "primaryEmail": "--email",
    "currency": "--currency",
    "metadata": "--metadata",
}


def customer_document(customer: Customer) -> dict[str, Any]:
    """The customer as the API shows it (camelCase, unset fields left out)."""
    document: dict[str, Any] = {
        "id": customer.id,
        "name": customer.name,
        "key": customer.key,
        "usageAttribution": {"subjectKeys": list(customer.subject_keys)},
        "description": customer.description,
        "primaryEmail": customer.primary_email,
        "currency": customer.currency,
        "billingAddress": None
        if customer.billing_address is None
        else without_unset(customer.billing_address.lines()),
        "metadata": None if customer.metadata is None else dict(customer.metadata),
        "annotations": None if customer.annotations is None else dict(customer.annotations),
        "createdAt": time_text(customer.created_at),
        "updatedAt": time_text(customer.updated_at),
        "deletedAt": time_text(customer.deleted_at),
    }
    return without_unset(document)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A human-readable name")],
    key: Annotated[
        str | None, typer.Option("--key", help="Your own id for it, e.g. acme (unique)")
    ] = None,
    subjects: Annotated[
        list[str] | None,
        typer.Option(
            "--subject", help="An event subject whose usage is the customer's (repeatable)"
        ),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Primary email")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="e.g. USD")] = None,
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a customer; --subject says which events' usage is theirs.

    Example: allotment customers create --name ACME --key acme --subject acme
    """
    with plain_errors(), option_names(OPTIONS):
        details = CustomerDetails(
            name=name,
            key=key,
            subject_keys=tuple(subjects or ()),
            description=description,
            primary_email=email,
            currency=currency,
            metadata=parse_pairs(metadata, "--metadata"),
        )
        customer = customers.create_customer(STATE.context, details)
    _show(customer, "Created customer", as_json)


@app.command("list")
def list_customers(
    include_deleted: Annotated[bool, typer.Option("--include-deleted")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List customers by name."""
    criteria = CustomerFilter(include_deleted=include_deleted)
    with plain_errors():
        items = every_page(lambda window: customers.list_customers(STATE.context, criteria, window))
    print_records(
        "Customers",
        ["key", "name", "subjects", "created", "deleted", "id"],
        [
            [
                c.key or "",
                c.name,
                ", ".join(c.subject_keys),
                time_cell(c.created_at),
                time_cell(c.deleted_at),
                c.id,
            ]
            for c in items
        ],
        [customer_document(customer) for customer in items],
        as_json,
        prose={"name", "subjects"},
    )


@app.command("get")
def get(customer: CustomerArgument, as_json: JsonFlag = False) -> None:
    """Show one customer (a deleted one too, by id)."""
    with plain_errors(), option_names(OPTIONS):
        found = customers.get_customer(STATE.context, customer)
    _show(found, "Customer", as_json)


@app.command("delete")
def delete(customer: CustomerArgument) -> None:
    """Delete a customer; refused while they still have entitlements that have not ended."""
    with plain_errors(), option_names(OPTIONS):
        found = customers.get_customer(STATE.context, customer)
        customers.delete_customer(STATE.context, found.id)
    typer.echo(f"deleted customer {found.key or found.name} ({found.id})", err=True)


def _show(customer: Customer, title: str, as_json: bool) -> None:
    rows: list[list[Any]] = [
        ["id", customer.id],
        ["key", customer.key or ""],
        ["name", customer.name],
        ["subjects", ", ".join(customer.subject_keys)],
    ]
    for label, text in (
        ("description", customer.description),
        ("email", customer.primary_email),
        ("currency", customer.currency),
    ):
        if text:
            rows.append([label, text])
    for key, text in sorted((customer.metadata or {}).items()):
        rows.append([f"metadata {key}", text])
    rows.append(["created", time_cell(customer.created_at)])
    if customer.deleted_at is not None:
        rows.append(["deleted", time_cell(customer.deleted_at)])
    print_record(title, rows, customer_document(customer), as_json)
