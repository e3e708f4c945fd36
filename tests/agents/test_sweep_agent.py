"""The sweep and lifecycle agents on Faust's test harness."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from core.customer import CustomerRecord
from schemas.codec import default_codec
from streams.metrics import SWEEP_REQUESTS, SWEEP_RESWEPT
from streams.sweeps import partition_of
from tests.agents.test_transactions_agent import encode, netflix, put_all, scores_of

AS_OF = datetime(2026, 10, 26, 1, 0, tzinfo=UTC)  # the gym is active; 45 days later it has lapsed


def gym(n: int, customer: str) -> dict[str, Any]:
    """A £55 monthly gym membership never otherwise used: active on AS_OF, lapsed 45 days later."""
    return netflix(
        n,
        "55.00",
        customer=customer,
        TransactionInformation="PUREGYM LTD 0345",
        MerchantDetails={"MerchantName": "PureGym", "MerchantCategoryCode": "7997"},
    )


def sweep_request(customer: str, sweep_id: str, rule_ids: list[str] | None = None, **over: Any) -> bytes:
    record = {
        "sweep_id": sweep_id,
        "customer_id": customer,
        "rule_ids": rule_ids or [],
        "as_of": AS_OF,
        "requested_at": AS_OF,
        "reason": "manual",
        "dry_run": False,
    }
    record.update(over)
    return default_codec().encode("SweepRequest", record)


async def run_sweep(pipeline: Any, requests: list[tuple[bytes, bytes]], partition: int | None = None) -> None:
    """Put the requests and wait until the agent has finished each (swept or dead-lettered): the customers
    are evaluated in a sweep process, so a request is still in flight when ``put`` returns."""
    done_before = SWEEP_REQUESTS._value.get()
    async with pipeline.app.agents["sweep"].test_context() as ctx:
        for key, value in requests:
            await ctx.put(value, key=key, partition=partition)
        deadline = time.monotonic() + 60
        while SWEEP_REQUESTS._value.get() < done_before + len(requests):
            assert time.monotonic() < deadline, "the sweep agent did not finish its requests within 60 s"
            await asyncio.sleep(0.01)


def latest_progress(out: Any, sweep_id: str) -> dict[str, int]:
    """The sweep's counters summed over its partitions, from the last record of each."""
    latest: dict[bytes, dict[str, Any]] = {}
    for r in out["sweep-progress"].records:
        latest[r.key] = json.loads(r.value)
    prefix = f"{sweep_id}#".encode()
    names = ("customers", "evaluations", "changed", "errors", "skipped")
    return {n: sum(v[n] for key, v in latest.items() if key.startswith(prefix)) for n in names}


