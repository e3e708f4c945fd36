"""The API's backends on Kafka: rules (the compacted ``rules`` topic), backtests, sweeps and erasure.

confluent-kafka is blocking, so every call runs in a thread of a pool of its own (a slow broker cannot
take the event loop's default threads, which compile rules for validation). A broker that does not answer
becomes :class:`~streams.web.api_backend.Unavailable` (503), never a 500.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import yaml

from core.rules import CompiledRule, compile_rule
from core.rules.rulefile import read_rule_doc
from schemas.codec import DecodeError, default_codec
from streams.settings import Settings
from streams.web.api_backend import ApiError, NotFound, Unavailable
from streams.web.backend_insights import DynamoInsights

__all__ = ["KafkaCustomers", "KafkaRules", "KafkaSweeps", "SimulatedBacktest", "histogram", "in_kafka_pool", "sweep_view",
           "with_version"]

log = logging.getLogger(__name__)

RULES_TOPIC = "rules"
CUSTOMERS_TOPIC = "customers"


class _Producer:
    """One lazily created confluent producer; :meth:`send` waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    def _send_sync(self, topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        from confluent_kafka import Producer

        from streams.producer import producer_config

        if self._producer is None:
            self._producer = Producer(producer_config(self.settings, client_id="nudgestream-api"))
        result: dict[str, Any] = {}

        def delivered(err: Any, msg: Any) -> None:
            result["err"] = err
            result["at"] = (msg.partition(), msg.offset()) if err is None else None

        self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
        self._producer.flush(30)
        if result.get("err") is not None or "at" not in result:
            raise Unavailable(f"Kafka did not acknowledge the record on {topic}: {result.get('err', 'timeout')}")
        at: tuple[int, int] = result["at"]
        return at

    async def send(self, topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        return await in_kafka_pool(self._send_sync, topic, key, value)


_KAFKA_POOL: ThreadPoolExecutor | None = None


async def in_kafka_pool(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking Kafka client code in the backends' own threads (at most 8 at once)."""
    global _KAFKA_POOL
    if _KAFKA_POOL is None:
        _KAFKA_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nudge-api-kafka")
    return await asyncio.get_running_loop().run_in_executor(_KAFKA_POOL, functools.partial(fn, *args, **kwargs))


async def _blocking(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """Run blocking Kafka code in a thread; its failures become 503 with what was being done."""
    try:
        return await in_kafka_pool(fn, *args, **kwargs)
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - KafkaException, TimeoutError, RuntimeError from the readers
        log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        raise Unavailable(f"{what}: Kafka did not answer ({type(exc).__name__})") from exc


# -- rules ----------------------------------------------------------------------------------------------

def with_version(source: str, version: int) -> str:
    """The rule's YAML with its ``version:`` value set to ``version`` (only that scalar is rewritten, so
    the author's layout and comments stay as written)."""
    doc = read_rule_doc(source, "<publish>")
    node = doc.nodes.get("version")
    if node is None:
        raise ValueError("rule has no version field")
    start, end = node.start_mark.index, node.end_mark.index
    return source[:start] + str(version) + source[end:]


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    return None


def _summary(change: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule_id": change["rule_id"], "version": change["version"], "deleted": bool(change.get("deleted")),
        "published_at": _iso(change.get("published_at")), "author": change.get("author"),
        "title": None, "kind": None, "trigger": None,
    }
    try:
        data = yaml.safe_load(change.get("source") or "")
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        for name in ("title", "kind", "trigger"):
            value = data.get(name)
            out[name] = value if isinstance(value, str) else None
    return out


def _published_summary(p: Any) -> dict[str, Any]:
    """The summary of a :class:`streams.rules_cli.Published` (the latest record of a rule)."""
    return _summary({"rule_id": p.rule_id, "version": p.version, "deleted": p.deleted, "source": p.source,
                     "published_at": p.published_at, "author": p.author or None})


class KafkaRules:
    """The ``rules`` topic, through the rules tooling (``streams/rules_cli.py``: ``read_published`` for the
    latest record of each rule, its producer for new records), plus the full history for one rule."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._publishing = asyncio.Lock()

    async def latest(self) -> dict[str, Any]:
        from streams.rules_cli import read_published

        result: dict[str, Any] = await _blocking(read_published, self.settings, what="reading the rules topic")
        return result

    def _history_sync(self, rule_id: str) -> list[dict[str, Any]]:
        from streams.sweeps import read_topic

        codec = default_codec()
        key = rule_id.encode()
        changes: list[dict[str, Any]] = []
        for msg in read_topic(self.settings, RULES_TOPIC):
            if msg.key() != key or msg.value() is None:
                continue
            try:
                changes.append(codec.decode(msg.value(), expect="RuleChange"))
            except DecodeError:
                continue  # the catalogue feed dead-letters it; it is no version of anything
        return sorted(changes, key=lambda c: c["version"])

    async def _produce(self, record: dict[str, Any]) -> None:
        from streams.rules_cli import _produce

        await _blocking(_produce, self.settings, [record], what="publishing to the rules topic")

    async def list_rules(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        rules = [_published_summary(p) for p in (await self.latest()).values()]
        return sorted((r for r in rules if include_deleted or not r["deleted"]), key=lambda r: r["rule_id"])

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        changes: list[dict[str, Any]] = await _blocking(self._history_sync, rule_id, what="reading the rules topic")
        if not changes:
            raise NotFound("rule", rule_id)
        latest = changes[-1]
        numbers = [c["version"] for c in changes]
        return _summary(latest) | {
            "source": latest.get("source"),
            "history": [_summary(c) for c in changes],
            "history_complete": numbers == list(range(1, numbers[-1] + 1)),
        }

    async def publish_rule(self, rule: CompiledRule, author: str) -> dict[str, Any]:
        from streams.rules_cli import _record

        async with self._publishing:  # one publisher per process; versions come from the topic itself
            current = (await self.latest()).get(rule.id)
            latest = current.version if current is not None else 0
            if current is not None and not current.deleted and current.source == with_version(rule.source, latest):
                return {"rule_id": rule.id, "version": latest, "previous_version": latest, "unchanged": True,
                        "published_at": _iso(current.published_at)}
            version = latest + 1
            source = rule.source if rule.version == version else with_version(rule.source, version)
            compiled = compile_rule(source, filename=f"rules/{rule.id}@{version}")  # the text published
            record = _record(compiled.id, version, source, False, author)
            await self._produce(record)
        return {"rule_id": compiled.id, "version": version, "previous_version": latest or None,
                "published_at": _iso(record["published_at"]), "unchanged": False}

    async def delete_rule(self, rule_id: str, author: str) -> dict[str, Any]:
        from streams.rules_cli import _record

        async with self._publishing:
            current = (await self.latest()).get(rule_id)
            if current is None or current.deleted:
                raise NotFound("rule", rule_id)
            record = _record(rule_id, current.version + 1, current.source, True, author)
            await self._produce(record)
        return _summary(record)


# -- backtest -------------------------------------------------------------------------------------------

def histogram(scores: Iterable[float], bins: int = 20) -> list[dict[str, Any]]:
    """Counts of scores in ``bins`` equal bins over [0, 1] (a score of 1 falls in the last bin)."""
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(score * bins)))] += 1
    return [{"low": round(i / bins, 6), "high": round((i + 1) / bins, 6), "count": c} for i, c in enumerate(counts)]


class SimulatedBacktest:
    """Backtests through the rules tooling (``bench/backtest_rules.py``): simulated customers folded into
    features, the draft evaluated at each of their last 30 day-ends, overlap with the live rules.

    About 0.2 s per customer with 180 days of history on one core, so one runs at a time (the others
    wait) and the API caps ``customers``.
    """

    def __init__(self, rules: KafkaRules, max_waiting: int = 2) -> None:
        self.rules = rules
        self._one_at_a_time = asyncio.Semaphore(1)
        self._max_waiting = max_waiting
        self._waiting = 0

    async def _live_catalogue(self) -> Any:
        from core.rules import Catalogue, RuleValidationError

        compiled = []
        try:
            latest = await self.rules.latest()
        except Unavailable:
            return Catalogue([])  # overlap is a bonus; the backtest itself needs no Kafka
        for p in latest.values():
            if p.deleted:
                continue
            try:
                compiled.append(compile_rule(p.source, filename=f"rules/{p.rule_id}@{p.version}"))
            except RuleValidationError:
                continue
        return Catalogue(compiled)

    async def __call__(self, rule: CompiledRule, customers: int, *, days: int, seed: int) -> dict[str, Any]:
        from bench.backtest_rules import backtest

        if self._one_at_a_time.locked() and self._waiting >= self._max_waiting:
            raise ApiError(429, "backtests_busy", "other backtests are running; retry shortly",
                           headers={"Retry-After": "10"})
        catalogue = await self._live_catalogue()
        self._waiting += 1
        try:
            await self._one_at_a_time.acquire()
        finally:
            self._waiting -= 1
        try:
            result = await asyncio.to_thread(backtest, rule, catalogue, customers, seed, days)
        finally:
            self._one_at_a_time.release()
        evaluated = max(result.customers, 1)
        return {
            "rule_id": rule.id,
            "customers": result.customers,
            "fired": result.customers_hit,
            "hit_rate": result.customers_hit / evaluated,
            "histogram": histogram(result.scores),
            "evaluations": result.evaluations,
            "eligible_evaluations": result.eligible_evaluations,
            "top_reasons_not_eligible": [{"reason": r, "count": n} for r, n in result.reasons.most_common(5)],
            "overlap": [{"rule_id": r, "evaluations": n} for r, n in result.overlap.most_common(5)],
            "errors": [{"error": e, "count": n} for e, n in result.errors.most_common(5)],
            "samples": list(result.samples),
            "seed": seed,
            "days": days,
            "seconds": round(result.seconds, 3),
        }


# -- sweeps ---------------------------------------------------------------------------------------------

def sweep_view(progress: Any, now: float | None = None) -> dict[str, Any]:
    """A sweep's summary with its start time, rules and an ETA from the rate so far."""
    out: dict[str, Any] = progress.summary()
    start = progress.start or {}
    out.update(rules=start.get("rules", []), dry_run=start.get("dry_run"), reason=start.get("reason"),
               started_at=start.get("started_at"), finished_at=(progress.finish or {}).get("finished_at"),
               eta_seconds=None)
    total, done = out.get("total"), out.get("customers", 0)
    started = start.get("started_at")
    if not out["done"] and isinstance(total, int) and done and started:
        elapsed = (now or time.time()) - datetime.fromisoformat(started).timestamp()
        if elapsed > 0:
            out["eta_seconds"] = round(max(0, total - done) / (done / elapsed), 1)
    return out


class KafkaSweeps:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _start_sync(self, rule_ids: list[str], dry_run: bool) -> dict[str, Any]:
        from streams.sweeps import active_customers, publish_sweep

        customers = active_customers(self.settings)
        start = publish_sweep(self.settings, customers, rule_ids=rule_ids, reason="manual", dry_run=dry_run)
        return {"sweep_id": start.sweep_id, "total": start.total, "customers": 0, "evaluations": 0,
                "done": start.total == 0, "rules": rule_ids, "dry_run": dry_run,
                "as_of": start.as_of.isoformat(), "eta_seconds": None}

    async def start_sweep(self, rule_ids: list[str], *, dry_run: bool) -> dict[str, Any]:
        result: dict[str, Any] = await _blocking(self._start_sync, rule_ids, dry_run, what="starting the sweep")
        return result

    async def _progress(self) -> dict[str, Any]:
        from streams.sweeps import read_progress

        result: dict[str, Any] = await _blocking(read_progress, self.settings, what="reading sweep progress")
        return result

    async def list_sweeps(self) -> list[dict[str, Any]]:
        views = [sweep_view(p) for p in (await self._progress()).values() if p.start is not None]
        return sorted(views, key=lambda v: v.get("started_at") or "", reverse=True)

    async def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        progress = (await self._progress()).get(sweep_id)
        if progress is None or progress.start is None:
            raise NotFound("sweep", sweep_id)
        return sweep_view(progress)


# -- customers ------------------------------------------------------------------------------------------

class KafkaCustomers:
    def __init__(self, settings: Settings, insights: DynamoInsights, producer: _Producer | None = None) -> None:
        self.settings = settings
        self.insights = insights
        self._producer = producer or _Producer(settings)

    async def erase_customer(self, customer_id: str, *, requested_by: str) -> dict[str, Any]:
        """Find what is stored first (to say what will go), then publish the erasure; if DynamoDB does
        not answer the erasure is still published (it must not wait on a read) and the answer says so."""
        try:
            items = await self.insights.items(customer_id)
            found: list[dict[str, Any]] | None = [{"customer_id": customer_id, "rule_id": i.get("rule_id")}
                                                  for i in items]
        except Unavailable:
            found = None
        event_id = uuid.uuid4().hex
        event = {"event_id": event_id, "customer_id": customer_id, "kind": "CustomerErased",
                 "occurred_at": datetime.now(UTC), "consent_id": None, "permissions": [], "expires_at": None,
                 "source": requested_by, "reason": "erasure requested through the HTTP API"}
        value = default_codec().encode("CustomerLifecycle", event)
        await self._producer.send(CUSTOMERS_TOPIC, customer_id.encode(), value)
        return {
            "customer_id": customer_id, "event_id": event_id, "status": "accepted",
            "items": found or [], "items_checked": found is not None,
            "rules": sorted({str(i["rule_id"]) for i in found or []}),
            "also_removed": ["features", "scores", "sweep eligibility"],
        }
