"""What every agent needs around the pure code: the customers table, the rule catalogue, decoding with
dead-lettering, and sending scores and alerts. Shared so each agent module stays a thin loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import faust
from faust.types import EventT

from core.customer import CustomerRecord
from core.events import Transaction
from core.scoring import AlertOut, ScoreBook, ScoreUpdate
from core.sweeping import StoredCustomer, encode_score
from schemas.codec import DecodeError, default_codec
from schemas.records import InvalidRecord, to_transaction
from streams.app import Pipeline
from streams.catalogue import RuleCatalogueFeed
from streams.dead_letter import build_dead_letter
from streams.event_context import event_context
from streams.metrics import EVENTS_OUT, PROCESSING_ERRORS
from streams.output import DeliveryGroup, OutputProducer
from streams.topics import dead_letter_of

__all__ = ["AgentIO", "CustomerStore", "PendingBook", "alert_record", "read_value"]

log = logging.getLogger(__name__)
# labelled once: prometheus_client's labels() takes a lock and builds a key on every call, and scores are
# counted once per customer swept
_SCORES_OUT = EVENTS_OUT.labels("scores")
_ALERTS_OUT = EVENTS_OUT.labels("alerts")

# The worker has one Faust producer buffer, first in first out, for every table changelog and dead letter,
# and Faust's conductor holds back every incoming message while it holds more than 100 (ProducerBuffer.
# max_messages). A sweep can queue thousands of score books: live transactions then waited behind them
# (bench/bench_sweep.py). So a sweep waits while the buffer holds more than this many records.
PRODUCER_BACKLOG_MAX = 100
# Scores and alerts go through the worker's confluent-kafka producer (streams/output.py), first in first out
# per partition too: a sweep also waits while more than this many of its records are unacknowledged, so a
# live transaction's score queues behind a few milliseconds of the sweep's at most (librdkafka sends tens of
# thousands of records per second here).
OUTPUT_BACKLOG_MAX = 2000
BACKLOG_POLL_S = 0.001


def read_value(table: Any, key: bytes) -> bytes | None:
    """A table's value for ``key`` in one store lookup (a Faust table's own ``get`` looks a key up twice,
    membership then value; RocksDB copies the whole value both times)."""
    try:
        value: bytes = table.data[key]
    except KeyError:
        return None
    return value


@dataclass
class CustomerStore:
    """A customer's record in its two RocksDB tables, keyed by customer id (why two: core/customer.py):
    ``customers`` (feature state, rewritten by every batch of transactions) and ``score-books`` (rewritten
    only when scores or alerts change). Declared once and shared by the transactions, sweep and lifecycle
    agents, whose topics are co-partitioned. Use inside an event context: a table reads and writes the
    store and changelog partition of the current event."""

    records: Any
    books: Any
    # Writes per customer by this worker while a sweep batch is in flight (see track_writes): how a sweep
    # tells that a transaction changed a customer while it was being swept, without reading it again.
    writes: dict[bytes, int] = field(default_factory=dict)
    tracking: int = 0  # batches tracking writes now (the sweep agent may run more than one at once)

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline) -> CustomerStore:
        store = pipeline.services.get("customer-store")
        if store is None:
            store = cls(pipeline.table("customers"), pipeline.table("score-books"))
            pipeline.services["customer-store"] = store
        return store

    def read_stored(self, customer_id: str) -> StoredCustomer | None:
        """Both values as stored (what a sweep process is given), None for a customer never seen."""
        key = customer_id.encode()
        record = read_value(self.records, key)
        if record is None:
            return None
        return StoredCustomer(customer_id, record, read_value(self.books, key))

    def read(self, key: bytes) -> tuple[CustomerRecord, ScoreBook | None]:
        """The record (a new one for a customer never seen) and a snapshot of the book as ``score-books``
        holds it (None: nothing there yet), for :meth:`book_changed` to tell whether the book changed."""
        book = read_value(self.books, key)
        record = CustomerRecord.from_bytes(read_value(self.records, key), book)
        return record, record.book.copy() if book is not None else None

    def write_features(self, key: bytes, record: CustomerRecord) -> None:
        self.records[key] = record.to_bytes()
        self._wrote(key)

    @staticmethod
    def book_changed(record: CustomerRecord, stored_book: ScoreBook | None) -> bool:
        """Whether the book differs from what ``score-books`` holds (a record of the older formats carries
        its book inside: that book differs from an empty one, and is moved to ``score-books`` when written)."""
        return record.book != (ScoreBook() if stored_book is None else stored_book)

    def write_book(self, key: bytes, book: bytes) -> None:
        self.books[key] = book
        self._wrote(key)

    def delete(self, key: bytes) -> None:
        """Forget the customer: a changelog tombstone in each table."""
        for table in (self.records, self.books):
            if read_value(table, key) is not None:
                del table[key]
        self._wrote(key)

    def version(self, key: bytes) -> int:
        """Changes whenever this worker writes or deletes the customer inside :meth:`track_writes`."""
        return self.writes.get(key, 0)

    @contextlib.contextmanager
    def track_writes(self) -> Iterator[None]:
        """Count writes per customer for the duration (one sweep batch): kept only while needed, so the
        counts never grow with the number of customers a worker serves between sweeps."""
        self.tracking += 1
        try:
            yield
        finally:
            self.tracking -= 1
            if not self.tracking:
                self.writes.clear()

    def _wrote(self, key: bytes) -> None:
        if self.tracking:
            self.writes[key] = self.writes.get(key, 0) + 1


def catalogue_feed(pipeline: Pipeline) -> RuleCatalogueFeed:
    feed = pipeline.services.get("catalogue")
    if feed is None:
        feed = RuleCatalogueFeed(pipeline)
        pipeline.services["catalogue"] = feed
        pipeline.app.service(feed)  # type: ignore[arg-type]  # App.service also takes instances
    return feed


def output_producer(pipeline: Pipeline) -> OutputProducer:
    """The worker's one producer of scores and alerts (streams/output.py), a service of the app."""
    output = pipeline.services.get("output")
    if output is None:
        output = OutputProducer(pipeline.settings)
        pipeline.services["output"] = output
        pipeline.app.service(output)  # type: ignore[arg-type]  # App.service also takes instances
    return output


