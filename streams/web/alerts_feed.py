"""``GET /v1/alerts/stream``: the live alerts as server-sent events, followed straight from Kafka.

Each connection gets its own aiokafka consumer **without a group**: it assigns every partition of
``alerts`` itself, starts at the latest offsets (or where a reconnecting client left off) and commits
nothing, so watchers never disturb the delivery agents' consumer group or each other. Connections are
capped (:data:`MAX_STREAMS`, 503 beyond) because each one holds a consumer.

Events::

    id: 0:41,1:17,2:9,3:30        ← next offset per partition: a reconnect sends it back as Last-Event-ID
    event: alert
    data: {"alert_id": ..., "customer_id": ..., ...}   ← the same JSON body the webhook receives

plus ``event: ready`` once the consumer is positioned and a ``: keep-alive`` comment every
:data:`HEARTBEAT_S` seconds (so proxies keep the connection and a dead client is noticed).

Access: an API key (``Authorization: Bearer`` or ``X-API-Key``, checked by ``streams.web.auth`` as for
the API) with ``insights:read`` (or ``admin``). A key restricted to some customers sees only their
alerts; ``?customer_id=`` narrows the feed to one customer (403 if the key may not act for them). Browsers read the stream with ``fetch`` (``EventSource`` cannot send the header).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from core.delivery import alert_payload
from schemas.codec import DecodeError, default_codec
from streams.kafka_config import aiokafka_security
from streams.settings import Settings
from streams.web.auth import AccessDenied, check_access

__all__ = ["AlertsFeed", "FEED_SCOPE", "HEARTBEAT_S", "MAX_STREAMS", "format_positions", "parse_positions"]

log = logging.getLogger(__name__)

TOPIC = "alerts"
FEED_SCOPE = "insights:read"
MAX_STREAMS = 32
HEARTBEAT_S = 15.0
RECONNECT_MS = 3000
MAX_POSITIONS_HEADER = 4096

ConsumerFactory = Callable[[Settings], AIOKafkaConsumer]


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        client_id="nudgestream-alerts-feed",
        **aiokafka_security(settings),
    )


def format_positions(positions: Mapping[int, int]) -> str:
    """``{0: 41, 1: 17}`` → ``"0:41,1:17"`` (the SSE event id)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


def parse_positions(text: str) -> dict[int, int]:
    """The inverse of :func:`format_positions`; ``ValueError`` naming the bad part."""
    if len(text) > MAX_POSITIONS_HEADER:
        raise ValueError("Last-Event-ID is too long")
    positions: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"Last-Event-ID part {part[:40]!r} is not <partition>:<offset>")
        positions[int(partition)] = int(offset)
    return positions


def _error(status: int, code: str, message: str, field: str | None = None, **headers: str) -> web.Response:
    """The API's error shape (streams/web/api.py), so clients handle the feed's errors the same way."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status, headers=headers or None)


class AlertsFeed:
    """The SSE handler; one instance per web app (it counts the open streams)."""

    def __init__(self, settings: Settings, consumer_factory: ConsumerFactory = _consumer) -> None:
        self.settings = settings
        self.consumer_factory = consumer_factory
        self.open_streams = 0

    async def stream(self, request: web.Request) -> web.StreamResponse:
        only = request.query.get("customer_id") or None
        try:  # the API's access control; its errors answered here too, whatever app mounts the feed
            key = check_access(request, FEED_SCOPE, only)
        except AccessDenied as exc:
            return _error(exc.status, exc.code, exc.message, **exc.headers)
        allowed = key.customers
        try:
            resume = parse_positions(request.headers.get("Last-Event-ID", ""))
        except ValueError as exc:
            return _error(400, "invalid_last_event_id", str(exc), "Last-Event-ID")
        if self.open_streams >= MAX_STREAMS:
            return _error(503, "too_many_streams", f"{MAX_STREAMS} alert streams are open; retry later",
                          **{"Retry-After": "10"})
        self.open_streams += 1
        try:
            return await self._follow(request, allowed, only, resume)
        finally:
            self.open_streams -= 1

    async def _follow(
        self, request: web.Request, allowed: frozenset[str] | None, only: str | None, resume: dict[int, int]
    ) -> web.StreamResponse:
        consumer = self.consumer_factory(self.settings)
        try:
            await consumer.start()
            partitions = sorted(await _partitions(consumer))
        except Exception as exc:  # noqa: BLE001 - Kafka down: a clear 503, not a broken stream
            await _stop(consumer)
            log.warning("alerts feed cannot reach Kafka: %s", exc)
            return _error(503, "kafka_unavailable", f"cannot follow the alerts topic: {type(exc).__name__}",
                          **{"Retry-After": "5"})
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",
        })
        try:
            tps = [TopicPartition(TOPIC, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                if tp.partition in resume:  # an offset no longer (or not yet) in the log resets to the end
                    consumer.seek(tp, resume[tp.partition])
            positions = {tp.partition: await consumer.position(tp) for tp in tps}
            await response.prepare(request)
            await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
            await response.write(_event("ready", {"partitions": partitions}, format_positions(positions)))
            last_write = time.monotonic()
            while request.transport is not None and not request.transport.is_closing():
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                chunks: list[bytes] = []
                for tp, records in batches.items():
                    for record in records:
                        positions[tp.partition] = record.offset + 1
                        data = _alert_json(record.value)
                        if data is None:
                            continue  # not an alert: the delivery agent dead-letters it; watchers skip it
                        customer = data.get("customer_id")
                        if (allowed is not None and customer not in allowed) or (only and customer != only):
                            continue
                        chunks.append(_event("alert", data, format_positions(positions)))
                if chunks:
                    await response.write(b"".join(chunks))
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= HEARTBEAT_S:
                    await response.write(b": keep-alive\n\n")
                    last_write = time.monotonic()
        except ConnectionResetError:
            pass  # the client went away while we wrote
        finally:
            await _stop(consumer)
        return response


async def _partitions(consumer: AIOKafkaConsumer) -> set[int]:
    for _ in range(50):  # metadata can take a moment on a fresh consumer
        partitions = consumer.partitions_for_topic(TOPIC)
        if partitions:
            return set(partitions)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {TOPIC} has no partitions (not created?)")


async def _stop(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(Exception):
        await consumer.stop()


def _alert_json(value: bytes | None) -> dict[str, Any] | None:
    try:
        record = default_codec().decode(value, expect="Alert")
    except DecodeError:
        return None
    decoded: dict[str, Any] = json.loads(alert_payload(record))
    return decoded


def _event(name: str, data: Mapping[str, Any], event_id: str) -> bytes:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {name}\ndata: {body}\n\n".encode()
