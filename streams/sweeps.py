"""Starting and following sweeps from outside the agents (the CLI, the nightly schedule, the HTTP API).

A sweep is a set of ``SweepRequest`` messages on the ``sweep`` topic covering each customer once. One
message carries up to ``sweep_customers_per_request`` customers of one partition (``customer_id``, the key,
and ``more_customer_ids``), so it lands on the worker that owns all of their records. Who is in it: every customer whose
latest event on the compacted ``customers`` lifecycle topic is ``ConsentGranted`` (revoked or erased
customers are never swept). Markers and progress live on the compacted ``sweep-progress`` topic:

- ``<sweep_id>``: the start marker (as-of time, rules, reason, total, and per partition the offset of the
  sweep's last request, which is how completion is known exactly);
- ``<sweep_id>#p<N>``: counters of partition N, written by the sweep agent as it goes;
- ``<sweep_id>#finish``: the finish marker with the totals, written by whoever watched it finish.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from schemas.codec import DecodeError, default_codec
from streams.kafka_config import confluent_security
from streams.producer import producer_config
from streams.settings import Settings

_PARTITIONER = DefaultPartitioner()

__all__ = [
    "SweepProgress",
    "active_customers",
    "group_by_partition",
    "partition_of",
    "publish_sweep",
    "read_progress",
    "read_topic",
    "sweep_request",
    "watch_sweep",
]


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> Iterable[Any]:
    """Every record of a (compacted) topic, from the beginning to the end offsets seen at the start."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"nudge-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **confluent_security(settings),
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, 0 if p in ends else -1) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(error))
                yield msg
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None and offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
        if ends:
            raise TimeoutError(f"could not read {topic} to its end within {timeout_s}s")
    finally:
        consumer.close()


def active_customers(settings: Settings) -> list[str]:
    """Customers whose latest lifecycle event grants consent; undecodable events are skipped (the
    lifecycle agent dead-letters them)."""
    codec = default_codec()
    state: dict[str, bool] = {}
    for msg in read_topic(settings, "customers"):
        key = (msg.key() or b"").decode()
        if msg.value() is None:
            state.pop(key, None)
            continue
        try:
            event = codec.decode(msg.value(), expect="CustomerLifecycle")
        except DecodeError:
            continue
        state[event["customer_id"]] = event["kind"] == "ConsentGranted"
    return sorted(c for c, active in state.items() if active)


