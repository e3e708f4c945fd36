"""DynamoDB sink throughput: Kafka → Kafka Connect (nudgestream's sink) → DynamoDB, against the raw ceiling.

Run: ``.venv/bin/python -m bench.bench_sink [--records 200000] [--tasks 2] [--in-flight 4]``.

Uses the local stack of the settings (starting it like ``nudge stack up`` if needed, stopping only what it
started). To leave the real ``scores`` topic and ``insights`` table alone, it registers a second instance
of the same connector on a topic and a table of its own, all deleted afterwards. It then prints:

* produce rate (confluent-kafka producer, acks=all) of N score records with N distinct keys;
* raw Kafka ceiling: a bare confluent-kafka consumer reading the same topic from the start;
* DynamoDB ceiling: aioboto3 BatchWriteItem calls straight into the same DynamoDB (no Kafka, no Connect),
  as many at a time as the sink runs (tasks × in-flight), on a table of its own;
* sink rate: N items divided by the time from registering the connector until the table holds all N
  (moto's DescribeTable ItemCount is live; on real AWS it lags by hours, so there the end is the time the
  connector's consumer group has committed every offset, which Connect does every offset.flush.interval.ms);
* the sink's steady rate (from the first item seen), and sink / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import aioboto3
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connectors import sink
from stack import launcher
from stack.dynamodb import INSIGHTS_KEY_SCHEMA, dynamodb_client_kwargs, dynamodb_is_local
from streams.settings import Settings, load_settings

PARTITIONS = 4
STALL_S = 30.0  # lag 0 and no new item for this long: the sink is done, whatever the count


def score_value(customer: str, rule: str, i: int) -> bytes:
    """A realistic score record (about 330 bytes), like the ones the sweep writes."""
    return json.dumps({
        "customer_id": customer,
        "rule_id": rule,
        "rule_version": 3,
        "score": round(0.0001 * (i % 10_000), 4),
        "reasons": ["balance below 200.00 for 3 days", "salary expected in 6 days"],
        "evaluated_at": "2026-11-25T01:02:03.456789+00:00",
        "sweep_id": "bench-sweep",
        "items": [{"merchant": "NETFLIX.COM", "amount": 10.99, "due": "2026-12-03"}],
        "message": "Your balance may not cover Netflix on 3 December.",
    }).encode()


def produce(settings: Settings, topic: str, records: int, rules: int) -> float:
    producer = Producer({
        "bootstrap.servers": settings.bootstrap_servers, "acks": "all", "linger.ms": 20,
        "batch.size": 1_000_000, "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
    })
    t0 = time.perf_counter()
    for i in range(records):
        customer, rule = f"bench-c{i // rules:07d}", f"rule-{i % rules:02d}"
        while True:
            try:
                producer.produce(topic, key=f"{customer}#{rule}", value=score_value(customer, rule, i))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("producer could not deliver every record")
    return time.perf_counter() - t0


def raw_consume(settings: Settings, topic: str, records: int) -> float:
    """The Kafka ceiling: a bare consumer reading (and touching) every record, timed from assign() to the last."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"bench-raw-{uuid.uuid4().hex}",
        "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
    })
    t0 = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    nbytes = 0
    deadline = time.monotonic() + 300
    while seen < records and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error():
                continue
            seen += 1
            nbytes += len(msg.value() or b"")
    elapsed = time.perf_counter() - t0
    consumer.close()
    if seen < records:
        raise RuntimeError(f"raw consumer saw only {seen} of {records} records")
    return elapsed


