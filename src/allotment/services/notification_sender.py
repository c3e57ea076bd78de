"""Delivering webhooks from the outbox: signed, timed out, retried on a schedule, never lost.

A sender claims due deliveries in a short transaction (SENDING, with a claim that lapses after
the timeout and a margin: a sender killed mid-attempt leaves the delivery to the next one),
posts each outside any transaction, then records the outcome: SUCCESS on a 2xx, else the next
attempt of `RETRY_DELAYS`, and FAILED after the last. Claims use SKIP LOCKED on PostgreSQL, so
several processes never send one attempt twice.

Requests are signed per Standard Webhooks with the `standardwebhooks` library: `webhook-id` is
the delivery's message id (the same on every retry and resend, for receivers to dedupe),
`webhook-timestamp` the wall-clock second of the attempt, and `webhook-signature` `v1,` + the
base64 HMAC-SHA256 of `id.timestamp.body` under the channel's secret.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from allotment import logs
from allotment.domain.notifications import (
    ATTEMPT_BODY_MAX,
    Attempt,
    Channel,
    Delivery,
    DeliveryState,
    next_attempt_after,
)
from allotment.errors import Unavailable
from allotment.services.context import ServiceContext

log = logging.getLogger(__name__)

CLAIM_BATCH = 20
PARALLEL_POSTS = 4
CLAIM_MARGIN = timedelta(seconds=30)
USER_AGENT = "Allotment-Webhooks/1"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Job:
    delivery: Delivery
    channel: Channel | None
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    attempt: Attempt
    reason: str


def signed_headers(channel: Channel, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The request headers of one attempt: the channel's own, then the signature's."""
    signature = Webhook(channel.signing_secret).sign(message_id, at, body.decode("utf-8"))
    return {
        **channel.custom_headers,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload)


