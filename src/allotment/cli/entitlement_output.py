"""Entitlements, grants, values and history for people (table cells) and for scripts (`--json`).

The documents use the v2 (customer-keyed) response shapes field for field, camelCase, unset
fields left out, so a script can switch between `allotment ... --json` and the API. Amounts are
JSON numbers written out exactly (never through a binary float); times are RFC 3339 in UTC.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.table import Table

from allotment.cli.output import console
from allotment.domain.access import EntitlementValue
from allotment.domain.entitlements import EntitlementType
from allotment.domain.history import History
from allotment.domain.periods import Period, Recurrence
from allotment.domain.time import rfc3339
from allotment.services.entitlements import EntitlementView
from allotment.services.grants import GrantView

Document = dict[str, Any]


# -- tables -----------------------------------------------------------------------------------


# A prose cell may break a word longer than this (a long JSON config) to keep the table whole.
_PROSE_WORD_MAX = 12


def print_rows(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    prose: Collection[str] = (),
) -> None:
    """A table of records, without the columns no record has a value in.

    Amounts, times and ids are never cut short or split over lines: each such column is as wide
    as its widest cell. Only the `prose` columns wrap, and share what width is left. When the
    terminal is too narrow even for that, each record is shown as its own label/value table.
    """
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    shown = [i for i in range(len(columns)) if not cells or any(row[i] for row in cells)]
    header_word = {i: max(len(word) for word in columns[i].split()) for i in shown}
    longest = {i: max(_line_lengths(row[i] for row in cells), default=0) for i in shown}
    minimum = {}
    for i in shown:
        if columns[i] in prose:
            word = max((len(w) for row in cells for w in row[i].split()), default=0)
            minimum[i] = max(min(word, _PROSE_WORD_MAX), header_word[i])
        else:
            minimum[i] = max(longest[i], header_word[i])
        longest[i] = max(longest[i], len(columns[i]))
    # Borders and padding take three characters a column, plus one.
    spare = console.width - (3 * len(shown) + 1) - sum(minimum.values())
    if spare < 0:
        for number, row in enumerate(cells, start=1):
            label = f"{title} ({number} of {len(cells)})"
            print_fields(label, [[columns[i], row[i]] for i in shown])
        return
    widths = dict(minimum)
    growing = [i for i in shown if columns[i] in prose or widths[i] < longest[i]]
    while spare > 0 and growing:
        growing = [i for i in growing if widths[i] < longest[i]]
        for i in growing[:spare]:
            widths[i] += 1
            spare -= 1
    table = Table(title=title)
    for i in shown:
        table.add_column(columns[i], width=widths[i], overflow="fold")
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    console.print(table)


def _line_lengths(texts: Iterable[str]) -> list[int]:
    return [len(line) for text in texts for line in text.splitlines() or [""]]


def print_fields(title: str, rows: Sequence[Sequence[Any]]) -> None:
    """One record as a two-column table: a label, then its value."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(str(label), "" if value is None else str(value))
    console.print(table)


def time_cell(value: datetime | None) -> str:
    """A time for a table: RFC 3339 in UTC, to the second (the JSON keeps every digit)."""
    return time_text(None if value is None else value.replace(microsecond=0)) or ""


def time_text(value: datetime | None) -> str | None:
    """The API's form of a time (`rfc3339`), None for none."""
    return None if value is None else rfc3339(value)


def amount_text(value: Decimal | None) -> str:
    """`10,000,000` or `1,234.5`: grouped for reading, every digit kept."""
    if value is None:
        return ""
    return f"{value:,f}"


def period_text(period: Period | None) -> str:
    if period is None:
        return ""
    return f"{time_cell(period.start)} → {time_cell(period.end)}"


def recurrence_text(recurrence: Recurrence | None) -> str:
    if recurrence is None:
        return ""
    return f"{recurrence.interval.api_name} from {time_cell(recurrence.anchor)}"


# -- documents --------------------------------------------------------------------------------


def _without_unset(document: Document) -> Document:
    return {name: value for name, value in document.items() if value is not None}


def _period(period: Period | None) -> Document | None:
    if period is None:
        return None
    return {"from": time_text(period.start), "to": time_text(period.end)}


def _recurrence(recurrence: Recurrence | None) -> Document | None:
    if recurrence is None:
        return None
    return {
        "interval": recurrence.interval.api_name,
        "intervalISO": recurrence.interval.iso,
        "anchor": time_text(recurrence.anchor),
    }


