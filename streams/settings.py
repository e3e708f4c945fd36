"""Runtime settings, read from ``NUDGE_*`` environment variables with loopback-only defaults.

Read once per process through :func:`load_settings`; nothing happens at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["Settings", "bounded", "load_settings", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Every knob the stack, the workers and the tools share.

    Each field is overridden by the environment variable ``NUDGE_<FIELD NAME IN CAPITALS>``.
    """

    host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    connect_port: int = 18083
    dynamodb_port: int = 18000
    web_port: int = 16066
    cache_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".cache")
    # Set to use an external cluster instead of the local stack.
    kafka_bootstrap: str = ""
    dynamodb_endpoint: str = ""
    aws_region: str = "eu-west-2"
    topic_partitions: int = 4
    worker_data_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".cache" / "worker")
    app_id: str = "nudgestream"
    # Where a new consumer group starts: "earliest" in production; tests and benchmarks that run a fresh
    # group against shared topics use "latest" and wait for the worker's assignment before producing.
    auto_offset_reset: str = "earliest"
    # Transactions agent batching: at most this many events, or what arrived within this many ms. Larger
    # batches mean fewer table writes (one per customer per batch) at the cost of latency.
    batch_max: int = 2000
    batch_within_ms: int = 100
    # Compression of what the worker produces (table changelogs, scores, alerts): "none", "lz4", "gzip" or
    # "snappy". aiokafka compresses in the worker's one Python thread, and a table changelog record is the
    # customer's whole record (~16 KB) per customer per batch: on this 2-core machine "none" processed
    # live transactions ~1.4x faster than "lz4" (bench/README.md). Set lz4 where the network is the limit.
    worker_compression: str = "none"
    # Largest record batch the worker's producer builds per partition. aiokafka keeps one open batch per
    # partition and waits for it to be sent before starting the next, so a batch must hold many records: at
    # Faust's default (16 KiB) one customer record (~13 KB) filled a changelog batch, and a sweep that changed
    # scores was held to a record per partition per round trip. At most the broker's message.max.bytes (1 MiB).
    worker_producer_batch_bytes: int = 512 * 1024
    # RocksDB memory per table partition: block cache and memtable (write buffer, up to 3 of them) in MiB.
    # Faust's defaults (2 GiB cache, 64 MiB buffers, per partition) let one worker reach 4.4 GB of RSS during
    # sweeps of 100,000 customers (bench_sweep); the operating system's page cache still keeps hot files.
    worker_rocksdb_cache_mb: int = 64
    worker_rocksdb_write_buffer_mb: int = 16
    # Most records one fetch hands to Faust's conductor, across every partition. The conductor delivers a
    # fetch's records one by one in order; with no cap (aiokafka's default) a fetch can hold thousands of
    # sweep requests, and when the sweep stream's buffer fills the conductor waits for the sweep agent
    # before it delivers the transactions behind them. Capped below the buffer's slack (stream buffer 8192,
    # partition paused at 80% of it), a full sweep buffer pauses the sweep partitions instead.
    worker_max_poll_records: int = 500
    # Nightly sweep schedule (cron syntax, run by the leader worker) and its time zone.
    sweep_cron: str = "0 1 * * *"
    sweep_timezone: str = "Europe/London"
    # Customers per sweep request message (all of one partition). Faust costs ~0.1-0.2 ms per message on
    # this machine, as much as evaluating a customer's whole catalogue, so a sweep groups customers.
    sweep_customers_per_request: int = 100
    # Processes per worker that evaluate sweeps (streams/sweep_processes.py), so a sweep never holds up live
    # transactions on the worker's one thread; they run at this lower CPU priority (nice 0-19). 0 sweeps
    # in the worker's own process. More cores: more workers (partitions), each with its sweep process.
    sweep_processes: int = 1
    sweep_process_nice: int = 10
    # Sweep request messages the sweep agent takes per batch, all handed to the sweep processes at once: they
    # evaluate the next requests while the agent applies the results of the first ones.
    sweep_batch_requests: int = 8
    # Sweep batches a worker runs at once (concurrent actors of the sweep agent): with 2, the sweep processes
    # evaluate one batch while the agent waits for another's acknowledgements and writes its books, instead
    # of standing idle between batches: faster sweeps where the cores have room (DynamoDB elsewhere), but
    # with the local DynamoDB stand-in on the same two cores it added up to 170 ms at p99 to live
    # transactions during a next-night sweep, and that sweep was no faster (bench/README.md). So 1.
    sweep_batches_in_flight: int = 1
    # Alert delivery: the app's webhook (empty = not delivering yet; alerts wait in Kafka), its HMAC secret,
    # the delays in seconds before attempts 2..n (comma-separated; n = 1 + their number), request timeout.
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_retry_delays: str = "10,60,300,1800"
    webhook_timeout_s: int = 10
    # Kafka client security (streams/kafka_config.py builds every client's settings from these):
    # "plaintext" (default) or "sasl_ssl" (SCRAM-SHA-512 over TLS). An empty username means "nudge"; an empty
    # password or CA file means the ones `nudge stack up --secure` generated under <stack_dir>/secure/.
    kafka_security: str = "plaintext"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ca_file: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def dynamodb_url(self) -> str:
        return self.dynamodb_endpoint or f"http://{self.host}:{self.dynamodb_port}"

    @property
    def stack_dir(self) -> Path:
        return self.cache_dir / "stack"


def bounded(name: str, value: int, low: int, high: int) -> int:
    """``value`` if it is between ``low`` and ``high``; otherwise a ValueError naming the variable (``name``)."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment (``NUDGE_*``), then explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(f"NUDGE_{f.name.upper()}")
        if raw is None:
            continue
        if f.type in ("int", int):
            values[f.name] = int(raw)
        elif f.type in ("Path", Path):
            values[f.name] = Path(raw)
        else:
            values[f.name] = raw
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
