"""Alert delivery on the real stack: a worker process running the delivery agents, Kafka, a local receiver.

The worker is a real ``faust.Worker`` in a subprocess with only ``agents.alerts`` (its own app id, so its
own consumer groups), short back-off delays (0.2 s .. 1.6 s) and a webhook served by this test process. The
receiver answers per alert id from a script, and 200 to any alert it does not know (other tests' alerts on
the shared topics).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition

from core.delivery import verify_signature
from schemas.codec import default_codec
from streams.settings import Settings

SECRET = "integration-secret"
DELAYS = "0.2,0.4,0.8,1.6"

WORKER = """
import faust
from streams.app import create_app
pipeline = create_app(agent_modules=("agents.alerts",))
faust.Worker(pipeline.app, loglevel="info", quiet=True).execute_from_commandline()
"""


@dataclass
class Receiver:
    """Scripted webhook: ``failures[alert_id]`` first requests fail with 500, later ones succeed."""

    failures: dict[str, int] = field(default_factory=dict)
    requests: dict[str, list[tuple[float, int, bool]]] = field(default_factory=lambda: defaultdict(list))
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        if not verify_signature(SECRET, h.get("X-Nudge-Timestamp", ""), body, h.get("X-Nudge-Signature", ""),
                                now=time.time()):
            with self.lock:
                self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        alert_id = h["X-Nudge-Alert-Id"]
        assert json.loads(body)["alert_id"] == alert_id
        with self.lock:
            seen = self.requests[alert_id]
            ok = len(seen) >= self.failures.get(alert_id, 0)
            seen.append((time.monotonic(), int(h["X-Nudge-Attempt"]), ok))
        return web.Response(status=200 if ok else 500, text="ok" if ok else "receiver is down")

    def attempts(self, alert_id: str) -> list[tuple[float, int, bool]]:
        with self.lock:
            return list(self.requests.get(alert_id, []))


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    """The receiver on its own event loop in a thread (the tests themselves are synchronous)."""
    rec = Receiver()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10)
    yield rec, f"http://127.0.0.1:{holder['port']}/hook"
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def alert_value(alert_id: str, customer: str) -> bytes:
    return default_codec().encode("Alert", {
        "alert_id": alert_id, "customer_id": customer, "rule_id": "subscription_price_rise", "rule_version": 1,
        "item_key": "netflix", "title": "Netflix costs more", "message": "Netflix now costs £12.99.",
        "score": 0.9, "created_at": datetime.now(UTC), "transaction_id": None,
    })


def produce(settings: Settings, alert_id: str, customer: str) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    producer.produce("alerts", key=customer.encode(), value=alert_value(alert_id, customer))
    assert producer.flush(30) == 0


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def worker(stack: Settings, receiver: tuple[Receiver, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A delivery worker, ready once it has delivered a probe alert."""
    rec, url = receiver
    data_dir = tmp_path_factory.mktemp("alerts-worker")
    env = dict(os.environ)
    env.update({
        "NUDGE_APP_ID": f"test-alerts-{uuid.uuid4().hex[:8]}",
        "NUDGE_WORKER_DATA_DIR": str(data_dir),
        "NUDGE_WEBHOOK_URL": url,
        "NUDGE_WEBHOOK_SECRET": SECRET,
        "NUDGE_WEBHOOK_RETRY_DELAYS": DELAYS,
        "NUDGE_WEBHOOK_TIMEOUT_S": "5",
    })
    log_path = Path(data_dir) / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", WORKER, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = f"probe-{uuid.uuid4().hex}"
        produce(stack, probe, "probe-customer")
        try:
            wait_until(lambda: rec.attempts(probe) or proc.poll() is not None, 90, "the worker to deliver a probe")
        finally:
            if proc.poll() is not None:
                print(log_path.read_text(errors="replace")[-5000:])
        assert proc.poll() is None, "the worker exited"
        yield stack
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def dlq_end(settings: Settings) -> int:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "unused"})
    try:
        return consumer.get_watermark_offsets(TopicPartition("alerts.dlq", 0), timeout=10)[1]
    finally:
        consumer.close()


def dead_letters_of(settings: Settings, alert_id: str, start: int, timeout: float) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("alerts.dlq", 0, start)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not found:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = dict(msg.headers() or [])
            if headers.get("nudge.alert_id") == alert_id.encode():
                found.append(msg)
    finally:
        consumer.close()
    return found


def test_receiver_failing_four_times_gets_one_delivery_after_five_attempts(
    worker: Settings, receiver: tuple[Receiver, str]
) -> None:
    rec, _ = receiver
    alert_id = f"flaky-{uuid.uuid4().hex}"
    rec.failures[alert_id] = 4
    start = dlq_end(worker)
    produce(worker, alert_id, "cust-flaky")
    wait_until(lambda: any(ok for _, _, ok in rec.attempts(alert_id)), 60, "the fifth attempt to succeed")
    time.sleep(3.0)  # longer than the whole schedule: nothing else may arrive
    attempts = rec.attempts(alert_id)
    assert [n for _, n, _ in attempts] == [1, 2, 3, 4, 5]
    assert [ok for _, _, ok in attempts] == [False, False, False, False, True]
    gaps = [b[0] - a[0] for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, (0.2, 0.4, 0.8, 1.6), strict=True)), gaps
    assert rec.bad_signatures == 0
    assert dead_letters_of(worker, alert_id, start, timeout=2) == []


def test_receiver_always_failing_sends_alert_to_dlq_after_five_attempts(
    worker: Settings, receiver: tuple[Receiver, str]
) -> None:
    rec, _ = receiver
    alert_id = f"doomed-{uuid.uuid4().hex}"
    rec.failures[alert_id] = 10**6
    start = dlq_end(worker)
    value = alert_value(alert_id, "cust-doomed")
    producer = Producer({"bootstrap.servers": worker.bootstrap_servers, "acks": "all"})
    producer.produce("alerts", key=b"cust-doomed", value=value)
    assert producer.flush(30) == 0
    letters = dead_letters_of(worker, alert_id, start, timeout=60)
    assert len(letters) == 1
    letter = letters[0]
    headers = dict(letter.headers())
    assert letter.key() == b"cust-doomed" and letter.value() == value
    assert headers["dlq.reason"] == b"delivery_failed"
    assert headers["dlq.error"].startswith(b"webhook delivery failed after 5 attempts; last error: HTTP 500")
    assert headers["nudge.attempts"] == b"5"
    time.sleep(1.0)
    assert [n for _, n, _ in rec.attempts(alert_id)] == [1, 2, 3, 4, 5]
