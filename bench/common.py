"""Shared helpers of the pipeline and sweep benchmarks (real stack, real `nudge worker` processes).

Why a module: both benchmarks need the same pieces, and their figures must be measured the same way:
simulated customers produced to ``transactions``; "live" copies of their transactions (booked now, new ids)
paced at a steady rate; a background consumer of ``scores`` and ``alerts`` that stamps when each record
arrived, so produce→score/alert latency can be matched by transaction id; worker RSS, RocksDB size and the
prometheus counters of a worker; percentiles; a plain-text table that can be pasted into a report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.codec import DecodeError, default_codec
from simulator.generator import SimulatedCustomer, population
from simulator.outputs import restamp
from streams.settings import PROJECT_ROOT, Settings

__all__ = [
    "OutputCollector",
    "Pacer",
    "delete_app_topics",
    "exit_on_sigterm",
    "dir_bytes",
    "fmt",
    "free_port",
    "history_start",
    "live_records",
    "load_average",
    "percentiles",
    "print_table",
    "publish_catalogue",
    "rss_bytes",
    "wait_committed",
    "scrape_counter",
    "simulated",
]


def load_average() -> str:
    """The 1/5/15-minute load averages: the machine is shared, so every figure is printed next to them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def publish_catalogue(settings: Settings) -> str:
    """``nudge rules publish --author bench`` (a no-op when the catalogue is already on the topic)."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rules", "publish", "--author", "bench"],
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"NUDGE_KAFKA_PORT": str(settings.kafka_port)},
    )
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def history_start(months: int) -> date:
    """First day of the month ``months`` months ago, so simulated histories end about now."""
    return (datetime.now(UTC) - timedelta(days=31 * months)).date().replace(day=1)


def simulated(n: int, months: int, seed: int | None = None) -> tuple[str, list[SimulatedCustomer]]:
    """``n`` simulated customers with a fresh seed (new customer ids, so nothing is a duplicate)."""
    seed = seed if seed is not None else int(uuid.uuid4().int % 10**9)
    return f"sim{seed}-", list(population(seed, n, history_start(months), months))


def live_records(customers: Sequence[SimulatedCustomer], tag: str) -> Iterator[dict[str, Any]]:
    """Endless "live" transactions of ``customers``: their booked records in turn, booked now, each with a
    new transaction id (``<id>-<tag><n>``) so the worker folds it as a new transaction."""
    booked = [[r for r in c.records if r["Status"] == "Booked"] for c in customers]
    n = 0
    while True:
        for records in booked:
            if not records:
                continue
            record = restamp(records[n % len(records)])
            record["TransactionId"] = f"{record['TransactionId']}-{tag}{n}"
            record["TransactionReference"] = f"{record['TransactionReference']}-{tag}{n}"
            record["event_id"] = f"{record['TransactionId']}-1"
            yield record
        n += 1


@dataclass
class Pacer:
    """Produce live transactions at a steady rate; remembers when each was handed to the producer."""

    producer: Any
    rate: float
    sent_at: dict[str, float] = field(default_factory=dict)
    failed: int = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1

    def run(self, records: Iterator[dict[str, Any]], duration_s: float, stop: threading.Event | None = None) -> float:
        """Produce for ``duration_s`` (or until ``stop``) in 10 ms ticks; returns the rate achieved."""
        codec = default_codec()
        tick = 0.01
        started = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic()
            elapsed = now - started
            if elapsed >= duration_s or (stop is not None and stop.is_set()):
                break
            due = int(elapsed * self.rate) + 1
            while sent < due:
                record = next(records)
                value = codec.encode("Transaction", record)
                self.sent_at[record["TransactionId"]] = time.time()
                while True:
                    try:
                        self.producer.produce(
                            "transactions", key=record["customer_id"].encode(), value=value,
                            on_delivery=self._delivered,
                        )
                        break
                    except BufferError:
                        self.producer.poll(0.01)
                sent += 1
            self.producer.poll(0)
            time.sleep(max(0.0, started + (int(elapsed / tick) + 1) * tick - time.monotonic()))
        achieved = sent / max(time.monotonic() - started, 1e-9)
        self.producer.flush(30)
        return achieved


class OutputCollector:
    """A background consumer of ``scores`` and ``alerts`` from their current ends, stamping arrival times
    (wall clock, like :class:`Pacer`), so latency can be matched by transaction id afterwards."""

    def __init__(self, settings: Settings, topics: tuple[str, ...] = ("scores", "alerts")) -> None:
        self.settings = settings
        self.topics = topics
        self.received: list[tuple[str, bytes, float, float]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-collector", daemon=True)

    def __enter__(self) -> OutputCollector:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("output collector did not get its partitions")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.settings.bootstrap_servers,
            "group.id": f"bench-collector-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        })
        try:
            assignment = []
            for topic in self.topics:
                for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                    high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    assignment.append(TopicPartition(topic, p, high))
            consumer.assign(assignment)
            self._ready.set()
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.05):
                    arrived = time.time()
                    if msg.error() or msg.value() is None:
                        continue
                    created = msg.timestamp()[1] / 1000  # the worker's producer stamps it when it sends
                    self.received.append((str(msg.topic()), bytes(msg.value() or b""), arrived, created))
        finally:
            consumer.close()

    def latencies(self, sent_at: dict[str, float], since: float = 0.0, until: float = float("inf"),
                  stage: str = "received") -> dict[str, list[float]]:
        """Per topic, for each transaction sent in [since, until) that led to a score/alert: ms from its
        produce to the first score/alert naming it, as received by this consumer (``stage="received"``) or
        as stamped by the worker's producer (``stage="created"``: the worker's share of the latency)."""
        codec = default_codec()
        first: dict[str, dict[str, tuple[float, float]]] = {t: {} for t in self.topics}
        for topic, value, arrived, created in self.received:
            try:  # the topics are shared: other people's tests put anything on them
                if topic == "alerts":
                    txid = codec.decode(value, expect="Alert").get("transaction_id")
                else:
                    txid = json.loads(value).get("transaction_id")
            except (ValueError, KeyError, TypeError, AttributeError, DecodeError):
                continue
            if txid is None or txid not in sent_at:
                continue
            seen = first[topic]
            if txid not in seen or arrived < seen[txid][0]:
                seen[txid] = (arrived, created)
        index = 0 if stage == "received" else 1
        return {
            topic: [(at[index] - sent_at[tx]) * 1000 for tx, at in seen.items() if since <= sent_at[tx] < until]
            for topic, seen in first.items()
        }


def percentiles(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/max by nearest rank (NaN when empty)."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (``VmRSS`` of /proc/PID/status); 0 once it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 if match else 0


def children_of(pid: int) -> set[int]:
    """A process's direct children (a worker's sweep processes): /proc/PID/task/*/children."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children.update(int(c) for c in task.read_text().split())
    return children


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process plus its direct children."""
    return rss_bytes(pid) + sum(rss_bytes(c) for c in children_of(pid))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far; 0 once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces; fields after it are fixed
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core; /proc/stat, not idle and not iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def stack_pids(settings: Settings) -> dict[str, int]:
    """The local stack's processes (kafka, connect, dynamodb) from the PID files `nudge stack up` writes."""
    pids: dict[str, int] = {}
    for service in ("kafka", "connect", "dynamodb"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids[service] = int(json.loads((settings.stack_dir / "run" / f"{service}.pid").read_text())["pid"])
    return pids


def dir_bytes(path: Path) -> int:
    """Bytes on disk under ``path`` (what ``du`` counts: allocated blocks)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def _samples(port: int, name: str, labels: dict[str, str]) -> list[tuple[dict[str, str], float]] | None:
    """The samples of metric ``name`` on a worker's /metrics whose labels include ``labels``, as (all their
    labels, value); None if the worker does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group("name") != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels") or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            found.append((have, float(m.group("value"))))
    return found


def scrape_counter(port: int, name: str, **labels: str) -> float | None:
    """Sum of a prometheus metric of a worker's /metrics matching ``labels``; None if it does not answer."""
    samples = _samples(port, name, labels)
    return None if samples is None else sum(value for _, value in samples)


def scrape_buckets(port: int, name: str, **labels: str) -> dict[float, float]:
    """A prometheus histogram's cumulative bucket counts ({le: count}) on a worker's /metrics; {} if it does
    not answer."""
    buckets: dict[float, float] = {}
    for have, value in _samples(port, f"{name}_bucket", labels) or []:
        le = float(have["le"])  # "+Inf" parses as inf
        buckets[le] = buckets.get(le, 0.0) + value
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, int]:
    """The upper bound of the bucket holding quantile ``q`` of the observations made between two scrapes,
    and their number."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return float("nan"), 0
    for le, count in delta.items():
        if count >= q * total:
            return le, int(total)
    return float("inf"), int(total)


def delete_app_topics(settings: Settings, prefixes: Sequence[str]) -> list[str]:
    """Delete the topics a benchmark created (its workers' changelogs and repartition topics, its outputs)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    names = [t for t in admin.list_topics(timeout=10).topics if any(t.startswith(p) for p in prefixes)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - cleanup: report, don't hide the figures
                if getattr(exc.args[0], "code", lambda: None)() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    print(f"warning: could not delete a topic: {exc}", file=sys.stderr)
    return names


def fmt(value: float, unit: str = "") -> str:
    """A figure with thousands separators, or n/a."""
    if value != value:  # NaN
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return f"{text}{(' ' + unit) if unit else ''}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain-text table (pastes as is into a report)."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def wait_committed(settings: Settings, group_id: str, targets: dict[tuple[str, int], int],
                   timeout_s: float = 1800.0, poll_s: float = 0.25, any_of: bool = False) -> float:
    """Wait until ``group_id`` has committed at least ``targets`` (a snapshot of end offsets taken right after
    producing: the topics are shared, so later records of other people are not waited for), on every
    partition or, with ``any_of``, on one of them; returns the time.perf_counter() at which it was seen."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            committed = consumer.committed([TopicPartition(t, p) for t, p in targets], timeout=10)
            reached = (c.offset >= targets[(str(c.topic), int(c.partition or 0))] for c in committed)
            if any(reached) if any_of else all(reached):
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group_id} did not commit {targets} within {timeout_s}s")
            time.sleep(poll_s)
    finally:
        consumer.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on now (each worker needs its own web port)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, ``kill``) into SystemExit, so ``finally`` blocks stop the workers."""
    import signal

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
