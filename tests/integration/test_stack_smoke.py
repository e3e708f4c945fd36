"""Smoke tests of the local stack: each service answers real requests, and topic management is exact."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aioboto3
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from stack.dynamodb import INSIGHTS_TABLE, dynamodb_client_kwargs
from stack.errors import TopicMismatchError
from stack.layout import POM_PATH
from stack.probes import connect_get
from stack.topics import admin_client, ensure_topics
from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec

NUDGE = str(Path(sys.executable).parent / "nudge")


@pytest.fixture
def scratch_topics(stack: Settings) -> Iterator[list[str]]:
    """Names of test-only topics to create; deleted afterwards."""
    names: list[str] = []
    yield names
    if names:
        admin = admin_client(stack.bootstrap_servers)  # must outlive its futures
        futures = admin.delete_topics(names, request_timeout=30)
        for future in futures.values():
            future.result()


def _create(stack: Settings, topic: NewTopic) -> None:
    admin = admin_client(stack.bootstrap_servers)  # must outlive its futures
    admin.create_topics([topic], request_timeout=30)[topic.topic].result()


def test_kafka_produce_consume_round_trip(stack: Settings, scratch_topics: list[str]) -> None:
    topic = f"test.stack.roundtrip.{uuid.uuid4().hex[:8]}"
    scratch_topics.append(topic)
    _create(stack, NewTopic(topic, num_partitions=2))
    sent = [(f"customer-{i % 3}".encode(), f"payload-{i}".encode()) for i in range(30)]
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "acks": "all"})
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": stack.bootstrap_servers, "group.id": f"test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    received: list[tuple[bytes, bytes]] = []
    try:
        for _ in range(120):
            msg = consumer.poll(0.5)
            if msg is None:
                if len(received) == len(sent):
                    break
                continue
            assert msg.error() is None, msg.error()
            got_key, got_value = msg.key(), msg.value()
            assert isinstance(got_key, bytes) and isinstance(got_value, bytes)
            received.append((got_key, got_value))
    finally:
        consumer.close()
    assert sorted(received) == sorted(sent)
    # Same key, same partition: each customer's messages keep their order.
    for customer in {k for k, _ in sent}:
        assert [v for k, v in received if k == customer] == [v for k, v in sent if k == customer]


def test_connect_rest_root_and_plugins(stack: Settings) -> None:
    root = connect_get(stack, "/")
    assert isinstance(root, dict)
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM_PATH.read_text())
    assert kafka_version is not None
    assert root["version"] == kafka_version.group(1)
    assert root["kafka_cluster_id"]

    plugins = connect_get(stack, "/connector-plugins?connectorsOnly=false")
    assert isinstance(plugins, list)
    classes = {p["class"] for p in plugins}
    # From connect-json and connect-transforms on the worker's classpath (stack/pom.xml).
    assert "org.apache.kafka.connect.json.JsonConverter" in classes
    assert "org.apache.kafka.connect.transforms.InsertField$Value" in classes
    # The DynamoDB sink from plugin.path (connectors/ installs it).
    assert any(c.endswith("DynamoDbSinkConnector") for c in classes), sorted(classes)


async def test_dynamodb_put_get_delete_on_insights(stack: Settings) -> None:
    session = aioboto3.Session()
    key = {"customer_id": {"S": f"test-{uuid.uuid4().hex}"}, "rule_id": {"S": "smoke"}}
    async with session.client("dynamodb", **dynamodb_client_kwargs(stack)) as ddb:
        table = await ddb.describe_table(TableName=INSIGHTS_TABLE)
        assert [k["AttributeName"] for k in table["Table"]["KeySchema"]] == ["customer_id", "rule_id"]
        await ddb.put_item(TableName=INSIGHTS_TABLE, Item={**key, "score": {"N": "0.75"}})
        got = await ddb.get_item(TableName=INSIGHTS_TABLE, Key=key, ConsistentRead=True)
        assert got["Item"]["score"] == {"N": "0.75"}
        await ddb.delete_item(TableName=INSIGHTS_TABLE, Key=key)
        gone = await ddb.get_item(TableName=INSIGHTS_TABLE, Key=key, ConsistentRead=True)
        assert "Item" not in gone


def test_declared_topics_exist_and_rerun_is_a_no_op(stack: Settings) -> None:
    report = ensure_topics(stack.bootstrap_servers, TOPICS)
    assert report.ok, report.summary()
    assert report.created == []
    assert sorted(report.unchanged) == sorted(t.name for t in TOPICS)

    cli = subprocess.run([NUDGE, "topics"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert f"0 created, {len(TOPICS)} already as declared" in cli.stdout


def test_topic_mismatch_is_reported_not_fixed(stack: Settings, scratch_topics: list[str]) -> None:
    name = f"test.stack.mismatch.{uuid.uuid4().hex[:8]}"
    scratch_topics.append(name)
    _create(stack, NewTopic(name, num_partitions=1, config={"cleanup.policy": "delete", "retention.ms": "3600000"}))

    declared = TopicSpec(name, 3, compacted=True)
    report = ensure_topics(stack.bootstrap_servers, [declared])
    assert not report.ok
    found = {(m.setting, m.declared, m.actual) for m in report.mismatches}
    assert found == {("partitions", "3", "1"), ("cleanup.policy", "compact", "delete"),
                     ("retention.ms", "-1", "3600000")}
    with pytest.raises(TopicMismatchError, match=rf"{re.escape(name)}: partitions is 1, declared 3"):
        report.raise_for_mismatch()
    # Nothing was changed on the broker.
    metadata = admin_client(stack.bootstrap_servers).list_topics(name, timeout=10)
    assert len(metadata.topics[name].partitions) == 1


def test_stack_up_again_is_idempotent(stack: Settings) -> None:
    cli = subprocess.run([NUDGE, "stack", "up"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    for service in ("kafka", "dynamodb", "connect"):
        assert re.search(rf"^{service}: already (running|answering)", cli.stdout, re.M), cli.stdout
    assert "starting" not in cli.stdout

    status = subprocess.run([NUDGE, "stack", "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert [line.split()[:2] for line in status.stdout.splitlines()] == [
        ["kafka", "up"], ["dynamodb", "up"], ["connect", "up"],
    ]
