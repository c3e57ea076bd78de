"""Small endpoints the SDKs call: currencies, the progress of a meter query sent with a
`clientId`, and OpenMeter's debug event counters."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.api.helpers import send_usage, setup_catalogue
from tests.api.problems import problem_fields
from tests.conftest import SettableClock


def test_currencies_are_listed_with_their_minor_units(client: TestClient) -> None:
    response = client.get("/api/v1/info/currencies")
    assert response.status_code == 200
    by_code = {c["code"]: c for c in response.json()}
    assert by_code["USD"] == {"code": "USD", "name": "US Dollar", "symbol": "$", "subunits": 2}
    assert by_code["JPY"]["subunits"] == 0 and by_code["KWD"]["subunits"] == 3
    assert all(len(code) == 3 and code.isupper() for code in by_code)


def test_a_query_sent_with_a_client_id_reports_its_progress(
    client: TestClient, clock: SettableClock
) -> None:
    setup_catalogue(client)
    assert problem_fields(client.get("/api/v1/info/progress/q-1"), 404) == ["id"]
    response = client.get("/api/v1/meters/tokens/query", params={"clientId": "q-1"})
    assert response.status_code == 200
    assert client.get("/api/v1/info/progress/q-1").json() == {
        "success": 1,
        "failed": 0,
        "total": 1,
        "updatedAt": "2024-01-15T12:00:00Z",
    }
    # A query that fails says so; POST queries are tracked too.
    failed = client.post(
        "/api/v1/meters/tokens/query", json={"clientId": "q-2", "groupBy": ["nope"]}
    )
    assert failed.status_code == 400
    assert client.get("/api/v1/info/progress/q-2").json()["failed"] == 1


def test_debug_metrics_count_todays_events_per_subject(
    client: TestClient, clock: SettableClock
) -> None:
    setup_catalogue(client)
    clock.set(datetime(2024, 1, 14, 23, 0, tzinfo=UTC))
    send_usage(client, 1, "2024-01-14T22:00:00Z", subject="acme")  # yesterday: not counted
    clock.set(datetime(2024, 1, 15, 9, 0, tzinfo=UTC))
    send_usage(client, 1, "2024-01-15T08:00:00Z", subject="acme")
    send_usage(client, 1, "2024-01-15T08:00:00Z", subject="acme")
    send_usage(client, 1, "2024-01-15T08:00:00Z", subject='say "hi"')
    response = client.get("/api/v1/debug/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = [line for line in response.text.splitlines() if not line.startswith("#")]
    assert sorted(samples) == [
        'openmeter_events_total{subject="acme"} 2.0',
        'openmeter_events_total{subject="say \\"hi\\""} 1.0',
    ]
    assert "# TYPE openmeter_events_total counter" in response.text
