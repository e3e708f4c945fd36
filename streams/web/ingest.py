"""``POST /v1/customers/{customer_id}/transactions``: where an open-banking aggregator delivers transactions.

The body is one OB transaction object, an OB response ``{"Data": {"Transaction": [...]}}`` or a JSON
list of transactions. Every item is validated (:func:`schemas.records.from_open_banking_json`, the same
checks the Kafka path applies), encoded with the shared codec and produced to ``transactions`` keyed by
customer_id through an injected ``publish(topic, key, value)`` coroutine (tests need no Kafka).

A batch is **all-or-nothing**: if any item is invalid nothing is published and the response is 422
listing every failing item (``index``, ``field``, ``reason``), so the aggregator fixes and resends the
batch whole. 202 means every record was acknowledged by Kafka. If publishing fails part-way, the answer is
503 and the aggregator resends the whole batch: records already published become redeliveries of the same
TransactionId, which the transactions agent drops as duplicates (this endpoint never deduplicates).

Status codes: 202 accepted · 400 malformed JSON / wrong shape / bad customer_id · 401/403 API key ·
413 body over ``client_max_size`` or more than ``max_items`` items · 415 not JSON · 422 invalid items ·
503 Kafka unavailable. Logs carry counts and the API key's name only, never customer data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import Counter

from schemas.codec import Codec, default_codec
from schemas.records import DEFAULT_TOKEN_KEY, InvalidRecord, from_open_banking_json
from streams.settings import Settings
from streams.web.auth import API_KEYS, ApiKeyStore, current_key, require_scope

__all__ = [
    "CUSTOMER_ID_RE",
    "INGEST",
    "IngestConfig",
    "Publish",
    "RedactingAccessLogger",
    "add_ingest_routes",
    "add_kafka_ingest",
    "create_ingest_app",
]

log = logging.getLogger(__name__)

CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
SCOPE = "transactions:write"
Publish = Callable[[str, bytes, bytes], Awaitable[Any]]
INGESTED = Counter(
    "nudge_ingest_items_total", "Transactions received on the HTTP endpoint, per outcome.", ["outcome"]
)


@dataclass(frozen=True)
class IngestConfig:
    """:param max_items: largest batch accepted (413 above). :param token_key: HMAC key tokenising
    counterparty account numbers (set ``NUDGE_ACCOUNT_TOKEN_KEY`` in production)."""

    publish: Publish
    topic: str = "transactions"
    max_items: int = 1000
    token_key: bytes = DEFAULT_TOKEN_KEY
    codec: Codec | None = None


INGEST = web.AppKey("ingest", IngestConfig)


def _problem(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> web.Response:
    """The API's one error shape, ``{"error": {"code", "message", "field"?}}``, plus ``extra`` keys (the
    per-item ``errors`` of a refused batch)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error, **extra}, status=status)


