"""The Faust application factory.

``create_app(settings)`` builds the app, declares its topics and tables, and wires the agents listed in
:data:`AGENT_MODULES` explicitly (no autodiscovery: importing a module has no side effects). Each agent
module exposes ``register(pipeline)`` and attaches its agents to ``pipeline.app``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import faust

from streams.kafka_config import faust_security
from streams.settings import Settings, bounded, load_settings
from streams.topics import TOPICS

__all__ = ["Pipeline", "create_app", "AGENT_MODULES"]

# agents.counter (the first vertical slice, a per-message table write and send) is an example kept with
# its tests, not part of the production worker: it would double the worker's Kafka writes.
AGENT_MODULES: tuple[str, ...] = (
    "agents.transactions",
    "agents.sweep",
    "agents.customers",
    "agents.rule_changes",
    "agents.alerts",
)


@dataclass
class Pipeline:
    """The app plus the topics and tables its agents share, so agents receive them instead of importing
    module globals (which would make every import build an app)."""

    app: faust.App
    settings: Settings
    topics: dict[str, faust.TopicT] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    table_options: dict[str, Any] | None = None
    """Store options of every table (Faust takes them per table, not per app): RocksDB driver and memory."""

    def table(self, name: str, **kwargs: Any) -> Any:
        """A table partitioned like the input topics, with the worker's store options; bytes in and out
        unless ``kwargs`` say otherwise."""
        kwargs.setdefault("key_type", bytes)
        kwargs.setdefault("value_type", bytes)
        table = self.app.Table(name, partitions=self.settings.topic_partitions, options=self.table_options, **kwargs)
        self.tables[name] = table
        return table


def _faust_topics(app: faust.App) -> dict[str, faust.TopicT]:
    """Every declared topic as a raw-bytes Faust topic; agents decode with the project's codec so a bad
    message can be caught per message and dead-lettered instead of crashing the stream."""
    return {
        spec.name: app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
            internal=False,
        )
        for spec in TOPICS
    }


STREAM_BUFFER_MAXSIZE = 8192  # events buffered per topic channel before Faust pauses its partitions


def _max_poll_records(value: int) -> int:
    """The cap must leave the slack between Faust's pause point (buffer / 1.25) and a full buffer."""
    slack = STREAM_BUFFER_MAXSIZE - int(STREAM_BUFFER_MAXSIZE / 1.25)
    return bounded("NUDGE_WORKER_MAX_POLL_RECORDS", value, 1, slack)


def _producer_batch_bytes(value: int) -> int:
    return bounded("NUDGE_WORKER_PRODUCER_BATCH_BYTES", value, 16 * 1024, 1024 * 1024)


def _rocksdb_options(settings: Settings) -> dict[str, Any]:
    """Table options for every RocksDB table partition: the rocksdict driver with bounded memory."""
    cache = bounded("NUDGE_WORKER_ROCKSDB_CACHE_MB", settings.worker_rocksdb_cache_mb, 1, 65536)
    buffer = bounded("NUDGE_WORKER_ROCKSDB_WRITE_BUFFER_MB", settings.worker_rocksdb_write_buffer_mb, 1, 4096)
    return {"driver": "rocksdict", "block_cache_size": cache * 1024 * 1024, "write_buffer_size": buffer * 1024 * 1024}


def _compression(name: str) -> str | None:
    if name not in ("none", "lz4", "gzip", "snappy"):
        raise ValueError(f"NUDGE_WORKER_COMPRESSION must be none, lz4, gzip or snappy, not {name!r}")
    return None if name == "none" else name


def create_app(
    settings: Settings | None = None,
    *,
    store: str | None = None,
    agent_modules: tuple[str, ...] = AGENT_MODULES,
    **overrides: Any,
) -> Pipeline:
    """Build the worker app.

    :param store: table store URL; ``rocksdb://`` (RocksDB through rocksdict) by default, ``memory://`` in
        agent tests.
    """
    settings = settings or load_settings()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=store or "rocksdb://",
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.topic_partitions,
        web_enabled=False,  # the worker serves its own aiohttp app (streams/web) on web_port
        web_host=settings.host,
        web_bind=settings.host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_in_thread=False,
        table_cleanup_interval=30.0,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
        broker_max_poll_records=_max_poll_records(settings.worker_max_poll_records),
        producer_linger_ms=5,
        producer_max_batch_size=_producer_batch_bytes(settings.worker_producer_batch_bytes),
        producer_compression_type=_compression(settings.worker_compression),
        consumer_auto_offset_reset=settings.auto_offset_reset,
        autodiscover=False,
        **faust_security(settings),  # SASL/SCRAM over TLS when NUDGE_KAFKA_SECURITY=sasl_ssl
        **overrides,
    )
    rocksdb = (store or "rocksdb://").startswith("rocksdb")
    pipeline = Pipeline(app=app, settings=settings, topics=_faust_topics(app),
                        table_options=_rocksdb_options(settings) if rocksdb else None)
    for name in agent_modules:
        importlib.import_module(name).register(pipeline)
    return pipeline
