"""The worker's web server on the real stack: on-demand scoring routed to the owning worker, insights read
back from DynamoDB (written there by the Kafka Connect sink), health and readiness."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import default_codec
from streams.producer import make_producer
from streams.settings import PROJECT_ROOT, Settings
from tests.agents.test_transactions_agent import netflix
from tests.integration.workers import WorkerGroup, end_offsets, keys_per_partition, wait_caught_up


def call(port: int, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_web_ready(*ports: int, timeout_s: float = 180) -> None:
    """Both workers answer /readyz with 200: joined, assigned, recovered, catalogue loaded (the probe
    in wait_ready can be answered by the first worker before the second has joined)."""
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"worker on port {port} never became ready"
            time.sleep(1)


@pytest.fixture
def keyed_workers(stack: Settings, tmp_path: Path) -> Any:
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "rules", "publish", "--author", "tests"],
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
    )
    keys = tmp_path / "keys.json"
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "apikey",
            "--file",
            str(keys),
            "create",
            "--name",
            "it",
            "--scopes",
            "score,insights:read",
        ],
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    group = WorkerGroup(stack, tmp_path)
    group.extra_env["NUDGE_API_KEYS_FILE"] = str(keys)
    yield group, key
    group.stop_all()


def test_any_worker_answers_a_score_and_insights_come_from_dynamodb(keyed_workers: Any) -> None:
    workers, key = keyed_workers
    settings = workers.settings
    workers.start("w1", 16221)
    workers.start("w2", 16222)
    workers.wait_ready()
    wait_web_ready(16221, 16222)

    customers = list(keys_per_partition(f"web-{workers.app_id}", settings.topic_partitions).values())
    since = end_offsets(settings, ["transactions"])
    producer, codec = make_producer(settings), default_codec()
    for customer in customers:
        history = [netflix(i, "10.99", customer=customer) for i in range(4)] + [
            netflix(4, "12.99", customer=customer)
        ]
        for record in history:
            producer.produce("transactions", key=customer.encode(), value=codec.encode("Transaction", record))
    producer.flush(30)
    wait_caught_up(settings, workers.app_id, since)

    for customer in customers:  # one customer per partition: each worker owns some, forwards the others
        answers = [
            call(
                port,
                "POST",
                "/v1/score",
                key,
                {"customer_id": customer, "rule_id": "subscription_price_rise"},
            )
            for port in (16221, 16222)
        ]
        assert answers[0] == answers[1]
        status, body = answers[0]
        assert status == 200, body
        assert body["eligible"] is True and body["score"] > 0
        assert any(r.get("condition") for r in body["reasons"])

    status, body = call(
        16221, "POST", "/v1/score", key, {"customer_id": "nobody-at-all", "rule_id": "low_balance"}
    )
    assert status == 404 and body["error"]["code"] == "customer_not_found"

    deadline = time.monotonic() + 180  # the sink may be replaying a backlog after a stack restart
    while True:  # the Kafka Connect sink writes the scores topic into DynamoDB
        status, body = call(16222, "GET", f"/v1/customers/{customers[0]}/insights", key)
        rules = {item["rule_id"] for item in body.get("insights", [])}
        if "subscription_price_rise" in rules or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == 200 and "subscription_price_rise" in rules, body