def alert_record(alert: AlertOut) -> dict[str, Any]:
    """The Alert Avro record for an alert produced by the scoring step."""
    return {
        "alert_id": alert.alert_id,
        "customer_id": alert.customer_id,
        "rule_id": alert.rule_id,
        "rule_version": alert.rule_version,
        "item_key": alert.item_key,
        "title": alert.title,
        "message": alert.message,
        "score": alert.score,
        "created_at": alert.created_at,
        "transaction_id": alert.origin.id if alert.origin.kind == "transaction" else None,
    }


class PendingBook(NamedTuple):
    """A customer's new score book, to be written once the scores and alerts it records are acknowledged."""

    event: EventT
    key: bytes
    book: bytes
    version: int | None  # a sweep's: the customer's version it was computed from (see AgentIO.store_books)


@dataclass
class AgentIO:
    pipeline: Pipeline
    source: str
    customers: CustomerStore
    feed: RuleCatalogueFeed
    output: OutputProducer

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, source: str) -> AgentIO:
        return cls(
            pipeline,
            source,
            CustomerStore.for_pipeline(pipeline),
            catalogue_feed(pipeline),
            output_producer(pipeline),
        )

    def catalogue(self) -> Any:
        return self.feed.current

    @property
    def _topics(self) -> dict[str, faust.TopicT]:
        return self.pipeline.topics

    async def dead_letter(self, event: EventT, exc: BaseException, reason: str) -> None:
        """Send the original message, the error and its origin to the source topic's dead-letter twin."""
        message = event.message
        PROCESSING_ERRORS.labels(self.source).inc()
        key, value, headers = build_dead_letter(
            key=message.key,
            value=message.value,
            error=f"{type(exc).__name__}: {exc}",
            reason=getattr(exc, "reason", reason),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp=message.timestamp,
        )
        await self._topics[dead_letter_of(self.source)].send(key=key, value=value, headers=headers)

    async def decode_transaction(self, event: EventT) -> Transaction | None:
        """Decode and validate; a bad message is dead-lettered and None returned."""
        try:
            if not isinstance(event.key, bytes) or not event.key:
                raise InvalidRecord("key", "message has no customer_id key")
            txn = to_transaction(default_codec().decode(event.value, expect="Transaction"))
            if txn.customer_id != event.key.decode():
                raise InvalidRecord("customer_id", "does not match the message key")
            return txn
        except (DecodeError, InvalidRecord, UnicodeDecodeError) as exc:
            await self.dead_letter(event, exc, reason="invalid_record")
            return None

    def backed_up(self) -> bool:
        """Whether either producer holds more than a bounded backlog (see PRODUCER_BACKLOG_MAX)."""
        return (
            self.pipeline.app.producer.buffer.size > PRODUCER_BACKLOG_MAX
            or self.output.backlog > OUTPUT_BACKLOG_MAX
        )

    async def wait_while_backed_up(self) -> None:
        """Wait until both producers have sent half their bounded backlog: what a sweep does whenever
        :meth:`backed_up`, so live transactions never queue behind more than that."""
        buffer = self.pipeline.app.producer.buffer
        while buffer.size > PRODUCER_BACKLOG_MAX // 2 or self.output.backlog > OUTPUT_BACKLOG_MAX // 2:
            await asyncio.sleep(BACKLOG_POLL_S)

    def delivery(self) -> DeliveryGroup:
        """A new group for one batch's scores and alerts (see :meth:`store_books`)."""
        return self.output.group()

    def emit_scores(self, updates: list[ScoreUpdate], delivery: DeliveryGroup) -> None:
        self.emit_score_records([encode_score(update) for update in updates], delivery)

    def emit_score_records(self, records: list[tuple[bytes, bytes | None]], delivery: DeliveryGroup) -> None:
        """Scores already encoded (a sweep process encodes its own): (key, JSON value or None), acknowledged
        through ``delivery``."""
        send = self.output.send
        for key, value in records:
            send("scores", key, value, delivery)
        if records:
            _SCORES_OUT.inc(len(records))

    def emit_alerts(self, alerts: list[AlertOut], delivery: DeliveryGroup) -> None:
        codec = default_codec()
        for alert in alerts:
            self.output.send(
                "alerts", alert.customer_id.encode(), codec.encode("Alert", alert_record(alert)), delivery
            )
        if alerts:
            _ALERTS_OUT.inc(len(alerts))

    async def store_books(
        self, pending: list[PendingBook], delivery: DeliveryGroup, *, paced: bool = False
    ) -> None:
        """Write score books once the broker has every score and alert they record.

        A book says what was emitted. Written before, a crash before the scores were sent would leave it
        claiming scores nobody received, and the replay (a duplicate transaction, a repeated sweep request)
        would not send them again. Written after, a crash in between only sends them again: scores are
        upserts by key, alert ids deterministic. Not acknowledged: the books stay as they were, and the next
        evaluation sends what differs. A sweep's book (``version`` set) is dropped if the customer was
        written meanwhile (a transaction's book, or another request's): the next sweep sends what differs.
        ``paced`` (a sweep's thousands of books): waits whenever the producers are backed up, as the sweep does
        while it emits; a transaction written meanwhile is caught by the version check.
        """
        try:
            await delivery.wait()
        except Exception as exc:  # noqa: BLE001 - not acknowledged: no book may claim them
            PROCESSING_ERRORS.labels(self.source).inc()
            log.warning(
                "%s: scores or alerts were not acknowledged (%s); their books stay as they were",
                self.source,
                exc,
            )
            return
        for book in pending:
            if book.version is None or self.customers.version(book.key) == book.version:
                with event_context(book.event):
                    self.customers.write_book(book.key, book.book)
            if paced and self.backed_up():
                await self.wait_while_backed_up()
