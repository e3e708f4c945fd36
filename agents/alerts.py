"""Alert delivery: every alert on ``alerts`` is POSTed to the app's webhook, signed, retried with back-off.

Two agents:

* ``alerts-deliver`` reads ``alerts`` in small batches and makes attempt 1 for each alert concurrently
  (bounded). A failure never holds the partition: the alert is re-published on ``alerts.retry`` with the
  next attempt number and its due time in headers (``core.delivery.retry_headers``) and the agent moves on.
  So the ``alerts`` partition is held up at most by one request timeout per batch.
* ``alerts-retry`` reads ``alerts.retry`` and makes attempts 2..n when they are due. After the last failed
  attempt the alert goes to ``alerts.dlq`` with the last error (``streams.dead_letter.build_dead_letter``).

**Waiting for the due time.** Faust hands an agent one stream over all its assigned partitions, so a
sleeping retry agent holds every ``alerts.retry`` partition of this worker (never ``alerts``). It therefore
sleeps only within a bounded window (:data:`RETRY_WAIT_WINDOW_S`): messages due within the window are
waited for and delivered; messages due later are re-published at the end of the retry topic, unchanged
(same due time), and met again on a later pass. When a batch holds nothing due soon, the agent idles until
the earliest due time or the window, whichever is first, so it never spins. The cost is one re-publish per
waiting alert per pass (at most one pass per window): with a 5 s window and alerts waiting up to 30 min,
about 360 re-publishes of a small message, paid only by alerts whose receiver is failing. The alternative,
one topic per delay (``alerts.retry.10s`` ...), avoids that but needs more topics than the one declared.

Every effect is idempotent for the receiver: a redelivery (a crash between delivery and commit, or the
same alert produced twice) carries the same ``X-Nudge-Alert-Id`` and the same body. An exception while
handling a message dead-letters that message; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
from faust import StreamT
from faust.streams import Stream
from faust.types import EventT
from mode import Service
from prometheus_client import Counter, Histogram

from core.delivery import (
    DeliveryPolicy,
    GiveUp,
    InvalidRetryHeaders,
    RetryState,
    alert_payload,
    next_step,
    parse_retry_headers,
    request_headers,
    retry_headers,
)
from schemas.codec import DecodeError, default_codec
from streams.app import Pipeline
from streams.dead_letter import build_dead_letter
from streams.metrics import EVENTS_IN, EVENTS_OUT, PROCESSING_ERRORS
from streams.topics import dead_letter_of

__all__ = ["register", "WebhookClient", "Outcome", "RETRY_WAIT_WINDOW_S", "MAX_PARALLEL"]

log = logging.getLogger(__name__)

RETRY_WAIT_WINDOW_S = 5.0
MAX_PARALLEL = 16  # concurrent webhook requests per agent
BATCH_MAX = 64
BATCH_WITHIN_S = 0.05
MAX_RESPONSE_CHARS = 200

DELIVERY_ATTEMPTS = Counter(
    "nudge_alert_delivery_attempts_total",
    "Webhook delivery attempts, per attempt number and result.",
    ["attempt", "result"],
)
DELIVERY_OUTCOMES = Counter(
    "nudge_alert_delivery_outcomes_total",
    "What happened to an alert after an attempt: delivered, retry_scheduled, dead_lettered, requeued.",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "nudge_alert_delivery_seconds",
    "Duration of one webhook request.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one webhook request: ``ok``, or the error to record and an optional ``Retry-After``."""

    ok: bool
    error: str = ""
    retry_after_s: float | None = None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # the HTTP-date form is rare for webhooks; the schedule applies
    return seconds if seconds >= 0 else None


