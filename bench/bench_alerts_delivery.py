"""Alert delivery throughput on the local stack, side by side with two ceilings measured in the same run.

Run: ``.venv/bin/python -m bench.bench_alerts_delivery [--alerts 2000]`` (starts the stack if needed).

1. **Kafka ceiling**: a raw confluent-kafka consumer reading the same alerts from the ``alerts`` topic.
2. **HTTP ceiling**: aiohttp POSTing the same signed bodies to the same local receiver, 16 at a time (the
   delivery agent's concurrency), no Kafka.
3. **Delivery worker**: a real ``nudge`` Faust worker with only ``agents.alerts`` (own app id) delivering
   to that receiver, timed from the first produce to the last alert received.

Prints alerts/s for each and the worker's ratio to each ceiling. The receiver answers 200 at once, so the
figures are the pipeline's own cost, not a slow receiver's. Alerts are produced to the shared ``alerts``
topic with ids ``bench-<run>-<n>`` (other consumers filter or ignore them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, Producer, TopicPartition

from core.delivery import alert_payload, request_headers
from schemas.codec import default_codec
from stack import launcher
from streams.settings import load_settings

SECRET = "bench-secret"
WORKER = """
import faust
from streams.app import create_app
faust.Worker(create_app(agent_modules=("agents.alerts",)).app, loglevel="warning", quiet=True).execute_from_commandline()
"""


RECEIVER = """
import asyncio, sys, time
from aiohttp import web
counts = {}
async def hook(request):
    await request.read()
    prefix = request.headers.get("X-Nudge-Alert-Id", "").rsplit("-", 1)[0]
    n, _ = counts.get(prefix, (0, 0.0))
    counts[prefix] = (n + 1, time.time())
    return web.Response(text="ok")
async def count(request):
    n, last = counts.get(request.query["prefix"], (0, 0.0))
    return web.json_response({"count": n, "last": last})
async def main():
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


class Receiver:
    """A webhook receiver in its own process (so it does not share a GIL with what it measures), counting
    deliveries per alert id prefix (the id without its last ``-<n>``)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hook"

    def status(self, prefix: str) -> tuple[int, float]:
        with urllib.request.urlopen(f"{self.base}/count?prefix={prefix}", timeout=5) as response:
            body = json.loads(response.read())
        return int(body["count"]), float(body["last"])

    def wait(self, prefix: str, n: int, timeout: float) -> tuple[int, float]:
        deadline = time.monotonic() + timeout
        while True:
            count, last = self.status(prefix)
            if count >= n or time.monotonic() > deadline:
                return count, last
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def records(run: str, n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{
        "alert_id": f"bench-{run}-{i}", "customer_id": f"bench-cust-{i % 500}", "rule_id": "subscription_price_rise",
        "rule_version": 1, "item_key": "netflix", "title": "Netflix costs more",
        "message": "Netflix went from £10.99 to £12.99.", "score": 0.8, "created_at": now, "transaction_id": None,
    } for i in range(n)]


def produce(bootstrap: str, recs: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    codec = default_codec()
    for rec in recs:
        producer.produce("alerts", key=rec["customer_id"].encode(), value=codec.encode("Alert", rec))
        producer.poll(0)
    assert producer.flush(30) == 0


def kafka_ceiling(bootstrap: str, recs: list[dict[str, Any]]) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    meta = consumer.list_topics("alerts", timeout=10).topics["alerts"].partitions
    tps = [TopicPartition("alerts", p) for p in meta]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    consumer.assign([TopicPartition("alerts", tp.partition, end) for tp, end in zip(tps, ends, strict=True)])
    started = time.perf_counter()
    produce(bootstrap, recs)
    seen = 0
    while seen < len(recs):
        for msg in consumer.consume(500, 1.0):
            if msg.error() is None and msg.value():
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return len(recs) / elapsed


def http_ceiling(url: str, recs: list[dict[str, Any]]) -> float:
    async def run() -> float:
        limit = asyncio.Semaphore(16)
        async with aiohttp.ClientSession() as session:
            async def post(rec: dict[str, Any]) -> None:
                body = alert_payload(rec)
                async with limit, session.post(
                    url, data=body, headers=request_headers(SECRET, rec["alert_id"], body, 1, time.time())
                ) as response:
                    await response.read()

            started = time.perf_counter()
            await asyncio.gather(*(post(r) for r in recs))
            return len(recs) / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    args = parser.parse_args()
    settings = load_settings()
    launcher.up(settings, echo=lambda line: print(f"[stack] {line}", file=sys.stderr))
    receiver = Receiver()
    n = args.alerts
    run = uuid.uuid4().hex[:8]
    try:
        http_rate = http_ceiling(receiver.url, [dict(r, alert_id=f"http{run}-{i}") for i, r in enumerate(records(run, n))])
        kafka_rate = kafka_ceiling(settings.bootstrap_servers, records(f"k{run}", n))
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, NUDGE_APP_ID=f"bench-alerts-{run}", NUDGE_WORKER_DATA_DIR=tmp,
                       NUDGE_WEBHOOK_URL=receiver.url, NUDGE_WEBHOOK_SECRET=SECRET)
            log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115 - closed below
            worker = subprocess.Popen([sys.executable, "-c", WORKER, "worker"], env=env, stdout=log, stderr=log)
            try:
                # Ready once it has caught up with the topic and delivered a probe.
                produce(settings.bootstrap_servers, [dict(records(run, 1)[0], alert_id=f"probe{run}-0")])
                if receiver.wait(f"probe{run}", 1, 180)[0] < 1:
                    print("the worker did not deliver the probe alert in 180 s", file=sys.stderr)
                    return 1
                started = time.time()
                produce(settings.bootstrap_servers, records(run, n))
                count, last = receiver.wait(f"bench-{run}", n, 300)
                if count < n:
                    print(f"only {count}/{n} delivered in 300 s", file=sys.stderr)
                    return 1
                worker_rate = n / (last - started)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
                log.close()
    finally:
        receiver.stop()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"alerts: {n}, receiver answers 200 at once, delivery concurrency 16, load average {load} "
          f"on {os.cpu_count()} cores (figures are only comparable within one run)")
    print(f"  kafka ceiling (raw confluent-kafka consume): {kafka_rate:10,.0f} alerts/s")
    print(f"  http ceiling  (aiohttp POST, no Kafka):      {http_rate:10,.0f} alerts/s")
    print(f"  delivery worker (Kafka -> webhook):         {worker_rate:10,.0f} alerts/s")
    print(f"  worker / kafka ceiling: {worker_rate / kafka_rate:.2f}   worker / http ceiling: {worker_rate / http_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
