"""The HTTP API on the real stack: rules on Kafka, insights from DynamoDB, sweeps, erasure, readiness.

Every test uses its own rule and customer ids, so reruns and other tests sharing the stack don't interfere.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.codec import DecodeError, default_codec
from stack.dynamodb import INSIGHTS_TABLE, dynamodb_client_kwargs
from streams.settings import Settings
from streams.sweeps import read_topic
from streams.web.api import create_api
from streams.web.api_backend import NotFound
from streams.web.auth import ApiKeyStore, hash_api_key
from streams.web.backends import StackBackend

ADMIN = {"Authorization": "Bearer it-admin-key-0123456789"}


def rule_yaml(rule_id: str, threshold: int) -> str:
    return (f"id: {rule_id}\nversion: 1\ntitle: Balance under £{threshold}\nkind: insight\ntrigger: nightly\n"
            f"when: balance_current < £{threshold}\nscore: clamp(1 - balance_current / £{threshold}, 0, 1)\n"
            'message: "Balance £{balance_current}"\n')


async def no_score(customer_id: str, rule_id: str) -> dict[str, Any]:
    raise NotFound("customer", customer_id)


@pytest.fixture
async def client(stack: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    keys = ApiKeyStore.parse(json.dumps({hash_api_key("it-admin-key-0123456789"): {
        "name": "integration", "scopes": ["admin"]}}))
    app = create_api(StackBackend(stack, score=no_score), keys)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_rules_publish_list_history_delete(client: TestClient[Any, Any]) -> None:
    rule_id = f"it_api_{uuid.uuid4().hex[:10]}"
    resp = await client.post("/v1/rules", json={"source": rule_yaml(rule_id, 100)}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["version"] == 1
    resp = await client.post("/v1/rules", data=rule_yaml(rule_id, 50), headers={**ADMIN, "Content-Type": "text/plain"})
    published = await resp.json()
    assert resp.status == 201 and published["version"] == 2 and published["previous_version"] == 1

    rules = (await (await client.get("/v1/rules", headers=ADMIN)).json())["rules"]
    mine = [r for r in rules if r["rule_id"] == rule_id]
    assert len(mine) == 1 and mine[0]["version"] == 2 and mine[0]["title"] == "Balance under £50"
    assert mine[0]["author"] == "integration" and mine[0]["deleted"] is False

    detail = await (await client.get(f"/v1/rules/{rule_id}", headers=ADMIN)).json()
    assert [h["version"] for h in detail["history"]] == [1, 2] and detail["history_complete"] is True
    assert "version: 2" in detail["source"] and "£50" in detail["source"]

    resp = await client.post("/v1/rules", json={"source": rule_yaml(rule_id, 50)}, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["unchanged"] is True  # same rule again: no version 3

    invalid = rule_yaml(rule_id, 10).replace("kind: insight", "kind: nope")
    resp = await client.post("/v1/rules", json={"source": invalid}, headers=ADMIN)
    assert resp.status == 422 and (await resp.json())["errors"][0]["line"] == 4

    resp = await client.delete(f"/v1/rules/{rule_id}", headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["version"] == 3
    rules = (await (await client.get("/v1/rules", headers=ADMIN)).json())["rules"]
    assert rule_id not in {r["rule_id"] for r in rules}
    rules = (await (await client.get("/v1/rules?include_deleted=true", headers=ADMIN)).json())["rules"]
    assert [r["deleted"] for r in rules if r["rule_id"] == rule_id] == [True]
    assert (await client.delete(f"/v1/rules/{rule_id}", headers=ADMIN)).status == 404
    assert (await client.get("/v1/rules/it_never_published", headers=ADMIN)).status == 404


async def _put_items(stack: Settings, items: list[dict[str, Any]]) -> None:
    async with aioboto3.Session().resource("dynamodb", **dynamodb_client_kwargs(stack)) as ddb:
        table = await ddb.Table(INSIGHTS_TABLE)
        async with table.batch_writer() as batch:
            for item in items:
                await batch.put_item(Item=item)


async def test_insights_from_dynamodb_ranked_and_paged(stack: Settings, client: TestClient[Any, Any]) -> None:
    from decimal import Decimal

    customer = f"it-cust-{uuid.uuid4().hex[:10]}"
    scores = [0.31, 0.92, 0.55, 0.08, 0.77, 0.64, 0.45]
    # the shape core.scoring.score_value writes to `scores` (no `eligible`: only eligible scores are stored)
    items = [{"customer_id": customer, "rule_id": f"rule_{i}", "rule_version": 1,
              "score": Decimal(str(s)), "message": f"insight {i}", "reasons": ["holds"],
              "evaluated_at": f"2025-11-25T00:00:0{i}+00:00", "transaction_id": f"t-{i}"}
             for i, s in enumerate(scores)]
    items.append({"customer_id": customer, "rule_id": "rule_off", "rule_version": 1, "eligible": False,
                  "score": None, "message": None, "reasons": ["missing feature x"], "items": [],
                  "evaluated_at": 1764028800000})
    await _put_items(stack, items)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(f"/v1/customers/{customer}/insights", params=params, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        seen.extend(body["insights"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [i["score"] for i in seen] == sorted(scores, reverse=True)
    assert seen[0]["rule_id"] == "rule_1" and seen[0]["evaluated_at"] == "2025-11-25T00:00:01+00:00"
    assert all(i["eligible"] is True for i in seen)
    everything = await (await client.get(f"/v1/customers/{customer}/insights?include_ineligible=true&limit=100",
                                         headers=ADMIN)).json()
    assert len(everything["insights"]) == 8 and everything["insights"][-1]["rule_id"] == "rule_off"

    # erasure answers with what is stored, and publishes CustomerErased on the customers topic
    resp = await client.delete(f"/v1/customers/{customer}", headers=ADMIN)
    erased = await resp.json()
    assert resp.status == 202 and erased["items_checked"] is True
    assert erased["rules"] == sorted([f"rule_{i}" for i in range(7)] + ["rule_off"])
    codec = default_codec()
    events = []
    for msg in read_topic(stack, "customers"):
        if msg.key() == customer.encode() and msg.value() is not None:
            try:
                events.append(codec.decode(msg.value(), expect="CustomerLifecycle"))
            except DecodeError:
                continue
    assert [(e["kind"], e["event_id"], e["source"]) for e in events] == [
        ("CustomerErased", erased["event_id"], "integration")]


async def test_sweeps_start_list_progress_and_readiness(client: TestClient[Any, Any]) -> None:
    rule_id = f"it_api_{uuid.uuid4().hex[:10]}"
    assert (await client.post("/v1/rules", json={"source": rule_yaml(rule_id, 100)}, headers=ADMIN)).status == 201
    resp = await client.post("/v1/sweeps", json={"rules": ["it_not_a_rule"]}, headers=ADMIN)
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "rules[0]"
    resp = await client.post("/v1/sweeps", json={"rules": [rule_id], "dry_run": True}, headers=ADMIN)
    started = await resp.json()
    assert resp.status == 202, started
    assert started["dry_run"] is True and started["rules"] == [rule_id] and isinstance(started["total"], int)
    listed = (await (await client.get("/v1/sweeps", headers=ADMIN)).json())["sweeps"]
    assert started["sweep_id"] in {s["sweep_id"] for s in listed}
    one = await (await client.get(f"/v1/sweeps/{started['sweep_id']}", headers=ADMIN)).json()
    assert one["sweep_id"] == started["sweep_id"] and one["total"] == started["total"]
    assert one["rules"] == [rule_id] and one["dry_run"] is True
    assert (await client.get("/v1/sweeps/it-no-such-sweep", headers=ADMIN)).status == 404
    await client.delete(f"/v1/rules/{rule_id}", headers=ADMIN)

    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"]["kafka"]["ok"] and body["checks"]["dynamodb"]["ok"]


async def test_stores_down_is_503_not_500() -> None:
    dead = Settings(kafka_port=1, dynamodb_port=1)
    keys = ApiKeyStore.parse(json.dumps({hash_api_key("it-admin-key-0123456789"): {
        "name": "integration", "scopes": ["admin"]}}))
    app = create_api(StackBackend(dead, score=no_score), keys)
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/v1/customers/c1/insights", headers=ADMIN)
        assert resp.status == 503 and "Retry-After" in resp.headers
        resp = await c.get("/readyz")
        body = await resp.json()
        assert resp.status == 503 and set(body["failing"]) == {"kafka", "dynamodb"}


async def test_backtest_on_simulated_customers(client: TestClient[Any, Any]) -> None:
    source = (await (await client.get("/v1/rules", headers=ADMIN)).json())  # the live rules feed the overlap
    assert isinstance(source["rules"], list)
    body = {"source": rule_yaml("it_api_backtest", 10_000), "customers": 4, "days": 60, "seed": 3}
    resp = await client.post("/v1/rules:backtest", json=body, headers=ADMIN)
    result = await resp.json()
    assert resp.status == 200, result
    assert result["customers"] == 4 and 1 <= result["fired"] <= 4  # most simulated balances are under £10k
    assert result["hit_rate"] == result["fired"] / 4
    assert result["evaluations"] == 4 * 30
    assert sum(b["count"] for b in result["histogram"]) == result["eligible_evaluations"]
    again = await (await client.post("/v1/rules:backtest", json=body, headers=ADMIN)).json()
    assert again["histogram"] == result["histogram"]  # deterministic from the seed
