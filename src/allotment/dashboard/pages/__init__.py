"""The dashboard's pages, one module per area; each exports `router`."""

from allotment.dashboard.pages import (
    api_keys,
    customers,
    entitlements,
    events,
    features,
    grants,
    meters,
    notifications,
    overview,
    plans,
    sign_in,
)

ROUTERS = [
    sign_in.router,
    overview.router,
    meters.router,
    features.router,
    plans.router,
    customers.router,
    entitlements.router,
    grants.router,
    events.router,
    notifications.router,
    api_keys.router,
]
