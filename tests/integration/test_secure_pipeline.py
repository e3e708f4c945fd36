"""The pipeline on a broker that only speaks SASL/SCRAM-SHA-512 over TLS (issue 7, access control).

A second local stack, in secure mode, with its own cache dir and ports (so the plain stack other tests use
keeps running): Kafka's client port is SASL_SSL only, Kafka Connect and its DynamoDB sink log in as
``connect``, and a real `nudge worker` process, the rule publisher and every test client log in as
``nudge`` with settings from streams/kafka_config.py. Checks that a plaintext client and a wrong password
are refused, then that a simulated customer's price rise comes out as scores, one alert and DynamoDB items,
all through SASL_SSL. The stack is stopped at the end if this module started it.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from connectors.sink import connector_status
from simulator.generator import SimulatedCustomer
from stack import launcher
from stack.dynamodb import dynamodb_client_kwargs
from streams.kafka_config import confluent_security
from streams.settings import PROJECT_ROOT, Settings, load_settings
from tests.integration.test_pipeline import (
    alerts_of,
    find_price_rise,
    messages_for,
    produce,
    rise_alerts_about,
)
from tests.integration.workers import WorkerGroup, end_offsets, wait_caught_up

# Own ports (below 32768) and cache dir: the plain stack on 19092/18083/18000 is left alone.
SECURE_ENV = {
    "NUDGE_KAFKA_SECURITY": "sasl_ssl",
    "NUDGE_CACHE_DIR": str(PROJECT_ROOT / ".cache" / "secure-test"),
    "NUDGE_KAFKA_PORT": "29192",
    "NUDGE_KAFKA_CONTROLLER_PORT": "29193",
    "NUDGE_CONNECT_PORT": "28183",
    "NUDGE_DYNAMODB_PORT": "28100",
}
WORKER_WEB_PORT = 16311


def _echo(line: str) -> None:
    print(f"[secure stack] {line}")


@pytest.fixture(scope="module")
def secure_stack() -> Iterator[Settings]:
    settings = load_settings({**os.environ, **SECURE_ENV})
    result = launcher.up(settings, echo=_echo)
    try:
        yield settings
    finally:
        if result.started:
            launcher.down(settings, only=result.started, echo=_echo)


def _metadata_error(conf: dict[str, Any]) -> str | None:
    """None if a metadata request with conf succeeds, else librdkafka's error."""
    try:
        AdminClient(conf).list_topics(timeout=5)
    except KafkaException as exc:
        return str(exc.args[0])
    return None


def test_only_authenticated_tls_clients_get_in(secure_stack: Settings) -> None:
    bootstrap = secure_stack.bootstrap_servers
    assert _metadata_error({"bootstrap.servers": bootstrap}) is not None, "a plaintext client got in"
    wrong = {**confluent_security(secure_stack), "sasl.password": "not-the-password-" + uuid.uuid4().hex}
    assert _metadata_error({"bootstrap.servers": bootstrap, **wrong}) is not None, "a wrong password got in"
    untrusted = {**confluent_security(secure_stack), "ssl.ca.location": "probe"}  # the system CAs only
    assert _metadata_error({"bootstrap.servers": bootstrap, **untrusted}) is not None, (
        "an untrusted cert passed"
    )
    assert _metadata_error({"bootstrap.servers": bootstrap, **confluent_security(secure_stack)}) is None
    status = connector_status(secure_stack)
    assert status is not None and status["connector"]["state"] == "RUNNING", status
    assert status["tasks"] and all(t["state"] == "RUNNING" for t in status["tasks"]), status


async def _insights(settings: Settings, customer_id: str) -> dict[str, dict[str, Any]]:
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        response = await ddb.query(
            TableName="insights",
            ConsistentRead=True,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
        )
    return {item["rule_id"]["S"]: item for item in response["Items"]}


def test_price_rise_scores_alert_and_insights_through_sasl_ssl(
    secure_stack: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, **SECURE_ENV}
    published = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rules", "publish", "--author", "tests"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stdout + published.stderr

    workers = WorkerGroup(secure_stack, tmp_path)
    workers.extra_env.update(SECURE_ENV)
    try:
        workers.start("w1", WORKER_WEB_PORT)
        workers.wait_ready()
        rise = find_price_rise(random.randrange(10**6))
        cid = rise.customer.profile.customer_id
        # The same parts find_price_rise checked in pure code: the history as a backfill, then the first
        # charge at the new price live (the realtime rule fires on a charge at most days old).
        backfill, live, _ = rise.parts()
        for part in (backfill, live):
            since = end_offsets(secure_stack, ["transactions"])
            assert produce(secure_stack, [SimulatedCustomer(rise.customer.profile, part, [])]) == len(part)
            wait_caught_up(secure_stack, workers.app_id, since, timeout_s=120)
        time.sleep(2)  # scores and alerts are produced after the offsets they came from are committed

        assert rise_alerts_about(alerts_of(secure_stack, cid), rise) == {rise.alert_id}
        latest = {
            m.key().decode().split("#", 1)[1]: m.value()
            for m in messages_for(secure_stack, "scores", f"{cid}#")
        }
        assert latest.get("subscription_price_rise") is not None, sorted(latest)
        scored_rules = {rule for rule, value in latest.items() if value is not None}  # a tombstone deletes

        # The sink connector (Connect logged in as `connect`) writes the scores into DynamoDB.
        deadline = time.monotonic() + 60
        items = asyncio.run(_insights(secure_stack, cid))
        while set(items) != scored_rules and time.monotonic() < deadline:
            time.sleep(1)
            items = asyncio.run(_insights(secure_stack, cid))
        assert set(items) == scored_rules, (
            f"DynamoDB has {sorted(items)}, scores topic {sorted(scored_rules)}"
        )
    finally:
        workers.stop_all()


def test_a_changed_app_password_takes_effect_on_the_next_up(secure_stack: Settings) -> None:
    """`up` on a running secure stack upserts the app user with NUDGE_KAFKA_SASL_PASSWORD: the new password
    gets in, the old one no longer does."""
    old = confluent_security(secure_stack)
    rotated = replace(secure_stack, kafka_sasl_password="rotated-" + uuid.uuid4().hex)
    try:
        launcher.up(rotated, echo=_echo)
        assert (
            _metadata_error({"bootstrap.servers": rotated.bootstrap_servers, **confluent_security(rotated)})
            is None
        )
        assert _metadata_error({"bootstrap.servers": rotated.bootstrap_servers, **old}) is not None
    finally:
        launcher.up(replace(secure_stack, kafka_sasl_password=old["sasl.password"]), echo=_echo)
    assert _metadata_error({"bootstrap.servers": secure_stack.bootstrap_servers, **old}) is None
