"""Consumer-group offsets from outside the workers: start a new group at the topics' current ends, and
wait until a group has processed everything produced since a snapshot. Used by the demo, the
benchmarks and the integration tests."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from streams.kafka_config import confluent_security
from streams.settings import Settings

__all__ = ["commit_current_ends", "end_offsets", "wait_caught_up"]


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The end offset of every partition of ``topics`` now."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "nudge-offsets",
                         **confluent_security(settings)})
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return ends
    finally:
        consumer.close()


def commit_current_ends(settings: Settings, group_id: str, topics: list[str]) -> None:
    """Start a new consumer group at the current end of ``topics`` (committed, so nothing produced later
    is skipped even if a worker dies before its first commit)."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": group_id, "enable.auto.commit": False,
         **confluent_security(settings)}
    )
    try:
        offsets = [TopicPartition(t, p, high) for (t, p), high in end_offsets(settings, topics).items()]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def wait_caught_up(
    settings: Settings, group_id: str, since: dict[tuple[str, int], int], timeout_s: float = 180.0
) -> None:
    """Wait until the group has committed everything produced to the partitions that grew after ``since``
    (a snapshot of :func:`end_offsets` taken before producing)."""
    now = end_offsets(settings, sorted({t for t, _ in since}))
    targets = {tp: high for tp, high in now.items() if high > since.get(tp, 0)}
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": group_id, "enable.auto.commit": False,
         **confluent_security(settings)}
    )
    try:
        deadline = time.monotonic() + timeout_s
        while targets:
            committed = consumer.committed([TopicPartition(t, p) for t, p in targets], timeout=10)
            behind = {
                (c.topic, c.partition): targets[(c.topic, c.partition)] - c.offset
                for c in committed
                if c.offset < targets[(c.topic, c.partition)]
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group_id} still behind: {behind}")
            time.sleep(0.5)
    finally:
        consumer.close()
