"""Routers, one module per resource. Each router declares full paths (/api/v1/..., /api/v2/...)."""

from __future__ import annotations

from fastapi import APIRouter

from allotment.api.routes import (
    corrections,
    customers,
    entitlements,
    events,
    features,
    grants,
    info,
    meters,
    notifications,
    plans,
    portal,
    subjects,
    subscriptions,
)

ROUTERS: list[APIRouter] = [
    corrections.router,
    events.router,
    meters.router,
    subjects.router,
    customers.router,
    features.router,
    entitlements.router,
    grants.router,
    plans.router,
    subscriptions.router,
    portal.router,
    portal.query_router,
    info.router,
    notifications.router,
]
