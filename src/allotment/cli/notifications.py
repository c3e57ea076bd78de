"""`allotment notifications channels|rules|events ...`: webhook notifications from the CLI."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from allotment.api.notification_payloads import render_payload_data
from allotment.cli.options import JsonFlag, MetadataOption, parse_amount, parse_pairs, parse_time
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
from allotment.domain.notifications import (
    Channel,
    ChannelDefinition,
    EventFilter,
    Rule,
    RuleDefinition,
    RuleType,
    StoredEvent,
    Threshold,
    ThresholdType,
)
from allotment.errors import InvalidInput
from allotment.services import notification_definitions as definitions
from allotment.services import notification_events as events
from allotment.services.notification_definitions import ListCriteria

app = typer.Typer(help="Webhook channels, notification rules and events.", no_args_is_help=True)
channels_app = typer.Typer(help="Webhook channels.", no_args_is_help=True)
rules_app = typer.Typer(help="Notification rules.", no_args_is_help=True)
events_app = typer.Typer(help="Notification events and their deliveries.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")
app.add_typer(rules_app, name="rules")
app.add_typer(events_app, name="events")

IncludeDeleted = Annotated[bool, typer.Option("--include-deleted", help="Deleted ones too")]
IncludeDisabled = Annotated[bool, typer.Option("--include-disabled", help="Disabled ones too")]


def channel_document(channel: Channel) -> dict[str, Any]:
    return without_unset(
        {
            "id": channel.id,
            "type": channel.type.value,
            "name": channel.name,
            "url": channel.url,
            "disabled": channel.disabled,
            "customHeaders": dict(channel.custom_headers),
            "signingSecret": channel.signing_secret,
            "metadata": dict(channel.metadata) if channel.metadata else None,
            "createdAt": time_text(channel.created_at),
            "updatedAt": time_text(channel.updated_at),
            "deletedAt": time_text(channel.deleted_at),
        }
    )


def rule_document(rule: Rule) -> dict[str, Any]:
    return without_unset(
        {
            "id": rule.id,
            "type": rule.type.value,
            "name": rule.name,
            "disabled": rule.disabled,
            "channels": [{"id": c, "type": "WEBHOOK"} for c in rule.channel_ids],
            "features": None
            if rule.features is None
            else [{"id": f.id, "key": f.key} for f in rule.features],
            "thresholds": [{"value": t.value, "type": t.type.value} for t in rule.thresholds]
            if rule.type is RuleType.BALANCE_THRESHOLD
            else None,
            "metadata": dict(rule.metadata) if rule.metadata else None,
            "createdAt": time_text(rule.created_at),
            "updatedAt": time_text(rule.updated_at),
            "deletedAt": time_text(rule.deleted_at),
        }
    )


def event_document(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "createdAt": time_text(event.created_at),
        "rule": rule_document(event.rule),
        "deliveryStatus": [
            without_unset(
                {
                    "state": d.state.value,
                    "reason": d.reason,
                    "updatedAt": time_text(d.updated_at),
                    "channel": {"id": d.channel_id, "type": "WEBHOOK"},
                    "nextAttempt": time_text(d.next_attempt_at),
                    "attempts": [
                        {
                            "state": a.state.value,
                            "timestamp": time_text(a.at),
                            "response": without_unset(
                                {
                                    "statusCode": a.status_code,
                                    "body": a.body,
                                    "durationMs": a.duration_ms,
                                    "url": a.url,
                                }
                            ),
                        }
                        for a in d.attempts
                    ],
                }
            )
            for d in event.deliveries
        ],
        "payload": dict(event.payload),
    }


# -- channels -----------------------------------------------------------------------------------


def _print_channels(title: str, items: list[Channel], as_json: bool) -> None:
    print_records(
        title,
        ["name", "url", "disabled", "id", "created", "deleted"],
        [
            [
                c.name,
                c.url,
                "yes" if c.disabled else "",
                c.id,
                time_cell(c.created_at),
                time_cell(c.deleted_at),
            ]
            for c in items
        ],
        [channel_document(c) for c in items],
        as_json,
        prose={"name"},
    )


@channels_app.command("create")
def create_channel(
    name: Annotated[str, typer.Option(help="A human-readable name")],
    url: Annotated[str, typer.Option(help="Where webhooks are POSTed (http or https)")],
    headers: Annotated[
        list[str] | None, typer.Option("--header", help="NAME=VALUE sent with every webhook")
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--signing-secret", help="whsec_...; default: a new one")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a webhook channel (its signing secret is printed with it)."""
    with plain_errors():
        channel = definitions.create_channel(
            STATE.context,
            ChannelDefinition(
                name=name,
                url=url,
                custom_headers=parse_pairs(headers, "--header") or {},
                signing_secret=secret,
                disabled=disabled,
                metadata=parse_pairs(metadata, "--metadata"),
            ),
        )
    if as_json:
        print_exact_json(channel_document(channel))
    else:
        _print_channels("Created channel", [channel], as_json=False)
        typer.echo(f"signing secret: {channel.signing_secret}")


