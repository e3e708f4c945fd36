"""The rule catalogue of one worker, fed from the compacted ``rules`` topic.

Every worker needs every rule, so this is not a Faust agent (which would get only some partitions) and not
a GlobalTable (which can loop in recovery with several workers): a plain aiokafka consumer with no group
reads the whole topic from the beginning, then follows it. The agents wait for :attr:`ready` (caught up
to the end offsets seen at start) before processing, so no transaction is scored with a partial catalogue.
A rule published later is compiled and swapped in atomically; ``on_change`` callbacks then publish the
targeted sweep requests that re-score it for this worker's customers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from core.rules import Catalogue, RuleValidationError, compile_rule
from schemas.codec import default_codec
from streams.dead_letter import build_dead_letter
from streams.kafka_config import aiokafka_security
from streams.metrics import CATALOGUE_RULES
from streams.topics import dead_letter_of

if TYPE_CHECKING:
    from streams.app import Pipeline

__all__ = ["RuleCatalogueFeed", "RuleChangeCallback"]

log = logging.getLogger(__name__)

RuleChangeCallback = Callable[[str, bool], Awaitable[None]]  # (rule_id, deleted)


class RuleCatalogueFeed(Service):
    """Holds :attr:`current`, the compiled catalogue, always a consistent snapshot."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.current: Catalogue = Catalogue([])
        self.ready = asyncio.Event()
        self.rejected: dict[str, str] = {}
        self._rules: dict[str, Any] = {}
        self._callbacks: list[RuleChangeCallback] = []
        self._consumer: AIOKafkaConsumer | None = None

    def on_change(self, callback: RuleChangeCallback) -> None:
        self._callbacks.append(callback)

    def load(self, rules: list[Any]) -> None:
        """Replace the catalogue directly (agent tests and tools that have no Kafka)."""
        self._rules = {rule.id: rule for rule in rules}
        self._publish()
        self.ready.set()

    def _publish(self) -> None:
        self.current = Catalogue(list(self._rules.values()))
        CATALOGUE_RULES.set(len(self._rules))

    async def apply(self, key: bytes | None, value: bytes | None) -> tuple[str, bool] | None:
        """Apply one record of the ``rules`` topic; returns (rule_id, deleted) when the catalogue changed."""
        if value is None:
            rule_id = (key or b"").decode()
            if self._rules.pop(rule_id, None) is None:
                return None
            self._publish()
            return rule_id, True
        change = default_codec().decode(value, expect="RuleChange")
        rule_id = change["rule_id"]
        if change.get("deleted"):
            if self._rules.pop(rule_id, None) is None:
                return None
            self._publish()
            return rule_id, True
        existing = self._rules.get(rule_id)
        if existing is not None and existing.version >= change["version"]:
            return None
        try:
            rule = compile_rule(change["source"], filename=f"rules/{rule_id}@{change['version']}")
        except RuleValidationError as exc:
            # Publishing refuses invalid rules; one that got through anyway is kept out and reported.
            self.rejected[rule_id] = str(exc)
            raise
        self._rules[rule_id] = rule
        self._publish()
        return rule_id, False

    async def on_start(self) -> None:
        settings = self.pipeline.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, group_id=None,
            **aiokafka_security(settings),
        )
        await consumer.start()
        self._consumer = consumer
        partitions = consumer.partitions_for_topic("rules") or {0}
        tps = [TopicPartition("rules", p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._end_offsets = await consumer.end_offsets(tps)
        self.add_future(self._follow())

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        remaining = {tp: end for tp, end in self._end_offsets.items() if end > 0}
        if not remaining:
            self.ready.set()
            log.info("rule catalogue ready: the rules topic is empty")
        while not self.should_stop:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    try:
                        changed = await self.apply(record.key, record.value)
                    except Exception as exc:  # noqa: BLE001 - a bad record must not stop the feed
                        changed = None
                        await self._dead_letter(record, exc)
                    if changed and self.ready.is_set():
                        for callback in self._callbacks:
                            await callback(*changed)
                    if tp in remaining and record.offset + 1 >= remaining[tp]:
                        del remaining[tp]
            if remaining == {} and not self.ready.is_set():
                self.ready.set()
                log.info("rule catalogue ready: %d rules", len(self._rules))

    async def _dead_letter(self, record: Any, exc: BaseException) -> None:
        """Every worker reads the whole topic, so each reports a bad record; the copies share one origin
        (topic, partition, offset) and can be told apart from distinct failures."""
        log.error("bad record in rules at offset %s: %s", record.offset, exc)
        key, value, headers = build_dead_letter(
            key=record.key,
            value=record.value,
            error=f"{type(exc).__name__}: {exc}",
            reason=getattr(exc, "reason", "invalid_rule"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp / 1000.0,
        )
        await self.pipeline.topics[dead_letter_of("rules")].send(key=key, value=value, headers=headers)