async def test_sweep_emits_changed_scores_once_and_is_idempotent(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-s") for i in range(5)])
    before = len(out["scores"].records)

    await run_sweep(
        pipeline, [(b"cust-s", sweep_request("cust-s", "s1")), (b"nobody", sweep_request("nobody", "s1"))]
    )
    first = out["scores"].records[before:]
    assert first, "a nightly sweep of a customer with a subscription scores something"
    assert all(json.loads(r.value)["sweep_id"] == "s1" for r in first if r.value)

    await run_sweep(pipeline, [(b"cust-s", sweep_request("cust-s", "s2"))])
    assert out["scores"].records[before + len(first) :] == [], "the same sweep again changes nothing"

    progress = {r.key: json.loads(r.value) for r in out["sweep-progress"].records}
    assert sum(v["customers"] for k, v in progress.items() if k.startswith(b"s1#")) == 2
    assert sum(v["skipped"] for k, v in progress.items() if k.startswith(b"s1#")) == 1


async def progress_record(out: Any, key: bytes, seen: int, timeout_s: float = 10) -> dict[str, Any]:
    """The first progress record for ``key`` after the first ``seen`` records of the topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        for r in out["sweep-progress"].records[seen:]:
            if r.key == key:
                record: dict[str, Any] = json.loads(r.value)
                return record
        assert time.monotonic() < deadline, f"no progress record for {key!r} within {timeout_s} s"
        await asyncio.sleep(0.01)


async def test_a_batch_records_its_offset_only_once_earlier_batches_have_finished(make_pipeline: Any) -> None:
    """A progress record's offset says every request of its partition up to it is counted, and a sweep reads
    as done on it. With batches in flight at once (NUDGE_SWEEP_BATCHES_IN_FLIGHT), a batch finishing before an
    earlier one must count its requests at once and record its offset only once the earlier one finished."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-o") for i in range(5)])
    offsets = pipeline.services["sweep-offsets-in-flight"]
    generation = pipeline.app.consumer_generation_id
    offsets.take(generation, 0, 3)  # another batch holds offset 3 of partition 0 and has not finished
    seen = len(out["sweep-progress"].records)

    async with pipeline.app.agents["sweep"].test_context() as ctx:
        ctx.sent_offset = 5  # the test request is offset 5 of partition 0, after the one in flight
        await ctx.put(sweep_request("cust-o", "o1"), key=b"cust-o", partition=0)
        counted = await progress_record(out, b"o1#p0", seen)
        assert counted["customers"] == 1 and counted["evaluations"] > 0, "counted at once"
        assert "offset" not in counted, "offset 3 is still in flight: offset 5 must not be recorded yet"

        seen = len(out["sweep-progress"].records)
        offsets.finish([(0, 3)])
        recorded = await progress_record(out, b"o1#p0", seen)
        assert recorded["offset"] == 5
        assert {k: recorded[k] for k in ("customers", "evaluations")} == {
            k: counted[k] for k in ("customers", "evaluations")
        }, "the counts are not added twice"


def count_writes(pipeline: Any) -> dict[str, list[bytes]]:
    """The keys written to each table from now on (each write is a changelog record)."""
    writes: dict[str, list[bytes]] = {}
    for name in ("customers", "score-books"):
        table = pipeline.tables[name]
        keys = writes[name] = []

        def on_key_set(key: bytes, value: bytes, _keys: list[bytes] = keys, _set: Any = table.on_key_set) -> None:
            _keys.append(key)
            _set(key, value)

        table.on_key_set = on_key_set
    return writes


async def test_a_sweep_writes_the_score_book_and_never_the_features(make_pipeline: Any) -> None:
    """What a sweep changes (about 2 KB) is stored apart from what it never changes (about 11 KB): a sweep that
    changes scores writes one score-books record per customer and leaves the customers table alone."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    transactions = pipeline.app.agents["transactions"]
    await put_all(transactions, [gym(i, "cust-b") for i in range(5)])
    features = pipeline.tables["customers"].data[b"cust-b"]
    writes = count_writes(pipeline)
    before = len(out["scores"].records)

    await run_sweep(pipeline, [(b"cust-b", sweep_request("cust-b", "b1"))])
    assert out["scores"].records[before:], "the sweep changed scores"
    assert writes == {"customers": [], "score-books": [b"cust-b"]}
    assert pipeline.tables["customers"].data[b"cust-b"] == features

    # a transaction already seen changes no score: the features are written, the book is not
    await put_all(transactions, [gym(4, "cust-b")])
    assert writes == {"customers": [b"cust-b"], "score-books": [b"cust-b"]}
    store = pipeline.services["customer-store"]
    assert store.writes == {} and not store.tracking, "writes are counted only while a sweep batch runs"


async def test_a_book_is_written_only_once_its_scores_are_acknowledged(make_pipeline: Any) -> None:
    """A book says what was emitted. If the broker never acknowledged the scores (the worker died, the
    broker refused them), the book must not claim them: the same sweep again sends them again."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-k") for i in range(5)])
    book_before = pipeline.tables["score-books"].data.get(b"cust-k")
    before = len(out["scores"].records)

    out["scores"].refuse_with = RuntimeError("broker unavailable")
    await run_sweep(pipeline, [(b"cust-k", sweep_request("cust-k", "k1"))])
    refused = {r.key: r.value for r in out["scores"].records[before:]}
    assert refused, "the sweep tried to send scores"
    assert pipeline.tables["score-books"].data.get(b"cust-k") == book_before, "no book claims them"

    out["scores"].refuse_with = None
    again = len(out["scores"].records)
    await run_sweep(pipeline, [(b"cust-k", sweep_request("cust-k", "k1"))])
    assert {r.key: r.value for r in out["scores"].records[again:]} == refused, "sent again, the same"
    assert pipeline.tables["score-books"].data.get(b"cust-k") != book_before
    done = len(out["scores"].records)
    await run_sweep(pipeline, [(b"cust-k", sweep_request("cust-k", "k1"))])
    assert out["scores"].records[done:] == [], "acknowledged and booked: nothing to send a third time"


