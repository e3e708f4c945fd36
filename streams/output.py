"""The worker's producer for scores and alerts: confluent-kafka (librdkafka), not Faust's aiokafka.

Faust sends through aiokafka, which builds batches, partitions (murmur2 in Python) and resolves one future
per record on the worker's one thread: that thread is also the one serving live transactions. A sweep that
changes scores sends several records per customer, and the worker spent more CPU sending them than reading
and applying the results (bench/bench_sweep.py, "where the cores went"). librdkafka batches, partitions and
talks to the brokers in its own threads; the worker's thread only hands each record over.

Every score and alert of every agent goes through the one :class:`OutputProducer` of the worker, so the
records of one key keep the order they were sent in whichever agent sent them (one producer, idempotent:
per-partition order holds through retries). Faust's own records (table changelogs, dead letters, progress)
still go through Faust.

Acknowledgement is per group (:class:`DeliveryGroup`: one batch's records), not per record: the polling
thread counts deliveries and wakes the event loop once, when the last record of a sealed group is
acknowledged. An agent writes its score books only after that (agents.plumbing.AgentIO.store_books), and
finishes its batch only after that, so Faust never commits the offset of a message whose scores are not on
the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from mode import Service

from streams.producer import PublishError, make_producer
from streams.settings import Settings

__all__ = ["DeliveryGroup", "OutputProducer"]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
FULL_QUEUE_WAIT_S = 0.05  # librdkafka's local queue is full: how long each wait for deliveries lasts
CLOSE_FLUSH_S = 30.0
# How long librdkafka keeps retrying a record before reporting it failed: a refused score is not lost (its
# book is not written, so the next evaluation sends it again), but a broker restart should not cause that.
DELIVERY_TIMEOUT_MS = 120_000


class DeliveryGroup:
    """The acknowledgement of a group of records: ``await wait()`` returns once the broker has every record
    sent with this group, and raises :class:`PublishError` if it refused one (after librdkafka's retries)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._outstanding = 0
        self._sent = 0
        self._sealed = False
        self._error: str | None = None
        self._future: asyncio.Future[None] = loop.create_future()

    @property
    def sent(self) -> int:
        return self._sent

    def add(self) -> None:
        """One more record on its way (called before it is handed to the producer)."""
        with self._lock:
            if self._sealed:
                raise RuntimeError("records added to a delivery group after its wait() began")
            self._outstanding += 1
            self._sent += 1

    def delivered(self, err: Any, _msg: Any = None) -> None:
        """librdkafka's delivery report for one record (its polling thread; or at once in agent tests)."""
        with self._lock:
            self._outstanding -= 1
            if err is not None and self._error is None:
                self._error = str(err)
            done = self._sealed and self._outstanding == 0
        if done:
            self._loop.call_soon_threadsafe(self._resolve)

    async def wait(self) -> None:
        with self._lock:
            self._sealed = True
            done = self._outstanding == 0
        if done:
            self._resolve()
        await self._future
        if self._error is not None:
            raise PublishError(f"{self._error} ({self._sent} records in the group)")

    def _resolve(self) -> None:
        if not self._future.done():
            self._future.set_result(None)


class OutputProducer(Service):
    """One confluent-kafka producer per worker, polled by a thread of its own; a service of the Faust app
    (started before the agents, flushed when the worker stops)."""

    def __init__(
        self, settings: Settings, producer_factory: Callable[[], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.producer_factory = producer_factory or self._default_producer  # agent tests give a recorder
        self._producer: Any = None
        self._stop_polling = threading.Event()
        self._thread: threading.Thread | None = None

    def _default_producer(self) -> Any:
        return make_producer(
            self.settings,
            client_id=f"{self.settings.app_id}-output",
            compression=self.settings.worker_compression,
            **{"message.timeout.ms": DELIVERY_TIMEOUT_MS},
        )

    async def on_start(self) -> None:
        self._ensure_started()

    def _ensure_started(self) -> Any:
        """The producer and its polling thread, started at the first use if an agent sends before the
        service has started."""
        if self._producer is None:
            self._producer = self.producer_factory()
            self._stop_polling.clear()
            self._thread = threading.Thread(target=self._poll_forever, name="nudge-output-poll", daemon=True)
            self._thread.start()
        return self._producer

    def _poll_forever(self) -> None:
        while not self._stop_polling.is_set():
            self._producer.poll(POLL_INTERVAL_S)

    async def on_stop(self) -> None:
        self.stop_polling()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            left = await asyncio.to_thread(producer.flush, CLOSE_FLUSH_S)
            if left:
                log.warning(
                    "worker stopping: %d scores or alerts were not acknowledged; their books were not "
                    "written, so they are sent again",
                    left,
                )

    def stop_polling(self) -> None:
        self._stop_polling.set()

    def group(self) -> DeliveryGroup:
        return DeliveryGroup(asyncio.get_running_loop())

    @property
    def backlog(self) -> int:
        """Records handed over and not yet acknowledged."""
        return 0 if self._producer is None else len(self._producer)

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        group: DeliveryGroup,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Hand one record to librdkafka. Synchronous (an agent sends while nothing else may interleave);
        if librdkafka's local queue is full, waits for deliveries on this thread, which only a backlog far
        beyond the sweep's own limit (agents/sweep.py) can cause."""
        producer = self._ensure_started()
        group.add()
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list(headers) if headers else None,
                    on_delivery=group.delivered,
                )
                return
            except BufferError:
                producer.flush(FULL_QUEUE_WAIT_S)
            except Exception as exc:
                group.delivered(exc)  # refused before it left (a bad topic name, a record too large)
                return
