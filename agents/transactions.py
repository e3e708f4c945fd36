"""The incremental path: transactions in, changed scores and alerts out.

Per batch (``take_events``): decode and validate each message (bad ones go to ``transactions.dlq``), group
by customer, then per customer read the record once, fold and re-score in pure code
(:func:`core.customer.apply_transactions`), write the features once (one changelog record per customer per
batch) and emit; the score books that changed are written once the batch's scores and alerts are
acknowledged (AgentIO.store_books), and a batch of only already-folded transactions (a redelivery, as after
a crash) re-scores every real-time rule, so a crash before the scores were sent loses none of them. A
failure while processing a customer is retried one transaction at a time so only the message at fault is
dead-lettered; the worker carries on.
"""

from __future__ import annotations

import time
from collections import defaultdict

from faust import StreamT
from faust.types import EventT

from agents.plumbing import AgentIO, PendingBook
from core.customer import apply_transactions
from core.events import Transaction
from streams.app import Pipeline
from streams.event_context import event_context
from streams.metrics import DUPLICATES, EVALUATION_SECONDS, EVALUATIONS, EVENT_AGE, EVENTS_IN
from streams.output import DeliveryGroup

__all__ = ["register"]


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="transactions")
    customers = io.customers

    def score_customer(
        key: bytes,
        items: list[tuple[EventT, Transaction]],
        pending: list[PendingBook],
        delivery: DeliveryGroup,
    ) -> None:
        """Read, fold, re-score and write one customer's features, emit, and queue the book (written once
        the batch's scores are acknowledged); synchronous so that no other agent can interleave between the
        read and the write."""
        started = time.perf_counter()
        event = items[-1][0]
        with event_context(event):
            record, stored_book = customers.read(key)
            result = apply_transactions(record, [txn for _, txn in items], io.catalogue(), key.decode())
            customers.write_features(key, record)
        EVALUATION_SECONDS.labels("realtime").observe(time.perf_counter() - started)
        EVALUATIONS.labels("realtime").inc(result.evaluations)
        DUPLICATES.inc(result.duplicates)
        io.emit_scores(result.scores, delivery)
        io.emit_alerts(result.alerts, delivery)
        if customers.book_changed(record, stored_book):
            pending.append(PendingBook(event, key, record.book_bytes(), None))

    async def process_customer(
        key: bytes,
        items: list[tuple[EventT, Transaction]],
        pending: list[PendingBook],
        delivery: DeliveryGroup,
    ) -> None:
        try:
            score_customer(key, items, pending, delivery)
        except Exception as exc:  # noqa: BLE001 - data must never crash the worker
            if len(items) > 1:
                for item in items:
                    await process_customer(key, [item], pending, delivery)
                return
            await io.dead_letter(items[0][0], exc, reason="processing_failed")

    @app.agent(pipeline.topics["transactions"], name="transactions")
    async def process_transactions(stream: StreamT[bytes]) -> None:
        await io.feed.ready.wait()  # never score with a partial rule catalogue
        settings = pipeline.settings
        batches = stream.take_events(  # type: ignore[attr-defined]  # Stream has it; StreamT does not declare it
            max_=settings.batch_max, within=settings.batch_within_ms / 1000
        )
        event_age = EVENT_AGE.labels("transactions")
        async for events in batches:
            EVENTS_IN.labels("transactions").inc(len(events))
            taken_at = time.time()
            for event in events:
                if event.message.timestamp:
                    event_age.observe(taken_at - event.message.timestamp)
            by_customer: dict[bytes, list[tuple[EventT, Transaction]]] = defaultdict(list)
            for event in events:
                txn = await io.decode_transaction(event)
                if txn is not None:
                    by_customer[event.key].append((event, txn))
            pending: list[PendingBook] = []
            delivery = io.delivery()
            for key, items in by_customer.items():
                await process_customer(key, items, pending, delivery)
            await io.store_books(pending, delivery)