async def direct_write(settings: Settings, table: str, items: int, concurrency: int) -> float:
    """The DynamoDB ceiling: aioboto3 BatchWriteItem of 25 distinct items, `concurrency` calls at a time,
    straight from Python (no Kafka, no Connect)."""
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        def request(i: int) -> dict[str, Any]:
            customer, rule = f"direct-c{i // 30:07d}", f"rule-{i % 30:02d}"
            doc = json.loads(score_value(customer, rule, i))
            item = {k: _attr(v) for k, v in doc.items()}
            return {"PutRequest": {"Item": item}}

        queue = list(range(0, items, 25))

        async def worker() -> None:
            while queue:
                start = queue.pop()
                pending = [request(i) for i in range(start, min(items, start + 25))]
                while pending:
                    out = await ddb.batch_write_item(RequestItems={table: pending})
                    pending = out.get("UnprocessedItems", {}).get(table, [])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_attr(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _attr(v) for k, v in value.items()}}
    return {"NULL": True}


async def create_table(settings: Settings, table: str) -> None:
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        await ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in INSIGHTS_KEY_SCHEMA],
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in INSIGHTS_KEY_SCHEMA],
            BillingMode="PAY_PER_REQUEST",
        )
        await ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


async def delete_table(settings: Settings, table: str) -> None:
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        await ddb.delete_table(TableName=table)


async def missing_keys(settings: Settings, table: str, records: int, rules: int) -> list[tuple[str, str, int]]:
    """The (customer, rule, partition-independent index) of every produced key absent from the table."""
    keys = [(f"bench-c{i // rules:07d}", f"rule-{i % rules:02d}", i) for i in range(records)]
    found: set[tuple[str, str]] = set()
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        for start in range(0, records, 100):
            request: dict[str, Any] | None = {table: {
                "Keys": [{"customer_id": {"S": c}, "rule_id": {"S": r}} for c, r, _ in keys[start:start + 100]],
                "ProjectionExpression": "customer_id, rule_id", "ConsistentRead": True,
            }}
            while request:
                out = await ddb.batch_get_item(RequestItems=request)
                found |= {(i["customer_id"]["S"], i["rule_id"]["S"]) for i in out["Responses"].get(table, [])}
                request = out.get("UnprocessedKeys") or None
    return [k for k in keys if (k[0], k[1]) not in found]


def group_lag(admin: AdminClient, group: str, topic: str, ends: dict[int, int]) -> int:
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in ends])]
    try:
        result = admin.list_consumer_group_offsets(request)[group].result()
    except Exception:  # the group does not exist until the connector's consumer joins
        return sum(ends.values())
    committed = {tp.partition: max(tp.offset, 0) for tp in result.topic_partitions}
    return sum(end - committed.get(p, 0) for p, end in ends.items())


