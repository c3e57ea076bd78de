"""Notifications: webhook channels, the rules that send to them, and when a rule fires.

Follows OpenMeter's v1 notification API. A rule of type `entitlements.balance.threshold` holds
1 to 10 thresholds and fires when an entitlement's value crosses one of them:

- `usage_value` (deprecated alias `NUMBER`): usage > value;
- `usage_percentage` (alias `PERCENT`): usage > value % of totalAvailableGrantAmount, never
  without grants (a total of 0);
- `balance_value`: balance < value; a threshold of 0 fires at balance <= 0 (nothing left).

Each threshold fires at most once per rule, entitlement and usage period, however often usage
drops under it (a grant) and climbs back; a new period starts fresh. When one write crosses
several thresholds at once, one event names the most advanced of them (the one that needs the
most usage to cross), as OpenMeter does, and the others count as fired.

A rule of type `entitlements.reset` fires once per rule for each new usage period (the
automatic period boundary, or a manual reset).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from urllib.parse import urlsplit

from allotment.domain.access import EntitlementValue
from allotment.domain.text import UNSTORABLE_TEXT, is_storable_document, is_storable_text
from allotment.errors import ErrorList

NAME_MAX_LENGTH = 256
URL_MAX_LENGTH = 2048
THRESHOLDS_MIN, THRESHOLDS_MAX = 1, 10
CHANNELS_MIN, CHANNELS_MAX = 1, 5
CUSTOM_HEADERS_MAX = 32
SIGNING_SECRET_PATTERN = r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$"
_SECRET = re.compile(SIGNING_SECRET_PATTERN)
# RFC 9110 token characters: a header name anything else would be refused by the HTTP client.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")
# Headers the sender owns: a channel must not be able to forge a signature or break framing.
_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    }
)


class ChannelType(StrEnum):
    WEBHOOK = "WEBHOOK"


class RuleType(StrEnum):
    BALANCE_THRESHOLD = "entitlements.balance.threshold"
    ENTITLEMENT_RESET = "entitlements.reset"


class ThresholdType(StrEnum):
    USAGE_VALUE = "usage_value"
    USAGE_PERCENTAGE = "usage_percentage"
    BALANCE_VALUE = "balance_value"
    NUMBER = "NUMBER"
    """Deprecated alias of usage_value."""
    PERCENT = "PERCENT"
    """Deprecated alias of usage_percentage."""

    @property
    def canonical(self) -> ThresholdType:
        if self is ThresholdType.NUMBER:
            return ThresholdType.USAGE_VALUE
        if self is ThresholdType.PERCENT:
            return ThresholdType.USAGE_PERCENTAGE
        return self


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    RESENDING = "RESENDING"


RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""Delay before each attempt of a delivery, counted from the failure before it: the first at
once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h; after the last, FAILED."""


def next_attempt_after(attempts_made: int, failed_at: datetime) -> datetime | None:
    """When the next attempt is due after `attempts_made` attempts, the last of which failed at
    `failed_at`; None once the schedule is used up."""
    if attempts_made >= len(RETRY_DELAYS):
        return None
    return failed_at + RETRY_DELAYS[attempts_made]


@dataclass(frozen=True)
class ChannelDefinition:
    """What a client sets on a webhook channel (create and PUT take the same)."""

    name: str
    url: str
    custom_headers: Mapping[str, str]
    signing_secret: str | None
    disabled: bool
    metadata: Mapping[str, str] | None


@dataclass(frozen=True)
class Channel:
    id: str
    type: ChannelType
    name: str
    url: str
    custom_headers: Mapping[str, str]
    signing_secret: str
    disabled: bool
    metadata: Mapping[str, str] | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_active(self) -> bool:
        return not self.disabled and self.deleted_at is None


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    type: ThresholdType

    @property
    def key(self) -> str:
        """Identifies the threshold within its rule (aliases name the same threshold)."""
        return f"{self.type.canonical.value}:{format(self.value.normalize(), 'f')}"


@dataclass(frozen=True)
class RuleDefinition:
    """What a client sets on a rule; `features` are ids or keys as sent."""

    type: RuleType
    name: str
    disabled: bool
    metadata: Mapping[str, str] | None
    channel_ids: tuple[str, ...]
    features: tuple[str, ...] | None
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class FeatureRef:
    id: str
    key: str


@dataclass(frozen=True)
class Rule:
    id: str
    type: RuleType
    name: str
    disabled: bool
    metadata: Mapping[str, str] | None
    channel_ids: tuple[str, ...]
    features: tuple[FeatureRef, ...] | None
    """None: every feature."""
    thresholds: tuple[Threshold, ...]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return not self.disabled and self.deleted_at is None

    def applies_to(self, feature_id: str) -> bool:
        return self.features is None or any(f.id == feature_id for f in self.features)


def validate_channel(definition: ChannelDefinition) -> None:
    errors = ErrorList()
    if not definition.name.strip():
        errors.add("name", "must not be blank")
    if not is_storable_text(definition.name):
        errors.add("name", UNSTORABLE_TEXT)
    _check_url(definition.url, errors)
    if len(definition.custom_headers) > CUSTOM_HEADERS_MAX:
        errors.add("customHeaders", f"at most {CUSTOM_HEADERS_MAX} headers")
    for name, value in definition.custom_headers.items():
        field = f"customHeaders.{name}"
        if not _HEADER_NAME.match(name):
            errors.add(field, "is not a valid HTTP header name")
        elif name.lower() in _RESERVED_HEADERS:
            errors.add(field, "is set by the sender and cannot be overridden")
        if any(c in value for c in "\r\n\x00") or not is_storable_text(value):
            errors.add(field, "must not contain line breaks or NUL characters")
    secret = definition.signing_secret
    if secret is not None and not _SECRET.match(secret):
        errors.add("signingSecret", "must be base64 (32 to 100 characters), optionally whsec_")
    if definition.metadata is not None and not is_storable_document(definition.metadata):
        errors.add("metadata", UNSTORABLE_TEXT)
    errors.raise_if_any("invalid notification channel")


