"""Simulator and codec throughput on one core (prints figures; not a test).

    .venv/bin/python -m bench.bench_simulator [--customers 300] [--months 13] [--repeats 3]

Figures: records generated per second in memory; the JSON-lines serialisation alone (records generated
beforehand: the ceiling for writing); generated and written as JSON lines to a file (issue 3's target:
>= 100,000 records/s on one core); and ``nudge simulate --out FILE`` itself (the CLI, run in this process on
the same customers, checked to write the same bytes). Then the codec's cost per record on simulated
transactions: Avro encode, decode, and decode + validation into ``core.events.Transaction`` (what the
transactions agent does per message). Both CPU time (this process only, so other load on the machine does
not count against it, though it still slows each instruction) and wall time are shown; best of
``--repeats`` runs; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import os
import tempfile
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from schemas.codec import default_codec
from schemas.records import to_transaction
from simulator import population, simulate
from simulator.outputs import JsonLinesSink
from streams.cli import main as nudge

TARGET = 100_000  # records/s generated and written to a file on one core (issue 3)


def best(repeats: int, run: Callable[[], int]) -> tuple[int, float, float]:
    """(items, best CPU seconds, best wall seconds) over ``repeats`` runs of ``run``."""
    cpu_best = wall_best = float("inf")
    items = 0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        items = run()
        cpu_best = min(cpu_best, time.process_time() - cpu)
        wall_best = min(wall_best, time.perf_counter() - wall)
    return items, cpu_best, wall_best


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the JSON lines file goes (default: the temp dir)")
    args = parser.parse_args()
    start = date(2024, 11, 1)
    simulate(args.seed, 0, start, 1)  # build the shared tables once, outside the timings

    def generate() -> int:
        return sum(len(c.records) for c in population(args.seed, args.customers, start, args.months))

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path, cli_path = os.path.join(tmp, "sim.jsonl"), os.path.join(tmp, "cli.jsonl")
        generated: list[list[dict[str, Any]]] = []  # filled just before the last row, which reads it

        def write_only() -> int:
            sink = JsonLinesSink(path)
            for records in generated:
                sink.write(records)
            sink.close()
            return sink.count

        def to_file() -> int:
            sink = JsonLinesSink(path)
            for c in population(args.seed, args.customers, start, args.months):
                sink.write(c.records)
            sink.close()
            return sink.count

        def cli() -> int:
            with contextlib.redirect_stderr(io.StringIO()):  # its own summary line and (no) progress bar
                nudge(["simulate", "--customers", str(args.customers), "--months", str(args.months), "--seed",
                       str(args.seed), "--start", start.isoformat(), "--out", cli_path])
            with open(cli_path, "rb") as fh:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

        print(f"simulator: {args.customers} customers x {args.months} months, best of {args.repeats}, "
              f"pid {os.getpid()}, load average {_load()}")
        rows = (("generate (in memory)", generate), ("generate + write JSON lines", to_file),
                ("nudge simulate --out FILE", cli), ("write JSON lines only", write_only))
        rates: dict[str, float] = {}
        for label, run in rows:
            if run is write_only:
                generated.extend(c.records for c in population(args.seed, args.customers, start, args.months))
            n, cpu, wall = best(args.repeats, run)
            rates[label] = n / cpu
            print(f"  {label:30s} {n:>9,} records  {n / cpu:>10,.0f} records/s CPU  {n / wall:>10,.0f} records/s wall")
        generated.clear()
        size = os.path.getsize(path)
        print(f"  file {path} (same file system as --dir): {size / 1e6:.1f} MB, {size / n:.0f} bytes/record; "
              f"the CLI's file is {'byte-identical' if filecmp.cmp(path, cli_path, shallow=False) else 'DIFFERENT'}")
        written = min(rates["generate + write JSON lines"], rates["nudge simulate --out FILE"])
        print(f"  generate + write vs target {TARGET:,}/s (CPU, one core): {written / TARGET:.2f}x; "
              f"writing is {1 - rates['generate + write JSON lines'] / rates['generate (in memory)']:.0%} of the time; "
              f"load average {_load()}")

    codec = default_codec()
    records = [r for c in population(args.seed + 1, 20, start, args.months) for r in c.records]
    encoded = [codec.encode("Transaction", r) for r in records]
    n = len(records)
    print(f"codec on {n:,} simulated transactions (avg {sum(map(len, encoded)) / n:.0f} bytes), best of {args.repeats}:")

    def enc() -> int:
        for r in records:
            codec.encode("Transaction", r)
        return n

    def dec() -> int:
        for b in encoded:
            codec.decode(b, expect="Transaction")
        return n

    def dec_validate() -> int:
        for b in encoded:
            to_transaction(codec.decode(b, expect="Transaction"))
        return n

    for label, run in (("encode", enc), ("decode", dec), ("decode + to_transaction", dec_validate)):
        n, cpu, wall = best(args.repeats, run)
        print(f"  {label:30s} {cpu / n * 1e6:>7.1f} us/record CPU ({n / cpu:>9,.0f} msg/s)  {wall / n * 1e6:>7.1f} us wall")


if __name__ == "__main__":
    main()