def entitlement_document(view: EntitlementView) -> Document:
    """`EntitlementV2`: metered, static or boolean."""
    e = view.entitlement
    document: Document = {
        "id": e.id,
        "type": e.type.value,
        "featureId": e.feature_id,
        "featureKey": e.feature_key,
        "customerId": view.owner.customer_id,
        "customerKey": view.owner.customer_key,
        "metadata": dict(e.metadata) or None,
        "activeFrom": time_text(e.active_from),
        "activeTo": time_text(e.active_to),
        "createdAt": time_text(e.created_at),
        "updatedAt": time_text(e.updated_at),
        "deletedAt": time_text(e.deleted_at),
        "currentUsagePeriod": _period(view.current_usage_period),
        "usagePeriod": _recurrence(e.usage_period),
    }
    if e.is_metered:
        document.update(
            isSoftLimit=e.is_soft_limit,
            preserveOverageAtReset=e.preserve_overage_at_reset,
            issueAfterReset=e.issue_after_reset,
            issueAfterResetPriority=e.issue_after_reset_priority,
            lastReset=time_text(view.last_reset),
            measureUsageFrom=time_text(e.measure_usage_from),
        )
        if e.issue_after_reset is not None:
            document["issue"] = {
                "amount": e.issue_after_reset,
                "priority": e.issue_after_reset_priority or 1,
            }
    if e.type is EntitlementType.STATIC:
        document["config"] = e.config or ""
    return _without_unset(document)


def grant_document(view: GrantView) -> Document:
    """`EntitlementGrantV2`: no expiration shown for a grant that never expires."""
    g = view.grant
    expiration = None
    if g.expiration is not None:
        expiration = {"duration": g.expiration.duration.value, "count": g.expiration.count}
    return _without_unset(
        {
            "id": g.id,
            "entitlementId": g.entitlement_id,
            "amount": g.amount,
            "priority": g.priority,
            "effectiveAt": time_text(g.effective_at),
            "expiration": expiration,
            "expiresAt": time_text(g.expires_at),
            "maxRolloverAmount": g.max_rollover_amount,
            "minRolloverAmount": g.min_rollover_amount,
            "metadata": dict(g.metadata) or None,
            "annotations": dict(g.annotations) or None,
            "recurrence": _recurrence(g.recurrence),
            "nextRecurrence": time_text(view.next_recurrence),
            "voidedAt": time_text(g.voided_at),
            "createdAt": time_text(g.created_at),
            "updatedAt": time_text(g.updated_at),
            "deletedAt": time_text(g.deleted_at),
        }
    )


def value_document(value: EntitlementValue, *, grant_balances: bool = True) -> Document:
    """`EntitlementValueV2` (with each grant's balance), or v1's `EntitlementValue`."""
    balances: Mapping[str, Decimal] | None = value.grant_balances if grant_balances else None
    return _without_unset(
        {
            "hasAccess": value.has_access,
            "balance": value.balance,
            "usage": value.usage,
            "overage": value.overage,
            "totalAvailableGrantAmount": value.total_available_grant_amount,
            "config": value.config,
            "grantBalances": None if balances is None else dict(balances),
        }
    )


def access_document(values: Mapping[str, EntitlementValue]) -> Document:
    """`GET /api/v1/customers/{customer}/access`: every value by feature key."""
    return {
        "entitlements": {
            key: value_document(value, grant_balances=False) for key, value in values.items()
        }
    }


def history_document(history: History) -> Document:
    """`WindowedBalanceHistory`: the windows, and the burn-down segments behind them."""
    return {
        "windowedHistory": [
            {
                "period": _period(w.period),
                "usage": w.usage,
                "balanceAtStart": w.balance_at_start,
            }
            for w in history.windows
        ],
        "burndownHistory": [
            {
                "period": _period(s.period),
                "usage": s.usage,
                "overage": s.overage,
                "balanceAtStart": s.balance_at_start,
                "grantBalancesAtStart": dict(s.grant_balances_at_start),
                "balanceAtEnd": s.balance_at_end,
                "grantBalancesAtEnd": dict(s.grant_balances_at_end),
                "grantUsages": [{"grantId": g.grant_id, "usage": g.usage} for g in s.grant_usages],
            }
            for s in history.segments
        ],
    }


# -- exact JSON -------------------------------------------------------------------------------


def exact_json(document: object) -> str:
    """`json.dumps`, with each Decimal written as a JSON number with all its digits.

    A Decimal first travels as a string between two copies of a fresh random mark; the marks and
    the quotes around them are then removed. Stored text cannot know the mark in advance.
    """
    mark = uuid.uuid4().hex

    def marked(value: object) -> str:
        if isinstance(value, Decimal):
            return f"{mark}{value:f}{mark}"
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    text = json.dumps(document, indent=2, ensure_ascii=False, default=marked)
    return re.sub(f'"{mark}([^"]*){mark}"', r"\1", text)


def print_exact_json(document: object) -> None:
    sys.stdout.write(exact_json(document) + "\n")
