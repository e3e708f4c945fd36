"""Sweep throughput on the real stack with 1 and 2 `nudge worker` processes, the raw ceiling, memory, RocksDB
size per customer, and whether a sweep holds up real-time transactions.

Run: ``.venv/bin/python -m bench.bench_sweep [--customers 100000] [--distinct 500] [--months 3]``
(the local stack must be up: ``nudge stack up``).

Loading. Folding histories through a worker runs at a few hundred transactions/s on this shared machine
(see bench_pipeline), far too slow for 10^4..10^5 customers. So ``--distinct`` simulated customers
(``--months`` of history) are folded in pure code with the worker's own function
(:func:`core.customer.apply_transactions`, the local rule catalogue, which must equal the published one), and
their record bytes are written under ``--customers`` customer ids (the distinct ones, then numbered copies)
to the workers' ``<app id>-customers-changelog`` topic before any worker starts: the workers recover their
RocksDB tables from it exactly as after a restart. A copy costs the sweep what an original costs (nothing is
cached across customers).

Then, with live transactions of the distinct customers trickling in at ``--trickle`` tx/s throughout:
  * baseline: trickle only, no sweep (1 worker);
  * with 1 worker evaluating in its sweep process (streams/sweep_processes.py, the default): sweep 1 (the first
    one, it emits every score), a repeat (changes little), and a "next night" sweep as of a day later (windows
    advance: many scores change, as in a real nightly run);
  * the same worker restarted with NUDGE_SWEEP_PROCESSES=0 (evaluating on its own event loop, as before the
    sweep processes): a repeat and the next night after that;
  * restarted with its sweep process again: a repeat and the next night after that (A-B-A: whatever the
    machine did meanwhile shows in the two A rows);
  * a next night with the DynamoDB sink paused while the sweep runs (Connect's pause; it takes in the sweep's
    scores once resumed, and that rate is printed): the sweep without the local DynamoDB stand-in, which writes
    every item in Python, on the same two cores (against AWS that work is not on this machine); then the same
    with w1 restarted with 2 sweep processes, 32 requests a batch and one batch at a time (the cores the
    stand-in leaves free; two batches at once on top of that cost live transactions over a second at p99),
    and restarted with the defaults again;
  * a second worker joins (rebalance, it recovers its partitions from the changelog), then a repeat with 2
    workers;
  * raw ceiling: a bare confluent-kafka consumer reading that last sweep's requests.
Each sweep is ``publish_sweep`` of all customers with every rule of the catalogue, reason manual,
``sweep_customers_per_request`` customers of a partition per request message (NUDGE_SWEEP_CUSTOMERS_PER_REQUEST,
default 100). evaluations/s = sum of the ``evaluations`` counters of ``read_progress`` / (latest counter update −
start of publishing). Trickle latency = produce → first score naming the transaction, for transactions
produced while the sweep ran; "age at agent" = how old transactions were when the transactions agent took them
in (its ``nudge_event_age_seconds`` histogram). RSS includes the workers' sweep processes. Where the cores
went during each sweep: CPU seconds of the workers, their sweep processes, each stack service, this bench and
the rest of the machine (/proc), since on one small machine the sink and DynamoDB Local take in the sweep's
scores on the same cores while it runs. Prints figures
against the target (≥200,000 evaluations/s), with the load average. Never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import (
    OutputCollector,
    Pacer,
    bucket_quantile,
    children_of,
    cpu_seconds,
    delete_app_topics,
    dir_bytes,
    exit_on_sigterm,
    fmt,
    free_port,
    live_records,
    load_average,
    machine_busy_seconds,
    percentiles,
    print_table,
    publish_catalogue,
    scrape_buckets,
    scrape_counter,
    simulated,
    stack_pids,
    tree_rss_bytes,
    wait_committed,
)
from connectors import sink
from core.customer import CustomerRecord, apply_transactions
from core.rules.catalogue import load_catalogue
from core.scoring import Origin
from core.sweeping import StoredCustomer, SweepJob, rule_sources, sweep_records
from schemas.codec import default_codec
from schemas.records import to_transaction
from streams.producer import make_producer
from streams.settings import PROJECT_ROOT, Settings, load_settings
from streams.sweeps import publish_sweep, read_progress
from tests.integration.workers import WorkerGroup, end_offsets, stop_process

MIB = 1024 * 1024
SINK_GROUP = f"connect-{sink.connector_name()}"  # Kafka Connect's consumer group for a sink connector


@dataclass
class SweepRun:
    label: str
    workers: int
    customers: int
    evaluations: int
    changed: int
    skipped: int
    errors: int
    publish_s: float
    compute_s: float
    detect_s: float
    load: str
    trickle_ms: list[float]
    trickle_worker_ms: list[float]
    trickle_sent: int
    age_at_agent: tuple[float, float, int]  # p50 and p99 bucket bounds (s) of the transactions' age, count
    peak_rss: dict[str, int]
    last_offsets: dict[int, int]
    cpu_s: dict[str, float]  # CPU seconds each part of the machine used from publishing to the finish marker
    cpu_wall_s: float  # the wall time those were measured over


def fold_customers(months: int, distinct: int) -> tuple[list[str], list[tuple[bytes, bytes]], list[object], float, int]:
    """Simulate and fold ``distinct`` customers in pure code: (ids, (``customers`` value, ``score-books`` value)
    each, customers, seconds, txns)."""
    catalogue = load_catalogue(PROJECT_ROOT / "rules")
    codec = default_codec()
    _prefix, customers = simulated(distinct, months)
    t0 = time.perf_counter()
    ids, blobs, txns = [], [], 0
    for customer in customers:
        cid = customer.profile.customer_id
        record = CustomerRecord()
        batch = [to_transaction(codec.decode(codec.encode("Transaction", r))) for r in customer.records]
        for i in range(0, len(batch), 50):  # about what one worker batch holds for a customer
            apply_transactions(record, batch[i : i + 50], catalogue, cid)
        txns += len(batch)
        ids.append(cid)
        blobs.append((record.to_bytes(), record.book_bytes()))
    return ids, blobs, list(customers), time.perf_counter() - t0, txns


def compute_ceiling(ids: list[str], blobs: list[tuple[bytes, bytes]], rule_ids: list[str],
                    nights_later: int) -> tuple[float, int]:
    """The evaluation alone, no Kafka: ``core.sweeping.sweep_records`` over the distinct customers' records in
    this process, as a sweep process runs it (one core; CPU time). Returns (evaluations per CPU second,
    evaluations)."""
    catalogue = load_catalogue(PROJECT_ROOT / "rules")
    job = SweepJob(rule_sources([catalogue[r] for r in rule_ids]), (), datetime.now(UTC) + timedelta(days=nights_later),
                   Origin("sweep", "ceiling", "manual"), alerts_enabled=False, dry_run=False)
    pairs = [StoredCustomer(cid, record, book) for cid, (record, book) in zip(ids, blobs, strict=True)]
    sweep_records(job, pairs[:20])  # compile and warm up
    t0 = time.process_time()
    results = sweep_records(job, pairs)
    cpu = time.process_time() - t0
    evaluations = sum(r.evaluations for r in results)
    return evaluations / cpu, evaluations


def load_changelog(settings: Settings, app_id: str, ids: list[str], blobs: list[tuple[bytes, bytes]],
                   total: int) -> tuple[list[str], float]:
    """Write ``total`` customers (the distinct ones, then copies) to the two tables' changelog topics."""
    topics = (f"{app_id}-customers-changelog", f"{app_id}-score-books-changelog")
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    new = [NewTopic(t, settings.topic_partitions, 1, config={"cleanup.policy": "compact"}) for t in topics]
    for future in admin.create_topics(new).values():
        future.result()
    producer = make_producer(settings, client_id="bench-sweep-load")
    all_ids: list[str] = []
    t0 = time.perf_counter()
    for n in range(total):
        cid = ids[n] if n < len(ids) else f"{ids[n % len(ids)]}-c{n}"
        for topic, value in zip(topics, blobs[n % len(blobs)], strict=True):
            while True:
                try:
                    producer.produce(topic, key=cid.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        all_ids.append(cid)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("could not write every customer record to the changelog")
    return all_ids, time.perf_counter() - t0


def raw_read(settings: Settings, start: dict[tuple[str, int], int], last: dict[int, int]) -> tuple[float, int, int]:
    """A bare consumer reading and decoding the sweep requests in [start, last] of each partition:
    (seconds from the first message, messages, customers named in them)."""
    codec = default_codec()
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": f"bench-sweep-raw-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "fetch.max.bytes": 50 * 1024 * 1024,
    })
    remaining = {p: o for p, o in last.items()}
    count = customers = 0
    try:
        t0: float | None = None  # from the first message: not the consumer's start-up (~1 s here)
        consumer.assign([TopicPartition("sweep", p, start[("sweep", p)]) for p in remaining])
        while remaining:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error():
                    continue
                t0 = time.perf_counter() if t0 is None else t0
                count += 1
                customers += 1 + len(codec.decode(msg.value(), expect="SweepRequest")["more_customer_ids"])
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                if offset >= remaining.get(partition, 1 << 62):
                    remaining.pop(partition, None)
        return time.perf_counter() - (t0 or time.perf_counter()), count, customers
    finally:
        consumer.close()


