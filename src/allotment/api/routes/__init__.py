"""Routers, one module per resource. Each router declares full paths (/api/v1/..., /api/v2/...)."""

from __future__ import annotations

from fastapi import APIRouter

from allotment.api.routes import (
    customers,
    entitlements,
    events,
    features,
    grants,
    meters,
    notifications,
    subjects,
)

ROUTERS: list[APIRouter] = [
    events.router,
    meters.router,
    subjects.router,
    customers.router,
    features.router,
    entitlements.router,
    grants.router,
    notifications.router,
]
