"""The announcement's scenario in a real browser, without touching the API except to send usage:
sign in, create a meter and a feature, give a customer a metered entitlement, send usage and see
the balance drop, grant a top-up and see it come back, void it; then sign in read-only and find
no write controls (and have the server refuse a read-only session's writes).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from allotment.domain.time import rfc3339
from tests.api.conftest import LiveServer

PHONE = {"width": 390, "height": 844}


def _shot(page: Page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def _send_usage(server: LiveServer, event_id: str, data: dict[str, Any]) -> None:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "chat-service",
        "type": "prompt",
        "subject": "acme",
        "time": rfc3339(server.clock() - timedelta(minutes=1)),
        "data": data,
    }
    response = httpx.post(
        f"{server.url}/api/v1/events",
        json=event,
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )
    assert response.status_code == 204, response.text


def _balance(page: Page) -> str:
    return page.locator('[data-balance="ai_tokens"]').inner_text().strip()


def test_the_announcement_scenario_in_chromium(
    browser: BrowserContext, live_server: LiveServer, screenshots: Path
) -> None:
    server, clock = live_server, live_server.clock
    page = browser.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # Signing in: a wrong key is told apart, then the admin key works.
    page.goto(f"{server.url}/ui")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("alt_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#e-key")).to_contain_text("No API key matches")
    _shot(page, screenshots, "01-sign-in-wrong-key")
    # By keyboard alone: the key field has the focus, Enter sends the form.
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(server.admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # A meter.
    page.get_by_role("link", name="Meters", exact=True).click()
    page.get_by_role("link", name="New meter").click()
    page.get_by_label("Slug").fill("tokens")
    page.get_by_label("Event type").fill("prompt")
    page.get_by_label("Aggregation").select_option("SUM")
    page.get_by_label("Value property").fill("$.tokens")
    page.get_by_label("Group by").fill("model=$.model")
    page.get_by_role("button", name="Create meter").click()
    expect(page.get_by_text("Meter tokens created.")).to_be_visible()

    # A feature on it: first a mistake, shown next to the field with the input kept.
    page.get_by_role("link", name="Features", exact=True).click()
    page.get_by_role("link", name="New feature").click()
    page.get_by_label("Key").fill("AI Tokens")
    page.get_by_label("Name").fill("AI tokens")
    page.get_by_label("Meter").select_option("tokens")
    page.get_by_role("button", name="Create feature").click()
    expect(page.locator("#e-key")).to_contain_text("lowercase letters")
    expect(page.get_by_label("Name")).to_have_value("AI tokens")
    _shot(page, screenshots, "02-feature-form-error")
    page.get_by_label("Key").fill("ai_tokens")
    page.get_by_role("button", name="Create feature").click()
    expect(page.get_by_text("Feature ai_tokens created.")).to_be_visible()

    # A customer with a metered entitlement: 10,000,000 tokens a month.
    page.get_by_role("link", name="Customers", exact=True).click()
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("Name").fill("ACME Inc.")
    page.get_by_label("Key").fill("acme")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", name="ACME Inc.")).to_be_visible()
    page.get_by_role("link", name="Add entitlement").click()
    page.get_by_label("Feature").select_option("ai_tokens")
    page.get_by_label("Allowance each period").fill("10,000,000")
    page.get_by_label("Usage period").select_option("MONTH")
    _shot(page, screenshots, "03a-entitlement-form")
    page.set_viewport_size(PHONE)
    _shot(page, screenshots, "03b-entitlement-form-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Create entitlement").click()
    expect(page.get_by_text("is now entitled to ai_tokens")).to_be_visible()
    assert _balance(page) == "10,000,000"
    customer_url = page.url

    # Usage through the API: 10,001,000 tokens, and the page shows the balance gone.
    clock.advance(timedelta(minutes=30))
    _send_usage(server, "evt-1", {"tokens": 10_001_000, "model": "gpt-4o"})
    _send_usage(server, "evt-2", {"model": "gpt-4o"})  # no tokens: no meter can count it
    page.reload()
    assert _balance(page) == "0"
    glance = page.locator("table.glance tbody tr").first
    expect(glance).to_contain_text("No")
    expect(glance).to_contain_text("1,000 over")
    _shot(page, screenshots, "03-customer-over-limit")

    # A top-up in two clicks (open the form, grant), and the balance is back.
    clock.advance(timedelta(minutes=5))
    page.get_by_text("Grant usage (top-up)").click()
    page.get_by_label("Amount").fill("500,000")
    page.get_by_role("button", name="Grant", exact=True).click()
    expect(
        page.get_by_text("Granted 500,000 of ai_tokens to ACME Inc.", exact=True)
    ).to_be_visible()
    assert _balance(page) == "499,000"
    expect(page.locator("table.glance tbody tr").first).to_contain_text("Yes")
    _shot(page, screenshots, "04-customer-after-top-up")
    page.set_viewport_size(PHONE)
    _shot(page, screenshots, "05-customer-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Void it, after a confirmation, and the balance is gone again.
    clock.advance(timedelta(minutes=5))
    page.locator("table.grants tr.active", has_text="500,000").get_by_role(
        "link", name="Void…"
    ).click()
    expect(page.get_by_role("heading", name=re.compile("Void this grant"))).to_be_visible()
    _shot(page, screenshots, "06-void-confirmation")
    page.get_by_role("button", name="Void grant").click()
    expect(page.get_by_text("The grant of 500,000 was voided.")).to_be_visible()
    assert _balance(page) == "0"
    expect(page.locator("table.grants tr.voided")).to_contain_text("500,000")

    # The other main pages, for the record.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#limits ~ .table-scroll")).to_contain_text("ACME Inc.")
    _shot(page, screenshots, "07-overview")
    page.set_viewport_size(PHONE)
    _shot(page, screenshots, "08-overview-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Meters", exact=True).click()
    page.get_by_role("link", name="tokens").click()
    page.wait_for_load_state()  # the pickers update the chart through htmx
    page.get_by_label("Range").select_option("24h")
    page.get_by_label("Split by").select_option("model")
    expect(page.locator("#usage .legend")).to_contain_text("gpt-4o")
    expect(page.locator("#usage")).to_contain_text("acme")
    _shot(page, screenshots, "09-meter-usage")
    page.get_by_role("link", name="Events").click()
    problem = page.locator("table.events tr.problem")
    expect(problem).to_contain_text("missing value property '$.tokens'")
    _shot(page, screenshots, "10-events")
    page.get_by_role("link", name="Customers", exact=True).click()
    page.wait_for_load_state()  # htmx (a deferred script) has wired the search box up
    page.get_by_label("Search by name, key, email or subject").fill("zzz")
    expect(page.locator("#customer-rows")).to_contain_text("No customer matches")
    page.get_by_label("Search by name, key, email or subject").fill("acm")
    expect(page.locator("#customer-rows")).to_contain_text("ACME Inc.")
    expect(page).to_have_url(re.compile(r"/ui/customers\?q=acm$"))  # htmx searched as you typed
    _shot(page, screenshots, "11-customers")

    # An admin makes a read key; its secret is shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("support")
    page.get_by_label(re.compile("^Read:")).check()
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new read key").input_value()
    assert secret.startswith("alt_")
    _shot(page, screenshots, "12-api-keys")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    # Read-only: every page shows, no write control does, and the server refuses writes.
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("read-only")).to_be_visible()
    for url in (
        customer_url,
        f"{server.url}/ui/meters",
        f"{server.url}/ui/features",
        f"{server.url}/ui/customers",
        f"{server.url}/ui/events",
        f"{server.url}/ui/",
    ):
        page.goto(url)
        posting = page.locator("form[method=post]:not(.sign-out)")
        assert posting.count() == 0, f"{url} shows a write form to a read-only user"
        for name in (
            "New meter",
            "New feature",
            "New customer",
            "Add entitlement",
            "Void…",
            "Archive…",
        ):
            assert page.get_by_role("link", name=name).count() == 0, f"{url} offers {name!r}"
        assert page.get_by_text("Grant usage").count() == 0
        assert page.get_by_role("link", name="API keys").count() == 0
    page.goto(customer_url)
    _shot(page, screenshots, "13-customer-read-only")
    csrf = page.locator("form.sign-out input[name=csrf]").input_value()
    entitlement_action = page.locator("a[href^='#ent-']").first.get_attribute("href") or ""
    entitlement_id = entitlement_action.removeprefix("#ent-")
    refused = page.request.post(
        f"{customer_url}/entitlements/{entitlement_id}/grants",
        form={"csrf": csrf, "amount": "1000000"},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "read key" in refused.text()
    page.reload()
    assert _balance(page) == "0"
    # Form errors answer 400 and a wrong key 401, which Chromium logs; anything else (a script
    # error, a Content-Security-Policy violation, a missing asset) is a bug.
    unexpected = [e for e in console_errors if not re.search(r"status of 40[013] \(", e)]
    assert unexpected == []
