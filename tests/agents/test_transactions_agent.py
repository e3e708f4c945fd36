"""The transactions agent on Faust's test harness: features, scores, alerts, duplicates, dead letters."""

from __future__ import annotations

import json
import marshal
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from core.customer import CustomerRecord
from core.features import features_at
from schemas.codec import default_codec
from schemas.examples import example_transaction

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def netflix(n: int, amount: str, customer: str = "cust-a", **over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": customer,
        "event_id": f"e-{customer}-{n}",
        "TransactionId": f"{customer}-nflx-{n}",
        "TransactionReference": f"ref-{customer}-{n}",
        "BookingDateTime": (START + timedelta(days=30 * n)).isoformat(),
        "received_at": int((START + timedelta(days=30 * n, minutes=5)).timestamp() * 1000),
        "TransactionInformation": "NETFLIX.COM 866-579",
        "MerchantDetails": {"MerchantName": "Netflix", "MerchantCategoryCode": "4899"},
        "Amount": {"Amount": amount, "Currency": "GBP"},
    }
    return example_transaction(**(fields | over))


def encode(record: dict[str, Any]) -> bytes:
    return default_codec().encode("Transaction", record)


def scores_of(recorder: Any) -> dict[str, Any]:
    """Latest value per score key, as the compacted topic would keep it (None = tombstone)."""
    latest: dict[str, Any] = {}
    for r in recorder.records:
        latest[r.key.decode()] = None if r.value is None else json.loads(r.value)
    return latest


async def put_all(agent: Any, records: list[dict[str, Any]]) -> None:
    async with agent.test_context() as ctx:
        for record in records:
            await ctx.put(encode(record), key=record["customer_id"].encode())


