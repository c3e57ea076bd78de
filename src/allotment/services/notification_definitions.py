"""Notification channels and rules: create, replace, read, list, soft delete.

A channel without a signing secret gets one (`whsec_` + base64 of 32 random bytes), as
OpenMeter's do. A deleted channel or rule is still readable by id (with `deletedAt`); changing
or deleting it again is refused (412). A channel an active rule sends to cannot be deleted.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from allotment.domain.listing import ListResult, SortOrder, Window
from allotment.domain.notifications import (
    Channel,
    ChannelDefinition,
    ChannelType,
    FeatureRef,
    Rule,
    RuleDefinition,
    validate_channel,
    validate_rule,
)
from allotment.errors import ErrorList, InvalidInput, NotFound, PreconditionFailed
from allotment.ids import is_ulid, new_id
from allotment.services.context import ServiceContext
from allotment.services.features import find_feature
from allotment.storage import UnitOfWork

T = TypeVar("T")

CHANNEL_FIELD = "channelId"
RULE_FIELD = "ruleId"


@dataclass(frozen=True)
class ListCriteria:
    include_deleted: bool = False
    include_disabled: bool = False
    order_by: str = "id"
    """A column: id, type, created_at or updated_at."""
    order: SortOrder = SortOrder.ASC


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# -- channels -----------------------------------------------------------------------------------


def create_channel(context: ServiceContext, definition: ChannelDefinition) -> Channel:
    validate_channel(definition)
    at = context.clock()
    channel = Channel(
        id=new_id(),
        type=ChannelType.WEBHOOK,
        name=definition.name,
        url=definition.url,
        custom_headers=dict(definition.custom_headers),
        signing_secret=definition.signing_secret or new_signing_secret(),
        disabled=definition.disabled,
        metadata=definition.metadata,
        created_at=at,
        updated_at=at,
    )
    with context.database.unit_of_work(write=True) as uow:
        uow.notifications.add_channel(channel)
        uow.commit()
    return channel


def replace_channel(
    context: ServiceContext, channel_id: str, definition: ChannelDefinition
) -> Channel:
    """PUT: every field as sent; a secret left out keeps the current one (rotating it is
    sending a new one)."""
    validate_channel(definition)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        current = _live_channel(uow, channel_id)
        channel = replace(
            current,
            name=definition.name,
            url=definition.url,
            custom_headers=dict(definition.custom_headers),
            signing_secret=definition.signing_secret or current.signing_secret,
            disabled=definition.disabled,
            metadata=definition.metadata,
            updated_at=at,
        )
        uow.notifications.replace_channel(channel)
        uow.commit()
    return channel


def get_channel(context: ServiceContext, channel_id: str) -> Channel:
    with context.database.unit_of_work() as uow:
        return _channel(uow, channel_id)


def list_channels(
    context: ServiceContext, criteria: ListCriteria, window: Window
) -> ListResult[Channel]:
    with context.database.unit_of_work() as uow:
        found = uow.notifications.list_channels(
            include_deleted=criteria.include_deleted,
            include_disabled=criteria.include_disabled,
            order_by=criteria.order_by,
            order=criteria.order,
        )
    return _window(found, window)


def delete_channel(context: ServiceContext, channel_id: str) -> None:
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        channel = _live_channel(uow, channel_id)
        users = [
            rule.id
            for rule in uow.notifications.list_rules(
                include_deleted=False, include_disabled=True, order_by="id", order=SortOrder.ASC
            )
            if channel.id in rule.channel_ids
        ]
        if users:
            raise InvalidInput(
                f"the channel is used by rules {', '.join(users)}; remove it from them first",
                field=CHANNEL_FIELD,
            )
        uow.notifications.replace_channel(replace(channel, deleted_at=at, updated_at=at))
        uow.commit()


def _channel(uow: UnitOfWork, channel_id: str) -> Channel:
    channel = uow.notifications.get_channel(channel_id) if is_ulid(channel_id) else None
    if channel is None:
        raise NotFound(f"notification channel not found: {channel_id}", field=CHANNEL_FIELD)
    return channel


def _live_channel(uow: UnitOfWork, channel_id: str) -> Channel:
    channel = _channel(uow, channel_id)
    if channel.is_deleted:
        raise PreconditionFailed("the notification channel is deleted", field=CHANNEL_FIELD)
    return channel


# -- rules --------------------------------------------------------------------------------------


def create_rule(context: ServiceContext, definition: RuleDefinition) -> Rule:
    validate_rule(definition)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        features = _resolve_references(uow, definition)
        rule = Rule(
            id=new_id(),
            type=definition.type,
            name=definition.name,
            disabled=definition.disabled,
            metadata=definition.metadata,
            channel_ids=definition.channel_ids,
            features=features,
            thresholds=definition.thresholds,
            created_at=at,
            updated_at=at,
        )
        uow.notifications.add_rule(rule)
        uow.commit()
    return rule


def replace_rule(context: ServiceContext, rule_id: str, definition: RuleDefinition) -> Rule:
    validate_rule(definition)
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        current = _live_rule(uow, rule_id)
        if definition.type is not current.type:
            raise InvalidInput(
                f"a rule's type cannot change (it is {current.type.value})", field="type"
            )
        rule = replace(
            current,
            name=definition.name,
            disabled=definition.disabled,
            metadata=definition.metadata,
            channel_ids=definition.channel_ids,
            features=_resolve_references(uow, definition),
            thresholds=definition.thresholds,
            updated_at=at,
        )
        uow.notifications.replace_rule(rule)
        uow.commit()
    return rule


def get_rule(context: ServiceContext, rule_id: str) -> Rule:
    with context.database.unit_of_work() as uow:
        return find_rule(uow, rule_id)


def list_rules(
    context: ServiceContext,
    criteria: ListCriteria,
    window: Window,
    features: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> ListResult[Rule]:
    """Rules matching every filter: a rule with any of `features` (ids or keys; a rule for
    every feature matches too) and any of `channels`."""
    with context.database.unit_of_work() as uow:
        found = uow.notifications.list_rules(
            include_deleted=criteria.include_deleted,
            include_disabled=criteria.include_disabled,
            order_by=criteria.order_by,
            order=criteria.order,
        )
    if features:
        wanted = set(features)
        found = [
            rule
            for rule in found
            if rule.features is None or any({f.id, f.key} & wanted for f in rule.features)
        ]
    if channels:
        found = [rule for rule in found if set(rule.channel_ids) & set(channels)]
    return _window(found, window)


def delete_rule(context: ServiceContext, rule_id: str) -> None:
    at = context.clock()
    with context.database.unit_of_work(write=True) as uow:
        rule = _live_rule(uow, rule_id)
        uow.notifications.replace_rule(replace(rule, deleted_at=at, updated_at=at))
        uow.commit()


def find_rule(uow: UnitOfWork, rule_id: str) -> Rule:
    rule = uow.notifications.get_rule(rule_id) if is_ulid(rule_id) else None
    if rule is None:
        raise NotFound(f"notification rule not found: {rule_id}", field=RULE_FIELD)
    return rule


def _live_rule(uow: UnitOfWork, rule_id: str) -> Rule:
    rule = find_rule(uow, rule_id)
    if rule.deleted_at is not None:
        raise PreconditionFailed("the notification rule is deleted", field=RULE_FIELD)
    return rule


def _resolve_references(
    uow: UnitOfWork, definition: RuleDefinition
) -> tuple[FeatureRef, ...] | None:
    """The rule's features as `{id, key}`, after checking every channel and feature exists."""
    errors = ErrorList()
    channels = uow.notifications.channels(
        [channel_id for channel_id in definition.channel_ids if is_ulid(channel_id)]
    )
    for index, channel_id in enumerate(definition.channel_ids):
        channel = channels.get(channel_id)
        if channel is None or channel.is_deleted:
            errors.add(f"channels[{index}]", f"no such notification channel: {channel_id}")
    features: list[FeatureRef] | None = None
    if definition.features is not None:
        features = []
        for index, id_or_key in enumerate(definition.features):
            feature = find_feature(uow, id_or_key)
            if feature is None:
                errors.add(f"features[{index}]", f"no such feature: {id_or_key}")
            elif all(f.id != feature.id for f in features):
                features.append(FeatureRef(id=feature.id, key=feature.key))
    errors.raise_if_any("invalid notification rule")
    return None if features is None else tuple(features)


def _window(items: Sequence[T], window: Window) -> ListResult[T]:
    return ListResult(
        items=list(items[window.offset : window.offset + window.limit]), total_count=len(items)
    )
