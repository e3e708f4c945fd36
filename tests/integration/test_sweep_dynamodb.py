"""Sweeps end to end on the real stack: simulated customers → worker → sweep → `scores` → Kafka Connect
sink → DynamoDB, read back with aioboto3.

- exactly one item per (customer, rule) that has a score, equal to what the evaluator computes directly
  from the customer's features (realtime rules as of the customer's last event, nightly rules as of the
  sweep), and a second identical sweep changes no item;
- a rule published later is scored for every customer through targeted sweep requests, and once it is
  deleted its items disappear;
- a worker killed with SIGKILL halfway through a sweep is restarted: the sweep finishes and DynamoDB ends
  as the evaluator says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from core.features import features_at
from core.rules import load_catalogue
from simulator.generator import population
from streams.rules_cli import _produce, _record
from streams.settings import PROJECT_ROOT, Settings
from streams.sweeps import publish_sweep, read_progress, watch_sweep
from tests.integration.test_pipeline import catalogue, messages_for, produce, table_records  # noqa: F401
from tests.integration.workers import WorkerGroup, end_offsets, wait_caught_up

MONTHS = 3
START = (datetime.now(UTC) - timedelta(days=31 * MONTHS)).date().replace(day=1)
CUSTOMERS = 6


@pytest.fixture
def loaded(catalogue: Settings, tmp_path: Path) -> Any:  # noqa: F811 - the fixture imported above
    """One worker holding a few simulated customers' features."""
    group = WorkerGroup(catalogue, tmp_path)
    # every request a batch of its own and two batches at once, so these few customers' requests are swept
    # by concurrent batches that finish out of order (the progress records and books must not care)
    group.extra_env |= {"NUDGE_SWEEP_BATCH_REQUESTS": "1", "NUDGE_SWEEP_BATCHES_IN_FLIGHT": "2"}
    seed = random.randrange(10**6)
    customers = list(population(seed, CUSTOMERS, START, MONTHS))
    group.start("w1", 16231)
    group.wait_ready()
    since = end_offsets(catalogue, ["transactions"])
    produce(catalogue, customers)
    wait_caught_up(catalogue, group.app_id, since)
    yield group, f"sim{seed}-", [c.profile.customer_id for c in customers]
    group.stop_all()


def expected_items(
    settings: Settings, app_id: str, prefix: str, as_of: datetime
) -> dict[tuple[str, str], Any]:
    """(customer, rule) → score, computed directly by the evaluator from the table's records."""
    rules = load_catalogue(PROJECT_ROOT / "rules")
    out: dict[tuple[str, str], Any] = {}
    for customer, record in table_records(settings, app_id, prefix).items():
        now = features_at(record.state, record.as_of_datetime)
        swept = features_at(record.state, as_of)
        for rule in rules.values():
            outcome = rule.evaluate(now if rule.trigger == "realtime" else swept)
            if outcome.eligible and outcome.score is not None:
                out[(customer, rule.id)] = round(outcome.score, 6)
    return out


async def _items(settings: Settings, customers: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    session = aioboto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=settings.aws_region
    )
    items: dict[tuple[str, str], dict[str, Any]] = {}
    async with session.client("dynamodb", endpoint_url=settings.dynamodb_url) as ddb:
        for customer in customers:
            pages = ddb.get_paginator("query").paginate(
                TableName="insights",
                KeyConditionExpression="customer_id = :c",
                ExpressionAttributeValues={":c": {"S": customer}},
            )
            async for page in pages:
                for item in page["Items"]:
                    items[(customer, item["rule_id"]["S"])] = item
    return items


def dynamodb_items(settings: Settings, customers: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    return asyncio.run(_items(settings, customers))


def wait_for_items(
    settings: Settings, customers: list[str], want: dict[tuple[str, str], Any], timeout_s: float = 240
) -> dict[tuple[str, str], dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        items = dynamodb_items(settings, customers)
        got = {k: round(float(v["score"]["N"]), 6) for k, v in items.items()}
        if got == want or time.monotonic() > deadline:
            assert got == want
            return items
        time.sleep(2)


def sweep(settings: Settings, customers: list[str], as_of: datetime) -> dict[str, Any]:
    start = publish_sweep(settings, customers, as_of=as_of, reason="manual")
    return watch_sweep(settings, start.sweep_id, timeout_s=300).summary()


def test_sweep_lands_one_item_per_score_and_repeating_it_changes_nothing(loaded: Any) -> None:
    workers, prefix, customers = loaded
    settings = workers.settings
    as_of = datetime.now(UTC).replace(microsecond=0)
    totals = sweep(settings, customers, as_of)
    assert totals["customers"] == CUSTOMERS and totals["errors"] == 0 and totals["evaluations"] > 0

    want = expected_items(settings, workers.app_id, prefix, as_of)
    assert want, "the catalogue scores something for simulated customers"
    first = wait_for_items(settings, customers, want)

    scores_before = len(messages_for(settings, "scores", prefix))
    again = sweep(settings, customers, as_of)
    assert again["scores_changed"] == 0
    time.sleep(5)
    assert len(messages_for(settings, "scores", prefix)) == scores_before
    assert dynamodb_items(settings, customers) == first


def test_a_new_rule_is_scored_for_everyone_and_its_items_go_when_it_is_deleted(loaded: Any) -> None:
    workers, prefix, customers = loaded
    settings = workers.settings
    rule_id = f"it_bills_{uuid.uuid4().hex[:6]}"
    source = (PROJECT_ROOT / "rules" / "upcoming_bills_week.yaml").read_text()
    source = source.replace("id: upcoming_bills_week", f"id: {rule_id}").replace(
        "trigger: nightly", "trigger: both"
    )
    source = source.split("\nexamples:")[0] + "\n"
    _produce(settings, [_record(rule_id, 1, source, False, "tests")])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the workers re-score the new rule through targeted sweep requests
            scored = [k for k, v in dynamodb_items(settings, customers).items() if k[1] == rule_id]
            if scored:
                break
            time.sleep(2)
        assert scored, "the new rule was scored for some customer"
    finally:  # withdrawn whatever happens: a rule left on the shared rules topic changes every later run
        _produce(settings, [_record(rule_id, 1, source, True, "tests")])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = [k for k in dynamodb_items(settings, customers) if k[1] == rule_id]
        if not left:
            break
        time.sleep(2)
    assert left == []


def test_kill_9_halfway_through_a_sweep_then_restart_finishes_it_identically(loaded: Any) -> None:
    workers, prefix, customers = loaded
    settings = workers.settings
    as_of = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)  # windows move: scores change
    # One customer per request, so the kill lands between requests of the same partition.
    one_each = dataclasses.replace(settings, sweep_customers_per_request=1)
    start = publish_sweep(one_each, customers, as_of=as_of, reason="manual")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = read_progress(settings).get(start.sweep_id)
        if progress and progress.total("customers") >= 1:
            break
        time.sleep(0.05)
    workers.kill("w1")
    workers.start("w1-again", 16231)
    totals = watch_sweep(settings, start.sweep_id, timeout_s=300).summary()
    assert totals["done"]
    wait_for_items(settings, customers, expected_items(settings, workers.app_id, prefix, as_of))