async def test_price_rise_alerts_once_and_replay_changes_nothing(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions")
    agent = pipeline.app.agents["transactions"]
    history = [netflix(i, "10.99") for i in range(4)] + [netflix(4, "12.99")]
    await put_all(agent, history)

    alerts = [default_codec().decode(r.value, expect="Alert") for r in out["alerts"].records]
    rises = [a for a in alerts if a["rule_id"] == "subscription_price_rise"]
    assert len(rises) == 1, alerts
    assert rises[0]["item_key"].lower() == "netflix"
    assert "£10.99 to £12.99" in rises[0]["message"]
    assert scores_of(out["scores"])["cust-a#subscription_price_rise"]["score"] > 0

    tables = pipeline.tables
    record = CustomerRecord.from_bytes(tables["customers"][b"cust-a"], tables["score-books"][b"cust-a"])
    assert record.book.scores["subscription_price_rise"], "the book is in its own table"
    recurring = features_at(record.state, record.as_of_datetime)["recurring"]
    assert [(r["merchant"].lower(), r["last_amount"]) for r in recurring] == [("netflix", 12.99)]

    emitted = (len(out["scores"].records), len(out["alerts"].records))
    await put_all(agent, history)  # redelivery of everything: duplicates, nothing new downstream
    assert (len(out["scores"].records), len(out["alerts"].records)) == emitted
    assert out["transactions.dlq"].records == []


async def test_bad_messages_go_to_the_dead_letter_topic_and_the_rest_is_processed(make_pipeline: Any) -> None:
    pipeline, out = make_pipeline("agents.transactions")
    agent = pipeline.app.agents["transactions"]
    async with agent.test_context() as ctx:
        await ctx.put(b"not avro at all", key=b"cust-b")
        await ctx.put(encode(netflix(0, "10.99", customer="cust-b")), key=b"someone-else")
        await ctx.put(encode(netflix(1, "-3.00", customer="cust-b")), key=b"cust-b")
        await ctx.put(encode(netflix(2, "10.99", customer="cust-b")), key=b"cust-b")
    dead = out["transactions.dlq"].records
    assert len(dead) == 3
    reasons = [dict(d.headers)["dlq.reason"] for d in dead]
    assert reasons == [b"undecodable", b"invalid_record", b"invalid_record"]
    assert dead[0].value == b"not avro at all"
    assert dict(dead[0].headers)["dlq.origin.topic"] == b"transactions"
    assert b"customer_id" in dict(dead[1].headers)["dlq.error"]
    assert b"Amount" in dict(dead[2].headers)["dlq.error"]
    assert b"cust-b" in pipeline.tables["customers"]  # the good one was folded


async def test_processing_failure_dead_letters_only_the_failing_message(
    make_pipeline: Any, monkeypatch: Any
) -> None:
    pipeline, out = make_pipeline("agents.transactions")
    agent = pipeline.app.agents["transactions"]
    import agents.transactions as module

    real = module.apply_transactions

    def fail_on_poison(record: Any, txns: Any, catalogue: Any, customer_id: str) -> Any:
        if any(t.transaction_id.endswith("-2") for t in txns):
            raise RuntimeError("boom")
        return real(record, txns, catalogue, customer_id)

    monkeypatch.setattr(module, "apply_transactions", fail_on_poison)
    await put_all(agent, [netflix(i, "10.99", customer="cust-c") for i in range(4)])
    dead = out["transactions.dlq"].records
    assert len(dead) == 1
    assert dict(dead[0].headers)["dlq.reason"] == b"processing_failed"
    assert b"RuntimeError: boom" in dict(dead[0].headers)["dlq.error"]
    assert default_codec().decode(dead[0].value)["TransactionId"] == "cust-c-nflx-2"


async def test_each_transaction_taken_in_is_timed_from_its_kafka_timestamp(make_pipeline: Any) -> None:
    """The age histogram tells a delay before the agent (broker, fetcher, Faust's buffers) from processing."""
    from prometheus_client import REGISTRY

    def observed() -> tuple[float, float]:
        labels = {"topic": "transactions"}
        count = REGISTRY.get_sample_value("nudge_event_age_seconds_count", labels) or 0.0
        under_a_minute = REGISTRY.get_sample_value("nudge_event_age_seconds_bucket", {**labels, "le": "60.0"}) or 0.0
        return count, under_a_minute

    pipeline, _out = make_pipeline("agents.transactions")
    count, recent = observed()
    await put_all(pipeline.app.agents["transactions"], [netflix(i, "10.99", customer="cust-age") for i in range(3)])
    after_count, after_recent = observed()
    assert after_count - count == 3
    assert after_recent - recent == 3, "put just now: younger than a minute"


async def test_a_record_stored_before_the_book_had_its_own_table_keeps_its_book(make_pipeline: Any) -> None:
    """A worker upgraded over a table of format-2 records (the book inside): the next transaction moves the
    book to score-books, and the scores it already emitted are not emitted again."""
    old, old_out = make_pipeline("agents.transactions")
    history = [netflix(i, "10.99") for i in range(4)] + [netflix(4, "12.99")]
    await put_all(old.app.agents["transactions"], history)
    record = CustomerRecord.from_bytes(old.tables["customers"][b"cust-a"], old.tables["score-books"][b"cust-a"])
    assert record.book.scores
    state = record.state.to_bytes()
    book = marshal.dumps((record.book.scores, sorted(record.book.firing), record.book.last_alert, record.as_of), 4)

    pipeline, out = make_pipeline("agents.transactions")
    pipeline.tables["customers"].data[b"cust-a"] = struct.pack(">BII", 2, len(state), len(book)) + state + book
    await put_all(pipeline.app.agents["transactions"], history[-1:])  # a redelivery: nothing changes
    assert out["scores"].records == [] and out["alerts"].records == []
    moved = CustomerRecord.from_bytes(pipeline.tables["customers"][b"cust-a"])
    assert moved.book.scores == {}, "the customers value is now the features alone"
    assert CustomerRecord.from_bytes(None, pipeline.tables["score-books"][b"cust-a"]).book == record.book


async def test_scores_lost_before_acknowledgement_are_sent_again_by_the_redelivery(make_pipeline: Any) -> None:
    """A crash after the features were written but before the broker had the scores: the transactions are
    redelivered (their offsets were never committed) and are duplicates now. No book claims the lost
    scores, and a batch of duplicates re-scores every real-time rule, so they are sent again; once sent
    and booked, a further redelivery sends nothing."""
    pipeline, out = make_pipeline("agents.transactions")
    agent = pipeline.app.agents["transactions"]
    history = [netflix(i, "10.99") for i in range(4)] + [netflix(4, "12.99")]

    out["scores"].refuse_with = RuntimeError("the worker died before the broker had them")
    out["alerts"].refuse_with = RuntimeError("the worker died before the broker had them")
    await put_all(agent, history)
    lost = {k: (v or {}).get("score") for k, v in scores_of(out["scores"]).items()}
    assert lost.get("cust-a#subscription_price_rise"), "the price rise was scored (and lost)"
    assert b"cust-a" not in pipeline.tables["score-books"], "no book claims what the broker never had"

    out["scores"].refuse_with = out["alerts"].refuse_with = None
    out["scores"].records.clear()
    out["alerts"].records.clear()
    await put_all(agent, history)  # the redelivery: every transaction is already folded
    assert {k: (v or {}).get("score") for k, v in scores_of(out["scores"]).items()} == lost
    rises = [default_codec().decode(r.value, expect="Alert") for r in out["alerts"].records]
    assert [a["rule_id"] for a in rises] == ["subscription_price_rise"], "the lost alert is sent again"

    sent = (len(out["scores"].records), len(out["alerts"].records))
    await put_all(agent, history)
    assert (len(out["scores"].records), len(out["alerts"].records)) == sent, "booked: nothing a third time"