class Sender:
    """Sends due deliveries with one HTTP client (connection reuse); thread-safe."""

    def __init__(
        self,
        context: ServiceContext,
        *,
        timeout: float = 10.0,
        wall_clock: Callable[[], datetime] = _wall_clock,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        """`observe` hears each attempt's outcome: success, refused or unreachable."""
        self._context = context
        self._observe = observe
        self._timeout = timeout
        self._wall_clock = wall_clock
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
        self._pool = ThreadPoolExecutor(PARALLEL_POSTS, thread_name_prefix="allotment-webhook")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def send_due(self, limit: int = CLAIM_BATCH) -> int:
        """Claims and sends up to `limit` due deliveries; how many were attempted."""
        jobs = self._claim(limit)
        if not jobs:
            return 0
        outcomes = list(self._pool.map(self._attempt, jobs))
        self._record(outcomes)
        if self._observe is not None:
            for outcome in outcomes:
                attempt = outcome.attempt
                if attempt.state is DeliveryState.SUCCESS:
                    self._observe("success")
                else:
                    self._observe("refused" if attempt.status_code else "unreachable")
        return len(outcomes)

    def send_until_idle(self, rounds_max: int = 1000) -> int:
        """Everything due now (tests, `allotment worker --once`)."""
        total = 0
        for _ in range(rounds_max):
            sent = self.send_due()
            total += sent
            if not sent:
                break
        return total

    def _claim(self, limit: int) -> list[_Job]:
        now = self._context.clock()
        # A read first: an idle sender must not take SQLite's write lock every second.
        with self._context.database.single_statement() as uow:
            due = uow.outbox.next_due()
        if due is None or due > now:
            return []
        lapse = now + timedelta(seconds=self._timeout) + CLAIM_MARGIN
        with self._context.database.unit_of_work(write=True) as uow:
            claimed = uow.outbox.claim_due(now, lapse, limit)
            if not claimed:
                return []
            channels = uow.notifications.channels([d.channel_id for d in claimed])
            events = {d.event_id: uow.outbox.get_event(d.event_id) for d in claimed}
            uow.commit()
        jobs = []
        for delivery in claimed:
            event = events[delivery.event_id]
            assert event is not None  # deliveries reference their event
            jobs.append(_Job(delivery, channels.get(delivery.channel_id), encode(event.payload)))
        return jobs

    def _attempt(self, job: _Job) -> _Outcome:
        channel = job.channel
        started = time.monotonic()
        at = self._context.clock()
        if channel is None or not channel.is_active:
            attempt = Attempt(DeliveryState.FAILED, at, None, "", 0, None)
            return _Outcome(job, attempt, "the channel is disabled or deleted")
        headers = signed_headers(channel, job.delivery.message_id, job.body, self._wall_clock())
        try:
            with self._client.stream(
                "POST", channel.url, content=job.body, headers=headers
            ) as response:
                status, text = response.status_code, _excerpt(response)
        except httpx.HTTPError as error:
            duration = int((time.monotonic() - started) * 1000)
            attempt = Attempt(DeliveryState.FAILED, at, None, "", duration, channel.url)
            return _Outcome(job, attempt, f"request failed: {type(error).__name__}")
        duration = int((time.monotonic() - started) * 1000)
        ok = 200 <= status < 300
        state = DeliveryState.SUCCESS if ok else DeliveryState.FAILED
        attempt = Attempt(state, at, status, text, duration, channel.url)
        return _Outcome(job, attempt, "" if ok else f"the receiver answered {status}")

    def _record(self, outcomes: list[_Outcome]) -> None:
        now = self._context.clock()
        with self._context.database.unit_of_work(write=True) as uow:
            for outcome in outcomes:
                claimed = outcome.job.delivery
                current = uow.outbox.get_delivery(claimed.event_id, claimed.channel_id)
                if current is None or current.state is not DeliveryState.SENDING:
                    # Resent while in flight: the resend starts its own attempts; keep the log.
                    if current is not None:
                        uow.outbox.save_delivery(
                            replace(current, attempts=(*current.attempts, outcome.attempt))
                        )
                    continue
                uow.outbox.save_delivery(_after(current, outcome, now))
            uow.commit()
        failed = sum(o.attempt.state is DeliveryState.FAILED for o in outcomes)
        if failed:
            log.info("webhook attempts failed", extra={"failed": failed, "made": len(outcomes)})


def _excerpt(response: httpx.Response) -> str:
    """The start of the receiver's answer; the rest is never read (a receiver cannot make the
    sender hold a large body)."""
    kept = b""
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= ATTEMPT_BODY_MAX * 4:
            break
    return kept.decode("utf-8", errors="replace")[:ATTEMPT_BODY_MAX]


def _after(delivery: Delivery, outcome: _Outcome, now: datetime) -> Delivery:
    attempts = (*delivery.attempts, outcome.attempt)
    made = delivery.attempt_count + 1
    if outcome.attempt.state is DeliveryState.SUCCESS:
        return replace(
            delivery,
            state=DeliveryState.SUCCESS,
            reason="",
            attempt_count=made,
            attempts=attempts,
            next_attempt_at=None,
            updated_at=now,
        )
    due = next_attempt_after(made, now)
    return replace(
        delivery,
        state=DeliveryState.PENDING if due is not None else DeliveryState.FAILED,
        reason=outcome.reason,
        attempt_count=made,
        attempts=attempts,
        next_attempt_at=due,
        updated_at=now,
    )


class SenderWorker:
    """A daemon thread sending webhooks: at once when the evaluator wakes it, else every
    `interval` seconds (retries fall due without anyone waking it)."""

    def __init__(self, context: ServiceContext, sender: Sender, interval: float = 1.0) -> None:
        self._context = context
        self._sender = sender
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="allotment-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._context.caches.wake_sender()
        self._thread.join(timeout)
        self._sender.close()

    def _loop(self) -> None:
        wake = self._context.caches.sender_wanted
        while not self._stop.is_set():
            wake.clear()
            try:
                sent = self._sender.send_due()
            except Unavailable:
                sent = 0
            except Exception as error:  # a failing round must not end the thread
                log.error("webhook sending failed", extra=logs.exception_fields(error))
                sent = 0
            if sent:
                continue
            wake.wait(self._interval)
