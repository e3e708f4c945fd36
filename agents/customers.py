"""Customer lifecycle: consent revoked or customer erased removes everything we hold on them.

On ``ConsentRevoked`` or ``CustomerErased`` the customer's record (features and score book) is deleted from
both tables (a changelog tombstone each) and every score they had is tombstoned on ``scores``, which the sink
turns into DynamoDB deletes. ``ConsentGranted`` needs no action here: the sweep publisher reads consent from the
same compacted topic.
"""

from __future__ import annotations

from faust import StreamT

from agents.plumbing import AgentIO
from core.customer import CustomerRecord
from core.scoring import ScoreUpdate, score_key
from schemas.codec import DecodeError, default_codec
from streams.app import Pipeline
from streams.event_context import event_context
from streams.metrics import EVENTS_IN

__all__ = ["register", "REMOVING_KINDS"]

REMOVING_KINDS = frozenset({"ConsentRevoked", "CustomerErased"})


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="customers")
    customers = io.customers

    @app.agent(pipeline.topics["customers"], name="customers")
    async def process_lifecycle(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            EVENTS_IN.labels("customers").inc()
            if event.value is None:  # compaction tombstone of the lifecycle topic itself
                continue
            try:
                change = default_codec().decode(event.value, expect="CustomerLifecycle")
                if event.key != change["customer_id"].encode():
                    raise DecodeError("invalid_record", "customer_id does not match the message key")
                if change["kind"] not in REMOVING_KINDS:
                    continue
                with event_context(event):
                    stored = customers.read_stored(change["customer_id"])
                    if stored is None:
                        continue
                    record = CustomerRecord.from_bytes(stored.record, stored.book)
                    customers.delete(event.key)
                delivery = io.delivery()
                io.emit_scores(
                    [
                        ScoreUpdate(score_key(change["customer_id"], rule_id), None)
                        for rule_id in record.book.scores
                    ],
                    delivery,
                )
                await delivery.wait()  # the erasure's offset is committed only once its tombstones are out
            except Exception as exc:  # noqa: BLE001 - data must never crash the worker
                await io.dead_letter(event, exc, reason="processing_failed")
