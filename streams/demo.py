"""`nudge demo`: the whole pipeline on the local stack, from nothing to insights in DynamoDB.

1. brings the stack up (Kafka, Kafka Connect with the DynamoDB sink, local DynamoDB) and publishes the
   rule catalogue to the `rules` topic;
2. starts a worker (a new consumer group starting at the topics' current ends, so a demo never replays
   old data);
3. simulates customers with 13 months of history ending today, grants their consent, and streams their
   transactions in;
4. shows what came out: scores, alerts, dead letters; runs a nightly-style sweep with a progress bar;
   and reads one customer's insights back from DynamoDB, where Kafka Connect wrote them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    demo = sub.add_parser("demo", help="run the whole pipeline on the local stack and show what comes out")
    demo.add_argument("--customers", type=int, default=20, help="simulated customers (default 20)")
    demo.add_argument("--months", type=int, default=13, help="months of history each (default 13)")
    demo.add_argument("--seed", type=int, default=None, help="simulator seed (default: a new one)")
    demo.add_argument("--keep-running", action="store_true", help="leave the worker running at the end")
    demo.set_defaults(handler=run_demo)


def _start_worker(app_id: str, data_dir: Path, web_port: int, keys_file: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        NUDGE_APP_ID=app_id,
        NUDGE_WORKER_DATA_DIR=str(data_dir),
        NUDGE_WEB_PORT=str(web_port),
        NUDGE_API_KEYS_FILE=str(keys_file),
    )
    log = open(data_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _consents(customers: list[str]) -> list[tuple[bytes, bytes]]:
    from schemas.codec import default_codec

    codec, now = default_codec(), datetime.now(UTC)
    return [
        (
            c.encode(),
            codec.encode(
                "CustomerLifecycle",
                {
                    "event_id": f"consent-{c}",
                    "customer_id": c,
                    "kind": "ConsentGranted",
                    "occurred_at": now,
                    "consent_id": f"ob-{c}",
                    "permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail"],
                    "expires_at": now + timedelta(days=90),
                    "source": "demo",
                    "reason": None,
                },
            ),
        )
        for c in customers
    ]


async def _insights(settings: Any, customer: str) -> list[dict[str, Any]]:
    import aioboto3

    session = aioboto3.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=settings.aws_region
    )
    async with session.client("dynamodb", endpoint_url=settings.dynamodb_url) as ddb:
        result = await ddb.query(
            TableName="insights",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer}},
        )
    return sorted(result["Items"], key=lambda i: -float(i["score"]["N"]))


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from schemas.codec import default_codec
    from simulator.generator import population
    from simulator.outputs import KafkaSink
    from stack import launcher
    from streams.cli import main as nudge
    from streams.offsets import commit_current_ends, end_offsets, wait_caught_up
    from streams.producer import make_producer
    from streams.settings import load_settings
    from streams.sweeps import active_customers, publish_sweep, read_topic, watch_sweep

    console = Console()
    settings = load_settings()
    console.rule("[bold]1. the local stack")
    launcher.up(settings, echo=lambda line: console.print(f"  {line}"))
    if nudge(["rules", "publish", "--author", "demo"]) != 0:
        return 1

    console.rule("[bold]2. a worker")
    app_id = f"demo-{uuid.uuid4().hex[:6]}"
    data_dir = settings.cache_dir / "demo" / app_id
    data_dir.mkdir(parents=True)
    keys_file = data_dir / "api_keys.json"
    key = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "apikey",
                "--file",
                str(keys_file),
                "create",
                "--name",
                "demo",
                "--scopes",
                "admin",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    inputs = ["transactions", "customers", "sweep", "alerts", "alerts.retry", "balances"]
    commit_current_ends(settings, app_id, inputs)
    worker = _start_worker(app_id, data_dir, settings.web_port, keys_file)
    console.print(f"  worker pid {worker.pid}, consumer group {app_id}, log {data_dir / 'worker.log'}")
    try:
        console.rule("[bold]3. simulated customers")
        seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
        start = (datetime.now(UTC) - timedelta(days=31 * args.months)).date().replace(day=1)
        customers = list(population(seed, args.customers, start, args.months))
        ids = [c.profile.customer_id for c in customers]
        since = end_offsets(settings, ["transactions", "customers"])
        producer = make_producer(settings, client_id="nudge-demo")
        for key_bytes, value in _consents(ids):
            producer.produce("customers", key=key_bytes, value=value)
        sink = KafkaSink(producer)
        t0 = time.monotonic()
        for customer in customers:
            sink.write(customer.records)
        sink.close()
        console.print(
            f"  {sink.count:,} transactions of {len(ids)} customers produced (seed {seed}); processing…"
        )
        wait_caught_up(settings, app_id, since, timeout_s=1800)
        elapsed = time.monotonic() - t0
        console.print(f"  processed in {elapsed:.1f} s ({sink.count / elapsed:,.0f} transactions/s)")

        console.rule("[bold]4. what came out")
        prefix = f"sim{seed}-"
        scores = [m for m in read_topic(settings, "scores") if (m.key() or b"").decode().startswith(prefix)]
        codec = default_codec()
        alerts = [
            codec.decode(m.value())
            for m in read_topic(settings, "alerts")
            if (m.key() or b"").decode().startswith(prefix)
        ]
        dead = [
            m
            for m in read_topic(settings, "transactions.dlq")
            if (m.key() or b"").decode().startswith(prefix)
        ]
        console.print(f"  {len(scores):,} score changes, {len(alerts)} alerts, {len(dead)} dead letters")
        table = Table("alert", "count", "example")
        for rule_id, n in Counter(a["rule_id"] for a in alerts).most_common():
            example = next(a["message"] for a in alerts if a["rule_id"] == rule_id)
            table.add_row(rule_id, str(n), example)
        console.print(table)

        console.rule("[bold]5. a sweep (every consenting customer, every nightly rule)")
        consenting = [c for c in active_customers(settings) if c.startswith(prefix)]
        started = publish_sweep(settings, consenting, reason="manual")
        final = watch_sweep(settings, started.sweep_id, timeout_s=1800)
        console.print(f"  {final.summary()}")

        console.rule(f"[bold]6. {ids[0]}'s insights, read back from DynamoDB")
        time.sleep(5)  # the Kafka Connect sink writes asynchronously
        items = asyncio.run(_insights(settings, ids[0]))
        table = Table("rule", "score", "message")
        for item in items:
            table.add_row(item["rule_id"]["S"], item["score"]["N"], item.get("message", {}).get("S", ""))
        console.print(table)
        url = f"http://{settings.host}:{settings.web_port}"
        console.print(f"\n  API and pages: {url}/alerts, {url}/rules/editor (API key: {key})")
        if args.keep_running:
            console.print(f"  the worker keeps running (pid {worker.pid}); stop it with kill {worker.pid}")
            return 0
    finally:
        if not args.keep_running and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=60)
    console.print("  the stack keeps running: `nudge stack down` stops it")
    return 0
