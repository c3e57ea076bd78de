"""Every write route of the dashboard, with its path filled in from a catalogue, so tests can
hold each one to the same rules without listing them by hand (a new route is covered at once)."""

from __future__ import annotations

import re

from allotment.dashboard.pages import ROUTERS
from allotment.services.context import ServiceContext
from tests.dashboard.conftest import Catalogue


def write_routes(context: ServiceContext, catalogue: Catalogue, key_id: str) -> list[str]:
    """Every POST path but signing in and out, its parameters naming things that exist."""
    values = {
        "customer_id": catalogue.customer_id,
        "entitlement_id": catalogue.entitlement_id,
        "grant_id": catalogue.grant_id,
        "feature_id": catalogue.feature_id,
        "key_id": key_id,
    }
    paths = []
    for route in (route for router in ROUTERS for route in router.routes):
        methods = getattr(route, "methods", set()) or set()
        path = getattr(route, "path", "")
        if "POST" not in methods or path in ("/login", "/logout"):
            continue
        paths.append("/ui" + re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path))
    return sorted(paths)


def write_pages(paths: list[str]) -> list[str]:
    """The pages holding the forms of those routes (a grant's form page is .../grants/new)."""
    pages = []
    for path in paths:
        if path.endswith("/grants"):
            pages.append(path + "/new")
        elif not path.endswith("/api-keys"):
            pages.append(path)
    return pages