class WebhookClient(Service):
    """POSTs signed alerts to the webhook over one keep-alive session per worker.

    Redirects are not followed (a webhook that moved must be reconfigured, and following would send the
    signed alert to wherever the redirect points); any status outside 2xx is a failed attempt.
    """

    def __init__(self, url: str, secret: str, timeout_s: float, **kwargs: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"NUDGE_WEBHOOK_URL must be an http(s) URL, got {url!r}")
        if not secret:
            raise ValueError("NUDGE_WEBHOOK_SECRET must be set when NUDGE_WEBHOOK_URL is (alerts are signed)")
        if timeout_s <= 0:
            raise ValueError(f"NUDGE_WEBHOOK_TIMEOUT_S must be > 0, got {timeout_s}")
        super().__init__(**kwargs)
        self.url = url
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(MAX_PARALLEL)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, headers={"User-Agent": "nudgestream-alerts/1"}
            )
        return self._session

    async def on_stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, alert_id: str, body: bytes, attempt: int) -> Outcome:
        async with self._limit:
            started = time.perf_counter()
            headers = request_headers(self.secret, alert_id, body, attempt, time.time())
            try:
                async with self._client().post(
                    self.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        outcome = Outcome(True)
                    else:
                        text = (await response.text(errors="replace"))[:MAX_RESPONSE_CHARS]
                        outcome = Outcome(
                            False,
                            f"HTTP {response.status} {response.reason or ''}: {text}".strip(),
                            _retry_after(response.headers.get("Retry-After")),
                        )
            except TimeoutError:
                outcome = Outcome(False, f"timeout after {self.timeout.total}s")
            except aiohttp.ClientError as exc:
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            DELIVERY_SECONDS.observe(time.perf_counter() - started)
            DELIVERY_ATTEMPTS.labels(str(attempt), "ok" if outcome.ok else "failed").inc()
            return outcome


async def _send_and_wait(topic: Any, **kwargs: Any) -> None:
    """Send and wait for the broker's acknowledgement, so the source offset is committed only after the
    retry (or dead-letter) copy is safe."""
    pending = await topic.send(**kwargs)
    if isinstance(pending, Awaitable):
        await pending


def _now_ms() -> int:
    return int(time.time() * 1000)


def register(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    if not settings.webhook_url:
        log.warning("NUDGE_WEBHOOK_URL is not set: alerts are kept in Kafka and not delivered")
        return
    policy = DeliveryPolicy.from_spec(settings.webhook_retry_delays)
    client = WebhookClient(settings.webhook_url, settings.webhook_secret, float(settings.webhook_timeout_s))
    pipeline.services["webhook"] = client
    pipeline.app.service(client)  # type: ignore[arg-type]  # typed for classes, takes instances too
    app = pipeline.app
    alerts, retry, dlq = (pipeline.topics[n] for n in ("alerts", "alerts.retry", dead_letter_of("alerts")))

    async def dead_letter(
        event: EventT, error: str, reason: str, headers: Iterable[tuple[str, bytes]] = ()
    ) -> None:
        message = event.message
        PROCESSING_ERRORS.labels(message.topic).inc()
        key, value, letter_headers = build_dead_letter(
            key=message.key,
            value=message.value,
            error=error,
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp=message.timestamp,
            original_headers=list(headers),
        )
        await _send_and_wait(dlq, key=key, value=value, headers=letter_headers)
        DELIVERY_OUTCOMES.labels("dead_lettered").inc()

    def decode(event: EventT) -> dict[str, Any]:
        record = default_codec().decode(event.value, expect="Alert")
        if event.key != record["customer_id"].encode():
            raise DecodeError("invalid_record", "customer_id does not match the message key")
        return record

    async def attempt(
        event: EventT, record: dict[str, Any], number: int, first_failed_ms: int | None
    ) -> None:
        """Make attempt ``number``; on failure schedule the next one or dead-letter."""
        outcome = await client.deliver(record["alert_id"], alert_payload(record), number)
        if outcome.ok:
            DELIVERY_OUTCOMES.labels("delivered").inc()
            return
        now = _now_ms()
        first = first_failed_ms if first_failed_ms is not None else now
        step = next_step(policy, number, now, outcome.retry_after_s)
        if isinstance(step, GiveUp):
            await dead_letter(
                event,
                f"webhook delivery failed after {step.attempts} attempts; last error: {outcome.error}",
                "delivery_failed",
                [
                    ("nudge.attempts", str(step.attempts).encode()),
                    ("nudge.alert_id", record["alert_id"].encode()),
                    ("nudge.first_failed_ms", str(first).encode()),
                ],
            )
            return
        await _send_and_wait(
            retry,
            key=event.message.key,
            value=event.message.value,
            headers=retry_headers(step, outcome.error, first),
        )
        EVENTS_OUT.labels("alerts.retry").inc()
        DELIVERY_OUTCOMES.labels("retry_scheduled").inc()

    async def first_attempt(event: EventT) -> None:
        try:
            try:
                record = decode(event)
            except DecodeError as exc:
                await dead_letter(event, str(exc), exc.reason)
                return
            await attempt(event, record, 1, None)
        except Exception as exc:  # noqa: BLE001 - a message must never be dropped
            await dead_letter(event, f"{type(exc).__name__}: {exc}", "processing_failed")

    async def retry_attempt(event: EventT, state: RetryState) -> None:
        try:
            try:
                record = decode(event)
            except DecodeError as exc:
                await dead_letter(event, str(exc), exc.reason, event.headers.items())
                return
            await attempt(event, record, state.attempt, state.first_failed_ms)
        except Exception as exc:  # noqa: BLE001 - a message must never be dropped
            await dead_letter(
                event, f"{type(exc).__name__}: {exc}", "processing_failed", event.headers.items()
            )

    async def retry_when_due(event: EventT, state: RetryState) -> None:
        """Each alert of the batch at its own due time (all within the window), concurrently."""
        await asyncio.sleep(max(0, state.due_ms - _now_ms()) / 1000)
        await retry_attempt(event, state)

    async def requeue(event: EventT) -> None:
        try:
            await _send_and_wait(
                retry, key=event.message.key, value=event.message.value, headers=list(event.headers.items())
            )
            DELIVERY_OUTCOMES.labels("requeued").inc()
        except Exception as exc:  # noqa: BLE001
            await dead_letter(
                event, f"{type(exc).__name__}: {exc}", "processing_failed", event.headers.items()
            )

    @app.agent(alerts, name="alerts-deliver")
    async def deliver_alerts(stream: StreamT[bytes]) -> None:
        async for events in cast(Stream[bytes], stream).take_events(max_=BATCH_MAX, within=BATCH_WITHIN_S):
            EVENTS_IN.labels("alerts").inc(len(events))
            await asyncio.gather(*(first_attempt(e) for e in events))

    @app.agent(retry, name="alerts-retry")
    async def retry_alerts(stream: StreamT[bytes]) -> None:
        async for events in cast(Stream[bytes], stream).take_events(max_=BATCH_MAX, within=BATCH_WITHIN_S):
            EVENTS_IN.labels("alerts.retry").inc(len(events))
            now = _now_ms()
            window_ms = int(RETRY_WAIT_WINDOW_S * 1000)
            due: list[tuple[EventT, RetryState]] = []
            soon: list[tuple[EventT, RetryState]] = []
            later: list[tuple[EventT, RetryState]] = []
            for event in events:
                try:
                    state = parse_retry_headers(event.headers)
                except InvalidRetryHeaders as exc:
                    await dead_letter(event, str(exc), exc.reason, event.headers.items())
                    continue
                wait = state.due_ms - now
                (due if wait <= 0 else soon if wait <= window_ms else later).append((event, state))
            await asyncio.gather(
                *(requeue(e) for e, _ in later),
                *(retry_attempt(e, s) for e, s in due),
                *(retry_when_due(e, s) for e, s in soon),
            )
            if later and not due and not soon:
                # Nothing due now or soon: idle rather than spin through the re-published messages.
                earliest = min(s.due_ms for _, s in later)
                await asyncio.sleep(min(RETRY_WAIT_WINDOW_S, max(0, earliest - _now_ms()) / 1000))
