"""`nudge worker`: run one Faust worker process of the pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    worker = sub.add_parser("worker", help="run a pipeline worker (Faust) against the configured Kafka")
    worker.add_argument("--web-port", type=int, help="HTTP port of this worker (default NUDGE_WEB_PORT)")
    worker.add_argument(
        "--data-dir", type=Path, help="RocksDB folder of this worker (one per worker process)"
    )
    worker.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=run_worker)
    register_sweep(sub)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import create_app
    from streams.settings import load_settings
    from streams.web.server import WebServer

    overrides: dict[str, object] = {}
    if args.web_port:
        overrides["web_port"] = args.web_port
    if args.data_dir:
        overrides["worker_data_dir"] = args.data_dir
    pipeline = create_app(load_settings(None, **overrides))
    pipeline.app.service(WebServer(pipeline))  # type: ignore[arg-type]  # App.service also takes instances
    worker = faust.Worker(pipeline.app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def register_sweep(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    sweep = sub.add_parser(
        "sweep", help="start a sweep (all rules for every consenting customer) and follow it"
    )
    sweep.add_argument(
        "--rules", nargs="+", metavar="ID", default=[], help="only these rules (default: all nightly)"
    )
    sweep.add_argument(
        "--customers", type=Path, help="file with one customer id per line (default: all with consent)"
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="evaluate and count, publish no scores or alerts"
    )
    sweep.add_argument(
        "--as-of", help="ISO timestamp to evaluate as of (default: now); replays use the original"
    )
    sweep.add_argument("--no-wait", action="store_true", help="publish the requests and return")
    sweep.add_argument(
        "--status", metavar="SWEEP_ID", nargs="?", const="", help="show sweeps instead of starting"
    )
    sweep.set_defaults(handler=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from datetime import datetime

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.settings import load_settings
    from streams.sweeps import SweepProgress, active_customers, publish_sweep, read_progress, watch_sweep

    console = Console(stderr=True)
    settings = load_settings()
    if args.status is not None:
        for sweep_id, progress in sorted(read_progress(settings).items()):
            if not args.status or sweep_id == args.status:
                console.print(progress.summary())
        return 0
    if args.customers:
        lines = args.customers.read_text().splitlines()
        customers = sorted({line.strip() for line in lines if line.strip()})
    else:
        customers = active_customers(settings)
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    start = publish_sweep(settings, customers, rule_ids=args.rules, as_of=as_of, dry_run=args.dry_run)
    console.print(f"sweep {start.sweep_id}: {start.total} customers as of {start.as_of.isoformat()}")
    if args.no_wait or start.total == 0:
        return 0
    started = datetime.now().timestamp()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10,.0f} evals/s"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("sweeping", total=start.total, rate=0.0)

        def show(progress: SweepProgress) -> None:
            elapsed = max(datetime.now().timestamp() - started, 1e-6)
            bar.update(
                task, completed=progress.total("customers"), rate=progress.total("evaluations") / elapsed
            )

        final = watch_sweep(settings, start.sweep_id, on_progress=show)
    console.print(final.summary())
    return 1 if final.total("errors") else 0
