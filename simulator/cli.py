"""``nudge simulate``: backfill simulated customers to JSON lines, Kafka or the HTTP endpoint, optionally
keep streaming "live" at a rate, or print one customer's year (``--summary``)."""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from datetime import date
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("simulate", help="generate realistic open-banking customers (deterministic)",
                              description=__doc__)
    p.add_argument("--customers", type=int, default=100, help="number of customers (default 100)")
    p.add_argument("--months", type=int, default=13, help="months of history to backfill (default 13)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--start", type=date.fromisoformat, default=None,
                   help="first day of the backfill, YYYY-MM-DD (default: MONTHS months before today; give it "
                        "for byte-identical runs on different days)")
    p.add_argument("--first-index", type=int, default=0, help="index of the first customer (to shard runs)")
    p.add_argument("--to", choices=("jsonl", "kafka", "http"), default="jsonl", help="output (default jsonl)")
    p.add_argument("--out", default="-", help="jsonl file (default stdout)")
    p.add_argument("--topic", default="transactions", help="Kafka topic (default transactions)")
    p.add_argument("--url", default=None, help="ingestion endpoint base URL (default http://HOST:WEB_PORT)")
    p.add_argument("--api-key", default=None, help="API key for --to http (default $NUDGE_API_KEY)")
    p.add_argument("--rate", type=float, default=None,
                   help="after the backfill, stream the following month live at this many records/s")
    p.add_argument("--duration", type=float, default=None, help="stop live streaming after this many seconds")
    p.add_argument("--summary", action="store_true", help="print a month-by-month table of one customer")
    p.add_argument("--customer-index", type=int, default=0, help="customer shown by --summary")
    p.set_defaults(handler=run)


def _start(args: argparse.Namespace) -> date:
    from simulator.generator import _add_months

    return args.start or _add_months(date.today(), -args.months)


def _sink(args: argparse.Namespace) -> Any:
    from simulator.outputs import HttpSink, JsonLinesSink, KafkaSink
    from streams.settings import load_settings

    if args.to == "jsonl":
        return JsonLinesSink(sys.stdout.buffer if args.out == "-" else args.out)
    settings = load_settings()
    if args.to == "kafka":
        from streams.producer import make_producer

        return KafkaSink(make_producer(settings, client_id="nudge-simulate"), args.topic)
    key = args.api_key or os.environ.get("NUDGE_API_KEY")
    if not key:
        raise SystemExit("--to http needs --api-key or NUDGE_API_KEY")
    return HttpSink(args.url or f"http://{settings.host}:{settings.web_port}", key)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from simulator.generator import _add_months, simulate

    console = Console(stderr=True)
    start = _start(args)
    if args.summary:
        from simulator.summary import render_summary

        out = Console()
        if not out.is_terminal:  # piped into a report: don't squeeze the table to 80 columns
            out = Console(width=190)
        out.print(render_summary(simulate(args.seed, args.customer_index, start, args.months)))
        return 0
    if args.customers < 1 or args.months < 1:
        raise SystemExit("--customers and --months must be at least 1")
    live = args.rate is not None
    end = _add_months(start, args.months)
    end_ms = int(time.mktime(end.timetuple()) - time.timezone) * 1000
    sink = _sink(args)
    live_streams: list[list[dict[str, Any]]] = []
    total = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[n]} records"),
                  TimeRemainingColumn(), console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("customers", total=args.customers, n=0)
        for index in range(args.first_index, args.first_index + args.customers):
            records = simulate(args.seed, index, start, args.months + (1 if live else 0)).records
            if live:
                cut = next((i for i, r in enumerate(records) if r["received_at"] >= end_ms), len(records))
                live_streams.append(records[cut:])
                records = records[:cut]
            sink.write(records)
            total += len(records)
            progress.update(task, advance=1, n=total)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    console.print(f"backfill: {total} records for {args.customers} customers from {start} to {end} in "
                  f"{wall:.2f}s ({total / max(wall, 1e-9):,.0f} records/s wall, {total / max(cpu, 1e-9):,.0f} /s CPU)")
    if live:
        total_live = _stream_live(sink, live_streams, args.rate, args.duration, console)
        console.print(f"live: {total_live} records at {args.rate:g}/s")
    console.print(sink.close())
    return 0


def _stream_live(sink: Any, streams: list[list[dict[str, Any]]], rate: float, duration: float | None,
                 console: Any) -> int:
    """Send the month after the backfill, all customers merged in delivery order, re-stamped to now."""
    from simulator.outputs import restamp

    if rate <= 0:
        raise SystemExit("--rate must be positive")
    merged = heapq.merge(*streams, key=lambda r: r["received_at"])
    began = time.monotonic()
    sent = 0
    try:
        for record in merged:
            due = began + sent / rate
            now = time.monotonic()
            if duration is not None and now - began >= duration:
                break
            if due > now:
                time.sleep(due - now)
            sink.write([restamp(record)])
            sent += 1
    except KeyboardInterrupt:
        console.print("live streaming interrupted")
    return sent