def _check_url(url: str, errors: ErrorList) -> None:
    if len(url) > URL_MAX_LENGTH or not is_storable_text(url):
        errors.add("url", f"must be a URL of at most {URL_MAX_LENGTH} characters")
        return
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        errors.add("url", "is not a valid URL")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        errors.add("url", "must be an absolute http:// or https:// URL")
    elif any(c.isspace() for c in url):
        errors.add("url", "must not contain spaces")


def validate_rule(definition: RuleDefinition) -> None:
    errors = ErrorList()
    if not definition.name.strip():
        errors.add("name", "must not be blank")
    if not is_storable_text(definition.name):
        errors.add("name", UNSTORABLE_TEXT)
    if not CHANNELS_MIN <= len(definition.channel_ids) <= CHANNELS_MAX:
        errors.add("channels", f"between {CHANNELS_MIN} and {CHANNELS_MAX} channels")
    if len(set(definition.channel_ids)) != len(definition.channel_ids):
        errors.add("channels", "names a channel twice")
    if definition.features is not None and not definition.features:
        errors.add("features", "at least one feature when given")
    if definition.metadata is not None and not is_storable_document(definition.metadata):
        errors.add("metadata", UNSTORABLE_TEXT)
    if definition.type is RuleType.BALANCE_THRESHOLD:
        _check_thresholds(definition.thresholds, errors)
    errors.raise_if_any("invalid notification rule")


def _check_thresholds(thresholds: Sequence[Threshold], errors: ErrorList) -> None:
    if not THRESHOLDS_MIN <= len(thresholds) <= THRESHOLDS_MAX:
        errors.add("thresholds", f"between {THRESHOLDS_MIN} and {THRESHOLDS_MAX} thresholds")
    seen: set[str] = set()
    for index, threshold in enumerate(thresholds):
        field = f"thresholds[{index}].value"
        if not threshold.value.is_finite():
            errors.add(field, "must be a finite number")
            continue
        if threshold.type.canonical is ThresholdType.BALANCE_VALUE:
            if threshold.value < 0:
                errors.add(field, "must not be negative")
        elif threshold.value <= 0:
            errors.add(field, "must be greater than 0")
        if threshold.key in seen:
            errors.add(field, "repeats another threshold of the rule")
        seen.add(threshold.key)


def is_crossed(threshold: Threshold, value: EntitlementValue) -> bool:
    """Whether the value is past the threshold (see the module docstring)."""
    usage, balance = value.usage, value.balance
    total = value.total_available_grant_amount
    match threshold.type.canonical:
        case ThresholdType.USAGE_VALUE:
            return usage is not None and usage > threshold.value
        case ThresholdType.USAGE_PERCENTAGE:
            if usage is None or total is None or total <= 0:
                return False
            return usage * 100 > threshold.value * total
        case _:
            if balance is None:
                return False
            if threshold.value == 0:
                return balance <= 0
            return balance < threshold.value


def usage_level(threshold: Threshold, value: EntitlementValue) -> Decimal:
    """The usage at which the threshold is crossed, for the value's grants: what orders the
    thresholds of different types when one write crosses several."""
    total = value.total_available_grant_amount or Decimal(0)
    match threshold.type.canonical:
        case ThresholdType.USAGE_VALUE:
            return threshold.value
        case ThresholdType.USAGE_PERCENTAGE:
            return threshold.value * total / 100
        case _:
            return total - threshold.value


def newly_crossed(
    thresholds: Sequence[Threshold], value: EntitlementValue, fired: set[str]
) -> tuple[Threshold | None, list[Threshold]]:
    """The threshold to notify (the most advanced one crossed and not fired yet in the
    period), and every threshold crossed and not fired yet (all become fired)."""
    fresh = [t for t in thresholds if t.key not in fired and is_crossed(t, value)]
    if not fresh:
        return None, []
    return max(fresh, key=lambda t: usage_level(t, value)), fresh


ATTEMPT_BODY_MAX = 1024
"""Characters of a receiver's answer kept with an attempt."""


@dataclass(frozen=True)
class Attempt:
    """One try of a delivery: what the receiver answered (no status: no answer at all)."""

    state: DeliveryState
    at: datetime
    status_code: int | None
    body: str
    duration_ms: int
    url: str | None


@dataclass(frozen=True)
class Delivery:
    """An event on its way to one channel."""

    event_id: str
    channel_id: str
    message_id: str
    state: DeliveryState
    reason: str
    attempt_count: int
    attempts: tuple[Attempt, ...]
    next_attempt_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: RuleType
    rule: Rule
    created_at: datetime
    payload: Mapping[str, object]
    is_test: bool
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True)
class EventFilter:
    time_from: datetime | None = None
    time_to: datetime | None = None
    features: tuple[str, ...] = ()
    """Feature ids or keys."""
    subjects: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    channel_ids: tuple[str, ...] = ()
    descending: bool = False
    order_by: str = "created_at"
