"""The sweep path: requests naming customers, each evaluated from the customer's stored features.

Requests are keyed by customer id on a topic co-partitioned with ``transactions``, so each lands on the
worker that owns the customer's record; one request may carry more customers of the same partition
(``more_customer_ids``: the publisher groups them, as Faust's per-message cost equals a customer's whole
evaluation). Feature windows are advanced to the request's ``as_of`` (event time), the requested rules
evaluated with the same evaluator as the real-time path, and only changed scores (plus tombstones) are
emitted: running a sweep twice emits nothing the second time, and replaying one reproduces its scores. The
sweep runs in its own agent and yields to the event loop every few customers, so the transactions agent is
never held up for long (see bench/bench_sweep.py for the measured bound).
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

from agents.plumbing import AgentIO
from core.customer import CustomerRecord, reads_of, sweep_customer
from core.scoring import Origin
from schemas.codec import DecodeError, default_codec
from streams.app import Pipeline
from streams.event_context import event_context
from streams.metrics import EVALUATION_SECONDS, EVALUATIONS, EVENTS_IN, SWEEP_CUSTOMERS
from streams.sweeps import active_customers, partition_of, publish_sweep, watch_sweep

__all__ = ["register", "rules_for_request"]

BATCH_MAX = 32  # request messages per batch (up to sweep_customers_per_request customers each)
BATCH_WITHIN_S = 0.05
YIELD_EVERY = 16  # customers between two yields to the event loop (a few ms)


class CustomerFailed(Exception):
    """One customer of a request could not be swept: names the customer in the dead letter's error."""

    def __init__(self, customer_id: str, cause: BaseException) -> None:
        super().__init__(f"customer {customer_id!r}: {type(cause).__name__}: {cause}")
        self.customer_id = customer_id


class RequestPlan(NamedTuple):
    """What one request evaluates, worked out once for all its customers."""

    rules: list[Any]
    removed: list[str]
    reads: frozenset[str]
    origin: Origin


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


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="sweep")
    customers = io.customers
    progress = app.Table(
        "sweep-counts", key_type=bytes, value_type=bytes, partitions=pipeline.settings.topic_partitions
    )
    pipeline.tables["sweep-counts"] = progress
    progress_topic = pipeline.topics["sweep-progress"]
    partitions = pipeline.settings.topic_partitions

    def add_counts(
        batch: dict[bytes, tuple[EventT, Counts]], event: EventT, sweep_id: str, counts: Counts
    ) -> None:
        """Add one request's counts to this batch's per-(sweep, partition) totals: the progress table is
        written once per key per batch (each write is a changelog record), not once per customer."""
        key = f"{sweep_id}#p{event.message.partition}".encode()
        previous = batch.get(key)
        batch[key] = (event, counts if previous is None else previous[1].plus(counts))

    def write_counts(batch: dict[bytes, tuple[EventT, Counts]]) -> None:
        """Fold the batch's totals into the changelogged counters (they survive a restart) and publish them."""
        for key, (event, counts) in batch.items():
            with event_context(event):  # the table writes to the partition of the request's event
                raw = progress.get(key)
                c = json.loads(raw) if raw else dict.fromkeys(Counts._fields, 0)
                for name, value in counts._asdict().items():
                    c[name] = c.get(name, 0) + value
                c["offset"] = event.message.offset
                c["updated_at"] = time.time()
                value = json.dumps(c, separators=(",", ":")).encode()
                progress[key] = value
            progress_topic.send_soon(key=key, value=value)

    def sweep_one(event: EventT, request: dict[str, Any], plan: RequestPlan, customer_id: str) -> Counts:
        with event_context(event):  # the customer's partition is the request's: the table reads that store
            key = customer_id.encode()
            raw = customers.get(key)
            if raw is None:  # never seen a transaction: nothing to evaluate, nothing emitted
                return Counts(customers=1, skipped=1)
            record = CustomerRecord.from_bytes(raw)
            # A rule change re-scores the customer as they are now (their latest event time); a nightly or
            # manual sweep advances the feature windows to the sweep's as-of time.
            as_of = record.as_of_datetime if request["reason"] == "rule_change" else request["as_of"]
            scores, alerts, evaluations = sweep_customer(
                record,
                plan.rules,
                plan.removed,
                customer_id,
                as_of,
                plan.origin,
                alerts_enabled=request["reason"] == "nightly",
                reads=plan.reads,
            )
            if not request["dry_run"]:
                if scores or alerts:
                    customers[key] = record.to_bytes()
                io.emit_scores(scores)
                io.emit_alerts(alerts)
        return Counts(customers=1, evaluations=evaluations, changed=len(scores))

    def plan_for(request: dict[str, Any]) -> RequestPlan:
        rules, removed = rules_for_request(io.catalogue(), list(request["rule_ids"]))
        origin = Origin("sweep", request["sweep_id"], str(request["reason"]))
        return RequestPlan(rules, removed, reads_of(rules), origin)

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

    async def sweep_request_event(event: EventT, batch: dict[bytes, tuple[EventT, Counts]]) -> None:
        """One request message: every customer in it, each failure dead-lettered and counted on its own."""
        request: dict[str, Any] | None = None
        try:
            request = default_codec().decode(event.value, expect="SweepRequest")
            customer_ids = customers_in(event, request)
        except Exception as exc:  # noqa: BLE001 - data must never crash the worker
            await io.dead_letter(event, exc, reason="invalid_record")
            if request is not None:  # counted, so the sweep still finishes (with its errors)
                n = 1 + len(request["more_customer_ids"])
                add_counts(batch, event, request["sweep_id"], Counts(customers=n, errors=n))
            return
        started = time.perf_counter()
        plan = plan_for(request)
        total = Counts()
        for n, customer_id in enumerate(customer_ids, 1):
            try:
                counts = sweep_one(event, request, plan, customer_id)
            except Exception as exc:  # noqa: BLE001 - one customer's bad record must not stop the others
                await io.dead_letter(event, CustomerFailed(customer_id, exc), reason="processing_failed")
                counts = Counts(customers=1, errors=1)
            total = total.plus(counts)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        add_counts(batch, event, request["sweep_id"], total)
        EVALUATIONS.labels("sweep").inc(total.evaluations)
        EVALUATION_SECONDS.labels("sweep").observe(time.perf_counter() - started)
        SWEEP_CUSTOMERS.labels(request["sweep_id"]).inc(total.customers)

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

    @app.agent(pipeline.topics["sweep"], name="sweep")
    async def process_sweep(stream: StreamT[bytes]) -> None:
        await io.feed.ready.wait()
        async for events in stream.take_events(  # type: ignore[attr-defined]  # Stream has it, StreamT lacks it
            max_=BATCH_MAX, within=BATCH_WITHIN_S
        ):
            EVENTS_IN.labels("sweep").inc(len(events))
            batch: dict[bytes, tuple[EventT, Counts]] = {}
            for event in events:
                await sweep_request_event(event, batch)
                await asyncio.sleep(0)
            write_counts(batch)