async def test_sweep_advances_windows_to_its_as_of_time(make_pipeline: Any) -> None:
    """A subscription last charged months before the sweep's as-of date looks lapsed to the nightly rules."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-l") for i in range(5)])
    await run_sweep(pipeline, [(b"cust-l", sweep_request("cust-l", "early"))])
    early = scores_of(out["scores"])
    assert early["cust-l#subscription_unused"] is not None
    assert "cust-l#subscription_stopped" not in early
    await run_sweep(
        pipeline, [(b"cust-l", sweep_request("cust-l", "late", as_of=AS_OF + timedelta(days=45)))]
    )
    late = scores_of(out["scores"])
    assert late["cust-l#subscription_unused"] is None, "lapsed, no longer 'unused': tombstoned"
    assert late["cust-l#subscription_stopped"]["items"][0]["key"].lower() == "puregym"


async def test_deleted_rule_is_tombstoned_by_a_targeted_request(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-d") for i in range(5)])
    await run_sweep(pipeline, [(b"cust-d", sweep_request("cust-d", "s1"))])
    scored = [k for k, v in scores_of(out["scores"]).items() if v is not None]
    assert scored
    rule_id = scored[0].split("#", 1)[1]
    feed = pipeline.services["catalogue"]
    feed.load([r for r in feed.current.values() if r.id != rule_id])
    await run_sweep(
        pipeline, [(b"cust-d", sweep_request("cust-d", "del", rule_ids=[rule_id], reason="rule_change"))]
    )
    assert scores_of(out["scores"])[f"cust-d#{rule_id}"] is None


async def test_bad_sweep_request_is_dead_lettered(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.sweep")
    await run_sweep(
        pipeline,
        [(b"cust-x", b"\xc3\x01" + bytes(8) + b"garbage"), (b"cust-y", sweep_request("cust-z", "s"))],
    )
    reasons = [dict(r.headers)["dlq.reason"] for r in out["sweep.dlq"].records]
    assert reasons == [b"unknown_fingerprint", b"invalid_record"]


async def test_a_request_failing_to_process_is_dead_lettered_and_counted(make_pipeline: Any) -> None:
    """A customer whose stored record cannot be read: the request goes to the dead-letter topic, the
    worker carries on with the next one, and the sweep's counters record the error and move past its
    offset (a sweep finishes when every partition's counters pass its last request)."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-ok") for i in range(5)])
    pipeline.tables["customers"].data[b"cust-bad"] = b"\x09 not a customer record"
    await run_sweep(
        pipeline,
        [(b"cust-bad", sweep_request("cust-bad", "e1")), (b"cust-ok", sweep_request("cust-ok", "e1"))],
    )
    dead = out["sweep.dlq"].records
    assert [(r.key, dict(r.headers)["dlq.reason"]) for r in dead] == [(b"cust-bad", b"processing_failed")]
    latest: dict[bytes, dict[str, Any]] = {}
    for r in out["sweep-progress"].records:
        latest[r.key] = json.loads(r.value)
    totals = {
        k: sum(v[k] for key, v in latest.items() if key.startswith(b"e1#")) for k in ("customers", "errors")
    }
    assert totals == {"customers": 2, "errors": 1}
    assert any(json.loads(r.value)["sweep_id"] == "e1" for r in out["scores"].records if r.value)


async def test_a_transaction_landing_while_the_customer_is_swept_is_kept(make_pipeline: Any) -> None:
    """The sweep process works on the record as it was read; a transaction folded meanwhile must not be
    overwritten by the sweep's result: the customer is swept again from the new record before anything is
    written or emitted."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    transactions = pipeline.app.agents["transactions"]
    await put_all(transactions, [gym(i, "cust-r") for i in range(5)])
    lane = pipeline.services["sweep-processes"]
    sweep_in_processes = lane.sweep

    async def sweep_while_a_transaction_lands(job: Any, customers: Any) -> Any:
        results = await sweep_in_processes(job, customers)
        await put_all(transactions, [gym(5, "cust-r")])
        return results

    lane.sweep = sweep_while_a_transaction_lands
    reswept = SWEEP_RESWEPT._value.get()
    before = len(out["scores"].records)
    await run_sweep(pipeline, [(b"cust-r", sweep_request("cust-r", "r1"))])

    assert SWEEP_RESWEPT._value.get() == reswept + 1
    tables = pipeline.tables
    stored = CustomerRecord.from_bytes(tables["customers"].data[b"cust-r"], tables["score-books"].data[b"cust-r"])
    sixth = datetime.fromisoformat(gym(5, "cust-r")["BookingDateTime"]).timestamp()
    assert stored.as_of == sixth, "the transaction folded during the sweep is in the stored record"
    swept = {r.key: r.value for r in out["scores"].records[before:] if r.value and b'"sweep_id":"r1"' in r.value}
    assert swept and all(k.decode().split("#", 1)[1] in stored.book.scores for k in swept)

    # the same as sweeping the six transactions' record with nothing in between
    calm, calm_out = make_pipeline("agents.transactions", "agents.sweep")
    await put_all(calm.app.agents["transactions"], [gym(i, "cust-r") for i in range(6)])
    calm_before = len(calm_out["scores"].records)
    await run_sweep(calm, [(b"cust-r", sweep_request("cust-r", "r1"))])
    assert swept == {r.key: r.value for r in calm_out["scores"].records[calm_before:] if r.value}


async def test_the_sweep_waits_while_the_worker_producer_is_backed_up(make_pipeline: Any) -> None:
    """Faust's conductor holds back every incoming message (live transactions too) while the producer buffer
    holds more than 100 messages: the sweep must not keep filling it."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep", sweep_processes=0)  # no start-up time
    await put_all(pipeline.app.agents["transactions"], [gym(i, "cust-w") for i in range(5)])
    pending = pipeline.app.producer.buffer.pending
    for _ in range(150):  # stands for other agents' output not yet handed to Kafka
        pending.put_nowait(None)
    drained_at: list[float] = []

    async def drain_later() -> None:
        await asyncio.sleep(0.5)
        drained_at.append(time.monotonic())
        while not pending.empty():
            pending.get_nowait()

    drainer = asyncio.ensure_future(drain_later())
    await run_sweep(pipeline, [(b"cust-w", sweep_request("cust-w", "w1"))])
    finished_at = time.monotonic()
    await drainer
    assert drained_at and finished_at >= drained_at[0], "the sweep finished while the backlog was still there"
    assert latest_progress(out, "w1")["changed"] > 0


