"""``GET /v1/alerts/stream`` on the real stack: access control, live alerts from Kafka, filtering, resume."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Producer

from schemas.codec import default_codec
from streams.settings import Settings
from streams.web.alerts_feed import parse_positions
from streams.web.auth import API_KEYS, ApiKeyStore, hash_api_key
from streams.web.pages import page_routes

READER, ADMIN, OTHER = "nsk_feed_reader", "nsk_feed_admin", "nsk_feed_other"
RESTRICTED, ALLOWED_CUSTOMER = "nsk_feed_app_backend", "cust-allowed-1"


@pytest.fixture
async def client(stack: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    app[API_KEYS] = ApiKeyStore.from_entries([
        ("reader", hash_api_key(READER), ["insights:read"]),
        ("admin", hash_api_key(ADMIN), ["admin"]),
        ("other", hash_api_key(OTHER), ["rules:write"]),
        ("app-backend", hash_api_key(RESTRICTED), ["insights:read"], [ALLOWED_CUSTOMER]),
    ])
    app.add_routes(page_routes(stack))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def produce(settings: Settings, *alerts: tuple[str, str]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    for alert_id, customer in alerts:
        producer.produce("alerts", key=customer.encode(), value=default_codec().encode("Alert", {
            "alert_id": alert_id, "customer_id": customer, "rule_id": "free_trial_ending", "rule_version": 2,
            "item_key": None, "title": "Trial ends", "message": "Your trial ends tomorrow.", "score": 0.5,
            "created_at": datetime.now(UTC), "transaction_id": None,
        }))
    assert producer.flush(30) == 0


async def events(response: ClientResponse, until: set[str], timeout: float = 20.0) -> list[dict[str, Any]]:
    """SSE events (``{"event", "id", "data"}``) until every alert id in ``until`` has been seen."""
    seen: list[dict[str, Any]] = []
    current: dict[str, Any] = {}

    async def read() -> None:
        nonlocal current
        while True:
            line = (await response.content.readline()).decode()
            assert line, "stream closed"
            line = line.rstrip("\n")
            if not line:
                if "event" in current:
                    seen.append(current)
                    if current["event"] == "alert":
                        until.discard(current["data"]["alert_id"])
                    if not until:
                        return
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value

    await asyncio.wait_for(read(), timeout)
    return seen


async def test_refusals_are_json_errors(client: TestClient[Any, Any]) -> None:
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
        ({"X-API-Key": OTHER}, 403, "forbidden"),
        ({"Authorization": f"Bearer {READER}", "Last-Event-ID": "zero:1"}, 400, "invalid_last_event_id"),
    ]
    for headers, status, code in cases:
        response = await client.get("/v1/alerts/stream", headers=headers)
        assert response.status == status, await response.text()
        assert (await response.json())["error"]["code"] == code
    response = await client.get(
        "/v1/alerts/stream", params={"customer_id": "someone-else"}, headers={"X-API-Key": RESTRICTED}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden_customer"


async def test_a_key_restricted_to_customers_sees_only_theirs(stack: Settings, client: TestClient[Any, Any]) -> None:
    run = uuid.uuid4().hex[:8]
    theirs, other = f"mine-{run}", f"other-{run}"
    response = await client.get("/v1/alerts/stream", headers={"X-API-Key": RESTRICTED})
    watcher = await client.get("/v1/alerts/stream", headers={"X-API-Key": ADMIN})
    assert response.status == 200 and watcher.status == 200
    await events(response, until=set())
    await events(watcher, until=set())
    produce(stack, (other, f"cust-other-{run}"))
    await events(watcher, until={other})  # the other customer's alert is in the log before theirs
    produce(stack, (theirs, ALLOWED_CUSTOMER))
    got = await events(response, until={theirs})
    assert {e["data"]["customer_id"] for e in got if e["event"] == "alert"} == {ALLOWED_CUSTOMER}
    response.close()
    watcher.close()


async def test_live_alerts_filter_and_resume(stack: Settings, client: TestClient[Any, Any]) -> None:
    run = uuid.uuid4().hex[:8]
    a, b, c = (f"feed-{run}-{n}" for n in "abc")
    everything = await client.get("/v1/alerts/stream", headers={"Authorization": f"Bearer {READER}"})
    assert everything.status == 200
    assert everything.headers["Content-Type"].startswith("text/event-stream")
    only_x = await client.get(
        "/v1/alerts/stream", params={"customer_id": f"x-{run}"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    ready = await events(everything, until=set(), timeout=20)
    assert ready[0]["event"] == "ready" and ready[0]["data"]["partitions"] == [0, 1, 2, 3]
    await events(only_x, until=set(), timeout=20)

    produce(stack, (a, f"x-{run}"), (b, f"y-{run}"))
    got = await events(everything, until={a, b})
    mine = [e["data"] for e in got if e["event"] == "alert" and e["data"]["alert_id"] in (a, b)]
    assert sorted(e["alert_id"] for e in mine) == [a, b]
    assert mine[0]["message"] == "Your trial ends tomorrow." and mine[0]["created_at"].endswith("Z")
    filtered = await events(only_x, until={a})
    assert {e["data"]["customer_id"] for e in filtered if e["event"] == "alert"} == {f"x-{run}"}

    # Resume: reconnect with the id of the last event seen; what was produced meanwhile arrives, once.
    last_id = got[-1]["id"]
    everything.close()
    produce(stack, (c, f"x-{run}"))
    resumed = await client.get(
        "/v1/alerts/stream", headers={"Authorization": f"Bearer {READER}", "Last-Event-ID": last_id}
    )
    again = await events(resumed, until={c})
    ids = [e["data"]["alert_id"] for e in again if e["event"] == "alert"]
    assert c in ids and a not in ids and b not in ids
    assert parse_positions(again[-1]["id"]) != parse_positions(last_id)
    resumed.close()
    only_x.close()

