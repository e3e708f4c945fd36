"""Run real `nudge worker` processes for integration tests and benchmarks.

Each run gets its own consumer group (app id) and RocksDB folder. Before any worker starts, the group's
offsets on the input topics are committed at their current ends, so old messages from earlier runs are not
replayed and nothing produced after that is skipped, even if a worker dies before its first commit. :meth:`WorkerGroup.wait_ready` proves
every partition is assigned and positioned (and the rule catalogue loaded) by sending a probe sweep
request to each partition and waiting for the sweep agent's progress record for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from schemas.codec import default_codec
from streams.offsets import commit_current_ends, end_offsets, wait_caught_up
from streams.producer import make_producer
from streams.settings import Settings
from streams.sweeps import partition_of, read_progress, sweep_request

__all__ = [
    "WorkerGroup", "commit_current_ends", "end_offsets", "keys_per_partition", "stop_process", "wait_caught_up",
]

INPUT_TOPICS = ["transactions", "balances", "customers", "sweep", "alerts", "alerts.retry"]


def keys_per_partition(prefix: str, partitions: int) -> dict[int, str]:
    """One key per partition, as the producers and Faust place it (:func:`streams.sweeps.partition_of`)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        key = f"{prefix}-{i}"
        found.setdefault(partition_of(key, partitions), key)
        i += 1
    return found


class WorkerGroup:
    """Worker processes sharing one app id (consumer group) and its tables' changelogs."""

    def __init__(self, settings: Settings, tmp: Path, app_id: str | None = None) -> None:
        self.settings = settings
        self.tmp = tmp
        self.app_id = app_id or f"test-{uuid.uuid4().hex[:8]}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.extra_env: dict[str, str] = {}
        commit_current_ends(settings, self.app_id, INPUT_TOPICS)

    def env(self, name: str, web_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            NUDGE_APP_ID=self.app_id,
            NUDGE_WORKER_DATA_DIR=str(self.tmp / name),
            NUDGE_WEB_PORT=str(web_port),
            NUDGE_KAFKA_PORT=str(self.settings.kafka_port),
        )
        env.update(self.extra_env)
        return env

    def start(self, name: str, web_port: int) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
            env=self.env(name, web_port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for name in list(self.procs):
            stop_process(self.procs.pop(name))

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Probe every partition of ``sweep`` (co-partitioned with ``transactions``) until each answers."""
        deadline = time.monotonic() + timeout_s
        codec = default_codec()
        producer = make_producer(self.settings)
        while time.monotonic() < deadline:
            probe = f"probe-{uuid.uuid4().hex[:8]}"
            now = datetime.now(UTC)
            for key in keys_per_partition(probe, self.settings.topic_partitions).values():
                request = sweep_request(
                    probe, key, as_of=now, requested_at=now, reason="manual", dry_run=True
                )
                producer.produce("sweep", key=key.encode(), value=codec.encode("SweepRequest", request))
            producer.flush(10)
            probe_deadline = time.monotonic() + 15
            while time.monotonic() < probe_deadline:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"worker {name} exited with {proc.returncode}:\n{self.log(name)}")
                progress = read_progress(self.settings).get(probe)
                if progress and len(progress.partitions) == self.settings.topic_partitions:
                    return
                time.sleep(0.5)
        raise TimeoutError("workers did not become ready:\n" + "\n".join(self.log(n) for n in self.procs))


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
