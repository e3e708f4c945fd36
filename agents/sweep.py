"""The sweep path: requests naming customers, each evaluated from the customer's stored features.

Requests are keyed by customer id on a topic co-partitioned with ``transactions``, so each lands on the
worker that owns the customer's record; one request may carry more customers of the same partition
(``more_customer_ids``: the publisher groups them, as Faust's per-message cost equals a customer's whole
evaluation). Feature windows are advanced to the request's ``as_of`` (event time), the requested rules
evaluated with the same evaluator as the real-time path, and only changed scores (plus tombstones) are
emitted: running a sweep twice emits nothing the second time, and replaying one reproduces its scores.

The agent itself only reads records and applies results: the evaluation runs in the worker's sweep
processes (streams/sweep_processes.py), so the thread serving live transactions never evaluates a sweep,
and the agent waits while the worker's producers are backed up (AgentIO.wait_while_backed_up).
A record that a transaction changed while its customer was being swept is swept again here, from the new
record, before anything is emitted. A customer's score book (what was emitted) is written only once the
broker has acknowledged those scores and alerts (AgentIO.store_books).

The agent can run ``NUDGE_SWEEP_BATCHES_IN_FLIGHT`` batches at once (default 1; concurrent actors on one queue): the
sweep processes then evaluate one batch while another waits for its acknowledgements and writes its books. Faust
commits only consecutive acknowledged offsets; the progress records wait for earlier batches themselves
(streams/in_flight.py).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from faust import StreamT
from faust.types import EventT

from agents.plumbing import AgentIO, PendingBook
from core.scoring import Origin
from core.sweeping import StoredCustomer, SweepJob, SweptCustomer, rule_sources, sweep_records
from schemas.codec import DecodeError, default_codec
from streams.app import Pipeline
from streams.event_context import event_context
from streams.in_flight import OffsetsInFlight
from streams.metrics import (
    EVALUATION_SECONDS,
    EVALUATIONS,
    EVENTS_IN,
    SWEEP_CUSTOMERS,
    SWEEP_REQUESTS,
    SWEEP_RESWEPT,
)
from streams.output import DeliveryGroup
from streams.settings import bounded
from streams.sweep_processes import SweepProcesses
from streams.sweeps import active_customers, partition_of, publish_sweep, watch_sweep

__all__ = ["register", "rules_for_request"]

BATCH_WITHIN_S = 0.05
YIELD_EVERY = 16  # customers applied between two yields to the event loop
READ_YIELD_EVERY = 64  # customers read between two yields (a read is tens of microseconds)


class CustomerFailed(Exception):
    """One customer of a request could not be swept: names the customer in the dead letter's error."""

    def __init__(self, customer_id: str, cause: BaseException) -> None:
        super().__init__(f"customer {customer_id!r}: {type(cause).__name__}: {cause}")
        self.customer_id = customer_id


class Started(NamedTuple):
    """A request whose customers are being swept: what is needed to apply the results when they come."""

    event: EventT
    sweep_id: str
    job: SweepJob
    versions: dict[str, int]  # each customer found, and their version when read (CustomerStore.version)
    skipped: int
    results: asyncio.Future[list[SweptCustomer]]
    started: float


class Counts(NamedTuple):
    """What one or more sweep requests did, added up per (sweep, partition) for the progress records."""

    customers: int = 0
    evaluations: int = 0
    changed: int = 0
    errors: int = 0
    skipped: int = 0

    def plus(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self, other, strict=True)))


def rules_for_request(catalogue: Any, rule_ids: list[str]) -> tuple[list[Any], list[str]]:
    """(rules to evaluate, rule ids to tombstone): all nightly rules when none are named; otherwise the
    named rules whatever their trigger, and the named ones the catalogue no longer has are removed."""
    if not rule_ids:
        return catalogue.for_trigger("nightly"), []
    rules = [catalogue[r] for r in rule_ids if r in catalogue]
    removed = [r for r in rule_ids if r not in catalogue]
    return rules, removed


