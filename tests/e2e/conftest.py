"""Browser fixtures: Debian's Chromium driven by Playwright (never a browser Playwright downloads),
headless, with a fresh profile per test, against a real server on either database.

Skipped when `chromium` is not installed, unless ALLOTMENT_REQUIRE_BROWSER=1 (set by CI), which
makes a missing browser a failure. Screenshots go to build/screenshots/<database>/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import LiveServer, admin_key, live_server

REQUIRE_BROWSER = os.environ.get("ALLOTMENT_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        if REQUIRE_BROWSER:
            pytest.fail(
                "Chromium is required (ALLOTMENT_REQUIRE_BROWSER=1): apt-get install chromium"
            )
        pytest.skip("Debian's chromium is needed for the browser tests")
    return path


@pytest.fixture(scope="session")
def playwright_driver(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    # A machine busy with other work answers slower than Playwright's 5 s default expects.
    expect.set_options(timeout=15_000)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright_driver, chromium_path: str) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A persistent context on a fresh, throw-away profile (the --user-data-dir)."""
    profile = tempfile.mkdtemp(prefix="allotment-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=chromium_path,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshots(database_url: str) -> Path:
    directory = SCREENSHOTS / ("postgres" if database_url.startswith("postgresql") else "sqlite")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


__all__ = ["LiveServer", "admin_key", "live_server"]
