"""The DynamoDB sink connector on the real stack: scores topic → Kafka Connect → moto DynamoDB.

Every test uses customer ids of its own (a random run id) so it can share the stack, the `scores` topic
and the `insights` table with everything else that runs at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aioboto3
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors import sink
from stack.dynamodb import INSIGHTS_TABLE, dynamodb_client_kwargs
from streams.settings import Settings

SCORES = "scores"
DLQ = "scores.connect.dlq"
WAIT_S = 60.0


def _score_value(customer: str, rule: str, version: int, score: str) -> bytes:
    """A score as the workers write it; `score` is spliced in as raw JSON text to test exact numbers."""
    body = json.dumps({
        "customer_id": customer,
        "rule_id": rule,
        "rule_version": version,
        "score": "SCORE",
        "reasons": [f"reason v{version}"],
        "evaluated_at": f"2026-11-25T01:00:0{version}Z",
        "sweep_id": f"sweep-{version}",
        "items": [{"merchant": "Café Nero", "amount": 3.5, "recurring": True, "note": None}],
        "message": f"version {version}",
    })
    return body.replace('"SCORE"', score).encode()


def _produce(settings: Settings, records: list[tuple[str | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all", "linger.ms": 5})
    for key, value in records:
        producer.produce(SCORES, key=key, value=value)
    assert producer.flush(30) == 0


async def _items_of(settings: Settings, customers: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of these customers (strongly consistent reads), keyed by (customer_id, rule_id)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        for customer in customers:
            pages = ddb.get_paginator("query").paginate(
                TableName=INSIGHTS_TABLE, ConsistentRead=True,
                KeyConditionExpression="customer_id = :c", ExpressionAttributeValues={":c": {"S": customer}},
            )
            async for page in pages:
                for item in page["Items"]:
                    key = (item["customer_id"]["S"], item["rule_id"]["S"])
                    assert key not in found, f"two items for {key}"
                    found[key] = item
    return found


async def _wait_for(
    read: Callable[[], Awaitable[dict[tuple[str, str], dict[str, Any]]]],
    done: Callable[[dict[tuple[str, str], dict[str, Any]]], bool],
) -> dict[tuple[str, str], dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        state = await read()
        if done(state) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.3)


def _scores(state: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {key: item["score"]["N"] for key, item in state.items()}


def _assert_running(settings: Settings, name: str | None = None) -> None:
    """The connector and all its tasks are RUNNING (waiting out a rebalance: tasks briefly UNASSIGNED)."""
    deadline = time.monotonic() + 30
    while True:
        status = sink.connector_status(settings, name)
        assert status is not None, "the sink connector is not registered"
        states = [t["state"] for t in status["tasks"]]
        assert "FAILED" not in states and status["connector"]["state"] != "FAILED", status
        if status["connector"]["state"] == "RUNNING" and states and set(states) == {"RUNNING"}:
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


async def test_one_item_per_pair_with_the_last_value_and_tombstones_delete(stack: Settings) -> None:
    _assert_running(stack)
    run = uuid.uuid4().hex[:10]
    customers = [f"it-sink-{run}-c{c}" for c in range(4)]
    rules = ["low-balance", "salary-arrived", "subscription-creep"]
    records: list[tuple[str | None, bytes | None]] = []
    expected: dict[tuple[str, str], str] = {}
    for version in (1, 2, 3):
        for customer in customers:
            for rule in rules:
                # 38 significant digits: DynamoDB's whole precision, which a double would lose.
                score = f"{version}.{customer[-1]}234567890123456789012345678901234567"
                records.append((f"{customer}#{rule}", _score_value(customer, rule, version, score)))
                expected[(customer, rule)] = score
    # A tombstone after the puts of the same pair: the item must not exist at the end.
    records.append((f"{customers[0]}#{rules[0]}", None))
    del expected[(customers[0], rules[0])]
    _produce(stack, records)

    state = await _wait_for(lambda: _items_of(stack, customers), lambda s: _scores(s) == expected)
    assert _scores(state) == expected
    item = state[(customers[1], rules[2])]
    assert Decimal(item["score"]["N"]) == Decimal("3.1234567890123456789012345678901234567")
    assert item["rule_version"] == {"N": "3"}
    assert item["reasons"] == {"L": [{"S": "reason v3"}]}
    assert item["sweep_id"] == {"S": "sweep-3"}
    assert item["message"] == {"S": "version 3"}
    assert item["items"] == {"L": [{"M": {
        "merchant": {"S": "Café Nero"}, "amount": {"N": "3.5"}, "recurring": {"BOOL": True}, "note": {"NULL": True},
    }}]}

    # Delete an item written by an earlier batch, and bring back the one deleted above.
    _produce(stack, [
        (f"{customers[2]}#{rules[1]}", None),
        (f"{customers[0]}#{rules[0]}", _score_value(customers[0], rules[0], 4, "0.5")),
    ])
    del expected[(customers[2], rules[1])]
    expected[(customers[0], rules[0])] = "0.5"
    state = await _wait_for(lambda: _items_of(stack, customers), lambda s: _scores(s) == expected)
    assert _scores(state) == expected
    _assert_running(stack)


def _dead_letters(
    settings: Settings, marker: str, want: int, topic: str = DLQ, wait_s: float = WAIT_S
) -> list[Any]:
    """Records of a dead-letter topic whose key contains marker (read from the beginning)."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"it-sink-dlq-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "allow.auto.create.topics": False,
    })
    consumer.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + wait_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            if marker in (msg.key() or b"").decode(errors="replace"):
                found.append(msg)
    finally:
        consumer.close()
    return found


