"""`nudge worker`: run one Faust worker process of the pipeline."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = sub.add_parser("worker", help="run a pipeline worker (Faust) against the configured Kafka")
    worker.add_argument("--web-port", type=int, help="HTTP port of this worker (default NUDGE_WEB_PORT)")
    worker.add_argument("--data-dir", type=Path, help="RocksDB folder of this worker (one per worker process)")
    worker.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import create_app
    from streams.settings import load_settings

    overrides: dict[str, object] = {}
    if args.web_port:
        overrides["web_port"] = args.web_port
    if args.data_dir:
        overrides["worker_data_dir"] = args.data_dir
    pipeline = create_app(load_settings(**overrides))
    worker = faust.Worker(pipeline.app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
