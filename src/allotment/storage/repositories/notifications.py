"""Storage for notification channels and rules (soft-deleted, never removed)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, insert, select, update

from allotment.domain.listing import SortOrder
from allotment.domain.notifications import (
    Channel,
    ChannelType,
    FeatureRef,
    Rule,
    RuleType,
    Threshold,
    ThresholdType,
)
from allotment.storage.repositories.base import Repository, json_document
from allotment.storage.tables import notification_channels, notification_rules


def _to_channel(row: Any) -> Channel:
    return Channel(
        id=row.id,
        type=ChannelType(row.type),
        name=row.name,
        url=row.url,
        custom_headers=dict(row.custom_headers or {}),
        signing_secret=row.signing_secret,
        disabled=row.disabled,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _channel_values(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "type": channel.type.value,
        "name": channel.name,
        "url": channel.url,
        "custom_headers": dict(channel.custom_headers),
        "signing_secret": channel.signing_secret,
        "disabled": channel.disabled,
        "metadata": json_document(channel.metadata),
        "created_at": channel.created_at,
        "updated_at": channel.updated_at,
        "deleted_at": channel.deleted_at,
    }


def _to_rule(row: Any) -> Rule:
    features = row.features
    return Rule(
        id=row.id,
        type=RuleType(row.type),
        name=row.name,
        disabled=row.disabled,
        metadata=row.metadata,
        channel_ids=tuple(row.channel_ids),
        features=None
        if features is None
        else tuple(FeatureRef(id=f["id"], key=f["key"]) for f in features),
        thresholds=tuple(
            Threshold(value=Decimal(t["value"]), type=ThresholdType(t["type"]))
            for t in row.thresholds
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _rule_values(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "type": rule.type.value,
        "name": rule.name,
        "disabled": rule.disabled,
        "metadata": json_document(rule.metadata),
        "channel_ids": list(rule.channel_ids),
        "features": None
        if rule.features is None
        else [{"id": f.id, "key": f.key} for f in rule.features],
        # Text, not a JSON number: thresholds are exact decimals.
        "thresholds": [
            {"value": format(t.value, "f"), "type": t.type.value} for t in rule.thresholds
        ],
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
        "deleted_at": rule.deleted_at,
    }


def _listed(
    table: Table,
    include_deleted: bool,
    include_disabled: bool,
    order_by: str,
    order: SortOrder,
) -> Any:
    conditions: list[ColumnElement[bool]] = []
    if not include_deleted:
        conditions.append(table.c.deleted_at.is_(None))
    if not include_disabled:
        conditions.append(table.c.disabled.is_(False))
    column = table.c[order_by]
    columns = (column, table.c.id) if order_by != "id" else (column,)
    ordering = [c.desc() if order is SortOrder.DESC else c.asc() for c in columns]
    return select(table).where(*conditions).order_by(*ordering)


class NotificationRepository(Repository):
    # -- channels

    def add_channel(self, channel: Channel) -> None:
        self.connection.execute(insert(notification_channels).values(**_channel_values(channel)))

    def replace_channel(self, channel: Channel) -> None:
        values = _channel_values(channel)
        del values["id"], values["created_at"]
        self.connection.execute(
            update(notification_channels)
            .where(notification_channels.c.id == channel.id)
            .values(**values)
        )

    def get_channel(self, channel_id: str) -> Channel | None:
        query = select(notification_channels).where(notification_channels.c.id == channel_id)
        row = self.connection.execute(query).first()
        return None if row is None else _to_channel(row)

    def channels(self, channel_ids: Sequence[str]) -> dict[str, Channel]:
        if not channel_ids:
            return {}
        rows = self.connection.execute(
            select(notification_channels).where(
                notification_channels.c.id.in_(sorted(set(channel_ids)))
            )
        )
        return {row.id: _to_channel(row) for row in rows}

    def list_channels(
        self, *, include_deleted: bool, include_disabled: bool, order_by: str, order: SortOrder
    ) -> list[Channel]:
        query = _listed(notification_channels, include_deleted, include_disabled, order_by, order)
        return [_to_channel(row) for row in self.connection.execute(query)]

    # -- rules

    def add_rule(self, rule: Rule) -> None:
        self.connection.execute(insert(notification_rules).values(**_rule_values(rule)))

    def replace_rule(self, rule: Rule) -> None:
        values = _rule_values(rule)
        del values["id"], values["created_at"]
        self.connection.execute(
            update(notification_rules).where(notification_rules.c.id == rule.id).values(**values)
        )

    def get_rule(self, rule_id: str) -> Rule | None:
        row = self.connection.execute(
            select(notification_rules).where(notification_rules.c.id == rule_id)
        ).first()
        return None if row is None else _to_rule(row)

    def rules(self, rule_ids: Sequence[str]) -> dict[str, Rule]:
        if not rule_ids:
            return {}
        rows = self.connection.execute(
            select(notification_rules).where(notification_rules.c.id.in_(sorted(set(rule_ids))))
        )
        return {row.id: _to_rule(row) for row in rows}

    def list_rules(
        self, *, include_deleted: bool, include_disabled: bool, order_by: str, order: SortOrder
    ) -> list[Rule]:
        query = _listed(notification_rules, include_deleted, include_disabled, order_by, order)
        return [_to_rule(row) for row in self.connection.execute(query)]

    def active_rules(self) -> list[Rule]:
        query = select(notification_rules).where(
            notification_rules.c.deleted_at.is_(None), notification_rules.c.disabled.is_(False)
        )
        return [_to_rule(row) for row in self.connection.execute(query.order_by("id"))]

    def has_active_rules(self) -> bool:
        query = (
            select(notification_rules.c.id)
            .where(
                notification_rules.c.deleted_at.is_(None),
                notification_rules.c.disabled.is_(False),
            )
            .limit(1)
        )
        return self.connection.execute(query).first() is not None
