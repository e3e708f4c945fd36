"""Sweeping stored records in a batch (core.sweeping), in this process and in the worker's sweep processes."""

from __future__ import annotations

import asyncio
import json
import marshal
import multiprocessing
import os
import signal
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import pytest

from core.customer import CustomerRecord, apply_transactions, sweep_customer
from core.rules import Catalogue, load_catalogue
from core.scoring import Origin
from core.sweeping import StoredCustomer, SweepJob, SweptCustomer, rule_sources, sweep_records
from schemas.records import to_transaction
from simulator.generator import population
from streams.settings import PROJECT_ROOT
from streams.sweep_processes import SweepProcesses

AS_OF = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(PROJECT_ROOT / "rules")


@pytest.fixture(scope="module")
def stored(catalogue: Catalogue) -> list[StoredCustomer]:
    """Twelve simulated customers as the customers and score-books tables hold them (folded, real-time
    scored)."""
    out = []
    for customer in population(77, 12, date(2025, 11, 1), 12):
        record = CustomerRecord()
        txns = [to_transaction(r) for r in customer.records]
        for i in range(0, len(txns), 50):
            apply_transactions(record, txns[i : i + 50], catalogue, customer.profile.customer_id)
        out.append(StoredCustomer(customer.profile.customer_id, record.to_bytes(), record.book_bytes()))
    return out


def nightly_job(catalogue: Catalogue, **over: Any) -> SweepJob:
    fields: dict[str, Any] = {
        "rules": rule_sources(catalogue.for_trigger("nightly")),
        "removed": (),
        "as_of": AS_OF,
        "origin": Origin("sweep", "n1", "nightly"),
        "alerts_enabled": True,
        "dry_run": False,
    }
    return SweepJob(**(fields | over))


def comparable(results: list[SweptCustomer]) -> list[Any]:
    """Results with each book decoded (marshal's bytes depend on how objects were shared, not on content)."""
    return [
        r._replace(book=None if r.book is None else CustomerRecord.from_bytes(None, r.book).book)
        for r in results
    ]