async def test_records_the_sink_cannot_write_go_to_the_dead_letter_topic_and_it_carries_on(
    stack: Settings,
) -> None:
    _assert_running(stack)
    run = uuid.uuid4().hex[:10]
    good = f"it-sink-{run}-good"
    bad = {
        f"it-sink-{run}-json#r": (b"{not json", "value is not valid JSON"),
        f"it-sink-{run}-mismatch#r": (_score_value(f"it-sink-{run}-other", "r", 1, "1"), "does not match"),
        f"it-sink-{run}-nokey#r": (b'{"customer_id": "x"}', "value has no rule_id"),
        f"it-sink-{run}-digits#r": (
            _score_value(f"it-sink-{run}-digits", "r", 1, "1.234567890123456789012345678901234567891"),
            "significant digits",
        ),
        f"it-sink-{run}-tombstone-without-separator": (None, "is not <customer_id>#<rule_id>"),
    }
    _produce(stack, [
        (f"{good}#r", _score_value(good, "r", 1, "1")),
        *[(key, value) for key, (value, _) in bad.items()],
        (f"{good}#r", _score_value(good, "r", 2, "2")),
        (f"{good}#r2", _score_value(good, "r2", 1, "7")),
    ])

    state = await _wait_for(
        lambda: _items_of(stack, [good]), lambda s: _scores(s) == {(good, "r"): "2", (good, "r2"): "7"}
    )
    assert _scores(state) == {(good, "r"): "2", (good, "r2"): "7"}

    letters = _dead_letters(stack, f"it-sink-{run}-", want=len(bad))
    by_key = {msg.key().decode(): msg for msg in letters}
    assert sorted(by_key) == sorted(bad), f"dead letters: {sorted(by_key)}"
    for key, (value, reason) in bad.items():
        msg = by_key[key]
        assert msg.value() == value
        headers = {name: (raw or b"").decode() for name, raw in msg.headers() or []}
        assert headers["__connect.errors.topic"] == SCORES
        assert headers["__connect.errors.connector.name"] == sink.connector_name()
        assert headers["__connect.errors.stage"] == "TASK_PUT"
        assert int(headers["__connect.errors.offset"]) >= 0
        assert headers["__connect.errors.exception.class.name"].endswith("InvalidScoreRecordException")
        assert reason in headers["__connect.errors.exception.message"], headers["__connect.errors.exception.message"]
    # Nothing of the bad records reached the table.
    assert await _items_of(stack, [f"it-sink-{run}-{s}" for s in ("json", "mismatch", "nokey", "digits")]) == {}
    _assert_running(stack)


def test_registering_again_is_a_no_op(stack: Settings) -> None:
    _assert_running(stack)
    before = sink.connector_status(stack)
    sink.register(stack, timeout=60)
    after = sink.connector_status(stack)
    assert before is not None and after == before  # same tasks on the same worker, nothing restarted


@pytest.fixture(autouse=True)
def _registered(stack: Settings) -> None:
    """The stack fixture registers the sink; fail clearly if it did not."""
    if sink.connector_status(stack) is None:
        pytest.fail("nudge stack up did not register the DynamoDB sink connector")


async def test_the_sink_retries_with_back_off_until_the_table_exists(stack: Settings) -> None:
    """DynamoDB refusing every write (here: no table yet) stalls the sink without losing or skipping anything."""
    run = uuid.uuid4().hex[:10]
    topic, table, name = f"it.sink.retry.{run}", f"it_sink_retry_{run}", f"it-sink-retry-{run}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    try:
        sink.register(stack, name=name, overrides={
            "topics": topic, "dynamodb.table": table, "tasks.max": "1",
            "errors.deadletterqueue.topic.name": f"{topic}.dlq",
            "max.retries": "2", "retry.backoff.ms": "50", "retry.backoff.max.ms": "400",
        })
        producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
        customers = [f"it-retry-{run}-c{i}" for i in range(30)]
        for customer in customers:
            producer.produce(topic, key=f"{customer}#r", value=_score_value(customer, "r", 1, "1.5"))
        assert producer.flush(30) == 0

        await asyncio.sleep(5)  # several rounds of back-off against the missing table
        _assert_running(stack, name)

        async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(stack)) as ddb:
            await ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "customer_id", "KeyType": "HASH"},
                           {"AttributeName": "rule_id", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "customer_id", "AttributeType": "S"},
                                      {"AttributeName": "rule_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            try:
                deadline = time.monotonic() + WAIT_S
                count = 0
                while time.monotonic() < deadline:
                    count = (await ddb.scan(TableName=table, Select="COUNT", ConsistentRead=True))["Count"]
                    if count == len(customers):
                        break
                    await asyncio.sleep(0.3)
                assert count == len(customers)
            finally:
                await ddb.delete_table(TableName=table)
        assert _dead_letters(stack, f"it-retry-{run}", want=1, topic=f"{topic}.dlq", wait_s=2.0) == []
    finally:
        sink.unregister(stack, name)
        for future in admin.delete_topics([topic, f"{topic}.dlq"], request_timeout=30).values():
            with contextlib.suppress(Exception):  # the DLQ exists only if something was sent to it
                future.result()