class Trickle:
    """Live transactions at a low steady rate in a thread, with a collector of their scores."""

    def __init__(self, settings: Settings, customers: list[object], rate: float, tag: str) -> None:
        self.pacer = Pacer(make_producer(settings, client_id="bench-trickle"), rate)
        self.records = live_records(customers, tag)  # type: ignore[arg-type]
        self.collector = OutputCollector(settings, topics=("scores",))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.pacer.run, args=(self.records, 1e9, self.stop), daemon=True)

    def __enter__(self) -> Trickle:
        self.collector.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        time.sleep(2.0)
        self.collector.__exit__()

    def window(self, since: float, until: float) -> tuple[list[float], list[float], int]:
        """Latencies (ms) of the transactions produced in [since, until) that led to a score (as received,
        and as stamped by the worker's producer), and how many transactions were produced then."""
        sent_at = dict(self.pacer.sent_at)  # a snapshot: the trickle thread keeps adding to it
        sent = sum(1 for t in sent_at.values() if since <= t < until)
        received = self.collector.latencies(sent_at, since, until)["scores"]
        created = self.collector.latencies(sent_at, since, until, stage="created")["scores"]
        return received, created, sent


def wait_sink_drained(settings: Settings) -> tuple[float, int]:
    """Wait until the DynamoDB sink has taken in every score written so far (its committed offsets reach
    the ``scores`` end offsets), so that each sweep starts with Connect and DynamoDB Local idle instead of
    sharing the 2 cores with the previous sweep's items. Returns (seconds waited, records drained)."""
    ends = end_offsets(settings, ["scores"])
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": SINK_GROUP})
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
        behind = sum(max(0, ends[(str(c.topic), int(c.partition or 0))] - max(c.offset, 0)) for c in committed)
    finally:
        consumer.close()
    t0 = time.perf_counter()
    wait_committed(settings, SINK_GROUP, ends, timeout_s=1800)
    return time.perf_counter() - t0, behind


