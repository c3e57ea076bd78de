"""Front-end assets come from the package itself, each vendored one matching the checksum of its
pinned release; numbers are written for people and exactly."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from allotment.dashboard.charts import Series, nice_ceiling, time_chart, usage_bar
from allotment.dashboard.formatting import number, percent, when


def test_every_vendored_asset_matches_its_pinned_release() -> None:
    vendor = resources.files("allotment.dashboard") / "static" / "vendor"
    manifest = json.loads((vendor / "vendored.json").read_text())
    assert manifest, "the manifest lists every vendored file"
    for name, entry in manifest.items():
        digest = hashlib.sha256((vendor / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], name
        assert entry["version"] in name  # the file name says which release it is
    shipped = {p.name for p in vendor.iterdir()} - {"vendored.json"}
    assert {n for n in shipped if not n.endswith(".LICENSE")} == set(manifest)


def test_pages_load_scripts_and_styles_only_from_the_dashboard(ui: TestClient) -> None:
    page = ui.get("/ui/login").text
    assert 'src="/ui/static/vendor/htmx-2.0.7.min.js"' in page
    assert "http://" not in page and "https://" not in page
    assert ui.get("/ui/static/vendor/htmx-2.0.7.min.js").status_code == 200
    assert ui.get("/ui/static/dashboard.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+7"), "10,000,000"),
        (Decimal("10000000.000"), "10,000,000"),
        (Decimal("0.250"), "0.25"),
        (Decimal("-0"), "0"),
        (Decimal("1234567.000000000000000001"), "1,234,567.000000000000000001"),
        (Decimal("1E+18"), "1,000,000,000,000,000,000"),
        (Decimal("-1500.5"), "-1,500.5"),
        (0, "0"),
        (None, "—"),
    ],
)
def test_numbers_are_grouped_and_exact(value: Decimal | int | None, text: str) -> None:
    assert number(value) == text


def test_shares_and_times_read_naturally() -> None:
    assert percent(Decimal(2) / Decimal(3)) == "67%"
    assert percent(Decimal("1.0001")) == "100%"
    assert when(datetime(2024, 1, 5, 9, 30, tzinfo=UTC)) == "5 Jan 2024, 09:30 UTC"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [
        (Decimal(0), Decimal(1)),
        (Decimal(7), Decimal(8)),
        (Decimal(10_001_000), Decimal(12_000_000)),
        (Decimal(10_000_000), Decimal(10_000_000)),
        (Decimal("0.3"), Decimal("0.3")),
        (Decimal(2_600), Decimal(3_000)),
    ],
)
def test_chart_scales_end_on_a_round_number_at_or_above_the_largest_value(
    value: Decimal, ceiling: Decimal
) -> None:
    assert nice_ceiling(value) == ceiling


def test_a_chart_carries_each_exact_value_and_needs_no_script() -> None:
    windows = [datetime(2024, 1, day, tzinfo=UTC) for day in (1, 2, 3)]
    svg = time_chart(
        windows,
        [
            Series("Usage", [Decimal("1E+7"), Decimal("0.5"), None], kind="bar"),
            Series("Balance", [Decimal(3), None, Decimal(1)]),
        ],
        label="Usage <of> tokens",
    )
    assert "1 Jan 2024, 00:00 UTC: Usage 10,000,000" in svg
    assert "2 Jan 2024, 00:00 UTC: Usage 0.5" in svg
    assert "Usage &lt;of&gt; tokens" in svg
    assert "<script" not in svg and "style=" not in svg
    assert svg.count("<rect") == 2 and svg.count("<circle") == 2


def test_the_usage_bar_fills_with_the_share_used() -> None:
    assert 'width="25.0"' in usage_bar(Decimal(25), Decimal(100), over=False)
    assert 'width="100.0"' in usage_bar(Decimal(300), Decimal(100), over=True)
    assert "over" in usage_bar(Decimal(1), Decimal(0), over=True)