async def wait_for_sink(
    settings: Settings, table: str, topic: str, group: str, records: int, t_registered: float
) -> dict[str, float]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    probe = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"bench-probe-{uuid.uuid4().hex}"})
    ends = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    probe.close()
    local = dynamodb_is_local(settings)
    marks: dict[str, float] = {}
    deadline = time.perf_counter() + 1800
    async with aioboto3.Session().client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        last_report = time.perf_counter()
        last_count, count_since = -1, time.perf_counter()
        while time.perf_counter() < deadline:
            count = (await ddb.describe_table(TableName=table))["Table"]["ItemCount"] if local else 0
            now = time.perf_counter()
            if count and "first_item" not in marks:
                marks["first_item"] = now
            if count != last_count:
                last_count, count_since = count, now
            lag = group_lag(admin, group, topic, ends)
            if lag == 0 and "lag_zero" not in marks:
                marks["lag_zero"] = now
            if now - last_report > 10:
                print(f"  … {now - t_registered:5.1f} s: {count} items, lag {lag}", flush=True)
                last_report = now
            if (local and count >= records) or (not local and lag == 0):
                marks["done"] = now
                return marks
            if local and lag == 0 and now - count_since > STALL_S:
                # Every offset is committed (so every write was acknowledged) and the count stands still.
                marks["done"] = count_since
                marks["missing"] = records - count
                return marks
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the sink did not finish within 30 minutes (marks {marks})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="score records, all distinct keys")
    parser.add_argument("--rules", type=int, default=30, help="rules per customer (keys are customer#rule)")
    parser.add_argument("--tasks", type=int, default=2, help="connector tasks.max")
    parser.add_argument("--in-flight", type=int, default=4, help="max.in.flight.requests per task")
    parser.add_argument("--direct-items", type=int, default=50_000, help="items of the direct-write ceiling run")
    args = parser.parse_args(argv)

    settings = load_settings()
    started = launcher.up(settings, echo=lambda line: print(f"[stack] {line}")).started
    run = uuid.uuid4().hex[:8]
    topic, table, name = f"bench.scores.{run}", f"bench_insights_{run}", f"bench-dynamodb-sink-{run}"
    direct_table = f"bench_direct_{run}"
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    results: dict[str, Any] = {}
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})])[topic].result()
        asyncio.run(create_table(settings, table))
        asyncio.run(create_table(settings, direct_table))

        produce_s = produce(settings, topic, args.records, args.rules)
        results["produce"] = args.records / produce_s
        print(f"produced {args.records} records in {produce_s:.1f} s: {results['produce']:,.0f} records/s")

        raw_s = raw_consume(settings, topic, args.records)
        results["raw"] = args.records / raw_s
        print(f"raw ceiling (bare confluent-kafka consumer): {raw_s:.2f} s, {results['raw']:,.0f} records/s")

        direct_items = min(args.records, args.direct_items)
        direct_s = asyncio.run(direct_write(settings, direct_table, direct_items, args.tasks * args.in_flight))
        results["direct"] = direct_items / direct_s
        print(f"DynamoDB ceiling (aioboto3 BatchWriteItem, {args.tasks * args.in_flight} concurrent, no Kafka): "
              f"{direct_items} items in {direct_s:.1f} s, {results['direct']:,.0f} items/s")

        t_registered = time.perf_counter()
        sink.register(settings, name=name, overrides={
            "topics": topic, "dynamodb.table": table, "tasks.max": str(args.tasks),
            "max.in.flight.requests": str(args.in_flight),
            "errors.deadletterqueue.topic.name": f"{topic}.dlq",
        })
        marks = asyncio.run(
            wait_for_sink(settings, table, topic, f"connect-{name}", args.records, t_registered)
        )
        if marks.get("missing"):
            print(f"WARNING: the connector committed every offset but the table holds "
                  f"{args.records - int(marks['missing'])} of {args.records} items "
                  f"({int(marks['missing'])} missing); rates below are of the items present")
            absent = asyncio.run(missing_keys(settings, table, args.records, args.rules))
            print(f"missing keys (customer, rule, produce index): {absent[:20]}")
            args.records -= int(marks["missing"])
        total_s = marks["done"] - t_registered
        steady_s = marks["done"] - marks.get("first_item", t_registered)
        results["sink"] = args.records / total_s
        print(f"sink: {args.records} items in {total_s:.1f} s from registration: {results['sink']:,.0f} items/s "
              f"({args.tasks} tasks × {args.in_flight} in flight)")
        print(f"sink steady (from the first item): {args.records / steady_s:,.0f} items/s")
        if "lag_zero" in marks:
            print(f"consumer-group lag 0 after {marks['lag_zero'] - t_registered:.1f} s "
                  "(offsets are committed every offset.flush.interval.ms)")
        print(f"sink / raw Kafka ceiling: {results['sink'] / results['raw']:.3f}; "
              f"sink / DynamoDB ceiling: {results['sink'] / results['direct']:.2f}")
    finally:
        try:
            sink.unregister(settings, name)
        except Exception as exc:  # cleanup must not hide the benchmark's own error
            print(f"cleanup: could not delete connector {name}: {exc}")
        for future in admin.delete_topics([topic, f"{topic}.dlq"], request_timeout=30).values():
            try:
                future.result()
            except Exception as exc:
                print(f"cleanup: {exc}")
        for name_ in (table, direct_table):
            try:
                asyncio.run(delete_table(settings, name_))
            except Exception as exc:
                print(f"cleanup: could not delete table {name_}: {exc}")
        if started:
            launcher.down(settings, only=started, echo=lambda line: print(f"[stack] {line}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