@channels_app.command("update")
def update_channel(
    channel_id: Annotated[str, typer.Argument(metavar="CHANNEL_ID")],
    name: Annotated[str, typer.Option(help="A human-readable name")],
    url: Annotated[str, typer.Option(help="Where webhooks are POSTed (http or https)")],
    headers: Annotated[
        list[str] | None, typer.Option("--header", help="NAME=VALUE sent with every webhook")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option("--signing-secret", help="A new secret (rotation); default: keep it"),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Stop sending to it")] = False,
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace a channel's settings, as PUT does (headers and metadata left out are removed)."""
    with plain_errors():
        channel = definitions.replace_channel(
            STATE.context,
            channel_id,
            ChannelDefinition(
                name=name,
                url=url,
                custom_headers=parse_pairs(headers, "--header") or {},
                signing_secret=secret,
                disabled=disabled,
                metadata=parse_pairs(metadata, "--metadata"),
            ),
        )
    if as_json:
        print_exact_json(channel_document(channel))
    else:
        _print_channels("Updated channel", [channel], as_json=False)


@channels_app.command("list")
def list_channels(
    include_deleted: IncludeDeleted = False,
    include_disabled: IncludeDisabled = False,
    as_json: JsonFlag = False,
) -> None:
    """List webhook channels."""
    criteria = ListCriteria(include_deleted=include_deleted, include_disabled=include_disabled)
    with plain_errors():
        items = every_page(lambda w: definitions.list_channels(STATE.context, criteria, w))
    _print_channels("Channels", items, as_json)


@channels_app.command("delete")
def delete_channel(channel_id: Annotated[str, typer.Argument(metavar="CHANNEL_ID")]) -> None:
    """Delete a channel no rule sends to."""
    with plain_errors():
        definitions.delete_channel(STATE.context, channel_id)
    typer.echo(f"deleted channel {channel_id}", err=True)


# -- rules --------------------------------------------------------------------------------------


def _threshold(text: str) -> Threshold:
    value, _, kind = text.partition(":")
    try:
        threshold_type = ThresholdType(kind or "usage_value")
    except ValueError:
        known = ", ".join(t.value for t in ThresholdType)
        raise InvalidInput(f"--threshold: unknown type '{kind}' ({known})") from None
    return Threshold(value=parse_amount(value, "--threshold"), type=threshold_type)


def _print_rules(title: str, items: list[Rule], as_json: bool) -> None:
    print_records(
        title,
        ["name", "type", "thresholds", "features", "channels", "id", "disabled", "deleted"],
        [
            [
                r.name,
                r.type.value,
                ", ".join(f"{t.value} {t.type.value}" for t in r.thresholds),
                "every" if r.features is None else ", ".join(f.key for f in r.features),
                ", ".join(r.channel_ids),
                r.id,
                "yes" if r.disabled else "",
                time_cell(r.deleted_at),
            ]
            for r in items
        ],
        [rule_document(r) for r in items],
        as_json,
        prose={"name"},
    )


@rules_app.command("create")
def create_rule(
    name: Annotated[str, typer.Option(help="A human-readable name")],
    channels: Annotated[list[str], typer.Option("--channel", help="A channel id (repeatable)")],
    reset: Annotated[
        bool, typer.Option("--reset", help="An entitlements.reset rule (default: thresholds)")
    ] = False,
    thresholds: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="VALUE:TYPE, TYPE one of usage_value (default), usage_percentage, "
            "balance_value (repeatable)",
        ),
    ] = None,
    features: Annotated[
        list[str] | None, typer.Option("--feature", help="Only this feature, id or key")
    ] = None,
    metadata: MetadataOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a notification rule."""
    with plain_errors():
        rule = definitions.create_rule(
            STATE.context,
            RuleDefinition(
                type=RuleType.ENTITLEMENT_RESET if reset else RuleType.BALANCE_THRESHOLD,
                name=name,
                disabled=False,
                metadata=parse_pairs(metadata, "--metadata"),
                channel_ids=tuple(channels),
                features=tuple(features) if features else None,
                thresholds=tuple(_threshold(t) for t in thresholds or ()),
            ),
        )
    if as_json:
        print_exact_json(rule_document(rule))
    else:
        _print_rules("Created rule", [rule], as_json=False)


@rules_app.command("list")
def list_rules(
    include_deleted: IncludeDeleted = False,
    include_disabled: IncludeDisabled = False,
    as_json: JsonFlag = False,
) -> None:
    """List notification rules."""
    criteria = ListCriteria(include_deleted=include_deleted, include_disabled=include_disabled)
    with plain_errors():
        items = every_page(lambda w: definitions.list_rules(STATE.context, criteria, w))
    _print_rules("Rules", items, as_json)


@rules_app.command("delete")
def delete_rule(rule_id: Annotated[str, typer.Argument(metavar="RULE_ID")]) -> None:
    """Delete a rule: it fires no more."""
    with plain_errors():
        definitions.delete_rule(STATE.context, rule_id)
    typer.echo(f"deleted rule {rule_id}", err=True)


@rules_app.command("test")
def send_test(
    rule_id: Annotated[str, typer.Argument(metavar="RULE_ID")], as_json: JsonFlag = False
) -> None:
    """Send a test event of the rule (delivered by a running server or `allotment worker`)."""
    with plain_errors():
        event = events.send_test_event(STATE.context, rule_id, render_payload_data)
    if as_json:
        print_exact_json(event_document(event))
    else:
        _print_events("Test event", [event], as_json=False)


# -- events -------------------------------------------------------------------------------------


def _print_events(title: str, items: list[StoredEvent], as_json: bool) -> None:
    print_records(
        title,
        ["created", "type", "rule", "deliveries", "id"],
        [
            [
                time_cell(e.created_at),
                e.type.value + (" (test)" if e.is_test else ""),
                e.rule.name,
                ", ".join(f"{d.state.value} ({len(d.attempts)})" for d in e.deliveries),
                e.id,
            ]
            for e in items
        ],
        [event_document(e) for e in items],
        as_json,
        prose={"rule"},
    )


@events_app.command("list")
def list_events(
    since: Annotated[str | None, typer.Option("--from", help="Created at or after")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Created at or before")] = None,
    rules: Annotated[list[str] | None, typer.Option("--rule", help="A rule id")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Events with their delivery states (attempts in parentheses)."""
    with plain_errors():
        criteria = EventFilter(
            time_from=parse_time(since, "--from"),
            time_to=parse_time(until, "--to"),
            rule_ids=tuple(rules or ()),
        )
        items = every_page(lambda w: events.list_events(STATE.context, criteria, w))
    _print_events("Notification events", items, as_json)


@events_app.command("show")
def show_event(event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")]) -> None:
    """One event as JSON: its payload and every delivery attempt."""
    with plain_errors():
        print_exact_json(event_document(events.get_event(STATE.context, event_id)))


@events_app.command("resend")
def resend_event(
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")],
    channels: Annotated[
        list[str] | None, typer.Option("--channel", help="Only to this one")
    ] = None,
) -> None:
    """Send an event again (same webhook-id)."""
    with plain_errors():
        events.resend_event(STATE.context, event_id, channels or ())
    typer.echo(f"resending event {event_id}", err=True)
