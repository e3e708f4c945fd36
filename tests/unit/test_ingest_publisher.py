"""AsyncPublisher resolves awaits from delivery callbacks run in its polling thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from streams.producer import AsyncPublisher, Delivery, PublishError, producer_config
from streams.settings import Settings


class FakeMsg:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class FakeProducer:
    """Queues produce() calls; poll() delivers them (failing keys that start with b'bad'), like librdkafka."""

    def __init__(self, full_once: bool = False) -> None:
        self.pending: list[tuple[str, bytes | None, Any]] = []
        self.lock = threading.Lock()
        self.offset = 0
        self.full_once = full_once
        self.poll_threads: set[str] = set()

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Any, on_delivery: Any) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        with self.lock:
            self.pending.append((topic, key, on_delivery))

    def poll(self, timeout: float) -> int:
        self.poll_threads.add(threading.current_thread().name)
        with self.lock:
            batch, self.pending = self.pending, []
        for topic, key, cb in batch:
            if key is not None and key.startswith(b"bad"):
                cb("Broker: not enough replicas", None)
            else:
                self.offset += 1
                cb(None, FakeMsg(topic, 0, self.offset))
        return len(batch)

    def flush(self, timeout: float) -> int:
        return len(self.pending)


async def test_publish_waits_for_acknowledgement() -> None:
    producer = FakeProducer(full_once=True)
    async with AsyncPublisher(producer, poll_interval=0.001) as publisher:
        first = await publisher.publish("transactions", b"c1", b"v")
        second = await publisher.publish("transactions", b"c1", b"v", headers=[("h", b"1")])
    assert first == Delivery("transactions", 0, 1) and second.offset == 2
    assert producer.poll_threads == {"nudge-producer-poll"}


async def test_failed_delivery_raises() -> None:
    async with AsyncPublisher(FakeProducer(), poll_interval=0.001) as publisher:
        with pytest.raises(PublishError, match="not enough replicas"):
            await publisher.publish("transactions", b"bad-key", b"v")


async def test_publish_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await AsyncPublisher(FakeProducer()).publish("t", None, None)


def test_producer_config_is_idempotent_and_compressed() -> None:
    cfg = producer_config(Settings(), compression="zstd")
    assert cfg["acks"] == "all" and cfg["enable.idempotence"] is True and cfg["compression.type"] == "zstd"
    assert cfg["bootstrap.servers"] == Settings().bootstrap_servers
    with pytest.raises(ValueError):
        producer_config(Settings(), compression="brotli")
