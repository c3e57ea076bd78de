"""OpenMeter's own OpenAPI document as the judge: schemathesis generates requests (valid and
invalid) for every operation of that document that Allotment serves, sends them to a running
server, and checks each answer against the document: no 5xx, documented status codes and
content types, bodies and headers as its schemas say, schema-invalid requests refused.

Short by design (`ALLOTMENT_CONFORMANCE_EXAMPLES` per operation, 8 unless set; runs are
derandomised, so the same requests each time, unless `ALLOTMENT_CONFORMANCE_RANDOM=1`). The
document is `../shared/reference/openmeter-openapi.yaml` beside the repository (or
`ALLOTMENT_OPENMETER_OPENAPI`); without it the test is skipped, except in CI.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from allotment.api.app import create_app
from allotment.api.problems import leaf_routes
from allotment.services.context import ServiceContext
from allotment.settings import Settings
from tests.openmeter_reference import openmeter_document

# Test servers of this suite listen in 18500-18599.
PORTS = range(18500, 18600)
EXAMPLES = int(os.environ.get("ALLOTMENT_CONFORMANCE_EXAMPLES", "8"))


def _document() -> Path | None:
    return openmeter_document()


def _port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18500-18599")


@dataclass
class Server:
    url: str
    app: FastAPI


@pytest.fixture
def server(context: ServiceContext) -> Iterator[Server]:
    # No rate limits: the run sends hundreds of requests from one key in seconds.
    settings = Settings(
        rate_limit_auth_failures="",
        rate_limit_writes="",
        rate_limit_ingest="",
        cors_allow_origins=[],
    )
    port = _port()
    app = create_app(settings, context=context)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        runner.should_exit = True
        thread.join(timeout=10)


def _seed(client: httpx.Client) -> str:
    """A meter, a customer with a metered entitlement and usage, so that some requests find
    something; returns a portal token for the customer's subject."""
    meter = {
        "slug": "tokens_total",
        "eventType": "prompt",
        "aggregation": "SUM",
        "valueProperty": "$.tokens",
        "groupBy": {"model": "$.model"},
    }
    assert client.post("/api/v1/meters", json=meter).status_code == 201
    feature = {"key": "ai_tokens", "name": "AI tokens", "meterSlug": "tokens_total"}
    assert client.post("/api/v1/features", json=feature).status_code == 201
    customer = {"key": "acme", "name": "ACME", "usageAttribution": {"subjectKeys": []}}
    assert client.post("/api/v1/customers", json=customer).status_code == 201
    entitlement = {
        "type": "metered",
        "featureKey": "ai_tokens",
        "usagePeriod": {"interval": "MONTH"},
        "issueAfterReset": 1000,
    }
    response = client.post("/api/v2/customers/acme/entitlements", json=entitlement)
    assert response.status_code == 201, response.text
    event = {
        "specversion": "1.0",
        "id": "seed-1",
        "source": "conformance",
        "type": "prompt",
        "subject": "acme",
        "data": {"tokens": 10, "model": "gpt-4o"},
    }
    assert client.post("/api/v1/events", json=event).status_code == 204
    token = client.post("/api/v1/portal/tokens", json={"subject": "acme"})
    assert token.status_code == 200, token.text
    secret: str = token.json()["token"]
    return secret


def _check_operation(
    operation: Any, url: str, headers: dict[str, str], failures: dict[str, str]
) -> None:
    """Runs the generated cases of one operation; the first failure of each is kept."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks

    wanted = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_headers_conformance,
        checks.response_schema_conformance,
        checks.negative_data_rejection,
    ]
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("ALLOTMENT_CONFORMANCE_RANDOM") != "1",
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(base_url=url, headers=headers, checks=wanted)
        except Exception as error:  # collected: one report names every failing operation
            failures.setdefault(label, f"{error}\n{case.as_curl_command()}")

    try:
        check()
    except Exception as error:  # schemathesis may report what it found when the run ends
        failures.setdefault(label, str(error))


def test_served_operations_conform_to_openmeters_document(admin_key: str, server: Server) -> None:
    document = _document()
    if document is None:
        if os.environ.get("CI") == "true":
            pytest.fail("OpenMeter's OpenAPI document is missing beside the repository")
        pytest.skip("OpenMeter's OpenAPI document (../shared/reference) is not here")
    import schemathesis

    served = {
        (method, route.path)
        for route in leaf_routes(server.app.routes)
        for method in getattr(route, "methods", None) or ()
    }
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        portal_token = _seed(client)

    schema = schemathesis.openapi.from_path(document).include(
        lambda found: (found.operation.method.upper(), found.operation.path) in served
    )
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        secret = portal_token if operation.path.startswith("/api/v1/portal/meters") else admin_key
        _check_operation(operation, server.url, {"Authorization": f"Bearer {secret}"}, failures)
    # Every served area of the document was reached (a filter mistake would test nothing).
    assert operations >= 42, operations
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
