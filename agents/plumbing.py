"""What every agent needs around the pure code: the customers table, the rule catalogue, decoding with
dead-lettering, and sending scores and alerts. Shared so each agent module stays a thin loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT

from core.events import Transaction
from core.scoring import AlertOut, ScoreUpdate
from core.sweeping import encode_score
from schemas.codec import DecodeError, default_codec
from schemas.records import InvalidRecord, to_transaction
from streams.app import Pipeline
from streams.catalogue import RuleCatalogueFeed
from streams.dead_letter import build_dead_letter
from streams.metrics import EVENTS_OUT, PROCESSING_ERRORS
from streams.topics import dead_letter_of

__all__ = ["AgentIO", "alert_record"]


def customers_table(pipeline: Pipeline) -> Any:
    """The RocksDB table of :class:`core.customer.CustomerRecord` bytes, keyed by customer id. Declared
    once and shared by the transactions, sweep and lifecycle agents (their topics are co-partitioned)."""
    table = pipeline.tables.get("customers")
    if table is None:
        table = pipeline.table("customers")
    return table


def catalogue_feed(pipeline: Pipeline) -> RuleCatalogueFeed:
    feed = pipeline.services.get("catalogue")
    if feed is None:
        feed = RuleCatalogueFeed(pipeline)
        pipeline.services["catalogue"] = feed
        pipeline.app.service(feed)  # type: ignore[arg-type]  # App.service also takes instances
    return feed


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


@dataclass
class AgentIO:
    pipeline: Pipeline
    source: str
    customers: Any
    feed: RuleCatalogueFeed

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, source: str) -> AgentIO:
        return cls(pipeline, source, customers_table(pipeline), catalogue_feed(pipeline))

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

    def emit_scores(self, updates: list[ScoreUpdate]) -> None:
        self.emit_score_records([encode_score(update) for update in updates])

    def emit_score_records(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Scores already encoded (a sweep process encodes its own): (key, JSON value or None)."""
        topic = self._topics["scores"]
        for key, value in records:
            topic.send_soon(key=key, value=value)
        EVENTS_OUT.labels("scores").inc(len(records))

    def emit_alerts(self, alerts: list[AlertOut]) -> None:
        topic = self._topics["alerts"]
        for alert in alerts:
            topic.send_soon(
                key=alert.customer_id.encode(), value=default_codec().encode("Alert", alert_record(alert))
            )
        EVENTS_OUT.labels("alerts").inc(len(alerts))