def age_buckets(ports: dict[str, int]) -> dict[float, float]:
    """Every worker's histogram of how old transactions are when the transactions agent takes them in."""
    total: dict[float, float] = {}
    for port in ports.values():
        for le, count in scrape_buckets(port, "nudge_event_age_seconds", topic="transactions").items():
            total[le] = total.get(le, 0.0) + count
    return total


CPU_PARTS = ("worker", "sweep processes", "kafka", "connect", "dynamodb", "bench", "rest of the machine")


def cpu_snapshot(settings: Settings, group: WorkerGroup) -> dict[str, float]:
    """Cumulative CPU seconds: the workers' main processes, their sweep processes, each stack service, this
    bench (trickle producer, collectors), and what the machine spent besides."""
    parts = dict.fromkeys(CPU_PARTS, 0.0)
    for proc in group.procs.values():
        parts["worker"] += cpu_seconds(proc.pid)
        parts["sweep processes"] += sum(cpu_seconds(c) for c in children_of(proc.pid))
    for service, pid in stack_pids(settings).items():
        parts[service] += cpu_seconds(pid)
    parts["bench"] = sum(os.times()[:2])
    parts["rest of the machine"] = machine_busy_seconds() - sum(parts.values())
    return parts


def run_sweep(settings: Settings, label: str, group: WorkerGroup, customers: list[str], rule_ids: list[str],
              trickle: Trickle, ports: dict[str, int], nights_later: int = 0, sink_paused: bool = False) -> SweepRun:
    waited, drained = wait_sink_drained(settings)
    print(f"{label}: waited {waited:.1f} s for the DynamoDB sink to take in {drained:,} scores"
          + (f" ({drained / waited:,.0f} items/s)" if drained and waited > 1 else ""))
    if sink_paused:
        sink.set_paused(settings, True)
    try:
        return _timed_sweep(settings, label, group, customers, rule_ids, trickle, ports, nights_later)
    finally:
        if sink_paused:
            sink.set_paused(settings, False)
            waited, drained = wait_sink_drained(settings)
            print(f"{label}: the sink, resumed, took in the sweep's {drained:,} scores in {waited:.1f} s"
                  + (f" ({drained / waited:,.0f} items/s)" if drained and waited > 1 else ""))