def _items(body: Any) -> list[Any] | None:
    """The transactions of a body, or None when the shape is none of the three accepted ones."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "Data" in body:
            data = body["Data"]
            if isinstance(data, dict) and isinstance(data.get("Transaction"), list):
                return list(data["Transaction"])
            return None
        return [body]
    return None


@require_scope(SCOPE)
async def post_transactions(request: web.Request) -> web.Response:
    config = request.app[INGEST]
    key = current_key(request)
    customer_id = request.match_info["customer_id"]
    if not CUSTOMER_ID_RE.fullmatch(customer_id):
        return _problem(400, "invalid_customer_id",
                        "customer_id must be 1-64 characters: letters, digits, '_', '.', ':' or '-'",
                        field="customer_id")
    if request.content_type != "application/json":
        return _problem(415, "unsupported_media_type", "send Content-Type: application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _problem(413, "too_large", "request body over the size limit; send smaller batches")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _problem(400, "malformed_json", f"body is not valid JSON ({type(exc).__name__})", field="$")
    items = _items(body)
    if items is None:
        return _problem(400, "bad_shape",
                        'expected a transaction object, {"Data": {"Transaction": [...]}} or a list of them',
                        field="$")
    if not items:
        return _problem(400, "empty_batch", "no transactions in the request", field="$")
    if len(items) > config.max_items:
        return _problem(413, "too_many_items", f"at most {config.max_items} transactions per request")

    received_ms = int(time.time() * 1000)
    records: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            records.append(from_open_banking_json(
                customer_id, item, key.name, event_id=uuid.uuid4().hex, received_at_ms=received_ms,
                token_key=config.token_key,
            ))
        except InvalidRecord as exc:
            errors.append({"index": index, "field": exc.field_path, "reason": exc.detail})
    if errors:
        INGESTED.labels("rejected").inc(len(items))
        log.info("ingest rejected batch: items=%d invalid=%d key=%s", len(items), len(errors), key.name)
        return _problem(422, "invalid_transactions",
                        "no transaction of this request was accepted: fix the listed items and resend the batch",
                        accepted=0, errors=errors)

    codec = config.codec or default_codec()
    key_bytes = customer_id.encode()
    # Tasks start in creation order, so records are produced in the aggregator's order (one key, one
    # partition, idempotent producer) while their acknowledgements are awaited together.
    values = [codec.encode("Transaction", record) for record in records]
    results = await asyncio.gather(
        *(config.publish(config.topic, key_bytes, value) for value in values), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:  # any broker failure: the aggregator resends the whole batch
        failure = failures[0]
        INGESTED.labels("unavailable").inc(len(items))
        log.warning("ingest publish failed: items=%d key=%s error=%s", len(items), key.name, type(failure).__name__)
        return _problem(503, "unavailable", "could not store the transactions; resend the whole batch",
                        accepted=0)
    INGESTED.labels("accepted").inc(len(items))
    log.info("ingest accepted: items=%d key=%s", len(items), key.name)
    return web.json_response(
        {
            "accepted": len(records),
            "items": [
                {"index": i, "transaction_id": r["TransactionId"], "event_id": r["event_id"], "status": "accepted"}
                for i, r in enumerate(records)
            ],
        },
        status=202,
    )


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log with the route pattern instead of the path, so customer ids never reach the logs.

    Use it wherever the app is served: ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        resource = request.match_info.route.resource if isinstance(request, web.Request) else None
        path = resource.canonical if resource is not None else "-"
        self.logger.info('%s %s %d %.1fms', request.method, path, response.status, time * 1000)


def add_ingest_routes(app: web.Application, config: IngestConfig) -> None:
    """Mount the endpoint on an existing app (which must hold ``API_KEYS``)."""
    app[INGEST] = config
    app.router.add_post("/v1/customers/{customer_id}/transactions", post_transactions)


def add_kafka_ingest(app: web.Application, settings: Settings, **config: Any) -> None:
    """Mount the endpoint on ``app`` publishing to Kafka through an :class:`AsyncPublisher` that starts and
    flushes with the app (``cleanup_ctx``). The account token key comes from ``NUDGE_ACCOUNT_TOKEN_KEY``
    when set. ``config`` goes to :class:`IngestConfig`."""
    from streams.producer import AsyncPublisher, make_producer

    publisher = AsyncPublisher(make_producer(settings, client_id="nudge-ingest"))

    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        await publisher.start()
        yield
        undelivered = await publisher.close()
        if undelivered:
            log.error("ingest producer closed with %d undelivered records", undelivered)

    app.cleanup_ctx.append(lifetime)
    token = os.environ.get("NUDGE_ACCOUNT_TOKEN_KEY")
    if token and "token_key" not in config:
        config["token_key"] = token.encode()
    add_ingest_routes(app, IngestConfig(publish=publisher.publish, **config))


def create_ingest_app(
    publish: Publish, api_keys: ApiKeyStore, *, client_max_size: int = 1024 * 1024, **config: Any
) -> web.Application:
    """A standalone app serving the ingestion endpoint. ``config`` goes to :class:`IngestConfig`."""
    app = web.Application(client_max_size=client_max_size)
    app[API_KEYS] = api_keys
    add_ingest_routes(app, IngestConfig(publish=publish, **config))
    return app