def sweep_processes(pipeline: Pipeline) -> SweepProcesses:
    """The worker's sweep processes, a service of the app (started with it, stopped with it)."""
    lane = pipeline.services.get("sweep-processes")
    if lane is None:
        settings = pipeline.settings
        lane = SweepProcesses(settings.sweep_processes, settings.sweep_process_nice)
        pipeline.services["sweep-processes"] = lane
        pipeline.app.service(lane)  # type: ignore[arg-type]  # App.service also takes instances
    return lane


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="sweep")
    customers = io.customers
    progress = pipeline.table("sweep-counts")
    progress_topic = pipeline.topics["sweep-progress"]
    lane = sweep_processes(pipeline)
    partitions = pipeline.settings.topic_partitions
    batch_requests = bounded("NUDGE_SWEEP_BATCH_REQUESTS", pipeline.settings.sweep_batch_requests, 1, 256)
    in_flight = bounded("NUDGE_SWEEP_BATCHES_IN_FLIGHT", pipeline.settings.sweep_batches_in_flight, 1, 8)
    offsets = pipeline.services["sweep-offsets-in-flight"] = OffsetsInFlight()

    def add_counts(
        batch: dict[bytes, tuple[EventT, Counts]], event: EventT, sweep_id: str, counts: Counts
    ) -> None:
        """Add one request's counts to this batch's per-(sweep, partition) totals: the progress table is
        written once per key per batch (each write is a changelog record), not once per customer."""
        key = f"{sweep_id}#p{event.message.partition}".encode()
        previous = batch.get(key)
        batch[key] = (event, counts if previous is None else previous[1].plus(counts))

    def write_counts(
        batch: dict[bytes, tuple[EventT, Counts]], *, counted: bool = False
    ) -> dict[bytes, tuple[EventT, Counts]]:
        """Fold the batch's totals into the changelogged counters (they survive a restart) and publish them.

        A record's ``offset`` says every request of its partition up to it is counted, so it advances to the
        batch's offset only when no earlier offset of the partition is still in flight in another batch
        (OffsetsInFlight). Returns the records left behind: written again (``counted``: the totals are in
        already) once the batch has waited for the earlier ones."""
        behind = {}
        for key, (event, counts) in batch.items():
            offset = event.message.offset
            with event_context(event):  # the table writes to the partition of the request's event
                raw = progress.get(key)
                c = json.loads(raw) if raw else dict.fromkeys(Counts._fields, 0)
                if not counted:
                    for name, value in counts._asdict().items():
                        c[name] = c.get(name, 0) + value
                if offsets.earlier_in_flight(event.message.partition, offset):
                    behind[key] = (event, counts)
                elif c.get("offset", -1) < offset:
                    c["offset"] = offset
                elif counted:
                    continue  # another batch's record took it there meanwhile
                c["updated_at"] = time.time()
                value = json.dumps(c, separators=(",", ":")).encode()
                progress[key] = value
            progress_topic.send_soon(key=key, value=value)
        return behind

    async def finish_batch(events: list[EventT], batch: dict[bytes, tuple[EventT, Counts]]) -> None:
        """Count the batch and mark its offsets finished in one step (no other batch runs in between), then
        wait for the earlier offsets still in flight and record the offsets left behind."""
        offsets.finish((e.message.partition, e.message.offset) for e in events)
        behind = write_counts(batch)
        if behind:
            await offsets.wait_for_earlier([(e.message.partition, e.message.offset) for e, _ in behind.values()])
            write_counts(behind, counted=True)

    def job_for(request: dict[str, Any]) -> SweepJob:
        rules, removed = rules_for_request(io.catalogue(), list(request["rule_ids"]))
        # A rule change re-scores each customer as they are now (their latest event time, as_of None); a
        # nightly or manual sweep advances the feature windows to the sweep's as-of time.
        return SweepJob(
            rules=rule_sources(rules),
            removed=tuple(removed),
            as_of=None if request["reason"] == "rule_change" else request["as_of"],
            origin=Origin("sweep", request["sweep_id"], str(request["reason"])),
            alerts_enabled=request["reason"] == "nightly",
            dry_run=bool(request["dry_run"]),
        )

    def customers_in(event: EventT, request: dict[str, Any]) -> list[str]:
        """The request's customers, refused whole if one of them is not on the message's partition (its
        record would be looked up in the wrong partition's store and found missing)."""
        if event.key != request["customer_id"].encode():
            raise DecodeError("invalid_record", "customer_id does not match the message key")
        partition = event.message.partition
        for other in request["more_customer_ids"]:
            home = partition_of(other, partitions)
            if home != partition:
                raise DecodeError(
                    "invalid_record",
                    f"more_customer_ids: {other!r} is on partition {home}, not on this request's {partition}",
                )
        return [request["customer_id"], *request["more_customer_ids"]]

    async def start_request(event: EventT, batch: dict[bytes, tuple[EventT, Counts]]) -> Started | None:
        """Decode one request message, read its customers' records and hand them to the sweep processes."""
        request: dict[str, Any] | None = None
        try:
            request = default_codec().decode(event.value, expect="SweepRequest")
            customer_ids = customers_in(event, request)
        except Exception as exc:  # noqa: BLE001 - data must never crash the worker
            await io.dead_letter(event, exc, reason="invalid_record")
            if request is not None:  # counted, so the sweep still finishes (with its errors)
                n = 1 + len(request["more_customer_ids"])
                add_counts(batch, event, request["sweep_id"], Counts(customers=n, errors=n))
            SWEEP_REQUESTS.inc()
            return None
        started = time.perf_counter()
        job = job_for(request)
        found: list[StoredCustomer] = []
        versions: dict[str, int] = {}
        with event_context(event):  # the customers' partition is the request's: the table reads that store
            for n, customer_id in enumerate(customer_ids, 1):
                stored = customers.read_stored(customer_id)
                if stored is not None:  # never seen a transaction: nothing to evaluate, nothing emitted
                    found.append(stored)
                    versions[customer_id] = customers.version(customer_id.encode())
                if n % READ_YIELD_EVERY == 0:  # a batch reads thousands of records: let live transactions in
                    await asyncio.sleep(0)
        results = asyncio.ensure_future(lane.sweep(job, found))
        skipped = len(customer_ids) - len(found)
        return Started(event, request["sweep_id"], job, versions, skipped, results, started)

    def apply_result(
        item: Started, result: SweptCustomer, pending: list[PendingBook], delivery: DeliveryGroup
    ) -> Counts:
        """Emit one customer's result and queue its book, synchronously (no other agent runs between the check
        and the emission). If a transaction changed the customer since it was read, the customer is swept
        again from the new record. A sweep only ever writes the score book (it advances windows to evaluate,
        never in the stored features)."""
        key = result.customer_id.encode()
        version = item.versions.get(result.customer_id, 0)
        with event_context(item.event):
            if result.book is not None and customers.version(key) != version:
                current = customers.read_stored(result.customer_id)
                if current is None:  # erased meanwhile: nothing to score
                    return Counts(customers=1, skipped=1)
                SWEEP_RESWEPT.inc()
                result, version = sweep_records(item.job, [current])[0], customers.version(key)
            if result.error is not None:
                raise CustomerFailed(result.customer_id, RuntimeError(result.error))
            if result.book is not None:
                io.emit_score_records(result.scores, delivery)
                io.emit_alerts(result.alerts, delivery)
                pending.append(PendingBook(item.event, key, result.book, version))
        return Counts(customers=1, evaluations=result.evaluations, changed=len(result.scores))

    async def finish_request(
        item: Started,
        batch: dict[bytes, tuple[EventT, Counts]],
        pending: list[PendingBook],
        delivery: DeliveryGroup,
    ) -> None:
        """Apply a request's results; each customer's failure is dead-lettered and counted on its own."""
        total = Counts(customers=item.skipped, skipped=item.skipped)
        try:
            results = await item.results
        except Exception as exc:  # noqa: BLE001 - the whole request failed to sweep: dead-letter it, count it
            await io.dead_letter(item.event, exc, reason="processing_failed")
            results = []
            total = total.plus(Counts(customers=len(item.versions), errors=len(item.versions)))
        for n, result in enumerate(results, 1):
            try:
                counts = apply_result(item, result, pending, delivery)
            except Exception as exc:  # noqa: BLE001 - one customer's bad record must not stop the others
                failure = exc if isinstance(exc, CustomerFailed) else CustomerFailed(result.customer_id, exc)
                await io.dead_letter(item.event, failure, reason="processing_failed")
                counts = Counts(customers=1, errors=1)
            total = total.plus(counts)
            if io.backed_up():
                await io.wait_while_backed_up()
            elif n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        add_counts(batch, item.event, item.sweep_id, total)
        EVALUATIONS.labels("sweep").inc(total.evaluations)
        EVALUATION_SECONDS.labels("sweep").observe(time.perf_counter() - item.started)
        SWEEP_CUSTOMERS.labels(item.sweep_id).inc(total.customers)
        SWEEP_REQUESTS.inc()

    @app.crontab(
        pipeline.settings.sweep_cron, timezone=ZoneInfo(pipeline.settings.sweep_timezone), on_leader=True
    )
    async def nightly_sweep() -> None:
        """Publish the nightly sweep and follow it to its finish marker, off the event loop."""
        settings = pipeline.settings
        loop = asyncio.get_running_loop()
        customers = await loop.run_in_executor(None, active_customers, settings)
        start = await loop.run_in_executor(
            None, functools.partial(publish_sweep, settings, customers, reason="nightly")
        )
        await loop.run_in_executor(None, functools.partial(watch_sweep, settings, start.sweep_id))

    @app.agent(pipeline.topics["sweep"], name="sweep", concurrency=in_flight)
    async def process_sweep(stream: StreamT[bytes]) -> None:
        await io.feed.ready.wait()

        def mark_taken(value: bytes) -> bytes:
            """First of the stream's processors, so an offset is marked in the same step that takes it."""
            event = stream.current_event
            if event is not None:
                offsets.take(app.consumer_generation_id, event.message.partition, event.message.offset)
            return value

        stream.add_processor(mark_taken)
        async for events in stream.take_events(  # type: ignore[attr-defined]  # Stream has it, StreamT lacks it
            max_=batch_requests, within=BATCH_WITHIN_S
        ):
            EVENTS_IN.labels("sweep").inc(len(events))
            batch: dict[bytes, tuple[EventT, Counts]] = {}
            pending: list[PendingBook] = []
            delivery = io.delivery()
            with customers.track_writes():  # from the first read to the last book of the batch
                # every request of the batch goes to the sweep processes first, so they work on the next
                # request while this loop stores and emits the results of the previous one
                started = [await start_request(event, batch) for event in events]
                for item in started:
                    if item is not None:
                        await finish_request(item, batch, pending, delivery)
                await io.store_books(pending, delivery, paced=True)
            await finish_batch(events, batch)
