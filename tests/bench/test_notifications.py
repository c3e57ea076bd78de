"""N1 to N3 at the tiny scale against a real server (`allotment serve`, SQLite): every figure
is printed, webhooks really arrive for the rules' crossings, every answer is exact, and a wrong
expectation of a crossing's value is caught as a mismatch. Plus the receiver refusing what is
not signed with its secret, and the percentile the figures use."""

from __future__ import annotations

import base64
import http.client
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bench.expected import Mismatches
from bench.receiver import Receiver
from bench.scales import TINY
from bench.server import Server

from bench import databases, load, notifications, references, suite
from bench import dataset as ds

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler"
)


@dataclass
class Run:
    ctx: suite.Context
    server: Server
    copy: databases.Store
    expectations: suite.Expectations
    ranks: list[int]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    load.build()
    cache = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ds, "CACHE", cache)
        data = ds.load_or_build("sqlite", TINY, log=lambda _m: None)
    work = tmp_path_factory.mktemp("bench-work")
    ctx = suite.Context(data, 1, work, Mismatches(), log=lambda _m: None, only=("N",))
    ctx.notes["api_key"] = data.api_key
    copy = databases.store("sqlite", "run_n", work)
    databases.copy(data.store("pop"), copy)
    server = Server(copy.url, 1, work / "server.log")
    server.start()
    try:
        yield Run(
            ctx,
            server,
            copy,
            suite.Expectations(data.expected("population")),
            ds.ranks_for_b2(TINY),
        )
    finally:
        server.stop()


def test_the_figures_appear_with_deliveries_and_every_answer_exact(run: Run) -> None:
    notifications.measure_notifications(run.ctx, run.server, run.copy, run.expectations, run.ranks)
    assert not run.ctx.mismatches, run.ctx.mismatches.examples
    lines = [(f.id, f.what) for f in run.ctx.figures]
    assert [i for i, _ in lines] == ["N1", "N2", "N2", "N3"]
    n1, n2_p99, n2_p50, n3 = run.ctx.figures
    assert n1.value and n1.reference and n1.passed is not None
    passes = n1.details["passes"]
    assert "".join(p["mode"] for p in passes) == notifications.MODES
    assert all(p["deliveries"] == 0 for p in passes if p["mode"] == "A")
    # The tiny population crosses every threshold within N1: webhooks really arrive.
    assert n1.details["webhooks_received"] == n1.details["notification_events"] > 0
    k = notifications.n2_customers(TINY)
    assert len(n2_p99.details["latencies_ms"]) == k
    assert n2_p99.details["lost"] == 0
    assert n2_p99.value is not None and n2_p50.value is not None
    assert 0 < n2_p50.value <= n2_p99.value
    assert n3.value and n3.reference
    stored = references.count_source(run.copy, "bench-n1")
    assert stored == TINY.b1_events * len(notifications.MODES)


def test_a_wrong_expected_value_in_a_crossing_is_a_mismatch(run: Run) -> None:
    receiver_secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    mismatches = Mismatches()
    ctx = suite.Context(
        run.ctx.dataset, 1, run.ctx.workdir, mismatches, log=lambda _m: None, only=("N",)
    )
    ctx.notes["api_key"] = run.ctx.notes["api_key"]
    # The bench believes one customer used a token more than it did.
    wrong = suite.Expectations(run.expectations.by_model)
    chosen = run.ranks[0]
    who = ds.subject(chosen)
    wrong.add(who, "gpt-4o", 1)
    before = wrong.usage(who)
    api = notifications.Api(ctx, run.server)
    with Receiver(receiver_secret) as receiver:
        channel = api.call(
            "POST",
            notifications.CHANNELS,
            {"type": "WEBHOOK", "name": "t", "url": receiver.url, "signingSecret": receiver_secret},
            expect=201,
        )
        notifications.measure_n2(
            ctx, run.server, api, run.copy, wrong, receiver, channel["id"], [chosen]
        )
    # The module's other test may run after this one: the server's usage stays known.
    run.expectations.add(who, "gpt-4o", wrong.usage(who) - before)
    assert mismatches.by_figure == {"N2": 1}, mismatches.examples
    assert who in mismatches.examples[0]
    assert "usage" in mismatches.examples[0]


def test_the_receiver_keeps_only_what_is_signed_with_its_secret() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with Receiver(secret) as receiver:
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
        connection.request(
            "POST",
            "/allotment-bench",
            body=b'{"data": {}}',
            headers={"webhook-id": "m1", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
        )
        assert connection.getresponse().status == 401
        connection.close()
        assert receiver.count() == 0
        assert len(receiver.refused) == 1
        assert receiver.wait_for(lambda _p: True, timeout=0.05) is None


def test_percentile_is_nearest_rank() -> None:
    assert notifications.percentile([], 0.5) is None
    values = [float(v) for v in range(1, 21)]
    assert notifications.percentile(values, 0.99) == 20
    assert notifications.percentile(values, 0.5) == 10
    assert notifications.percentile([3.0], 0.99) == 3
