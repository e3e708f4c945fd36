"""Incremental path on the real stack: throughput of one `nudge worker` against a raw passthrough, and
produce→score / produce→alert latency at a steady rate.

Run: ``.venv/bin/python -m bench.bench_pipeline [--customers 200] [--months 13] [--rate 2000] [--duration 30]``
(the local stack must be up: ``nudge stack up``).

(a) Throughput, one after the other on the same messages: N transactions of simulated customers (fresh ids)
are produced to ``transactions``; then
  * raw: a bare confluent-kafka consumer (its own group, assigned at the same start offsets) produces each
    message unchanged to a topic of its own (``bench-passthrough-<run>``, deleted afterwards), committing
    every second like the worker; timed from assign() to the last delivery and commit;
  * stock Faust: ``bench.faust_passthrough``, the worker's own Faust app settings with one agent sending each
    message unchanged to a topic of its own (no decoding, no table, no rules): the framework's ceiling;
    timed from its first output message to its committed offsets reaching the end offsets;
  * stock Faust consume only: the same app taking the messages in batches and doing nothing with them;
    timed from its first commit to its commits reaching the end offsets (an upper bound: commits are 1 s apart);
  * ours: one ``nudge worker`` (own app id, committed at the same start offsets, own RocksDB dir); timed from
    the first transaction it took in (its /metrics counter, sampled every 0.5 s) to its committed offsets
    reaching the end offsets. Each starts after the previous one finished, so they never share the CPU.
(b) Latency: with that worker caught up, live transactions (the same customers' records booked now, new ids)
    at each ``--rate`` in turn for ``--duration`` s; a background consumer of ``scores`` and ``alerts`` stamps arrivals,
    matched to the produce time by ``transaction_id``. One figure per transaction (its first score/alert).
    The worker's share is also shown: produce → the Kafka timestamp its producer put on the score/alert.

Prints figures and ratios against the targets (≥10,000 tx/s per worker, ≥50% of raw, p99 < 100 ms at
2,000 tx/s), with the load average next to them: the 2-core machine is shared. Never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import (
    OutputCollector,
    Pacer,
    delete_app_topics,
    exit_on_sigterm,
    fmt,
    free_port,
    live_records,
    load_average,
    percentiles,
    print_table,
    publish_catalogue,
    scrape_counter,
    simulated,
    wait_committed,
)
from simulator.outputs import KafkaSink
from streams.producer import make_producer
from streams.settings import Settings, load_settings
from tests.integration.workers import WorkerGroup, commit_current_ends, end_offsets, stop_process


def raw_passthrough(settings: Settings, start: dict[tuple[str, int], int], ends: dict[tuple[str, int], int],
                    out_topic: str) -> tuple[float, int]:
    """Consume ``transactions`` from ``start`` to ``ends`` and produce every message unchanged to
    ``out_topic``; returns (seconds, messages)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    partitions = len([1 for t, _ in start if t == "transactions"])
    for future in admin.create_topics([NewTopic(out_topic, partitions, 1)]).values():
        future.result()
    producer = make_producer(settings, client_id="bench-passthrough")
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": f"{out_topic}-group",
        "enable.auto.commit": False,
        "fetch.max.bytes": 50 * 1024 * 1024,
    })
    remaining = {p: ends[("transactions", p)] for (t, p) in start if ends[("transactions", p)] > start[(t, p)]}
    total = sum(ends[("transactions", p)] - start[("transactions", p)] for p in remaining)
    count = 0
    positions: dict[int, int] = {}

    def commit(asynchronous: bool) -> None:
        offsets = [TopicPartition("transactions", p, o) for p, o in positions.items()]
        if offsets and asynchronous:
            consumer.commit(offsets=offsets, asynchronous=True)
        elif offsets:
            consumer.commit(offsets=offsets, asynchronous=False)

    try:
        t0 = time.perf_counter()
        consumer.assign([TopicPartition("transactions", p, start[("transactions", p)]) for p in remaining])
        last_commit = time.monotonic()
        while remaining:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error():
                    continue
                while True:
                    try:
                        producer.produce(out_topic, key=msg.key(), value=msg.value())
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                positions[partition] = offset + 1
                if offset + 1 >= remaining.get(partition, 0):
                    remaining.pop(partition, None)
            producer.poll(0)
            if time.monotonic() - last_commit >= 1.0:
                commit(asynchronous=True)
                last_commit = time.monotonic()
        if producer.flush(60):
            raise RuntimeError("passthrough producer could not deliver everything")
        commit(asynchronous=False)
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    if count != total:
        print(f"note: passthrough saw {count} messages for {total} offsets")
    return elapsed, count