def _timed_sweep(settings: Settings, label: str, group: WorkerGroup, customers: list[str], rule_ids: list[str],
                 trickle: Trickle, ports: dict[str, int], nights_later: int) -> SweepRun:
    load_before = load_average()
    peak = {n: 0 for n in group.procs}
    ages_before = age_buckets(ports)
    cpu_before = cpu_snapshot(settings, group)
    t_wall0 = time.time()
    t0 = time.perf_counter()
    as_of = datetime.now(UTC) + timedelta(days=nights_later)
    start = publish_sweep(settings, customers, rule_ids=rule_ids, as_of=as_of, reason="manual")
    publish_s = time.perf_counter() - t0
    while True:
        for name, proc in group.procs.items():
            peak[name] = max(peak[name], tree_rss_bytes(proc.pid))
        progress = read_progress(settings).get(start.sweep_id)
        if progress is not None and progress.done:
            break
        if time.perf_counter() - t0 > 3600:
            raise TimeoutError(f"sweep {start.sweep_id} not done in an hour")
        time.sleep(0.5)
    detect_s = time.perf_counter() - t0
    cpu_after = cpu_snapshot(settings, group)
    ages_after = age_buckets(ports)
    p50, n_ages = bucket_quantile(ages_before, ages_after, 0.5)
    p99, _ = bucket_quantile(ages_before, ages_after, 0.99)
    t_wall1 = max(float(c.get("updated_at", 0)) for c in progress.partitions.values())
    latencies, worker_latencies, sent = trickle.window(t_wall0, t_wall1)
    return SweepRun(
        label, len(group.procs), progress.total("customers"), progress.total("evaluations"),
        progress.total("changed"), progress.total("skipped"), progress.total("errors"), publish_s,
        t_wall1 - t_wall0, detect_s, f"{load_before} -> {load_average()}", latencies, worker_latencies, sent,
        (p50, p99, n_ages), peak,
        start.last_offsets, {k: cpu_after[k] - cpu_before[k] for k in CPU_PARTS}, detect_s,
    )


def restart_w1(group: WorkerGroup, ports: dict[str, int], sweep_processes: str, batch_requests: int = 8,
               in_flight: int = 1) -> None:
    """Stop w1 and start it again with NUDGE_SWEEP_PROCESSES set (its RocksDB data dir is kept)."""
    stop_process(group.procs.pop("w1"))
    group.extra_env["NUDGE_SWEEP_PROCESSES"] = sweep_processes
    group.extra_env["NUDGE_SWEEP_BATCH_REQUESTS"] = str(batch_requests)
    group.extra_env["NUDGE_SWEEP_BATCHES_IN_FLIGHT"] = str(in_flight)
    t = time.perf_counter()
    group.start("w1", ports["w1"])
    group.wait_ready(timeout_s=1800)
    print(f"w1 restarted with NUDGE_SWEEP_PROCESSES={sweep_processes}, NUDGE_SWEEP_BATCH_REQUESTS={batch_requests}, "
          f"NUDGE_SWEEP_BATCHES_IN_FLIGHT={in_flight} and ready in {time.perf_counter() - t:.1f} s")