async def test_a_sweeps_books_wait_while_the_worker_producer_is_backed_up(make_pipeline: Any) -> None:
    """A sweep batch ends with thousands of book writes (changelog records): written in one go, they held
    live transactions back for seconds. Here the first book's write backs the producer up: the next book
    must wait until it has drained."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep", sweep_processes=0)
    ga, gb = ON_TWO[:2]
    await put_all(pipeline.app.agents["transactions"], [gym(i, c) for c in (ga, gb) for i in range(5)])
    pending = pipeline.app.producer.buffer.pending
    store = pipeline.services["customer-store"]
    written_at: list[float] = []
    drained_at: list[float] = []
    write_book = store.write_book

    async def drain_later() -> None:
        await asyncio.sleep(0.5)
        drained_at.append(time.monotonic())
        while not pending.empty():
            pending.get_nowait()

    drainers: list[asyncio.Future[None]] = []

    def backing_up_write(key: bytes, book: bytes) -> None:
        write_book(key, book)
        written_at.append(time.monotonic())
        if len(written_at) == 1:  # stands for thousands of books handed to the producer at once
            for _ in range(150):
                pending.put_nowait(None)
            drainers.append(asyncio.ensure_future(drain_later()))

    store.write_book = backing_up_write
    async with pipeline.app.agents["sweep"].test_context() as ctx:
        await ctx.put(sweep_request(ga, "bk", more_customer_ids=[gb]), key=ga.encode(), partition=2)
        deadline = time.monotonic() + 30
        while len(written_at) < 2:  # the request counts as done before its books are written
            assert time.monotonic() < deadline, f"{len(written_at)} books written in 30 s, expected 2"
            await asyncio.sleep(0.01)
    await asyncio.gather(*drainers)
    assert written_at[1] >= drained_at[0], "the second book was written while the backlog was still there"


async def test_sweeping_in_the_worker_process_gives_the_same_scores(make_pipeline: Any) -> None:
    """NUDGE_SWEEP_PROCESSES=0: the same results, evaluated on the worker's own event loop."""
    results = []
    for processes in (0, 1):
        pipeline, out = make_pipeline("agents.transactions", "agents.sweep", sweep_processes=processes)
        await put_all(pipeline.app.agents["transactions"], [gym(i, c) for c in ON_TWO[:2] for i in range(5)])
        request = sweep_request(ON_TWO[0], "p", more_customer_ids=list(ON_TWO[1:]))
        await run_sweep(pipeline, [(ON_TWO[0].encode(), request)], partition=2)
        assert (pipeline.services["sweep-processes"]._pool is None) == (processes == 0)
        results.append((scores_of(out["scores"]), latest_progress(out, "p")))
    assert results[0] == results[1]
    assert results[0][1]["customers"] == 4 and results[0][1]["skipped"] == 2


