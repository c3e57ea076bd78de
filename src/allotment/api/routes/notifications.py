"""Routes for notifications (OpenMeter v1): channels, rules and events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from allotment.api.deps import Context
from allotment.api.notification_payloads import render_payload_data
from allotment.api.routing import MANAGE, READ, ApiRoute
from allotment.api.schemas.common import Page
from allotment.api.schemas.notifications import (
    ChannelCreateBody,
    ChannelResponse,
    EventResponse,
    ResendBody,
    RuleCreateBody,
    RuleResponse,
)
from allotment.api.schemas.query_params import FromTime, PageList, ToTime
from allotment.domain.listing import SortOrder
from allotment.domain.notifications import EventFilter
from allotment.services import notification_definitions as definitions
from allotment.services import notification_events as events
from allotment.services.notification_definitions import ListCriteria

router = APIRouter(route_class=ApiRoute, tags=["Notifications"])

_ULID = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
ChannelId = Annotated[str, Path(alias="channelId", pattern=_ULID)]
RuleId = Annotated[str, Path(alias="ruleId", pattern=_ULID)]
EventId = Annotated[str, Path(alias="eventId", pattern=_ULID)]
IncludeDeleted = Annotated[bool, Query(alias="includeDeleted")]
IncludeDisabled = Annotated[bool, Query(alias="includeDisabled")]


class DefinitionOrderBy(StrEnum):
    """`NotificationChannelOrderBy` and `NotificationRuleOrderBy`."""

    ID = "id"
    TYPE = "type"
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"

    @property
    def column(self) -> str:
        return {"createdAt": "created_at", "updatedAt": "updated_at"}.get(self.value, self.value)


OrderBy = Annotated[DefinitionOrderBy, Query(alias="orderBy")]


# -- channels -----------------------------------------------------------------------------------


@router.get("/api/v1/notification/channels", dependencies=[READ], response_model_exclude_none=True)
def list_channels(
    context: Context,
    shape: PageList,
    include_deleted: IncludeDeleted = False,
    include_disabled: IncludeDisabled = False,
    order: SortOrder = SortOrder.ASC,
    order_by: OrderBy = DefinitionOrderBy.ID,
) -> Page[ChannelResponse]:
    """Disabled channels only with `includeDisabled=true`, deleted ones with `includeDeleted`."""
    criteria = ListCriteria(include_deleted, include_disabled, order_by.column, order)
    result = definitions.list_channels(context, criteria, shape.window)
    return shape.paginated([ChannelResponse.of(c) for c in result.items], result.total_count)


@router.post(
    "/api/v1/notification/channels",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
)
def create_channel(context: Context, body: ChannelCreateBody) -> ChannelResponse:
    """Without `signingSecret`, one is generated (`whsec_` + base64 of 32 random bytes)."""
    return ChannelResponse.of(definitions.create_channel(context, body.to_definition()))


@router.get(
    "/api/v1/notification/channels/{channelId}",
    dependencies=[READ],
    response_model_exclude_none=True,
)
def get_channel(context: Context, channel_id: ChannelId) -> ChannelResponse:
    """Deleted channels too, with `deletedAt`."""
    return ChannelResponse.of(definitions.get_channel(context, channel_id))


@router.put(
    "/api/v1/notification/channels/{channelId}",
    dependencies=[MANAGE],
    response_model_exclude_none=True,
)
def update_channel(
    context: Context, channel_id: ChannelId, body: ChannelCreateBody
) -> ChannelResponse:
    """Replaces every field; a `signingSecret` left out keeps the current secret."""
    channel = definitions.replace_channel(context, channel_id, body.to_definition())
    return ChannelResponse.of(channel)


@router.delete("/api/v1/notification/channels/{channelId}", dependencies=[MANAGE], status_code=204)
def delete_channel(context: Context, channel_id: ChannelId) -> Response:
    """Soft delete; refused (400) while a rule sends to the channel."""
    definitions.delete_channel(context, channel_id)
    return Response(status_code=204)


# -- rules --------------------------------------------------------------------------------------


@router.get("/api/v1/notification/rules", dependencies=[READ], response_model_exclude_none=True)
def list_rules(
    context: Context,
    shape: PageList,
    include_deleted: IncludeDeleted = False,
    include_disabled: IncludeDisabled = False,
    feature: Annotated[list[str] | None, Query(description="Feature ids or keys")] = None,
    channel: Annotated[list[str] | None, Query(description="Channel ids")] = None,
    order: SortOrder = SortOrder.ASC,
    order_by: OrderBy = DefinitionOrderBy.ID,
) -> Page[RuleResponse]:
    criteria = ListCriteria(include_deleted, include_disabled, order_by.column, order)
    result = definitions.list_rules(
        context, criteria, shape.window, features=feature or (), channels=channel or ()
    )
    return shape.paginated([RuleResponse.of(r) for r in result.items], result.total_count)


@router.post(
    "/api/v1/notification/rules",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
)
def create_rule(context: Context, body: RuleCreateBody) -> RuleResponse:
    """`entitlements.balance.threshold` (1 to 10 thresholds) or `entitlements.reset`, sent to
    1 to 5 channels, for every feature or those of `features` (ids or keys)."""
    return RuleResponse.of(definitions.create_rule(context, body.to_definition()))


@router.get(
    "/api/v1/notification/rules/{ruleId}", dependencies=[READ], response_model_exclude_none=True
)
def get_rule(context: Context, rule_id: RuleId) -> RuleResponse:
    return RuleResponse.of(definitions.get_rule(context, rule_id))


@router.put(
    "/api/v1/notification/rules/{ruleId}", dependencies=[MANAGE], response_model_exclude_none=True
)
def update_rule(context: Context, rule_id: RuleId, body: RuleCreateBody) -> RuleResponse:
    """Replaces every field; the type cannot change."""
    return RuleResponse.of(definitions.replace_rule(context, rule_id, body.to_definition()))


@router.delete("/api/v1/notification/rules/{ruleId}", dependencies=[MANAGE], status_code=204)
def delete_rule(context: Context, rule_id: RuleId) -> Response:
    definitions.delete_rule(context, rule_id)
    return Response(status_code=204)


# -- events -------------------------------------------------------------------------------------


class EventOrderBy(StrEnum):
    ID = "id"
    CREATED_AT = "createdAt"


@router.get("/api/v1/notification/events", dependencies=[READ], response_model_exclude_none=True)
def list_events(
    context: Context,
    shape: PageList,
    time_from: FromTime = None,
    time_to: ToTime = None,
    feature: Annotated[list[str] | None, Query(description="Feature ids or keys")] = None,
    subject: Annotated[list[str] | None, Query(description="Subject keys")] = None,
    rule: Annotated[list[Annotated[str, Query(pattern=_ULID)]] | None, Query()] = None,
    channel: Annotated[list[Annotated[str, Query(pattern=_ULID)]] | None, Query()] = None,
    order: SortOrder = SortOrder.ASC,
    order_by: Annotated[EventOrderBy, Query(alias="orderBy")] = EventOrderBy.CREATED_AT,
) -> Page[EventResponse]:
    """Events with their payload and, per channel, the delivery state and every attempt."""
    criteria = EventFilter(
        time_from=time_from,
        time_to=time_to,
        features=tuple(feature or ()),
        subjects=tuple(subject or ()),
        rule_ids=tuple(rule or ()),
        channel_ids=tuple(channel or ()),
        descending=order is SortOrder.DESC,
        order_by="id" if order_by is EventOrderBy.ID else "created_at",
    )
    result = events.list_events(context, criteria, shape.window)
    return shape.paginated([EventResponse.of(e) for e in result.items], result.total_count)


@router.get(
    "/api/v1/notification/events/{eventId}", dependencies=[READ], response_model_exclude_none=True
)
def get_event(context: Context, event_id: EventId) -> EventResponse:
    return EventResponse.of(events.get_event(context, event_id))


@router.post("/api/v1/notification/events/{eventId}/resend", dependencies=[MANAGE], status_code=202)
def resend_event(context: Context, event_id: EventId, body: ResendBody | None = None) -> Response:
    """Sends again to every channel of the event, or to `channels`; the same `webhook-id`."""
    events.resend_event(context, event_id, (body.channels or []) if body else [])
    return Response(status_code=202)


@router.post(
    "/api/v1/notification/rules/{ruleId}/test",
    dependencies=[MANAGE],
    status_code=201,
    response_model_exclude_none=True,
)
def test_rule(context: Context, rule_id: RuleId) -> EventResponse:
    """A real event of the rule, marked as a test (`annotations`), delivered to its channels:
    the newest live metered entitlement the rule covers, else made-up data."""
    return EventResponse.of(events.send_test_event(context, rule_id, render_payload_data))