def spawn_faust(app_id: str, out_topic: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``bench.faust_passthrough`` (``out_topic`` or ``-`` to consume only) as its own process."""
    env = {**os.environ, "NUDGE_APP_ID": app_id, "NUDGE_WORKER_DATA_DIR": str(tmp / name)}
    log_path = tmp / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.faust_passthrough", out_topic], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def faust_passthrough(settings: Settings, app_id: str, ends: dict[tuple[str, int], int], out_topic: str,
                      tmp: Path) -> tuple[float, int]:
    """The Faust ceiling: ``bench.faust_passthrough`` (the worker's Faust settings, one agent sending every
    message unchanged to ``out_topic``) from the start offsets committed for ``app_id`` to ``ends``; timed
    from its first output message to its committed offsets reaching ``ends``. Returns (seconds, messages)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    partitions = len({p for t, p in ends if t == "transactions"})
    for future in admin.create_topics([NewTopic(out_topic, partitions, 1)]).values():
        future.result()
    proc, log_path = spawn_faust(app_id, out_topic, tmp, "faust-passthrough")
    try:
        deadline = time.monotonic() + 300
        while sum(end_offsets(settings, [out_topic]).values()) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"faust passthrough produced nothing; see {log_path}")
            time.sleep(0.1)
        t_first = time.perf_counter()
        t_done = wait_committed(settings, app_id, ends)
        count = sum(end_offsets(settings, [out_topic]).values())
    finally:
        stop_process(proc)
    return t_done - t_first, count


def faust_consume_only(settings: Settings, app_id: str, start: dict[tuple[str, int], int],
                       ends: dict[tuple[str, int], int], tmp: Path) -> tuple[float, int]:
    """The worker's Faust settings, one agent taking the messages in batches and doing nothing else; timed
    from its first commit past ``start`` to its commits reaching ``ends`` (commits come every second, so
    the time is short by up to a second and the rate is an upper bound). Returns (seconds, messages)."""
    proc, log_path = spawn_faust(app_id, "-", tmp, "faust-consume")
    first_commit = {tp: offset + 1 for tp, offset in start.items() if ends[tp] > offset}
    try:
        t_first = wait_committed(settings, app_id, first_commit, timeout_s=300, any_of=True)
        t_done = wait_committed(settings, app_id, ends, timeout_s=600)
    except TimeoutError as exc:
        raise RuntimeError(f"faust consumer did not finish ({exc}); see {log_path}") from exc
    finally:
        stop_process(proc)
    return t_done - t_first, sum(ends[tp] - start[tp] for tp in ends)


