"""The worker's producer of scores and alerts: a delivery group is acknowledged once every one of its records
is, from librdkafka's polling thread, and never earlier."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from streams.output import DeliveryGroup, OutputProducer
from streams.producer import PublishError
from streams.settings import Settings


class ThreadedFakeProducer:
    """Holds produced records until ``release()``; then its poll() (the service's polling thread) reports
    them delivered, failing keys that start with b'bad', as librdkafka does."""

    def __init__(self, full_times: int = 0) -> None:
        self.lock = threading.Lock()
        self.held: list[tuple[str, bytes, Any]] = []
        self.released = threading.Event()
        self.full_times = full_times
        self.flushes = 0
        self.poll_threads: set[str] = set()

    def produce(self, topic: str, *, key: bytes, value: Any, headers: Any, on_delivery: Any) -> None:
        if topic == "no-such-topic":
            raise ValueError("unknown topic")
        if self.full_times:
            self.full_times -= 1
            raise BufferError("Local: Queue full")
        with self.lock:
            self.held.append((topic, key, on_delivery))

    def release(self) -> None:
        self.released.set()

    def poll(self, timeout: float) -> int:
        self.poll_threads.add(threading.current_thread().name)
        if not self.released.wait(timeout):
            return 0
        with self.lock:
            batch, self.held = self.held, []
        for _topic, key, callback in batch:
            callback("Broker: not enough replicas" if key.startswith(b"bad") else None, None)
        return len(batch)

    def flush(self, timeout: float = 0) -> int:
        self.flushes += 1
        return len(self.held)

    def __len__(self) -> int:
        return len(self.held)


@pytest.fixture
async def output() -> Any:
    fake = ThreadedFakeProducer()
    service = OutputProducer(Settings(), producer_factory=lambda: fake)
    await service.on_start()
    yield service, fake
    fake.release()
    await service.on_stop()


async def test_a_group_is_acknowledged_only_once_every_record_is(output: Any) -> None:
    service, fake = output
    group = service.group()
    for i in range(3):
        service.send("scores", f"c{i}#r".encode(), b"{}", group)
    assert service.backlog == 3
    waiting = asyncio.ensure_future(group.wait())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # nothing delivered yet
    fake.release()
    await asyncio.wait_for(waiting, 5)
    assert group.sent == 3
    assert fake.poll_threads == {"nudge-output-poll"}  # delivery reports come from the polling thread


async def test_one_refused_record_fails_the_group_naming_the_error(output: Any) -> None:
    service, fake = output
    group = service.group()
    service.send("scores", b"c1#r", b"{}", group)
    service.send("alerts", b"bad-customer", b"x", group)
    fake.release()
    with pytest.raises(PublishError, match="not enough replicas.*2 records"):
        await asyncio.wait_for(group.wait(), 5)


async def test_an_empty_group_is_acknowledged_at_once(output: Any) -> None:
    service, _ = output
    await asyncio.wait_for(service.group().wait(), 1)


async def test_a_full_local_queue_waits_for_deliveries_and_loses_nothing() -> None:
    fake = ThreadedFakeProducer(full_times=2)
    service = OutputProducer(Settings(), producer_factory=lambda: fake)
    await service.on_start()
    group = service.group()
    service.send("scores", b"c1#r", b"{}", group)
    assert fake.flushes == 2 and len(fake.held) == 1
    fake.release()
    await asyncio.wait_for(group.wait(), 5)
    await service.on_stop()


async def test_a_record_refused_before_it_left_fails_its_group(output: Any) -> None:
    service, fake = output
    group = service.group()
    service.send("no-such-topic", b"k", b"v", group)
    fake.release()
    with pytest.raises(PublishError, match="unknown topic"):
        await asyncio.wait_for(group.wait(), 5)


async def test_records_cannot_join_a_group_already_awaited() -> None:
    group = DeliveryGroup(asyncio.get_running_loop())
    await group.wait()
    with pytest.raises(RuntimeError, match="after its wait"):
        group.add()


async def test_the_producer_starts_at_first_use_if_an_agent_sends_before_the_service_started() -> None:
    fake = ThreadedFakeProducer()
    fake.release()
    service = OutputProducer(Settings(), producer_factory=lambda: fake)
    group = service.group()
    service.send("scores", b"c1#r", b"{}", group)
    await asyncio.wait_for(group.wait(), 5)
    await service.on_stop()
