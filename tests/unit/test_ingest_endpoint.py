"""The ingestion endpoint through aiohttp's test client, with an in-memory publish instead of Kafka."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.codec import default_codec
from schemas.examples import example_open_banking_item as ob_item
from schemas.records import to_transaction
from streams.web.auth import ApiKeyStore, hash_api_key, new_api_key
from streams.web.ingest import RedactingAccessLogger, create_ingest_app

WRITER_KEY = "nsk_writer_secret_key_for_tests_only_0001"
READER_KEY = "nsk_reader_secret_key_for_tests_only_0002"
URL = "/v1/customers/cust-42/transactions"
AUTH = {"Authorization": f"Bearer {WRITER_KEY}"}


class Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = False

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail and len(self.sent) >= 1:
            raise RuntimeError("broker down")
        self.sent.append((topic, key, value))


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def client(sink: Sink) -> AsyncIterator[TestClient[Any, Any]]:
    keys = ApiKeyStore.parse(
        f"aggregator-x:{hash_api_key(WRITER_KEY)}:transactions:write,scores:read;"
        f"dashboard:{hash_api_key(READER_KEY)}:scores:read"
    )
    app = create_ingest_app(sink.publish, keys, client_max_size=64 * 1024, max_items=50)
    server = TestServer(app)
    await server.start_server(access_log_class=RedactingAccessLogger)  # as deployed: ids kept out of logs
    async with TestClient(server) as c:
        yield c


async def test_single_object_is_accepted_and_produced_as_avro(client: TestClient[Any, Any], sink: Sink) -> None:
    resp = await client.post(URL, json=ob_item(), headers=AUTH)
    assert resp.status == 202
    body = await resp.json()
    assert body["accepted"] == 1 and body["items"][0]["transaction_id"] == "123"
    (topic, key, value), = sink.sent
    assert topic == "transactions" and key == b"cust-42"
    t = to_transaction(default_codec().decode(value, expect="Transaction"))
    assert t.customer_id == "cust-42" and t.source == "aggregator-x" and t.event_id == body["items"][0]["event_id"]


async def test_ob_envelope_and_list_are_accepted_in_order(client: TestClient[Any, Any], sink: Sink) -> None:
    items = [ob_item(TransactionId=f"t{i}") for i in range(5)]
    resp = await client.post(URL, json={"Data": {"Transaction": items}, "Links": {}, "Meta": {}}, headers=AUTH)
    assert resp.status == 202 and (await resp.json())["accepted"] == 5
    resp = await client.post(URL, json=items[:2], headers=AUTH)
    assert resp.status == 202
    ids = [default_codec().decode(v)["TransactionId"] for _, _, v in sink.sent]
    assert ids == ["t0", "t1", "t2", "t3", "t4", "t0", "t1"]


async def test_redelivery_of_same_transaction_id_is_accepted(client: TestClient[Any, Any], sink: Sink) -> None:
    for _ in range(2):
        assert (await client.post(URL, json=ob_item(), headers=AUTH)).status == 202
    events = [default_codec().decode(v) for _, _, v in sink.sent]
    assert [e["TransactionId"] for e in events] == ["123", "123"]
    assert events[0]["event_id"] != events[1]["event_id"]


async def test_mixed_batch_is_refused_whole_with_per_item_errors(client: TestClient[Any, Any], sink: Sink) -> None:
    items = [
        ob_item(TransactionId="ok"),
        ob_item(Amount={"Amount": "10.00", "Currency": "ZZZ"}),
        ob_item(TransactionId="ok2"),
        ob_item(CreditDebitIndicator=None, BookingDateTime="2025-10-05T00:00:00"),
    ]
    resp = await client.post(URL, json=items, headers=AUTH)
    assert resp.status == 422
    body = await resp.json()
    assert body["accepted"] == 0 and body["error"]["code"] == "invalid_transactions"
    assert body["errors"] == [
        {"index": 1, "field": "Amount.Currency", "reason": "unknown ISO 4217 currency 'ZZZ'"},
        {"index": 3, "field": "CreditDebitIndicator", "reason": "is required (Credit or Debit)"},
    ]
    assert sink.sent == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"X-API-Key": READER_KEY}, 403),
     ({"X-API-Key": WRITER_KEY}, 202)],
)
async def test_api_key_and_scope(client: TestClient[Any, Any], headers: dict[str, str], status: int) -> None:
    resp = await client.post(URL, json=ob_item(), headers=headers)
    assert resp.status == status
    if status == 401:
        assert "WWW-Authenticate" in resp.headers


async def test_content_type_size_and_shape(client: TestClient[Any, Any], sink: Sink) -> None:
    body = json.dumps(ob_item())
    resp = await client.post(URL, data=body, headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.post(URL, data=b"[" + b'"x",' * 40000 + b'"x"]', headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 413
    resp = await client.post(URL, json=[ob_item()] * 51, headers=AUTH)
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "too_many_items"
    resp = await client.post(URL, data=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"] == {
        "code": "malformed_json", "message": "body is not valid JSON (JSONDecodeError)", "field": "$"}
    for shape in ("text", 3, {"Data": {"Transaction": "x"}}):
        resp = await client.post(URL, json=shape, headers=AUTH)
        assert resp.status == 400, shape
    resp = await client.post(URL, json=[], headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "empty_batch"
    resp = await client.post(URL, json=[1], headers=AUTH)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "$"
    assert sink.sent == []


@pytest.mark.parametrize("customer_id", ["-starts-with-dash", "x" * 65, "has space", "emoji\u2603"])
async def test_customer_id_is_validated(client: TestClient[Any, Any], customer_id: str) -> None:
    resp = await client.post(f"/v1/customers/{customer_id}/transactions", json=ob_item(), headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "customer_id"


async def test_publish_failure_is_503(client: TestClient[Any, Any], sink: Sink) -> None:
    sink.fail = True
    resp = await client.post(URL, json=[ob_item(), ob_item(TransactionId="2")], headers=AUTH)
    assert resp.status == 503 and (await resp.json())["accepted"] == 0


async def test_logs_carry_no_personal_data(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post(URL, json=ob_item(), headers=AUTH)
    await client.post(URL, json=[ob_item(Amount={"Amount": "-1", "Currency": "GBP"})], headers=AUTH)
    text = caplog.text
    assert "accepted" in text and "rejected" in text
    assert "POST /v1/customers/{customer_id}/transactions 202" in text
    for secret in ("cust-42", "Aubrey", "80200112345678", "A Person", WRITER_KEY):
        assert secret not in text


def test_key_store_formats() -> None:
    key, digest = new_api_key()
    store = ApiKeyStore.parse(json.dumps([{"name": "x", "sha256": digest, "scopes": ["a:b"]}]))
    found = store.authenticate(key)
    assert found is not None and found.scopes == {"a:b"}
    assert store.authenticate(key + "x") is None
    with pytest.raises(ValueError):
        ApiKeyStore.parse("x:not-a-hash:a")
    assert len(ApiKeyStore.from_env({})) == 0


async def test_key_restricted_to_other_customers_is_refused(sink: Sink) -> None:
    key = "nsk_app_backend_key_for_tests_only_0003"
    store = ApiKeyStore.parse(json.dumps(
        {hash_api_key(key): {"name": "app", "scopes": ["transactions:write"], "customers": ["cust-1"]}}
    ))
    async with TestClient(TestServer(create_ingest_app(sink.publish, store))) as c:
        headers = {"X-API-Key": key}
        assert (await c.post(URL, json=ob_item(), headers=headers)).status == 403
        assert (await c.post("/v1/customers/cust-1/transactions", json=ob_item(), headers=headers)).status == 202
    assert [k for _, k, _ in sink.sent] == [b"cust-1"]
