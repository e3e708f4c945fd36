"""A restarted local DynamoDB (moto keeps data in memory) is refilled from the compacted scores topic."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aioboto3
import pytest
from confluent_kafka import Producer

from stack import launcher
from stack.dynamodb import INSIGHTS_TABLE, dynamodb_client_kwargs
from stack.layout import StackLayout
from stack.procs import is_running, read_record
from streams.settings import Settings


async def _item(settings: Settings, key: dict[str, Any]) -> dict[str, Any] | None:
    session = aioboto3.Session()
    async with session.client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        got = await ddb.get_item(TableName=INSIGHTS_TABLE, Key=key, ConsistentRead=True)
    item = got.get("Item")
    return dict(item) if item else None


async def _wait_for(settings: Settings, key: dict[str, Any], present: bool, timeout: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await _item(settings, key) is not None) != present:
        assert loop.time() < deadline, f"item {key} {'never appeared' if present else 'never went away'}"
        await asyncio.sleep(0.5)


def _send(settings: Settings, key: str, value: bytes | None) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    producer.produce("scores", key=key.encode(), value=value)
    assert producer.flush(30) == 0


async def test_restarted_dynamodb_is_refilled_from_scores(stack: Settings) -> None:
    record = read_record(StackLayout.of(stack).pid_file("dynamodb"))
    if record is None or not is_running(record):
        pytest.skip("DynamoDB was not started by `nudge stack`; restarting it is not this test's to do")
    customer, rule = f"test-replay-{uuid.uuid4().hex[:8]}", "stack-replay"
    key = {"customer_id": {"S": customer}, "rule_id": {"S": rule}}
    _send(stack, f"{customer}#{rule}", json.dumps({"customer_id": customer, "rule_id": rule, "score": 1}).encode())
    await _wait_for(stack, key, present=True)

    await asyncio.to_thread(launcher.down, stack, only=["dynamodb"])
    result = await asyncio.to_thread(launcher.up, stack)
    assert result.started == ["dynamodb"] and result.table_created
    try:
        await _wait_for(stack, key, present=True)
    finally:
        _send(stack, f"{customer}#{rule}", None)  # tombstone: the sink deletes the item
    await _wait_for(stack, key, present=False)
