"""Wire models of notifications (OpenMeter `NotificationChannel*`, `NotificationRule*`,
`NotificationEvent*`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from allotment.api.schemas.common import AmountValue, UtcDateTime, WireModel
from allotment.domain import notifications as rules
from allotment.domain.notifications import (
    Channel,
    ChannelDefinition,
    Delivery,
    Rule,
    RuleDefinition,
    RuleType,
    StoredEvent,
    Threshold,
    ThresholdType,
)
from allotment.errors import InvalidInput

_ULID = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
_FEATURE_ID_OR_KEY = r"^[a-z0-9]+(?:_[a-z0-9]+)*$|" + _ULID


class ChannelCreateBody(WireModel):
    """`NotificationChannelWebhookCreateRequest`; PUT takes the same."""

    type: Literal["WEBHOOK"]
    name: str = Field(min_length=1, max_length=rules.NAME_MAX_LENGTH)
    url: str = Field(min_length=1, max_length=rules.URL_MAX_LENGTH)
    disabled: bool = False
    custom_headers: dict[str, str] | None = None
    signing_secret: str | None = Field(default=None, pattern=rules.SIGNING_SECRET_PATTERN)
    metadata: dict[str, str] | None = None

    def to_definition(self) -> ChannelDefinition:
        return ChannelDefinition(
            name=self.name,
            url=self.url,
            custom_headers=self.custom_headers or {},
            signing_secret=self.signing_secret,
            disabled=self.disabled,
            metadata=self.metadata,
        )


class ChannelResponse(WireModel):
    id: str
    type: Literal["WEBHOOK"] = "WEBHOOK"
    name: str
    url: str
    disabled: bool
    custom_headers: dict[str, str]
    signing_secret: str
    metadata: dict[str, str] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None

    @classmethod
    def of(cls, channel: Channel) -> ChannelResponse:
        return cls(
            id=channel.id,
            name=channel.name,
            url=channel.url,
            disabled=channel.disabled,
            custom_headers=dict(channel.custom_headers),
            signing_secret=channel.signing_secret,
            metadata=None if channel.metadata is None else dict(channel.metadata),
            created_at=channel.created_at,
            updated_at=channel.updated_at,
            deleted_at=channel.deleted_at,
        )


class ThresholdBody(WireModel):
    value: AmountValue
    type: ThresholdType

    def to_threshold(self) -> Threshold:
        return Threshold(value=self.value, type=self.type)

    @classmethod
    def of(cls, threshold: Threshold) -> ThresholdBody:
        return cls(value=threshold.value, type=threshold.type)


class RuleCreateBody(WireModel):
    """`NotificationRuleCreateRequest`: `entitlements.balance.threshold` (with `thresholds`) or
    `entitlements.reset`. One flat model rather than a tagged union, so errors name plain
    fields (`thresholds`, not the union member first)."""

    type: Literal["entitlements.balance.threshold", "entitlements.reset"]
    name: str = Field(min_length=1, max_length=rules.NAME_MAX_LENGTH)
    disabled: bool = False
    metadata: dict[str, str] | None = None
    channels: list[Annotated[str, Field(pattern=_ULID)]] = Field(
        min_length=rules.CHANNELS_MIN, max_length=rules.CHANNELS_MAX
    )
    features: (
        list[Annotated[str, Field(min_length=1, max_length=64, pattern=_FEATURE_ID_OR_KEY)]] | None
    ) = Field(default=None, min_length=1, max_length=100)
    thresholds: list[ThresholdBody] | None = Field(
        default=None,
        min_length=rules.THRESHOLDS_MIN,
        max_length=rules.THRESHOLDS_MAX,
        description="Balance threshold rules only (required there)",
    )

    def to_definition(self) -> RuleDefinition:
        rule_type = RuleType(self.type)
        thresholds: tuple[Threshold, ...] = ()
        if rule_type is RuleType.BALANCE_THRESHOLD:
            if self.thresholds is None:
                raise InvalidInput("thresholds are required", field="thresholds")
            thresholds = tuple(t.to_threshold() for t in self.thresholds)
        return RuleDefinition(
            type=rule_type,
            name=self.name,
            disabled=self.disabled,
            metadata=self.metadata,
            channel_ids=tuple(self.channels),
            features=None if self.features is None else tuple(self.features),
            thresholds=thresholds,
        )


class ChannelMeta(WireModel):
    id: str
    type: Literal["WEBHOOK"] = "WEBHOOK"


class FeatureMeta(WireModel):
    id: str
    key: str


class RuleResponse(WireModel):
    """`NotificationRuleBalanceThreshold` or `NotificationRuleEntitlementReset`."""

    id: str
    type: RuleType
    name: str
    disabled: bool
    metadata: dict[str, str] | None = None
    channels: list[ChannelMeta]
    features: list[FeatureMeta] | None = None
    thresholds: list[ThresholdBody] | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    deleted_at: UtcDateTime | None = None

    @classmethod
    def of(cls, rule: Rule) -> RuleResponse:
        threshold_rule = rule.type is RuleType.BALANCE_THRESHOLD
        return cls(
            id=rule.id,
            type=rule.type,
            name=rule.name,
            disabled=rule.disabled,
            metadata=None if rule.metadata is None else dict(rule.metadata),
            channels=[ChannelMeta(id=channel_id) for channel_id in rule.channel_ids],
            features=None
            if rule.features is None
            else [FeatureMeta(id=f.id, key=f.key) for f in rule.features],
            thresholds=[ThresholdBody.of(t) for t in rule.thresholds] if threshold_rule else None,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
            deleted_at=rule.deleted_at,
        )


# -- events -------------------------------------------------------------------------------------


class AttemptResponseOut(WireModel):
    status_code: int | None = None
    body: str
    duration_ms: int
    url: str | None = None


class AttemptOut(WireModel):
    state: str
    response: AttemptResponseOut
    timestamp: UtcDateTime


class DeliveryStatusOut(WireModel):
    state: str
    reason: str
    updated_at: UtcDateTime
    channel: ChannelMeta
    next_attempt: UtcDateTime | None = None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryStatusOut:
        return cls(
            state=delivery.state.value,
            reason=delivery.reason,
            updated_at=delivery.updated_at,
            channel=ChannelMeta(id=delivery.channel_id),
            next_attempt=delivery.next_attempt_at,
            attempts=[
                AttemptOut(
                    state=a.state.value,
                    timestamp=a.at,
                    response=AttemptResponseOut(
                        status_code=a.status_code,
                        body=a.body,
                        duration_ms=a.duration_ms,
                        url=a.url,
                    ),
                )
                for a in delivery.attempts
            ],
        )


class EventResponse(WireModel):
    id: str
    type: RuleType
    created_at: UtcDateTime
    rule: RuleResponse
    delivery_status: list[DeliveryStatusOut]
    payload: dict[str, Any]
    annotations: dict[str, Any] | None = None

    @classmethod
    def of(cls, event: StoredEvent) -> EventResponse:
        return cls(
            id=event.id,
            type=event.type,
            created_at=event.created_at,
            rule=RuleResponse.of(event.rule),
            delivery_status=[DeliveryStatusOut.of(d) for d in event.deliveries],
            payload=dict(event.payload),
            annotations={"notification.test": True} if event.is_test else None,
        )


class ResendBody(WireModel):
    channels: list[Annotated[str, Field(pattern=_ULID)]] | None = None
