"""No stored event can make a read fail: extreme values through ingest, then every read.

Values outside the usage domain (more than 24 integer or 18 decimal digits: `1e-70`, `"1e400"`,
`1e308` twice, integers far beyond 64 bits) are stored but not counted, and the event listing
says why; everything else counts exactly. Sent with an ingest-only key, as an attacker would,
and read back through value, access, history and the meter query, on both databases.
"""

from __future__ import annotations

import itertools
import json
import os
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allotment.services import api_keys
from allotment.services.context import ServiceContext

EXAMPLES = int(os.environ.get("ALLOTMENT_POISON_EXAMPLES", "15"))
_examples = itertools.count()

# Raw JSON number texts and strings: the forms that broke reads before, and their neighbours.
extreme_numbers = st.sampled_from(
    [
        "1e-70",
        "1e308",
        "1e400",
        "-1e308",
        "123456789012345678901234",  # 24 digits: the largest that counts
        "1234567890123456789012345",  # 25 digits: too many
        "0.000000000000000001",  # 18 decimals: counts
        "0.0000000000000000001",  # 19 decimals: does not
        "1.000000000000000000000000",  # trailing zeros: counts as 1
        "18446744073709551616",
        "340282366920938463463374607431768211456",
        "-5",
        "0",
        "2.5e3",
        "7e-18",
    ]
)
extreme_strings = st.sampled_from(["1e400", "1e-70", "9e999", "-0.5", "12", "x", "NaN", ""])


def _countable(raw: str) -> Decimal | None:
    """The test's own statement of the usage domain."""
    try:
        number = Decimal(raw)
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    normal = number.normalize()
    integer_digits = max(normal.adjusted() + 1, 0)
    exponent = normal.as_tuple().exponent
    assert isinstance(exponent, int)
    if integer_digits > 24 or -exponent > 18:
        return None
    return number


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(
        st.one_of(
            extreme_numbers.map(lambda text: ("number", text)),
            extreme_strings.map(lambda text: ("string", text)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_extreme_values_never_break_a_read(
    client: TestClient, context: ServiceContext, values: list[tuple[str, str]]
) -> None:
    suffix = str(next(_examples))
    meter = {
        "slug": f"m{suffix}",
        "eventType": f"t{suffix}",
        "aggregation": "SUM",
        "valueProperty": "$.v",
    }
    assert client.post("/api/v1/meters", json=meter).status_code == 201
    client.delete("/api/v1/features/tokens_poison")
    feature = {"key": "tokens_poison", "name": "t", "meterSlug": meter["slug"]}
    assert client.post("/api/v1/features", json=feature).status_code == 201
    customer = f"c{suffix}"
    assert client.post("/api/v1/customers", json={"key": customer, "name": customer}).is_success
    entitlement = {
        "type": "metered",
        "featureKey": "tokens_poison",
        "usagePeriod": {"interval": "MONTH", "anchor": "2024-01-01T00:00:00Z"},
        "issueAfterReset": 10**6,
    }
    created = client.post(f"/api/v2/customers/{customer}/entitlements", json=entitlement)
    assert created.status_code == 201, created.text

    _key, secret = api_keys.create_key(context, "ingest")
    body = (
        "["
        + ",".join(
            json.dumps(
                {
                    "id": f"{suffix}-{index}",
                    "source": "poison",
                    "type": meter["eventType"],
                    "subject": customer,
                    "time": "2024-01-15T10:00:00Z",
                }
            )[:-1]
            + ', "data": {"v": '
            + (raw if kind == "number" else json.dumps(raw))
            + "}}"
            for index, (kind, raw) in enumerate(values)
        )
        + "]"
    )
    sent = client.post(
        "/api/v1/events",
        content=body,
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/cloudevents-batch+json",
        },
    )
    assert sent.status_code == 204, sent.text

    expected = Decimal(0)
    for kind, raw in values:
        number = _countable(raw) if (kind == "number" or _numeric_string(raw)) else None
        if number is not None and number > 0:
            expected += number  # entitlements count positive usage only
    reads: list[Any] = [
        client.get(f"/api/v2/customers/{customer}/entitlements/tokens_poison/value"),
        client.get(f"/api/v1/customers/{customer}/access"),
        client.get(
            f"/api/v2/customers/{customer}/entitlements/tokens_poison/history",
            params={"windowSize": "DAY", "from": "2024-01-01T00:00:00Z"},
        ),
        client.get(f"/api/v1/meters/{meter['slug']}/query", params={"groupBy": "subject"}),
        client.get("/api/v1/events", params={"subject": customer}),
    ]
    for response in reads:
        assert response.status_code == 200, response.text
    value = json.loads(reads[0].text, parse_float=Decimal)
    assert Decimal(value["usage"]) == expected
    # Every event is listed with its value exactly as sent, and a reason when it is not counted.
    listed = json.loads(reads[4].text, parse_float=Decimal, parse_int=Decimal)
    by_id = {item["event"]["id"]: item for item in listed}
    for index, (kind, raw) in enumerate(values):
        item = by_id[f"{suffix}-{index}"]
        stored = item["event"]["data"]["v"]
        if kind == "number":
            assert stored == Decimal(raw)
        else:
            assert stored == raw
        countable = _countable(raw) if (kind == "number" or _numeric_string(raw)) else None
        assert ("validationError" in item) == (countable is None), item


def _numeric_string(text: str) -> bool:
    import re

    return (
        re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?", text) is not None
    )
