"""confluent-kafka producers for everything outside Faust agents (web endpoint, simulator, tools).

:func:`make_producer` gives an idempotent, ``acks=all`` producer with batching (``linger.ms``) and
compression, from :class:`streams.settings.Settings`. :class:`AsyncPublisher` lets asyncio code
``await publish(topic, key, value)`` until the broker has acknowledged the record: a daemon thread
polls the producer and the delivery callback resolves the awaiting future on the event loop. The web
endpoint answers 202 only after every record of the request has been acknowledged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.kafka_config import confluent_security
from streams.settings import Settings

__all__ = ["AsyncPublisher", "Delivery", "PublishError", "make_producer", "producer_config"]


class PublishError(Exception):
    """The broker did not acknowledge a record (after the producer's own retries)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def producer_config(
    settings: Settings, *, client_id: str = "nudgestream", compression: str = "lz4", linger_ms: int = 5,
    **overrides: Any,
) -> dict[str, Any]:
    """The producer configuration (exposed so benchmarks can print what they ran with)."""
    if compression not in ("lz4", "zstd", "snappy", "gzip", "none"):
        raise ValueError(f"unsupported compression {compression!r}")
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": client_id,
        "acks": "all",
        # Java-compatible murmur2, as Faust (aiokafka) uses: a customer's transactions, sweep requests and
        # the table changelog must land on the same partition number, or a worker would read a customer's
        # record from another partition's store.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "compression.type": compression,
        "batch.size": 256 * 1024,
        "message.timeout.ms": 30_000,
        **confluent_security(settings),
    }
    config.update(overrides)
    return config


def make_producer(settings: Settings, **kwargs: Any) -> Any:
    """A confluent-kafka ``Producer`` configured by :func:`producer_config` (keyword arguments forwarded)."""
    from confluent_kafka import Producer

    return Producer(producer_config(settings, **kwargs))


class AsyncPublisher:
    """``await publish(topic, key, value)`` over a confluent-kafka producer.

    :param producer: a ``confluent_kafka.Producer`` (or anything with ``produce``/``poll``/``flush``).
    :param poll_interval: seconds each ``poll`` of the background thread blocks for.
    """

    def __init__(self, producer: Any, *, poll_interval: float = 0.05) -> None:
        self._producer = producer
        self._poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_forever, name="nudge-producer-poll", daemon=True)
        self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(self._poll_interval)

    async def close(self, timeout: float = 10.0) -> int:
        """Flush outstanding records, stop polling; returns how many records were still undelivered."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        remaining: int = await asyncio.to_thread(self._producer.flush, timeout)
        return remaining

    async def __aenter__(self) -> AsyncPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Delivery:
        """Produce one record and wait for the broker's acknowledgement.

        :raises PublishError: when delivery failed.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("AsyncPublisher.start() was not awaited")
        future: asyncio.Future[Delivery] = loop.create_future()

        def on_delivery(err: Any, msg: Any) -> None:  # runs in the polling thread
            if err is not None:
                result: Delivery | PublishError = PublishError(f"delivery to {topic} failed: {err}")
            else:
                result = Delivery(msg.topic(), msg.partition(), msg.offset())
            loop.call_soon_threadsafe(_resolve, future, result)

        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=list(headers or ()), on_delivery=on_delivery
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                await asyncio.sleep(self._poll_interval)
        return await future


def _resolve(future: asyncio.Future[Delivery], result: Delivery | PublishError) -> None:
    if future.done():
        return
    if isinstance(result, PublishError):
        future.set_exception(result)
    else:
        future.set_result(result)
