"""The HTTP API's backend on the real stack, and what a worker adds to it.

The parts (each in its own module):

- ``backend_insights.py``: :class:`DynamoInsights`, a customer's insights from the DynamoDB table
  ``insights`` (aioboto3), ranked by score with keyset paging (:func:`rank_insights`).
- ``backend_kafka.py``: :class:`KafkaRules` (the compacted ``rules`` topic through the rules tooling: list,
  history, publish as version latest + 1, delete), :class:`SimulatedBacktest`, :class:`KafkaSweeps`
  (``streams/sweeps.py``) and :class:`KafkaCustomers` (erasure: ``CustomerErased`` on ``customers``).

Here: :class:`StackBackend`, all of them behind the :class:`~streams.web.api_backend.ApiBackend`
protocol with ``score`` injected (the worker owns the feature table and routes to the owning worker),
:func:`pipeline_checks` (a worker's readiness) and :func:`create_stack_api` (the worker's web app).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from core.rules import CompiledRule
from streams.kafka_config import confluent_security
from streams.settings import Settings
from streams.web.api_backend import ApiError, Check, InsightsPage
from streams.web.backend_insights import DynamoInsights
from streams.web.backend_kafka import (
    KafkaCustomers,
    KafkaRules,
    KafkaSweeps,
    SimulatedBacktest,
    in_kafka_pool,
)

__all__ = [
    "BacktestFn",
    "ReadinessFn",
    "ScoreFn",
    "StackBackend",
    "create_stack_api",
    "pipeline_checks",
]

log = logging.getLogger(__name__)

ScoreFn = Callable[[str, str], Awaitable[Mapping[str, Any]]]
ReadinessFn = Callable[[], Awaitable[Mapping[str, Check]]]


class BacktestFn(Protocol):
    def __call__(self, rule: CompiledRule, customers: int, *, days: int, seed: int) -> Awaitable[dict[str, Any]]:
        ...


CHECK_TIMEOUT_S = 3.5  # under the API's 5 s for the whole probe, so one slow store fails alone


async def _bounded(check: Awaitable[Check], what: str) -> Check:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return Check(False, f"{what} did not answer within {CHECK_TIMEOUT_S} s")


# -- readiness of a worker -----------------------------------------------------------------------------

def pipeline_checks(pipeline: Any) -> dict[str, Check]:
    """The worker's own readiness: partitions assigned, table recovery finished, rule catalogue loaded.

    ``pipeline`` is :class:`streams.app.Pipeline` (duck-typed: ``app``, ``services``), read without
    waiting; any attribute Faust does not have yet (not started) counts as not ready.
    """
    app = pipeline.app
    checks: dict[str, Check] = {}
    try:
        assigned = len(app.consumer.assignment())
        rebalancing = bool(getattr(app, "rebalancing", False))
        checks["partitions_assigned"] = Check(assigned > 0 and not rebalancing,
                                              f"{assigned} partition(s) assigned"
                                              + ("; rebalancing" if rebalancing else ""))
    except Exception as exc:  # noqa: BLE001 - a consumer not started yet is "not ready"
        checks["partitions_assigned"] = Check(False, f"consumer not ready: {type(exc).__name__}")
    try:
        recovery = app.tables.recovery
        done = recovery.completed.is_set() and not recovery.in_recovery
        checks["tables_recovered"] = Check(done, "table recovery finished" if done else "recovering tables")
    except Exception as exc:  # noqa: BLE001
        checks["tables_recovered"] = Check(False, f"tables not ready: {type(exc).__name__}")
    catalogue = getattr(pipeline, "services", {}).get("catalogue")
    if catalogue is not None:
        ready = catalogue.ready.is_set()
        checks["rule_catalogue"] = Check(ready, f"{len(catalogue.current)} rule(s) loaded" if ready
                                         else "reading the rules topic")
    return checks


# -- everything together --------------------------------------------------------------------------------

class StackBackend:
    """The :class:`~streams.web.api_backend.ApiBackend` of a worker on the real stack."""

    def __init__(self, settings: Settings, *, score: ScoreFn, readiness: ReadinessFn | None = None,
                 backtest: BacktestFn | None = None, pipeline: Any = None) -> None:
        self.settings = settings
        self.insights_store = DynamoInsights(settings)
        self.rules = KafkaRules(settings)
        self.sweeps = KafkaSweeps(settings)
        self.customers = KafkaCustomers(settings, self.insights_store)
        self._score = score
        self._readiness = readiness
        self._backtest: BacktestFn = backtest or SimulatedBacktest(self.rules)
        self._admin: Any = None
        self._pipeline = pipeline

    async def score(self, customer_id: str, rule_id: str) -> Mapping[str, Any]:
        return await self._score(customer_id, rule_id)

    async def insights(self, customer_id: str, *, limit: int, cursor: str | None,
                       include_ineligible: bool) -> InsightsPage:
        return await self.insights_store.insights(customer_id, limit=limit, cursor=cursor,
                                                  include_ineligible=include_ineligible)

    async def list_rules(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        return await self.rules.list_rules(include_deleted=include_deleted)

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        return await self.rules.get_rule(rule_id)

    async def publish_rule(self, rule: CompiledRule, author: str) -> dict[str, Any]:
        return await self.rules.publish_rule(rule, author)

    async def delete_rule(self, rule_id: str, author: str) -> dict[str, Any]:
        return await self.rules.delete_rule(rule_id, author)

    async def backtest(self, rule: CompiledRule, customers: int, *, days: int, seed: int) -> dict[str, Any]:
        return await self._backtest(rule, customers, days=days, seed=seed)

    async def start_sweep(self, rule_ids: list[str], *, dry_run: bool, requested_by: str) -> dict[str, Any]:
        if rule_ids:
            known = {r["rule_id"] for r in await self.rules.list_rules(include_deleted=False)}
            for i, rule_id in enumerate(rule_ids):
                if rule_id not in known:
                    raise ApiError(422, "unknown_rule", f"no published rule {rule_id!r}", field=f"rules[{i}]")
        log.info("sweep requested by %s (rules=%d, dry_run=%s)", requested_by, len(rule_ids), dry_run)
        return await self.sweeps.start_sweep(rule_ids, dry_run=dry_run)

    async def list_sweeps(self) -> list[dict[str, Any]]:
        return await self.sweeps.list_sweeps()

    async def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        return await self.sweeps.get_sweep(sweep_id)

    async def erase_customer(self, customer_id: str, *, requested_by: str) -> dict[str, Any]:
        return await self.customers.erase_customer(customer_id, requested_by=requested_by)

    async def readiness(self) -> Mapping[str, Check]:
        """Kafka and DynamoDB reachable, plus the worker's own checks (:func:`pipeline_checks`) when it
        was given its pipeline, plus any ``readiness`` callable's checks."""
        kafka, dynamo = await asyncio.gather(_bounded(self.kafka_check(), "Kafka"),
                                             _bounded(self.insights_store.ping(), "DynamoDB"))
        checks: dict[str, Check] = {"kafka": kafka, "dynamodb": dynamo}
        if self._pipeline is not None:
            checks.update(pipeline_checks(self._pipeline))
        if self._readiness is not None:
            checks.update(await self._readiness())
        return checks

    async def close(self) -> None:
        """Release the long-lived clients (the API app calls it on cleanup)."""
        await self.insights_store.close()

    async def kafka_check(self) -> Check:
        """Kafka reachable: the broker answers a metadata request within 3 s."""
        def probe() -> int:
            from confluent_kafka.admin import AdminClient

            if self._admin is None:
                self._admin = AdminClient({"bootstrap.servers": self.settings.bootstrap_servers,
                                           **confluent_security(self.settings)})
            return len(self._admin.list_topics(timeout=3).brokers)

        try:
            brokers = await in_kafka_pool(probe)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return Check(False, f"Kafka metadata request failed: {type(exc).__name__}")
        return Check(True, f"{brokers} broker(s) reachable")


