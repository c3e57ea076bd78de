"""`allotment subscriptions ...`: subscribe a customer to a plan, show, list, change, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from allotment.cli.options import JsonFlag, parse_time
from allotment.cli.output import (
    plain_errors,
    print_exact_json,
    print_fields,
    print_records,
    time_cell,
    time_text,
)
from allotment.cli.state import STATE
from allotment.domain.subscriptions import Subscription, Timing, TimingPreset
from allotment.services import subscriptions
from allotment.services.subscriptions import ChangeRequest, PlanChoice, SubscriptionRequest

app = typer.Typer(help="Subscriptions: a customer on a plan.", no_args_is_help=True)

SubscriptionArgument = Annotated[str, typer.Argument(help="The subscription's id")]
TimingOption = Annotated[
    str,
    typer.Option(help="immediate, next_billing_cycle, or an RFC 3339 time"),
]


def _timing(text: str) -> Timing:
    if text in (TimingPreset.IMMEDIATE.value, TimingPreset.NEXT_BILLING_CYCLE.value):
        return TimingPreset(text)
    parsed = parse_time(text, "--timing")
    assert parsed is not None
    return parsed.astimezone(UTC)


def subscription_document(subscription: Subscription, now: datetime) -> dict[str, Any]:
    plan = subscription.plan
    document: dict[str, Any] = {
        "id": subscription.id,
        "name": subscription.name,
        "customerId": subscription.customer_id,
        "status": subscription.status(now).value,
        "plan": None if plan is None else {"id": plan.id, "key": plan.key, "version": plan.version},
        "currency": subscription.terms.currency,
        "billingCadence": subscription.terms.billing_cadence,
        "billingAnchor": time_text(subscription.billing_anchor),
        "activeFrom": time_text(subscription.active_from),
        "activeTo": time_text(subscription.active_to),
        "createdAt": time_text(subscription.created_at),
        "updatedAt": time_text(subscription.updated_at),
    }
    return {name: value for name, value in document.items() if value is not None}


def _plan_text(subscription: Subscription) -> str:
    plan = subscription.plan
    return "custom" if plan is None else f"{plan.key} v{plan.version}"


def _show(subscription: Subscription, title: str, as_json: bool) -> None:
    now = STATE.context.clock()
    if as_json:
        print_exact_json(subscription_document(subscription, now))
        return
    print_fields(
        title,
        [
            ["id", subscription.id],
            ["plan", _plan_text(subscription)],
            ["status", subscription.status(now).value],
            ["customer", subscription.customer_id],
            ["active from", time_cell(subscription.active_from)],
            ["active to", time_cell(subscription.active_to)],
            [
                "billing",
                f"{subscription.terms.billing_cadence} from "
                f"{time_cell(subscription.billing_anchor)}",
            ],
        ],
    )


@app.command("create")
def create(
    customer: Annotated[str, typer.Option(help="The customer's id or key")],
    plan: Annotated[str, typer.Option(help="The published plan's key")],
    version: Annotated[int | None, typer.Option(help="A plan version (default: active)")] = None,
    timing: TimingOption = "immediate",
    as_json: JsonFlag = False,
) -> None:
    """Subscribe a customer to a plan; its entitlements are created with it."""
    with plain_errors():
        view = subscriptions.create_subscription(
            STATE.context,
            SubscriptionRequest(
                plan=PlanChoice(plan_key=plan, plan_version=version),
                customer_key=customer,
                timing=_timing(timing),
            ),
        )
    _show(view.subscription, "Created subscription", as_json)


@app.command("get")
def get(subscription: SubscriptionArgument, as_json: JsonFlag = False) -> None:
    """Show a subscription and what each of its items entitles to."""
    with plain_errors():
        view = subscriptions.get_subscription(STATE.context, subscription)
    _show(view.subscription, f"Subscription {view.subscription.id}", as_json)
    if not as_json:
        print_records(
            "Items",
            ["phase", "key", "feature", "entitlement", "from", "to"],
            [
                [
                    view.subscription.terms.phases[i.item.phase_index].key,
                    i.card.key,
                    i.card.feature_key or "",
                    i.item.entitlement_id or "",
                    time_cell(i.item.active_from),
                    time_cell(i.item.active_to),
                ]
                for i in view.items
            ],
            [],
            as_json=False,
        )


@app.command("list")
def list_subscriptions(
    customer: Annotated[str, typer.Argument(help="The customer's id or key")],
    as_json: JsonFlag = False,
) -> None:
    """A customer's subscriptions, by start."""
    with plain_errors():
        result = subscriptions.list_customer_subscriptions(STATE.context, customer)
    now = STATE.context.clock()
    items = list(result.items)
    print_records(
        f"Subscriptions of {customer}",
        ["id", "plan", "status", "active from", "active to"],
        [
            [
                s.id,
                _plan_text(s),
                s.status(now).value,
                time_cell(s.active_from),
                time_cell(s.active_to),
            ]
            for s in items
        ],
        [subscription_document(s, now) for s in items],
        as_json,
    )


@app.command("change")
def change(
    subscription: SubscriptionArgument,
    plan: Annotated[str, typer.Option(help="The published plan's key to move to")],
    version: Annotated[int | None, typer.Option(help="A plan version (default: active)")] = None,
    timing: TimingOption = "immediate",
    as_json: JsonFlag = False,
) -> None:
    """Upgrade or downgrade; this period's usage and top-ups carry over."""
    with plain_errors():
        result = subscriptions.change_subscription(
            STATE.context,
            subscription,
            ChangeRequest(
                plan=PlanChoice(plan_key=plan, plan_version=version), timing=_timing(timing)
            ),
        )
    _show(result.next.subscription, "Changed to", as_json)


@app.command("cancel")
def cancel(
    subscription: SubscriptionArgument,
    timing: TimingOption = "immediate",
    as_json: JsonFlag = False,
) -> None:
    """End a subscription and its entitlements."""
    with plain_errors():
        canceled = subscriptions.cancel_subscription(STATE.context, subscription, _timing(timing))
    _show(canceled, "Canceled subscription", as_json)


@app.command("unschedule-cancelation")
def unschedule_cancelation(subscription: SubscriptionArgument, as_json: JsonFlag = False) -> None:
    """Undo a cancel that has not taken effect yet."""
    with plain_errors():
        restored = subscriptions.unschedule_cancelation(STATE.context, subscription)
    _show(restored, "Restored subscription", as_json)
