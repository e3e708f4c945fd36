"""`nudge stack up|down|status|logs|fetch` and `nudge topics`.

Handlers import the launcher lazily so `nudge --help` does not load confluent-kafka or boto.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from streams.settings import Settings, load_settings

__all__ = ["register"]

SERVICE_NAMES = ("kafka", "dynamodb", "connect")


def register(subparsers: Any) -> None:
    stack = subparsers.add_parser("stack", help="the local Kafka, Kafka Connect and DynamoDB (no Docker)")
    actions = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start every service (idempotent) and create topics and table")
    _secure_flag(up)
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop the services `stack up` started (data is kept)")
    down.add_argument("services", nargs="*", metavar="SERVICE",
                      help=f"only these ({', '.join(SERVICE_NAMES)}); default all")
    down.set_defaults(handler=_down)

    st = actions.add_parser("status", help="which services answer, their PIDs and memory (exit 3 if any is down)")
    _secure_flag(st)
    st.set_defaults(handler=_status)

    lg = actions.add_parser("logs", help="the tail of a service's log")
    lg.add_argument("service", nargs="?", choices=SERVICE_NAMES, help="default: all of them")
    lg.add_argument("-n", "--lines", type=int, default=50, help="number of lines (default 50)")
    lg.set_defaults(handler=_logs)

    fetch = actions.add_parser("fetch", help="fetch the Kafka/Connect jars with Maven (skipped when current)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the jars are current")
    fetch.set_defaults(handler=_fetch)

    topics = subparsers.add_parser("topics", help="create the topics of streams/topics.py; report mismatches")
    _secure_flag(topics)
    topics.set_defaults(handler=_topics)


def _secure_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secure", action="store_true",
        help="Kafka with SASL/SCRAM-SHA-512 over TLS (same as NUDGE_KAFKA_SECURITY=sasl_ssl); see stack/secure.py",
    )


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings; --secure switches Kafka to SASL_SSL."""
    if getattr(args, "secure", False):
        return load_settings(kafka_security="sasl_ssl")
    return load_settings()


def _run(action: Callable[[], int]) -> int:
    from stack.errors import StackError
    from streams.kafka_config import KafkaSecurityError

    try:
        return int(action())
    except (StackError, KafkaSecurityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    from stack import launcher

    def go() -> int:
        launcher.up(_settings(args))
        return 0

    return _run(go)


def _down(args: argparse.Namespace) -> int:
    from stack import launcher

    def go() -> int:
        launcher.down(load_settings(), only=args.services or None)
        return 0

    return _run(go)


def _status(args: argparse.Namespace) -> int:
    from stack import launcher

    def show() -> int:
        rows = launcher.status(_settings(args))
        for row in rows:
            state = "up" if row.answering else "down"
            pid = str(row.pid) if row.pid else "-"
            rss = f"{row.rss_bytes / 2**20:.0f} MiB" if row.rss_bytes else "-"
            print(f"{row.name:<9} {state:<5} pid {pid:<8} rss {rss:<9} {row.address}  ({row.detail})")
        return 0 if all(r.answering for r in rows) else 3

    return _run(show)


def _logs(args: argparse.Namespace) -> int:
    from stack import launcher

    def show() -> int:
        for service in [args.service] if args.service else launcher.SERVICES:
            path, lines = launcher.logs(load_settings(), service, args.lines)
            if not args.service:
                print(f"==> {path} <==")
            if not path.exists():
                print(f"(no log yet: {path})")
            print("\n".join(lines))
        return 0

    return _run(show)


def _fetch(args: argparse.Namespace) -> int:
    from stack import launcher

    def go() -> int:
        t = time.monotonic()
        settings = load_settings()
        if launcher.fetch(settings, force=args.force):
            print(f"jars fetched into {settings.stack_dir / 'lib'} in {time.monotonic() - t:.1f} s")
        else:
            print(f"jars already current in {settings.stack_dir / 'lib'}")
        return 0

    return _run(go)


def _topics(args: argparse.Namespace) -> int:
    from stack.launcher import topic_admin
    from stack.topics import ensure_topics
    from streams.topics import TOPICS

    def go() -> int:
        settings = _settings(args)
        report = ensure_topics(settings.bootstrap_servers, TOPICS, admin=topic_admin(settings))
        print(report.summary())
        report.raise_for_mismatch()
        return 0

    return _run(go)