def sample_counter(port: int, stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    """Every 0.5 s: (time, transactions taken in) from the worker's /metrics (a scrape costs the worker
    10-20 ms of its event loop, so not more often)."""
    while not stop.is_set():
        value = scrape_counter(port, "nudge_events_in_total", topic="transactions")
        if value is not None:
            samples.append((time.perf_counter(), value))
        stop.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200, help="simulated customers for the throughput run")
    parser.add_argument("--months", type=int, default=13, help="months of history per customer")
    parser.add_argument("--rate", type=float, nargs="+", default=[2000.0],
                        help="live transactions/s of the latency run (several values: one run each, in order)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the latency run")
    args = parser.parse_args()

    exit_on_sigterm()
    settings = load_settings()
    run = uuid.uuid4().hex[:8]
    print(f"bench_pipeline run {run}: load average {load_average()}")
    print(publish_catalogue(settings))
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{run}-"))
    group = WorkerGroup(settings, tmp, app_id=f"bench-{run}")  # commits the current ends for its group
    out_topic = f"bench-passthrough-{run}"
    faust_app_id, faust_out = f"bench-{run}-faust", f"bench-faust-passthrough-{run}"
    commit_current_ends(settings, faust_app_id, ["transactions"])  # starts at the same offsets as the rest
    consume_app_id = f"bench-{run}-faust-consume"
    commit_current_ends(settings, consume_app_id, ["transactions"])
    try:
        t = time.perf_counter()
        prefix, customers = simulated(args.customers, args.months)
        sim_s = time.perf_counter() - t
        start = end_offsets(settings, ["transactions"])
        t = time.perf_counter()
        sink = KafkaSink(make_producer(settings))
        for customer in customers:
            sink.write(customer.records)
        sink.close()
        produce_s = time.perf_counter() - t
        ends = end_offsets(settings, ["transactions"])
        n = sum(ends[tp] - start[tp] for tp in ends)
        print(f"{args.customers} customers x {args.months} months ({prefix}*): {n} transactions "
              f"(simulated in {sim_s:.1f} s, produced in {produce_s:.1f} s = {n / produce_s:,.0f}/s); "
              f"load {load_average()}")

        # (a) raw passthrough, then the worker, on the same messages
        load_raw_before = load_average()
        raw_s, raw_n = raw_passthrough(settings, start, ends, out_topic)
        raw_rate = raw_n / raw_s
        load_raw_after = load_average()
        faust_s, faust_n = faust_passthrough(settings, faust_app_id, ends, faust_out, tmp)
        faust_rate = faust_n / faust_s
        load_faust_after = load_average()
        consume_s, consume_n = faust_consume_only(settings, consume_app_id, start, ends, tmp)
        consume_rate = consume_n / max(consume_s, 1e-9)
        load_consume_after = load_average()

        port = free_port()
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_counter, args=(port, stop, samples), daemon=True)
        load_worker_before = load_average()
        t_spawn = time.perf_counter()
        proc = group.start("w1", port)
        sampler.start()
        group.wait_ready(timeout_s=300)
        t_ready = time.perf_counter()
        t_done = wait_committed(settings, group.app_id, ends)
        stop.set()
        sampler.join()
        load_worker_after = load_average()
        taken = [(ts, v) for ts, v in samples if v > 0]
        t_first = taken[0][0] if taken else t_ready
        full = [ts for ts, v in samples if v >= n]
        t_all_in = full[0] if full else t_done
        worker_rate = n / (t_done - t_first)
        ready_rate = n / (t_done - t_ready)
        print_table(
            "(a) throughput on the same messages (one after the other)",
            ["path", "messages", "seconds", "msg/s", "vs raw", "load before -> after"],
            [
                ["raw confluent-kafka consume->produce", str(raw_n), f"{raw_s:.2f}", fmt(raw_rate), "1.00",
                 f"{load_raw_before} -> {load_raw_after}"],
                ["stock Faust passthrough (worker's Faust settings, no work)", str(faust_n), f"{faust_s:.2f}",
                 fmt(faust_rate), f"{faust_rate / raw_rate:.2f}", f"{load_raw_after} -> {load_faust_after}"],
                ["stock Faust consume only (batches taken, nothing else)", str(consume_n), f"{consume_s:.2f}",
                 fmt(consume_rate), f"{consume_rate / raw_rate:.2f}", f"{load_faust_after} -> {load_consume_after}"],
                ["nudge worker: first tx in -> committed == ends", str(n), f"{t_done - t_first:.2f}",
                 fmt(worker_rate), f"{worker_rate / raw_rate:.2f}", f"{load_worker_before} -> {load_worker_after}"],
                ["nudge worker: first tx in -> last tx taken in", str(n), f"{t_all_in - t_first:.2f}",
                 fmt(n / max(t_all_in - t_first, 1e-9)), f"{n / max(t_all_in - t_first, 1e-9) / raw_rate:.2f}", ""],
                ["nudge worker: wait_ready() -> committed == ends", str(n), f"{t_done - t_ready:.2f}",
                 fmt(ready_rate), f"{ready_rate / raw_rate:.2f}", ""],
            ],
        )
        print(f"worker spawn -> first tx taken in {t_first - t_spawn:.1f} s, spawn -> wait_ready() "
              f"{t_ready - t_spawn:.1f} s (transactions taken in by then: "
              f"{max((v for ts, v in samples if ts <= t_ready), default=0):.0f})")
        print(f"targets: >= 10,000 tx/s per worker -> {fmt(worker_rate)} ({worker_rate / 10_000:.0%} of target); "
              f">= 50% of raw -> {worker_rate / raw_rate:.0%}; the Faust passthrough alone reaches "
              f"{faust_rate / raw_rate:.0%} of raw and consuming alone {consume_rate / raw_rate:.0%}; the worker "
              f"reaches {worker_rate / faust_rate:.0%} of the Faust passthrough")

        # (b) latency at a steady rate, the worker caught up: one run per --rate, the target first
        for rate in args.rate:
            pacer = Pacer(make_producer(settings, client_id="bench-live"), rate)
            load_lat_before = load_average()
            with OutputCollector(settings) as collector:
                time.sleep(1.0)
                achieved = pacer.run(live_records(customers, f"live{run}r{rate:.0f}-"), args.duration)
                produced_done = time.perf_counter()
                lag_s = wait_committed(settings, group.app_id, end_offsets(settings, ["transactions"]),
                                       timeout_s=1800) - produced_done
                time.sleep(3.0)  # scores/alerts of the last batch may be sent after its offsets are committed
            load_lat_after = load_average()
            lat = collector.latencies(pacer.sent_at)
            created = collector.latencies(pacer.sent_at, stage="created")
            rows = []
            for topic in ("scores", "alerts"):
                for label, values in ((f"produce -> {topic[:-1]} received", lat[topic]),
                                      (f"  of which produce -> {topic[:-1]} sent by the worker", created[topic])):
                    p = percentiles(values)
                    rows.append([label, str(len(pacer.sent_at)), str(len(values)),
                                 fmt(p["p50"]), fmt(p["p95"]), fmt(p["p99"]), fmt(p["max"])])
            print_table(
                f"(b) latency at {rate:,.0f} tx/s for {args.duration:.0f} s (achieved {achieved:,.0f} tx/s; "
                f"load {load_lat_before} -> {load_lat_after})",
                ["latency (ms)", "transactions", "with output", "p50", "p95", "p99", "max"],
                rows,
            )
            print(f"produce failures {pacer.failed}; worker committed everything {lag_s:.1f} s after the last "
                  f"produce; outputs received: {len(collector.received)}")
            print(f"target p99 < 100 ms at 2,000 tx/s: scores p99 {fmt(percentiles(lat['scores'])['p99'])} ms, "
                  f"alerts p99 {fmt(percentiles(lat['alerts'])['p99'])} ms at {achieved:,.0f} tx/s")
        print(f"worker w1 pid {proc.pid}; log {tmp / 'w1.log'}")
    finally:
        group.stop_all()
        deleted = delete_app_topics(settings, [f"bench-{run}-", out_topic, faust_out])
        print(f"cleanup: stopped workers, deleted {len(deleted)} topics, removed {tmp}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
