"""The official OpenMeter JavaScript SDK (`@openmeter/sdk`, pinned in tests/js/package.json)
runs the announcement scenario against a real server: meters, events (batch and duplicate),
features, customers, v2 customer entitlements, v1 subject entitlements and grants, values,
history, reset, void, access, and the lists; and its portal client with the v2 event list.

Needs Node.js and npm (the packages come from the npm registry on first run); skipped without
them unless ALLOTMENT_REQUIRE_NODE=1, which CI sets.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.api.conftest import LiveServer
from tests.webhook_receiver import Receiver

JS_DIR = Path(__file__).resolve().parents[1] / "js"
REQUIRE_NODE = os.environ.get("ALLOTMENT_REQUIRE_NODE") == "1"


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if REQUIRE_NODE:
            pytest.fail("Node.js and npm are required (ALLOTMENT_REQUIRE_NODE=1)")
        pytest.skip("Node.js and npm are needed for the JavaScript SDK test")
    if not (JS_DIR / "node_modules" / "@openmeter" / "sdk").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return Path(node)


def test_javascript_sdk_runs_the_announcement_scenario(
    node_sdk: Path, live_server: LiveServer
) -> None:
    live_server.clock.release()  # the SDK stamps events and grants with the real time
    result = subprocess.run(
        [str(node_sdk), "scenario.mjs", live_server.url, live_server.admin_key, "1"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "ok"


def test_javascript_sdk_portal_client_and_v2_event_list(
    node_sdk: Path, live_server: LiveServer
) -> None:
    live_server.clock.release()  # portal tokens expire by the real time
    result = subprocess.run(
        [str(node_sdk), "portal.mjs", live_server.url, live_server.admin_key, "1"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "ok"


def test_javascript_sdk_manages_notifications(node_sdk: Path, live_server: LiveServer) -> None:
    """Channels, rules and events through the SDK; the server's own workers deliver to a
    receiver that verifies each signature, and a resend arrives with the same webhook-id."""
    live_server.clock.release()
    secret = "whsec_" + base64.b64encode(b"javascript sdk notifications 32b").decode()
    receiver = Receiver(secret=secret).start()
    try:
        result = subprocess.run(
            [str(node_sdk), "notifications.mjs", live_server.url, live_server.admin_key,
             receiver.url, secret],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout
        event_id = result.stdout.strip()
        deadline = time.monotonic() + 10
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first, resent = receiver.received
        assert first.webhook_id == resent.webhook_id
        assert first.payload["id"] == resent.payload["id"] == event_id
        assert receiver.refused == []
    finally:
        receiver.stop()