def sweep_request(
    sweep_id: str,
    customer_id: str,
    *,
    rule_ids: list[str] | None = None,
    as_of: datetime,
    requested_at: datetime,
    reason: str,
    dry_run: bool = False,
    more_customer_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``SweepRequest`` record (schemas/sweep_request.avsc) for one customer, or for a group of customers
    of the same partition (``customer_id`` first, the message key, then ``more_customer_ids``)."""
    return {
        "sweep_id": sweep_id,
        "customer_id": customer_id,
        "more_customer_ids": list(more_customer_ids),
        "rule_ids": list(rule_ids or []),
        "as_of": as_of,
        "requested_at": requested_at,
        "reason": reason,
        "dry_run": dry_run,
    }


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition of a customer's key on every co-partitioned topic (Java-compatible murmur2, as the
    producers and Faust use)."""
    all_partitions = list(range(partitions))
    return int(_PARTITIONER(customer_id.encode(), all_partitions, all_partitions))


def group_by_partition(customers: Iterable[str], partitions: int, per_group: int) -> Iterator[list[str]]:
    """The customers in groups of at most ``per_group``, each group within one partition (customers keep
    their order within a partition)."""
    if per_group < 1:
        raise ValueError(f"NUDGE_SWEEP_CUSTOMERS_PER_REQUEST must be at least 1, not {per_group}")
    open_groups: dict[int, list[str]] = {}
    for customer_id in customers:
        partition = partition_of(customer_id, partitions)
        group = open_groups.setdefault(partition, [])
        group.append(customer_id)
        if len(group) == per_group:
            yield open_groups.pop(partition)
    yield from (group for group in open_groups.values() if group)


def topic_partitions(producer: Any, topic: str, timeout_s: float = 10.0) -> int:
    """How many partitions ``topic`` has, from the broker's metadata."""
    metadata = producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise RuntimeError(f"topic {topic!r} is not available: {getattr(metadata, 'error', 'missing')}")
    return len(metadata.partitions)


@dataclass
class SweepStart:
    sweep_id: str
    total: int
    as_of: datetime
    last_offsets: dict[int, int]


def publish_sweep(
    settings: Settings,
    customers: list[str],
    *,
    rule_ids: list[str] | None = None,
    as_of: datetime | None = None,
    reason: str = "manual",
    dry_run: bool = False,
    sweep_id: str | None = None,
) -> SweepStart:
    """Publish requests covering every customer once (grouped per partition), then the start marker with
    each partition's last offset."""
    codec = default_codec()
    as_of = as_of or datetime.now(UTC)
    sweep_id = sweep_id or f"{reason}-{as_of:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    producer = Producer(producer_config(settings))
    last_offsets: dict[int, int] = {}
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))
        else:
            last_offsets[msg.partition()] = max(last_offsets.get(msg.partition(), -1), msg.offset())

    now = datetime.now(UTC)
    partitions = topic_partitions(producer, "sweep")
    for group in group_by_partition(customers, partitions, settings.sweep_customers_per_request):
        value = codec.encode(
            "SweepRequest",
            sweep_request(
                sweep_id,
                group[0],
                more_customer_ids=group[1:],
                rule_ids=rule_ids,
                as_of=as_of,
                requested_at=now,
                reason=reason,
                dry_run=dry_run,
            ),
        )
        while True:
            try:
                producer.produce("sweep", key=group[0].encode(), value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    if failures:
        raise RuntimeError(f"{len(failures)} sweep requests were not delivered: {failures[0]}")
    marker = {
        "sweep_id": sweep_id,
        "as_of": as_of.isoformat(),
        "rules": list(rule_ids or []),
        "reason": reason,
        "dry_run": dry_run,
        "total": len(customers),
        "started_at": now.isoformat(),
        "last_offsets": {str(p): o for p, o in last_offsets.items()},
    }
    producer.produce("sweep-progress", key=sweep_id.encode(), value=json.dumps(marker).encode())
    producer.flush(30)
    return SweepStart(sweep_id, len(customers), as_of, last_offsets)


@dataclass
class SweepProgress:
    sweep_id: str
    start: dict[str, Any] | None = None
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish: dict[str, Any] | None = None

    def total(self, name: str) -> int:
        return sum(int(c.get(name, 0)) for c in self.partitions.values())

    @property
    def done(self) -> bool:
        """Every partition's counters passed the offset of the sweep's last request on it."""
        if self.finish is not None:
            return True
        if self.start is None:
            return False
        last = {int(p): int(o) for p, o in self.start["last_offsets"].items()}
        return all(self.partitions.get(p, {}).get("offset", -1) >= o for p, o in last.items())

    def summary(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "total": (self.start or {}).get("total"),
            "customers": self.total("customers"),
            "evaluations": self.total("evaluations"),
            "scores_changed": self.total("changed"),
            "errors": self.total("errors"),
            "skipped": self.total("skipped"),
            "done": self.done,
        }


def read_progress(settings: Settings) -> dict[str, SweepProgress]:
    """Every sweep's markers and counters, from the compacted ``sweep-progress`` topic."""
    sweeps: dict[str, SweepProgress] = {}
    for msg in read_topic(settings, "sweep-progress"):
        if msg.value() is None or msg.key() is None:
            continue
        key = msg.key().decode()
        sweep_id, _, part = key.partition("#")
        progress = sweeps.setdefault(sweep_id, SweepProgress(sweep_id))
        value = json.loads(msg.value())
        if not part:
            progress.start = value
        elif part == "finish":
            progress.finish = value
        elif part.startswith("p"):
            progress.partitions[int(part[1:])] = value
    return sweeps


def watch_sweep(
    settings: Settings,
    sweep_id: str,
    on_progress: Callable[[SweepProgress], None] = lambda _p: None,
    timeout_s: float = 3600.0,
    poll_s: float = 0.5,
) -> SweepProgress:
    """Follow a sweep until it is done, then write its finish marker with the totals (idempotent)."""
    deadline = time.monotonic() + timeout_s
    while True:
        progress = read_progress(settings).get(sweep_id) or SweepProgress(sweep_id)
        on_progress(progress)
        if progress.done:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"sweep {sweep_id} did not finish within {timeout_s}s")
        time.sleep(poll_s)
    if progress.finish is None:
        finish = progress.summary() | {"finished_at": datetime.now(UTC).isoformat()}
        producer = Producer(producer_config(settings))
        producer.produce(
            "sweep-progress", key=f"{sweep_id}#finish".encode(), value=json.dumps(finish).encode()
        )
        producer.flush(30)
        progress.finish = finish
    return progress