def test_each_result_is_what_sweeping_the_customer_directly_gives(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    job = nightly_job(catalogue)
    results = sweep_records(job, stored)
    assert [r.customer_id for r in results] == [c.customer_id for c in stored]
    assert sum(len(r.scores) for r in results) > 0
    for customer, result in zip(stored, results, strict=True):
        record = CustomerRecord.from_bytes(customer.record, customer.book)
        scores, alerts, evaluations = sweep_customer(
            record,
            catalogue.for_trigger("nightly"),
            [],
            customer.customer_id,
            AS_OF,
            job.origin,
            alerts_enabled=True,
        )
        assert result.error is None
        assert result.evaluations == evaluations == len(catalogue.for_trigger("nightly"))
        assert result.scores == [
            (u.key.encode(), None if u.value is None else json.dumps(u.value, separators=(",", ":")).encode())
            for u in scores
        ]
        assert result.alerts == alerts
        if scores or alerts:
            assert (
                result.book is not None and CustomerRecord.from_bytes(None, result.book).book == record.book
            )
        else:
            assert result.book is None, "nothing changed: nothing to write"


def test_a_record_of_the_older_format_is_swept_with_the_book_it_carries(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    """Records written before the book moved to ``score-books`` carry it inside: sweeping one gives what
    sweeping the same customer stored in two tables gives (so the first sweep after an upgrade emits nothing
    new, and its book lands in ``score-books``)."""
    job = nightly_job(catalogue)
    legacy = []
    for customer in stored:
        record = CustomerRecord.from_bytes(customer.record, customer.book)
        state = record.state.to_bytes()
        book = marshal.dumps(
            (record.book.scores, sorted(record.book.firing), record.book.last_alert, record.as_of), 4
        )
        legacy.append(
            StoredCustomer(
                customer.customer_id, struct.pack(">BII", 2, len(state), len(book)) + state + book, None
            )
        )
    assert comparable(sweep_records(job, legacy)) == comparable(sweep_records(job, stored))


def test_a_dry_run_reports_the_changes_but_gives_no_record_to_store(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    results = sweep_records(nightly_job(catalogue, dry_run=True), stored)
    assert any(r.scores for r in results) and all(r.book is None for r in results)


def test_a_rule_change_job_rescores_each_customer_as_of_their_own_latest_event(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    rule = catalogue["subscription_price_rise"]
    job = nightly_job(catalogue, rules=rule_sources([rule]), as_of=None, alerts_enabled=False)
    for customer, result in zip(stored, sweep_records(job, stored), strict=True):
        record = CustomerRecord.from_bytes(customer.record, customer.book)
        scores, _, _ = sweep_customer(
            record, [rule], [], customer.customer_id, record.as_of_datetime, job.origin, False
        )
        assert [k for k, _ in result.scores] == [u.key.encode() for u in scores]


def test_one_bad_record_is_reported_by_name_and_the_others_are_swept(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    batch = [stored[0], StoredCustomer("cust-broken", b"\x09 not a customer record", None), stored[1]]
    results = sweep_records(nightly_job(catalogue), batch)
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].customer_id == "cust-broken" and "customer record" in (results[1].error or "")
    assert results[1].scores == [] and results[1].book is None


def test_a_fresh_process_compiles_the_rules_from_their_source_and_gives_the_same_results(
    catalogue: Catalogue, stored: list[StoredCustomer]
) -> None:
    """Compiled rules cannot be pickled: a sweep process compiles them from the text the worker compiled."""
    job = nightly_job(catalogue)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        elsewhere = pool.submit(sweep_records, job, stored).result(timeout=120)
    assert comparable(elsewhere) == comparable(sweep_records(job, stored))


def test_settings_out_of_range_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="NUDGE_SWEEP_PROCESSES must be 0 or more"):
        SweepProcesses(-1)
    with pytest.raises(ValueError, match="NUDGE_SWEEP_PROCESS_NICE must be between 0 and 19"):
        SweepProcesses(1, nice=20)


@pytest.fixture
async def started_lane() -> AsyncIterator[Callable[[int], Awaitable[SweepProcesses]]]:
    """Started sweep process pools, each closed after the test."""
    lanes: list[SweepProcesses] = []

    async def start(processes: int) -> SweepProcesses:
        lane = SweepProcesses(processes)
        lanes.append(lane)
        await lane.on_start()
        return lane

    yield start
    for lane in lanes:
        lane.close()


async def test_the_pool_splits_a_request_across_its_processes_in_order(
    catalogue: Catalogue, stored: list[StoredCustomer], started_lane: Any
) -> None:
    lane = await started_lane(2)
    results = await lane.sweep(nightly_job(catalogue), stored)
    assert comparable(results) == comparable(sweep_records(nightly_job(catalogue), stored))
    pool = lane._pool
    assert pool is not None and len(pool._processes) == 2
    for pid in pool._processes:
        assert os.getpriority(os.PRIO_PROCESS, pid) >= os.getpriority(os.PRIO_PROCESS, 0) + lane.nice - 1


async def test_a_sweep_process_killed_mid_request_is_replaced_and_the_request_swept(
    catalogue: Catalogue, stored: list[StoredCustomer], started_lane: Any
) -> None:
    lane = await started_lane(1)
    pool = lane._pool
    assert pool is not None
    (victim,) = pool._processes
    big = stored * 60  # long enough (about a second) to still be running when the kill lands
    task = asyncio.ensure_future(lane.sweep(nightly_job(catalogue), big))
    await asyncio.sleep(0.2)
    os.kill(victim, signal.SIGKILL)
    results = await asyncio.wait_for(task, 300)
    assert lane._pool is not None and lane._pool is not pool, "a fresh pool replaced the broken one"
    assert comparable(results) == comparable(sweep_records(nightly_job(catalogue), big))
