"""The options and arguments commands share, and reading the values people type: times,
amounts, `KEY=VALUE` pairs, "1 MONTH", a customer named by id or key.

A value that cannot be read is an InvalidInput naming the option, so it prints like every other
error (plain words, exit code 1). Rules about the values themselves (an amount must be positive,
a time may not be in the future, ...) stay in the services, so the CLI and the API agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, overload

import typer

from allotment.domain.grant_requests import ExpirationRequest, RecurrenceRequest
from allotment.errors import AllotmentError, FieldError, InvalidInput
from allotment.services import customers
from allotment.services.context import ServiceContext

TIME_HELP = "RFC 3339 with an offset, e.g. 2024-02-01T00:00:00Z"

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape)")]
JsonV2Flag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's v2 shape)")]
CustomerArgument = Annotated[
    str, typer.Argument(metavar="CUSTOMER", help="The customer's id or key")
]
CustomerFilterArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="CUSTOMER", help="Only this customer's (id or key); default: everyone's"
    ),
]
MetadataOption = Annotated[
    list[str] | None, typer.Option("--metadata", help="KEY=VALUE (repeatable)")
]
AtOption = Annotated[
    str | None, typer.Option("--at", help=f"When to evaluate (default now); {TIME_HELP}")
]

# Thousands separators are accepted only where they cannot be read any other way.
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DURATION = re.compile(r"^(\d+)\s*([A-Za-z]+)$")


def parse_time(text: str | None, option: str) -> datetime | None:
    """An RFC 3339 time with an offset; a time without one is refused rather than guessed."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{option}: {text!r} is not a time ({TIME_HELP})", field=option
        ) from None
    if value.tzinfo is None:
        raise InvalidInput(
            f"{option}: {text!r} has no offset; say which zone it is in ({TIME_HELP})",
            field=option,
        )
    return value


@overload
def parse_amount(text: str, option: str) -> Decimal: ...
@overload
def parse_amount(text: None, option: str) -> None: ...
@overload
def parse_amount(text: str | None, option: str) -> Decimal | None: ...


def parse_amount(text: str | None, option: str) -> Decimal | None:
    """An exact decimal: `10000000`, `10_000_000`, `10,000,000` or `0.25`."""
    if text is None:
        return None
    cleaned = text.strip()
    if _GROUPED.match(cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput(f"{option}: {text!r} is not a number", field=option) from None


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    """Repeated `KEY=VALUE` options as a map; the first `=` separates key from value."""
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, text = value.partition("=")
        if not separator or not key:
            raise InvalidInput(f"{option} expects KEY=VALUE, got {value!r}", field=option)
        pairs[key] = text
    return pairs


def parse_expires_in(text: str, option: str) -> ExpirationRequest:
    """A count, then HOUR, DAY, WEEK, MONTH or YEAR, any case, plural allowed: `1 MONTH`,
    `30 days`. Whether that unit and count are allowed is the service's call."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise InvalidInput(
            f"{option}: expected a count and a unit, e.g. '1 MONTH' or '30 DAYS', got {text!r}",
            field=option,
        )
    unit = match.group(2).upper()
    if unit.endswith("S") and len(unit) > 1:
        unit = unit[:-1]
    return ExpirationRequest(duration=unit, count=int(match.group(1)))


def parse_recurrence(
    interval: str | None, anchor: str | None, interval_option: str, anchor_option: str
) -> RecurrenceRequest | None:
    """An interval with an optional anchor time; an anchor without an interval is refused
    rather than dropped."""
    anchor_time = parse_time(anchor, anchor_option)
    if interval is not None:
        return RecurrenceRequest(interval=interval, anchor=anchor_time)
    if anchor_time is not None:
        raise InvalidInput(f"{anchor_option} needs {interval_option}", field=anchor_option)
    return None


def customer_ids(context: ServiceContext, customer: str | None) -> list[str]:
    """The id of the customer a CUSTOMER filter argument names (NotFound if none), or no ids
    (everyone's) when it is left out."""
    if customer is None:
        return []
    return [customers.get_customer(context, customer).id]


@contextmanager
def option_names(options: Mapping[str, str]) -> Iterator[None]:
    """Name the command's options, not the API's fields, in the errors raised inside.

    The services name wire fields (`usagePeriod.interval`); a person typed `--interval`. The
    message itself is kept word for word, so it reads the same as the API's.
    """
    try:
        yield
    except AllotmentError as error:
        error.errors = [
            FieldError(_option_for(e.field, options), e.message, e.code) for e in error.errors
        ]
        raise


def _option_for(field: str, options: Mapping[str, str]) -> str:
    """The option for a field, also for nested ones (`expiration.count` under `expiration`)."""
    name = field
    while name:
        if name in options:
            return options[name]
        name = name.rpartition(".")[0]
    return field