def wait_two_members(settings: Settings, group: WorkerGroup, ports: dict[str, int], timeout_s: float = 600) -> float:
    """After a worker joins: wait until the group is stable with every worker as a member and each worker
    has taken in a probe; returns seconds waited."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        desc = admin.describe_consumer_groups([group.app_id])[group.app_id].result()
        members = [m for m in desc.members if m.assignment and m.assignment.topic_partitions]
        if str(desc.state).endswith("STABLE") and len(members) == len(group.procs):
            before = {n: scrape_counter(p, "nudge_events_in_total", topic="sweep") or 0 for n, p in ports.items()}
            group.wait_ready(timeout_s=timeout_s)
            after = {n: scrape_counter(p, "nudge_events_in_total", topic="sweep") or 0 for n, p in ports.items()}
            if all(after[n] > before[n] for n in ports):
                return time.perf_counter() - t0
        time.sleep(1.0)
    raise TimeoutError("the second worker did not join")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the workers' tables")
    parser.add_argument("--distinct", type=int, default=500, help="distinct simulated customers (the rest are copies)")
    parser.add_argument("--months", type=int, default=3, help="months of history per simulated customer")
    parser.add_argument("--trickle", type=float, default=50.0, help="live transactions/s during the sweeps")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of trickle without a sweep")
    parser.add_argument("--sweep-processes", type=int, default=load_settings().sweep_processes,
                        help="sweep processes per worker in the rows that use them (NUDGE_SWEEP_PROCESSES)")
    args = parser.parse_args()
    exit_on_sigterm()

    settings = load_settings()
    run = uuid.uuid4().hex[:8]
    print(f"bench_sweep run {run}: load average {load_average()}; {args.sweep_processes} sweep process(es) per worker")
    print(publish_catalogue(settings))
    rule_ids = sorted(load_catalogue(PROJECT_ROOT / "rules"))
    ids, blobs, distinct, fold_s, txns = fold_customers(args.months, args.distinct)
    sizes = sorted(len(record) + len(book) for record, book in blobs)
    book_sizes = sorted(len(book) for _, book in blobs)
    print(f"{args.distinct} distinct customers x {args.months} months: {txns} transactions folded in pure code in "
          f"{fold_s:.1f} s ({txns / fold_s:,.0f} tx/s); record bytes (features + score book) p50 "
          f"{sizes[len(sizes) // 2]:,}, max {sizes[-1]:,}; score book alone p50 {book_sizes[len(book_sizes) // 2]:,}")
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{run}-"))
    group = WorkerGroup(settings, tmp, app_id=f"bench-sweep-{run}")
    group.extra_env["NUDGE_SWEEP_PROCESSES"] = str(args.sweep_processes)
    runs: list[SweepRun] = []
    try:
        customers, load_s = load_changelog(settings, group.app_id, ids, blobs, args.customers)
        print(f"{len(customers):,} customer records written to the changelog in {load_s:.1f} s; "
              f"{len(rule_ids)} rules per sweep request")
        ports = {"w1": free_port()}
        t = time.perf_counter()
        group.start("w1", ports["w1"])
        group.wait_ready(timeout_s=1800)
        print(f"w1 ready (table recovered from the changelog) in {time.perf_counter() - t:.1f} s; "
              f"RSS {tree_rss_bytes(group.procs['w1'].pid) / MIB:,.0f} MiB; load {load_average()}")

        with Trickle(settings, distinct, args.trickle, f"tr{run}-") as trickle:
            t_base0 = time.time()
            time.sleep(args.baseline)
            base_lat, base_worker, base_sent = trickle.window(t_base0, time.time() - 3.0)
            base_load = load_average()
            def sweep(label: str, nights_later: int = 0) -> None:
                runs.append(run_sweep(settings, label, group, customers, rule_ids, trickle, ports, nights_later))

            sweep("1: 1 worker, sweep process, first")
            sweep("2: 1 worker, sweep process, repeat")
            sweep("3: 1 worker, sweep process, next night", 1)
            restart_w1(group, ports, "0")
            sweep("4: 1 worker, in-process, repeat", 1)
            sweep("5: 1 worker, in-process, next night", 2)
            restart_w1(group, ports, str(args.sweep_processes))
            sweep("6: 1 worker, sweep process, repeat", 2)
            sweep("7: 1 worker, sweep process, next night", 3)
            runs.append(run_sweep(settings, "8: 1 worker, sweep process, next night, sink paused", group, customers,
                                  rule_ids, trickle, ports, 4, sink_paused=True))
            restart_w1(group, ports, "2", batch_requests=32, in_flight=1)
            runs.append(run_sweep(settings, "9: 1 worker, 2 sweep processes, 32 requests a batch, 1 in flight, next "
                                  "night, sink paused", group, customers, rule_ids, trickle, ports, 5, sink_paused=True))
            restart_w1(group, ports, str(args.sweep_processes))
            ports["w2"] = free_port()
            t = time.perf_counter()
            group.start("w2", ports["w2"])
            joined = wait_two_members(settings, group, ports)
            print(f"w2 joined, recovered and answering in {joined:.1f} s; load {load_average()}")
            since = end_offsets(settings, ["sweep"])
            sweep("10: 2 workers, sweep process, repeat", 5)
        raw_s, raw_n, raw_customers = raw_read(settings, since, runs[-1].last_offsets)
        ceiling, ceiling_n = compute_ceiling(ids, blobs, rule_ids, 1)

        rows = []
        for r in runs:
            rate = r.evaluations / r.compute_s
            rows.append([r.label, f"{r.customers:,}", f"{r.evaluations:,}", f"{r.changed:,}", str(r.skipped + r.errors),
                         f"{r.publish_s:.1f}", f"{r.compute_s:.1f}", fmt(rate), fmt(r.customers / r.compute_s),
                         f"{rate / 200_000:.0%}", f"{max(r.peak_rss.values()) / MIB:,.0f}", r.load])
        print_table(
            f"sweeps of {len(customers):,} customers x {len(rule_ids)} rules (wall = start of publishing -> last counter)",
            ["sweep", "customers", "evaluations", "changed", "skip+err", "publish s", "wall s", "evals/s",
             "customers/s", "vs 200k/s", "peak RSS MiB", "load before -> after"],
            rows,
        )
        rates = {r.label.split(":")[0]: r.evaluations / r.compute_s for r in runs}
        for kind, (a1, b, a2) in (("repeat", ("2", "4", "6")), ("next night", ("3", "5", "7"))):
            print(f"{kind} sweeps, sweep process / in-process (1 worker; mean of sweeps {a1} and {a2}, which ran before "
                  f"and after {b}): {(rates[a1] + rates[a2]) / 2 / rates[b]:.2f}x")
        print(f"next night with the sink paused / with it running (sweep 8 / mean of 3 and 7): "
              f"{rates['8'] / ((rates['3'] + rates['7']) / 2):.2f}x; with 2 sweep processes, 32 requests a batch and 1 "
              f"in flight (9 / 8): {rates['9'] / rates['8']:.2f}x")
        two = runs[-1]
        raw_rate = raw_customers / raw_s
        print(f"2 workers / 1 worker (repeat sweeps 10 / mean of 2 and 6): {rates['10'] / ((rates['2'] + rates['6']) / 2):.2f}x; "
              f"raw ceiling: a bare consumer read and decoded {raw_n:,} sweep requests ({raw_customers:,} customers) in "
              f"{raw_s:.2f} s = {raw_rate:,.0f} customers/s (x {len(rule_ids)} rules = "
              f"{raw_rate * len(rule_ids):,.0f} evaluations/s equivalent); sweep 10 customers/s is "
              f"{two.customers / two.compute_s / raw_rate:.1%} of it")

        print(f"compute ceiling: core.sweeping.sweep_records over the {len(ids)} distinct records, as of a day later, with "
              f"the same {len(rule_ids)} rules, in one process: {ceiling:,.0f} evaluations per CPU second ({ceiling_n:,} evaluations; load "
              f"{load_average()}); x 2 cores = {2 * ceiling:,.0f}/s if nothing else ran on the machine")

        rows = []
        cores = os.cpu_count() or 1
        for r in runs:
            busy = sum(r.cpu_s.values())
            rows.append([r.label, f"{r.cpu_wall_s:.1f}", *(f"{r.cpu_s[k]:.1f}" for k in CPU_PARTS), f"{busy:.1f}",
                         f"{busy / (r.cpu_wall_s * cores):.0%}",
                         f"{1e6 * (r.cpu_s['worker'] + r.cpu_s['sweep processes']) / max(r.customers, 1):,.0f}"])
        print_table(
            f"where the {cores} cores went during each sweep (CPU seconds, publishing -> finish marker; the sink "
            "(connect -> dynamodb) takes in the sweep's scores while it runs)",
            ["sweep", "wall s", *CPU_PARTS, "all", f"busy of {cores} cores", "worker + sweep µs per customer"],
            rows,
        )

        rows = []
        base = percentiles(base_lat)
        rows.append(["no sweep (1 worker)", str(base_sent), str(len(base_lat)), fmt(base["p50"]), fmt(base["p95"]),
                     fmt(base["p99"]), fmt(base["max"]), fmt(percentiles(base_worker)["p99"]), "", base_load])
        for r in runs:
            p = percentiles(r.trickle_ms)
            age50, age99, n_ages = r.age_at_agent
            rows.append([f"during {r.label}", str(r.trickle_sent), str(len(r.trickle_ms)), fmt(p["p50"]),
                         fmt(p["p95"]), fmt(p["p99"]), fmt(p["max"]), fmt(percentiles(r.trickle_worker_ms)["p99"]),
                         f"≤{age50:g} / ≤{age99:g} s ({n_ages})", r.load])
        print_table(
            f"bounded blocking: {args.trickle:.0f} live tx/s, produce -> score received (ms); last figure: p99 of "
            "produce -> score sent by the worker (its Kafka timestamp)",
            ["when", "tx sent", "with score", "p50", "p95", "p99", "max", "p99 sent", "age at agent p50 / p99 (n)",
             "load"],
            rows,
        )

        rows = []
        for name, proc in group.procs.items():
            data = dir_bytes(tmp / name)
            rows.append([name, str(proc.pid), f"{tree_rss_bytes(proc.pid) / MIB:,.0f}",
                         f"{max(r.peak_rss.get(name, 0) for r in runs) / MIB:,.0f}", f"{data / MIB:,.1f}"])
        total_data = sum(dir_bytes(tmp / n) for n in group.procs)
        print_table("memory and RocksDB", ["worker", "pid", "RSS MiB now", "peak RSS MiB in sweeps", "data dir MiB"],
                    rows)
        print(f"RocksDB (both workers' data dirs, du) per customer: {total_data / len(customers):,.0f} bytes "
              f"(record bytes p50 {sizes[len(sizes) // 2]:,}); w2 holds its partitions after the rebalance and "
              f"w1 may keep the ones it gave away on disk")
    finally:
        group.stop_all()
        if any(r.skipped or r.errors for r in runs):  # a customer not found or failing: keep the evidence
            kept = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{run}-logs-"))
            for log in tmp.glob("*.log"):
                shutil.copy(log, kept / log.name)
            print(f"some customers were skipped or failed: worker logs kept in {kept}")
        deleted = delete_app_topics(settings, [f"bench-sweep-{run}-"])
        print(f"cleanup: stopped workers, deleted {len(deleted)} topics, removed {tmp}; load {load_average()}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