def create_stack_api(settings: Settings, *, score: ScoreFn, pipeline: Any = None,
                     readiness: ReadinessFn | None = None, extra_routes: Iterable[Any] = (), keys: Any = None,
                     **options: Any) -> Any:
    """The worker's web app on the real stack: :class:`StackBackend` (readiness includes
    :func:`pipeline_checks` of ``pipeline``) plus the API keys configured by
    ``NUDGE_API_KEYS_FILE`` / ``NUDGE_API_KEYS`` or else the file ``nudge apikey create`` writes.

    :param options: passed to :func:`streams.web.api.create_api` (``client_max_size``, ``rate_limit``).
    Serve it with ``web.AppRunner(app, access_log_class=RedactingAccessLogger)`` (``streams/web/ingest.py``)
    so customer ids in paths never reach the access log; mount the ingestion endpoint with
    ``add_ingest_routes(app, config)``.
    """
    from streams.web.api import create_api
    from streams.web.apikey_cli import default_keys_file
    from streams.web.auth import ApiKeyStore

    if keys is None:
        keys = ApiKeyStore.from_env(default_file=default_keys_file())
        if not len(keys):
            log.warning("no API keys configured: every /v1 request will be refused (see `nudge apikey create`)")
    backend = StackBackend(settings, score=score, readiness=readiness, pipeline=pipeline)
    return create_api(backend, keys, extra_routes=extra_routes, **options)
