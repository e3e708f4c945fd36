"""An in-memory :class:`ApiBackend` for API tests: real rule compilation, versioning and ranking, no stores.

It scores with the real compiled rules over stored feature vectors, so the API's answers are computed,
not canned; ranking and paging reuse :func:`streams.web.backends.rank_insights`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.rules import CompiledRule, compile_rule
from streams.web.api_backend import ApiError, Check, InsightsPage, NotFound
from streams.web.backend_insights import rank_insights
from streams.web.backend_kafka import with_version

__all__ = ["FakeBackend", "rule_source"]


def rule_source(rule_id: str = "low_balance", version: int = 1, threshold: int = 100) -> str:
    return (
        f"id: {rule_id}\n"
        f"version: {version}\n"
        "title: Balance is low\n"
        "kind: alert\n"
        "trigger: realtime\n"
        "when:\n"
        f"  - balance_current < £{threshold}\n"
        f"score: clamp(1 - balance_current / £{threshold}, 0, 1)\n"
        'message: "Your balance is £{balance_current}."\n'
    )


class FakeBackend:
    def __init__(self) -> None:
        self.features: dict[str, dict[str, object]] = {}
        self.stored: dict[str, list[dict[str, Any]]] = {}  # customer → DynamoDB-like items
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.sweeps: dict[str, dict[str, Any]] = {}
        self.erased: list[str] = []
        self.ready: dict[str, Check] = {"kafka": Check(True, "ok"), "tables": Check(True, "recovered")}
        self.calls: list[tuple[str, Any]] = []

    def compiled(self, rule_id: str) -> CompiledRule | None:
        changes = self.versions.get(rule_id)
        if not changes or changes[-1]["deleted"]:
            return None
        return compile_rule(changes[-1]["source"])

    async def score(self, customer_id: str, rule_id: str) -> Mapping[str, Any]:
        self.calls.append(("score", (customer_id, rule_id)))
        if customer_id not in self.features:
            raise NotFound("customer", customer_id)
        rule = self.compiled(rule_id)
        if rule is None:
            raise NotFound("rule", rule_id)
        return rule.evaluate(self.features[customer_id], explain=True).to_dict()

    async def insights(self, customer_id: str, *, limit: int, cursor: str | None,
                       include_ineligible: bool) -> InsightsPage:
        self.calls.append(("insights", customer_id))
        return rank_insights(self.stored.get(customer_id, []), limit=limit, cursor=cursor,
                             include_ineligible=include_ineligible)

    def _summary(self, change: dict[str, Any]) -> dict[str, Any]:
        return {k: change[k] for k in ("rule_id", "version", "deleted", "published_at", "author")}

    async def list_rules(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        latest = [self._summary(v[-1]) for v in self.versions.values()]
        return sorted((r for r in latest if include_deleted or not r["deleted"]), key=lambda r: r["rule_id"])

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        changes = self.versions.get(rule_id)
        if not changes:
            raise NotFound("rule", rule_id)
        return self._summary(changes[-1]) | {"source": changes[-1]["source"],
                                             "history": [self._summary(c) for c in changes],
                                             "history_complete": True}

    async def publish_rule(self, rule: CompiledRule, author: str) -> dict[str, Any]:
        changes = self.versions.setdefault(rule.id, [])
        if changes and not changes[-1]["deleted"] and changes[-1]["source"] == with_version(
                rule.source, changes[-1]["version"]):
            return {"rule_id": rule.id, "version": changes[-1]["version"], "unchanged": True}
        version = (changes[-1]["version"] if changes else 0) + 1
        changes.append({"rule_id": rule.id, "version": version, "source": with_version(rule.source, version),
                        "deleted": False, "published_at": datetime.now(UTC).isoformat(), "author": author})
        return {"rule_id": rule.id, "version": version, "previous_version": version - 1 or None}

    async def delete_rule(self, rule_id: str, author: str) -> dict[str, Any]:
        changes = self.versions.get(rule_id)
        if not changes or changes[-1]["deleted"]:
            raise NotFound("rule", rule_id)
        change = changes[-1] | {"version": changes[-1]["version"] + 1, "deleted": True, "author": author}
        changes.append(change)
        return self._summary(change)

    async def backtest(self, rule: CompiledRule, customers: int, *, days: int, seed: int) -> dict[str, Any]:
        self.calls.append(("backtest", (rule.id, customers, days, seed)))
        scores = []
        population = list(self.features.values()) or [{}]
        for i in range(customers):
            outcome = rule.evaluate(population[i % len(population)])
            if outcome.eligible and outcome.score is not None:
                scores.append(outcome.score)
        bins = [{"low": b / 10, "high": (b + 1) / 10, "count": 0} for b in range(10)]
        for s in scores:
            bins[min(9, int(s * 10))]["count"] += 1
        return {"customers": customers, "fired": len(scores), "hit_rate": len(scores) / customers,
                "histogram": bins}

    async def start_sweep(self, rule_ids: list[str], *, dry_run: bool, requested_by: str) -> dict[str, Any]:
        for i, rule_id in enumerate(rule_ids):
            if self.compiled(rule_id) is None:
                raise ApiError(422, "unknown_rule", f"no published rule {rule_id!r}", field=f"rules[{i}]")
        sweep_id = f"manual-{uuid.uuid4().hex[:8]}"
        self.sweeps[sweep_id] = {"sweep_id": sweep_id, "total": len(self.features), "customers": 0,
                                 "evaluations": 0, "done": not self.features, "rules": rule_ids,
                                 "dry_run": dry_run, "eta_seconds": None}
        return self.sweeps[sweep_id]

    async def list_sweeps(self) -> list[dict[str, Any]]:
        return list(self.sweeps.values())

    async def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        if sweep_id not in self.sweeps:
            raise NotFound("sweep", sweep_id)
        return self.sweeps[sweep_id]

    async def erase_customer(self, customer_id: str, *, requested_by: str) -> dict[str, Any]:
        self.erased.append(customer_id)
        items = self.stored.get(customer_id, [])
        return {"customer_id": customer_id, "event_id": uuid.uuid4().hex, "status": "accepted",
                "items": [{"customer_id": customer_id, "rule_id": i["rule_id"]} for i in items],
                "rules": sorted(i["rule_id"] for i in items)}

    async def readiness(self) -> Mapping[str, Check]:
        return dict(self.ready)