# Customers whose keys hash to partition 2 of 4 (streams.sweeps.partition_of), and one on partition 1.
ON_TWO = ("cust-ga", "cust-gb", "cust-gd", "cust-gh")
ON_ONE = "cust-gc"


async def test_a_grouped_request_sweeps_each_of_its_customers(make_pipeline: Any) -> None:
    """One message, four customers of its partition: two scored, one with an unreadable record
    dead-lettered by name (the others are still swept), one never seen (skipped)."""
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    ga, gb, gd, gh = ON_TWO
    await put_all(pipeline.app.agents["transactions"], [gym(i, c) for c in (ga, gb) for i in range(5)])
    pipeline.tables["customers"].data[gd.encode()] = b"\x09 not a customer record"
    request = sweep_request(ga, "g1", more_customer_ids=[gb, gd, gh])
    await run_sweep(pipeline, [(ga.encode(), request)], partition=2)

    scored = {json.loads(r.value)["customer_id"] for r in out["scores"].records if r.value}
    assert scored == {ga, gb}
    dead = out["sweep.dlq"].records
    assert [(r.key, dict(r.headers)["dlq.reason"]) for r in dead] == [(ga.encode(), b"processing_failed")]
    assert f"customer '{gd}'" in dict(dead[0].headers)["dlq.error"].decode()
    totals = latest_progress(out, "g1")
    assert (totals["customers"], totals["errors"], totals["skipped"]) == (4, 1, 1)
    assert totals["evaluations"] > 0 and totals["evaluations"] % 2 == 0, "the same rules for both customers"

    await run_sweep(pipeline, [(ga.encode(), sweep_request(ga, "g2", more_customer_ids=[gb]))], partition=2)
    assert latest_progress(out, "g2")["changed"] == 0, "the same sweep again changes nothing"


