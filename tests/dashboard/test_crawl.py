"""Every page a person can reach from the navigation opens, and no link inside the dashboard is
broken: a crawler follows every link from the overview, as an admin and as a read-only user."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from fastapi.testclient import TestClient

from tests.dashboard.conftest import Catalogue


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(found["href"] or "")
        if tag in ("script", "link") and (found.get("src") or found.get("href")):
            self.assets.append(found.get("src") or found.get("href") or "")


def crawl(client: TestClient, start: str = "/ui/") -> dict[str, int]:
    seen: dict[str, int] = {}
    queue = [start]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        response = client.get(url)
        seen[url] = response.status_code
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        parser = _Links()
        parser.feed(response.text)
        for href in parser.links + parser.assets:
            target = urljoin("https://testserver" + url, href)
            parts = urlsplit(target)
            if parts.netloc != "testserver" or not parts.path.startswith("/ui"):
                continue
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path not in seen:
                queue.append(path)
    return seen


def test_every_page_reachable_from_the_overview_opens_for_an_admin(
    whole_app_ui: TestClient, catalogue: Catalogue
) -> None:
    pages = crawl(whole_app_ui)
    broken = {url: status for url, status in pages.items() if status != 200}
    assert broken == {}
    for expected in (
        "/ui/meters",
        "/ui/meters/tokens",
        "/ui/features",
        "/ui/features/new",
        "/ui/customers",
        f"/ui/customers/{catalogue.customer_id}",
        f"/ui/customers/{catalogue.customer_id}/entitlements/new",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/override",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/reset",
        f"/ui/customers/{catalogue.customer_id}/entitlements/{catalogue.entitlement_id}/grants/{catalogue.grant_id}/void",
        "/ui/events",
        "/ui/api-keys",
        "/ui/static/dashboard.css",
        "/ui/static/vendor/htmx-2.0.7.min.js",
    ):
        assert expected in pages, f"{expected} is not linked from anywhere"
    assert len(pages) > 25


def test_a_read_only_user_reaches_every_page_but_no_write_page(
    read_ui: TestClient, catalogue: Catalogue
) -> None:
    pages = crawl(read_ui)
    assert {url: s for url, s in pages.items() if s != 200} == {}
    assert f"/ui/customers/{catalogue.customer_id}" in pages
    writes = [
        u for u in pages if re.search(r"/(new|override|reset|delete|void|archive|revoke)\b", u)
    ]
    assert writes == []
    assert "/ui/api-keys" not in pages
