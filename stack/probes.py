"""Does a service really answer? Each probe returns None when it does, else a short reason.

"Answers" means a real request succeeded, not merely an open port: a Kafka metadata request that lists a
broker, Kafka Connect's REST API listing connectors (only possible once its herder has started), and a
DynamoDB ListTables.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from stack.dynamodb import dynamodb_is_local, list_tables
from streams.kafka_config import confluent_security
from streams.settings import Settings

__all__ = ["kafka_probe", "connect_probe", "dynamodb_probe", "port_open", "connect_get", "connect_request"]

_quiet = logging.getLogger("stack.probes.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def kafka_probe(settings: Settings) -> str | None:
    if not settings.kafka_bootstrap and not port_open(settings.host, settings.kafka_port):
        return f"nothing listens on {settings.bootstrap_servers}"
    # librdkafka logs every failed connection attempt; the probe reports failures itself.
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers, "logger": _quiet}
    conf.update(confluent_security(settings))  # SASL_SSL when NUDGE_KAFKA_SECURITY says so
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=5)
    except KafkaException as exc:
        return f"metadata request failed: {exc.args[0]}"
    if not metadata.brokers:
        return "metadata lists no broker yet"
    return None


def connect_get(settings: Settings, path: str, timeout: float = 5.0) -> object:
    """GET a path of Connect's REST API and decode its JSON (raises urllib/OSError on failure)."""
    with urllib.request.urlopen(f"{settings.connect_url}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def connect_request(settings: Settings, method: str, path: str, timeout: float = 30.0) -> tuple[int, object]:
    """One call to Connect's REST API: (HTTP status, decoded JSON or None). Raises OSError if unreachable."""
    request = urllib.request.Request(
        f"{settings.connect_url}{path}", method=method, headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def connect_probe(settings: Settings) -> str | None:
    if not port_open(settings.host, settings.connect_port):
        return f"nothing listens on {settings.connect_url}"
    try:
        root = connect_get(settings, "/")
        connect_get(settings, "/connectors")
    except urllib.error.HTTPError as exc:
        return f"REST API answered {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        return f"REST API did not answer: {exc}"
    if not isinstance(root, dict) or "version" not in root:
        return f"REST root answered without a version: {root!r}"
    return None


def dynamodb_probe(settings: Settings) -> str | None:
    if dynamodb_is_local(settings) and not port_open(settings.host, settings.dynamodb_port):
        return f"nothing listens on {settings.dynamodb_url}"
    try:
        asyncio.run(list_tables(settings))
    except Exception as exc:  # any botocore/aiohttp failure means "not answering yet"
        return f"ListTables failed: {type(exc).__name__}: {exc}"
    return None