async def test_reading_a_large_request_lets_other_tasks_run(make_pipeline: Any) -> None:
    """A batch reads thousands of records (32 requests of 100 customers: about 3,200 reads, 130-280 ms of
    loop time measured at 100,000 customers). Read in one go, no live transaction got in meanwhile; the agent
    yields to the event loop every few dozen reads."""
    pipeline, _out = make_pipeline("agents.transactions", "agents.sweep")
    partitions = pipeline.settings.topic_partitions
    group = [c for c in (f"cust-r{i}" for i in range(2000)) if partition_of(c, partitions) == 2][:200]
    store = pipeline.services["customer-store"]
    loop_steps = 0
    steps_at_read: list[int] = []
    read_stored = store.read_stored

    def counting_read(customer_id: str) -> Any:
        steps_at_read.append(loop_steps)
        return read_stored(customer_id)

    async def count_loop_steps() -> None:
        nonlocal loop_steps
        while True:
            loop_steps += 1
            await asyncio.sleep(0)

    store.read_stored = counting_read
    counter = asyncio.ensure_future(count_loop_steps())
    try:
        await run_sweep(pipeline, [(group[0].encode(), sweep_request(group[0], "r1", more_customer_ids=group[1:]))],
                        partition=2)
    finally:
        counter.cancel()
    assert len(steps_at_read) == 200
    assert len(set(steps_at_read)) >= 3, "the other task ran at least twice while 200 records were read"


async def test_a_group_with_a_customer_of_another_partition_is_refused_whole(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions", "agents.sweep")
    ga = ON_TWO[0]
    await put_all(pipeline.app.agents["transactions"], [gym(i, ga) for i in range(5)])
    request = sweep_request(ga, "m1", more_customer_ids=[ON_ONE])
    await run_sweep(pipeline, [(ga.encode(), request)], partition=2)

    assert not [r for r in out["scores"].records if r.value], "nothing of a refused request is evaluated"
    (dead,) = out["sweep.dlq"].records
    headers = dict(dead.headers)
    assert headers["dlq.reason"] == b"invalid_record"
    assert f"more_customer_ids: '{ON_ONE}' is on partition 1, not on this request's 2" in headers["dlq.error"].decode()
    totals = latest_progress(out, "m1")
    assert (totals["customers"], totals["errors"]) == (2, 2), "counted, so the sweep still finishes"


async def test_erasure_deletes_features_and_tombstones_scores(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions", "agents.customers")
    await put_all(
        pipeline.app.agents["transactions"],
        [netflix(i, "10.99", customer="cust-e") for i in range(4)] + [netflix(4, "12.99", customer="cust-e")],
    )
    had = {k for k, v in scores_of(out["scores"]).items() if v is not None}
    assert had
    event = default_codec().encode(
        "CustomerLifecycle",
        {
            "event_id": "l1",
            "customer_id": "cust-e",
            "kind": "CustomerErased",
            "occurred_at": AS_OF,
            "consent_id": None,
            "permissions": [],
            "expires_at": None,
            "source": "test",
            "reason": None,
        },
    )
    async with pipeline.app.agents["customers"].test_context() as ctx:
        await ctx.put(event, key=b"cust-e")
    assert b"cust-e" not in pipeline.tables["customers"] and b"cust-e" not in pipeline.tables["score-books"]
    latest = scores_of(out["scores"])
    assert all(latest[k] is None for k in had)


_ = encode  # re-exported helper used by other agent tests
