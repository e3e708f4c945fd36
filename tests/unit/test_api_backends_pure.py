"""The pure parts of the stack backends: ranking and keyset paging, stored items, versions, sweep ETA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from api_fake_backend import rule_source
from hypothesis import given
from hypothesis import strategies as st

from core.rules import compile_rule
from streams.sweeps import SweepProgress
from streams.web.api_backend import ApiError
from streams.web.backend_insights import decode_cursor, insight_from_item, rank_insights
from streams.web.backend_kafka import histogram, sweep_view, with_version


def item(rule_id: str, score: float | None, eligible: bool = True) -> dict[str, object]:
    return {"rule_id": rule_id, "score": score, "eligible": eligible}


def test_ranking_order() -> None:
    items = [item("b", 0.5), item("a", 0.5), item("c", 0.9), item("d", None), item("e", 0.99, eligible=False)]
    page = rank_insights(items, limit=10, cursor=None, include_ineligible=True)
    assert [i["rule_id"] for i in page.items] == ["c", "a", "b", "d", "e"]
    assert page.next_cursor is None and page.total == 5
    only = rank_insights(items, limit=10, cursor=None, include_ineligible=False)
    assert [i["rule_id"] for i in only.items] == ["c", "a", "b", "d"]


@given(st.lists(st.tuples(st.sampled_from([None, 0.0, 0.25, 0.5, 1.0]), st.booleans()), max_size=30),
       st.integers(min_value=1, max_value=7))
def test_paging_visits_every_item_once_in_rank_order(rows: list[tuple[float | None, bool]], limit: int) -> None:
    items = [item(f"r{i:02d}", s, e) for i, (s, e) in enumerate(rows)]
    whole = rank_insights(items, limit=1000, cursor=None, include_ineligible=True).items
    seen: list[object] = []
    cursor = None
    for _ in range(100):
        page = rank_insights(items, limit=limit, cursor=cursor, include_ineligible=True)
        assert len(page.items) <= limit
        seen.extend(i["rule_id"] for i in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [i["rule_id"] for i in whole]


def test_paging_survives_a_score_change_between_pages() -> None:
    items = [item(f"r{i}", 1 - i / 10) for i in range(6)]
    first = rank_insights(items, limit=3, cursor=None, include_ineligible=False)
    items[1]["score"] = 0.01  # r1 was on page one; it moves to the end
    assert first.next_cursor is not None
    second = rank_insights(items, limit=10, cursor=first.next_cursor, include_ineligible=False)
    assert [i["rule_id"] for i in second.items] == ["r3", "r4", "r5", "r1"]


@pytest.mark.parametrize("cursor", ["%%%", "bm9wZQ", "WzEsMl0", "WyJhIiwgMSwgImIiXQ"])
def test_bad_cursor_is_a_400_on_the_cursor_field(cursor: str) -> None:
    with pytest.raises(ApiError) as info:
        decode_cursor(cursor)
    assert info.value.status == 400 and info.value.field == "cursor"


def test_stored_item_to_insight() -> None:
    stored = {"customer_id": "c1", "rule_id": "r", "score": Decimal("0.75"), "rule_version": Decimal("3"),
              "evaluated_at": Decimal("1764028800000"), "eligible": True, "reasons": ["x"],
              "items": [{"key": "netflix", "score": Decimal("1")}]}
    out = insight_from_item(stored)
    assert out["score"] == 0.75 and out["rule_version"] == 3 and isinstance(out["rule_version"], int)
    assert out["evaluated_at"] == "2025-11-25T00:00:00+00:00"
    assert out["items"] == [{"key": "netflix", "score": 1}]
    assert insight_from_item({"rule_id": "r", "score": Decimal("1")})["score"] == 1.0


def test_with_version_rewrites_only_the_version_value() -> None:
    source = "# my rule\n" + rule_source(version=1).replace("version: 1", "version:   1   # bump me")
    rewritten = with_version(source, 7)
    assert "version:   7   # bump me" in rewritten and rewritten.startswith("# my rule\n")
    assert compile_rule(rewritten).version == 7
    assert rewritten.replace("7", "1", 1) == source


def test_sweep_view_eta() -> None:
    started = datetime.now(UTC) - timedelta(seconds=100)
    progress = SweepProgress("s1", start={"total": 300, "started_at": started.isoformat(), "rules": ["r"],
                                          "dry_run": False, "reason": "manual", "last_offsets": {"0": 10}},
                             partitions={0: {"customers": 100, "evaluations": 800, "offset": 3}})
    view = sweep_view(progress, now=started.timestamp() + 100)
    assert view["customers"] == 100 and view["total"] == 300 and view["evaluations"] == 800
    assert view["done"] is False and view["eta_seconds"] == pytest.approx(200, abs=1)
    progress.partitions[0] = {"customers": 300, "evaluations": 2400, "offset": 10}
    done = sweep_view(progress)
    assert done["done"] is True and done["eta_seconds"] is None


def test_histogram_bins_cover_zero_to_one() -> None:
    bins = histogram([0.0, 0.04, 0.05, 0.5, 0.999, 1.0], bins=20)
    assert len(bins) == 20 and bins[0] == {"low": 0.0, "high": 0.05, "count": 2}
    assert bins[1]["count"] == 1 and bins[10]["count"] == 1 and bins[19] == {"low": 0.95, "high": 1.0, "count": 2}
    assert sum(b["count"] for b in histogram([])) == 0


async def test_backtests_run_one_at_a_time_and_refuse_a_long_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import threading
    import time

    import bench.backtest_rules
    from bench.backtest_rules import BacktestResult
    from streams.web.backend_kafka import SimulatedBacktest

    release = threading.Event()
    running: list[int] = []
    overlap: list[int] = []

    def slow_backtest(rule: object, catalogue: object, customers: int, seed: int, days: int) -> BacktestResult:
        running.append(1)
        overlap.append(len(running))
        release.wait(5)
        time.sleep(0.01)
        running.pop()
        result = BacktestResult(rule, customers)  # type: ignore[arg-type]
        result.customers_hit, result.scores = 1, [0.5]
        return result

    class NoRules:
        async def latest(self) -> dict[str, object]:
            return {}

    monkeypatch.setattr(bench.backtest_rules, "backtest", slow_backtest)
    runner = SimulatedBacktest(NoRules(), max_waiting=2)  # type: ignore[arg-type]
    rule = compile_rule(rule_source())
    tasks = [asyncio.create_task(runner(rule, 10, days=60, seed=1)) for _ in range(3)]
    await asyncio.sleep(0.2)
    with pytest.raises(ApiError) as info:
        await runner(rule, 10, days=60, seed=1)
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "10"
    release.set()
    results = await asyncio.gather(*tasks)
    assert max(overlap) == 1 and [r["fired"] for r in results] == [1, 1, 1]
    assert results[0]["histogram"][10]["count"] == 1 and results[0]["hit_rate"] == 0.1


def test_pipeline_checks() -> None:
    import asyncio
    from types import SimpleNamespace

    from streams.web.backends import pipeline_checks

    completed = asyncio.Event()
    catalogue_ready = asyncio.Event()
    recovery = SimpleNamespace(completed=completed, in_recovery=True)
    consumer = SimpleNamespace(assignment=lambda: set())
    app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=recovery), rebalancing=False)
    catalogue = SimpleNamespace(ready=catalogue_ready, current={"a": 1, "b": 2})
    pipeline = SimpleNamespace(app=app, services={"catalogue": catalogue})
    checks = pipeline_checks(pipeline)
    assert {n: c.ok for n, c in checks.items()} == {"partitions_assigned": False, "tables_recovered": False,
                                                    "rule_catalogue": False}
    consumer.assignment = lambda: {("transactions", 0), ("transactions", 1)}
    completed.set()
    recovery.in_recovery = False
    catalogue_ready.set()
    checks = pipeline_checks(pipeline)
    assert all(c.ok for c in checks.values())
    assert checks["partitions_assigned"].detail == "2 partition(s) assigned"
    assert checks["rule_catalogue"].detail == "2 rule(s) loaded"
    app.rebalancing = True
    assert not pipeline_checks(pipeline)["partitions_assigned"].ok


def test_pipeline_checks_on_a_worker_not_started(tmp_path: Path) -> None:
    from streams.app import create_app
    from streams.settings import load_settings
    from streams.web.backends import pipeline_checks

    pipeline = create_app(load_settings(worker_data_dir=tmp_path))
    checks = pipeline_checks(pipeline)
    assert not checks["partitions_assigned"].ok and not checks["tables_recovered"].ok


def test_items_as_the_pipeline_writes_them_are_eligible_insights() -> None:
    """The sink stores core.scoring.score_value's JSON: no `eligible` field (only eligible scores exist)."""
    from core.scoring import Origin, score_value

    rule = compile_rule(rule_source())
    outcome = rule.evaluate({"balance_current": 40.0}, explain=True)
    value = score_value("c1", cast(Any, outcome), datetime(2026, 11, 25, 9, tzinfo=UTC), Origin("transaction", "t-1"))
    stored = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in value.items()}
    insight = insight_from_item(stored)
    assert insight["eligible"] is True and insight["score"] == 0.6 and insight["transaction_id"] == "t-1"
    assert insight["evaluated_at"] == "2026-11-25T09:00:00+00:00"
    page = rank_insights([insight], limit=5, cursor=None, include_ineligible=False)
    assert [i["rule_id"] for i in page.items] == ["low_balance"]


async def test_a_slow_store_fails_its_readiness_check_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import streams.web.backends as backends
    from streams.settings import Settings
    from streams.web.api_backend import Check

    async def no_score(customer_id: str, rule_id: str) -> dict[str, Any]:
        raise AssertionError

    async def hangs() -> Check:
        await asyncio.sleep(30)
        return Check(True)

    async def answers() -> Check:
        return Check(True, "ok")

    monkeypatch.setattr(backends, "CHECK_TIMEOUT_S", 0.2)
    backend = backends.StackBackend(Settings(), score=no_score)
    monkeypatch.setattr(backend, "kafka_check", hangs)
    monkeypatch.setattr(backend.insights_store, "ping", answers)
    checks = await asyncio.wait_for(backend.readiness(), 2)
    assert checks["kafka"] == Check(False, "Kafka did not answer within 0.2 s")
    assert checks["dynamodb"] == Check(True, "ok")
