"""`nudge stack up|down|status|logs|fetch`: the local stack without Docker.

Services, in start order: ``kafka`` (one KRaft node from the Maven jars), ``dynamodb`` (moto's server
mode, see stack/dynamodb.py for why not DynamoDB Local) and ``connect`` (Kafka Connect, distributed mode,
with the DynamoDB sink plugin from connectors/). `up` does: fetch jars → install the sink plugin → start
Kafka and the DynamoDB server → (Kafka answers) start Connect, create topics → (DynamoDB answers) create
the ``insights`` table → (Connect answers) register the sink connector. Connect starts before the topics
are made because it is the slowest to boot; it needs only the broker, and the connector (which needs the
topics and the table) is registered last.

Everything lives under Settings.stack_dir; see stack/layout.py. `down` stops only processes whose PID
file and live command line match (stack/procs.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from confluent_kafka.admin import AdminClient

from stack import configs, procs, secure
from stack.dynamodb import dynamodb_is_local, ensure_insights_table, moto_server_command
from stack.errors import ServiceDidNotStart, StackError
from stack.jars import fetch_jars
from stack.layout import StackLayout
from stack.probes import connect_probe, connect_request, dynamodb_probe, kafka_probe
from stack.topics import TopicsReport, ensure_topics
from streams.kafka_config import confluent_security, protocol_of
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["SERVICES", "UpResult", "ServiceStatus", "up", "down", "status", "logs", "fetch"]

SERVICES: tuple[str, ...] = ("kafka", "dynamodb", "connect")
START_TIMEOUT_S = {"kafka": 90.0, "dynamodb": 30.0, "connect": 180.0}
STOP_TIMEOUT_S = {"kafka": 45.0, "dynamodb": 10.0, "connect": 30.0}
PROBES: dict[str, Callable[[Settings], str | None]] = {
    "kafka": kafka_probe, "dynamodb": dynamodb_probe, "connect": connect_probe,
}
LOG_TAIL_ON_FAILURE = 40
ERROR_LINES = 10
ERROR_WORDS = (" ERROR ", " FATAL ", "Exception", "Error:", "error:")

Echo = Callable[[str], None]


@dataclass
class UpResult:
    """What `up` did; `started` is what a caller that wants to undo exactly its own start should stop."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    not_ours: list[str] = field(default_factory=list)
    topics: TopicsReport | None = None
    table_created: bool = False
    connector: str = ""
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    answering: bool
    detail: str
    pid: int | None
    rss_bytes: int | None


def _address(settings: Settings, service: str) -> str:
    return {
        "kafka": settings.bootstrap_servers, "dynamodb": settings.dynamodb_url, "connect": settings.connect_url,
    }[service]


def _external(settings: Settings, service: str) -> bool:
    """Kafka and DynamoDB can be external (NUDGE_KAFKA_BOOTSTRAP, NUDGE_DYNAMODB_ENDPOINT); Connect is not."""
    if service == "kafka":
        return bool(settings.kafka_bootstrap)
    if service == "dynamodb":
        return not dynamodb_is_local(settings)
    return False


@contextmanager
def _locked(layout: StackLayout) -> Iterator[None]:
    """One `up`/`down` at a time per stack folder (two shells, or pytest beside a terminal)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sink_module() -> ModuleType | None:
    """connectors.sink (install/register of the DynamoDB sink), or None while it does not exist yet."""
    try:
        return importlib.import_module("connectors.sink")
    except ModuleNotFoundError as exc:
        if exc.name in ("connectors", "connectors.sink"):
            return None
        raise


def _owned_record(layout: StackLayout, service: str) -> procs.ProcessRecord | None:
    """The live process this stack started for service, dropping a stale PID file on the way."""
    pid_file = layout.pid_file(service)
    record = procs.read_record(pid_file)
    if record is not None and not procs.is_running(record):
        pid_file.unlink(missing_ok=True)
        return None
    return record


def _log_tail(layout: StackLayout, service: str, lines: int = LOG_TAIL_ON_FAILURE) -> str:
    """The log's last lines, preceded by the first errors of this start: a JVM that fails early logs its
    cause (say, a port in use) and then dozens of shutdown lines that would push it out of the tail."""
    path = layout.log_file(service)
    recent = procs.tail(path, 5000)
    starts = [i for i, line in enumerate(recent) if line.startswith(procs.START_MARKER)]
    this_start = recent[starts[-1]:] if starts else recent
    errors = [line for line in this_start if any(word in line for word in ERROR_WORDS)][:ERROR_LINES]
    if errors:  # the cause is above; the tail is then mostly shutdown noise
        lines = min(lines, ERROR_LINES)
    last = "\n".join(f"  | {line}" for line in recent[-lines:]) or "  | (empty)"
    text = f"last {lines} lines of {path}:\n{last}"
    if errors:
        text = "first errors of this start:\n" + "\n".join(f"  ! {line}" for line in errors) + "\n" + text
    return text


def _format_kafka_storage(
    settings: Settings, layout: StackLayout, echo: Echo, material: secure.SecureMaterial | None = None
) -> None:
    """Format the KRaft log dir once (what kafka-storage.sh format does); later starts reuse it. The secure
    stack formats its own log dir with its SCRAM users (``--add-scram``)."""
    if (secure.kafka_data_dir(settings, layout) / "meta.properties").exists():
        return
    scram = secure.scram_format_args(material) if material is not None else []
    cmd = configs.jvm_command(
        layout, "tool", configs.STORAGE_TOOL_MAIN, "format",
        "-t", configs.new_cluster_id(), "-c", str(layout.config_dir / "server.properties"), *scram,
    )
    echo(f"kafka: formatting storage (first start{', with SCRAM users' if scram else ''})")
    result = subprocess.run(cmd, capture_output=True, text=True)
    with layout.log_file("kafka").open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ServiceDidNotStart(
            f"formatting Kafka's storage failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _command(settings: Settings, layout: StackLayout, service: str) -> list[str]:
    if service == "kafka":
        return configs.jvm_command(
            layout, "kafka", configs.KAFKA_MAIN, str(layout.config_dir / "server.properties")
        )
    if service == "connect":
        return configs.jvm_command(
            layout, "connect", configs.CONNECT_MAIN, str(layout.config_dir / "connect-distributed.properties")
        )
    return moto_server_command(settings)


def _security_file(layout: StackLayout, service: str) -> Path:
    """Beside the PID file: the security mode (plaintext or sasl_ssl) the service was started in."""
    return layout.run_dir / f"{service}.security"


def _check_running_modes(settings: Settings, layout: StackLayout) -> None:
    """Refuse to switch a running stack's security mode (its configs would be rewritten under it). A PID
    file without a mode file is from before the secure mode existed: plaintext."""
    wanted = protocol_of(settings)
    for service in ("kafka", "connect"):
        if _owned_record(layout, service) is None:
            continue
        try:
            running = _security_file(layout, service).read_text().strip()
        except FileNotFoundError:
            running = "plaintext"
        if running != wanted:
            raise StackError(
                f"{service} of the stack in {layout.root} runs in {running} mode, {wanted} was asked for: stop it "
                "first (`nudge stack down`), or give the other mode its own NUDGE_CACHE_DIR and ports "
                "(NUDGE_KAFKA_PORT, NUDGE_KAFKA_CONTROLLER_PORT, NUDGE_CONNECT_PORT, NUDGE_DYNAMODB_PORT)"
            )


_quiet_admin = logging.getLogger("stack.launcher.librdkafka")
_quiet_admin.addHandler(logging.NullHandler())
_quiet_admin.propagate = False


def topic_admin(settings: Settings) -> AdminClient | None:
    """An AdminClient for ensure_topics when the broker needs credentials; None lets it build its own."""
    extra = confluent_security(settings)
    if not extra:
        return None
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers, "socket.timeout.ms": 10000,
                            "logger": _quiet_admin, **extra}
    return AdminClient(conf)


def _start(
    settings: Settings, layout: StackLayout, service: str, result: UpResult, echo: Echo,
    material: secure.SecureMaterial | None = None,
) -> None:
    """Start service unless it already runs (ours), already answers (not ours), or is external."""
    address = _address(settings, service)
    if _external(settings, service):
        echo(f"{service}: external at {address}, not started here")
        result.not_ours.append(service)
        return
    record = _owned_record(layout, service)
    if record is not None:
        echo(f"{service}: already running (pid {record.pid}) at {address}")
        result.already_running.append(service)
        return
    if PROBES[service](settings) is None:
        echo(f"{service}: already answering at {address} but not started by `nudge stack`: using it as is")
        result.not_ours.append(service)
        return
    if service == "kafka":
        _format_kafka_storage(settings, layout, echo, material)
    record = procs.spawn(
        _command(settings, layout, service), log_path=layout.log_file(service),
        pid_path=layout.pid_file(service), cwd=layout.root,
    )
    _security_file(layout, service).write_text(protocol_of(settings) + "\n")
    echo(f"{service}: starting (pid {record.pid}), log {layout.log_file(service)}")
    result.started.append(service)


def _wait(settings: Settings, layout: StackLayout, service: str, echo: Echo) -> None:
    """Block until service answers; fail fast if its process dies, with its log's tail either way."""
    probe = PROBES[service]
    record = _owned_record(layout, service)
    deadline = time.monotonic() + START_TIMEOUT_S[service]
    started = time.monotonic()
    reason = probe(settings)
    while reason is not None:
        if record is not None and procs.exited_early(record):
            raise ServiceDidNotStart(
                f"{service} exited during start-up ({reason}).\n{_log_tail(layout, service)}"
            )
        if time.monotonic() > deadline:
            raise ServiceDidNotStart(
                f"{service} did not answer at {_address(settings, service)} within "
                f"{START_TIMEOUT_S[service]:.0f} s ({reason}).\n{_log_tail(layout, service)}"
            )
        time.sleep(0.5)
        reason = probe(settings)
    echo(f"{service}: answering at {_address(settings, service)} ({time.monotonic() - started:.1f} s)")


def up(settings: Settings, *, echo: Echo = print) -> UpResult:
    """Bring the whole stack up, idempotently; returns what was started. On failure, stops what it
    started itself and raises StackError (logs stay for inspection)."""
    layout = StackLayout.of(settings)
    result = UpResult()
    t0 = time.monotonic()
    with _locked(layout):
        try:
            _up_locked(settings, layout, result, echo)
        except BaseException:
            if result.started:
                echo(f"start-up failed: stopping what this call started ({', '.join(result.started)})")
                _stop_services(layout, result.started, echo)
            raise
    result.elapsed_s = time.monotonic() - t0
    echo(f"stack up in {result.elapsed_s:.1f} s")
    return result


def _up_locked(settings: Settings, layout: StackLayout, result: UpResult, echo: Echo) -> None:
    t = time.monotonic()
    if fetch_jars(layout):
        echo(f"jars: fetched into {layout.lib_dir} ({time.monotonic() - t:.1f} s)")
    _check_running_modes(settings, layout)
    material = configs.write_configs(settings, layout)
    if material is not None:
        echo(f"kafka: SASL_SSL (SCRAM-SHA-512) on {settings.bootstrap_servers}; CA {material.ca_file}")
    sink = _sink_module()
    if sink is None:
        echo("connector: connectors.sink is not available yet; DynamoDB sink plugin not installed")
    else:
        t = time.monotonic()
        try:
            sink.install(settings)
        except Exception as exc:  # the plugin's own error type; the message says what failed
            raise StackError(f"installing the DynamoDB sink plugin failed: {exc}") from exc
        if time.monotonic() - t > 1.0:  # it built the plugin (otherwise it is a quick no-op)
            echo(f"connector: DynamoDB sink plugin built and installed ({time.monotonic() - t:.1f} s)")
    _start(settings, layout, "kafka", result, echo, material)
    _start(settings, layout, "dynamodb", result, echo)
    if material is not None and not _external(settings, "kafka"):
        # Wait as the broker's own user: the app's password may have changed and is only synced below.
        _wait(secure.as_broker(settings, material), layout, "kafka", echo)
        secure.sync_users(settings, material)  # before Connect and the clients log in
    else:
        _wait(settings, layout, "kafka", echo)
    _start(settings, layout, "connect", result, echo)
    result.topics = ensure_topics(settings.bootstrap_servers, TOPICS, admin=topic_admin(settings))
    echo(result.topics.summary())
    result.topics.raise_for_mismatch()
    _wait(settings, layout, "dynamodb", echo)
    result.table_created = asyncio.run(ensure_insights_table(settings))
    echo(f"dynamodb: table insights {'created' if result.table_created else 'present'}")
    _wait(settings, layout, "connect", echo)
    if sink is not None:
        try:
            sink.register(settings)
        except Exception as exc:
            raise StackError(f"registering the DynamoDB sink connector failed: {exc}") from exc
        result.connector = "registered"
        echo("connector: DynamoDB sink registered")
        if "dynamodb" in result.started:
            _replay_scores(settings, str(sink.connector_name()), echo)


def _connector_state(settings: Settings, name: str) -> str:
    status, body = connect_request(settings, "GET", f"/connectors/{quote(name)}/status")
    if status != 200 or not isinstance(body, dict):
        raise StackError(f"connector {name}: status request answered {status}: {body}")
    return str(body.get("connector", {}).get("state", "UNKNOWN"))


def _await_connector_state(settings: Settings, name: str, wanted: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    state = _connector_state(settings, name)
    while state != wanted:
        if time.monotonic() > deadline:
            raise StackError(f"connector {name} is {state}, not {wanted}, after {timeout:.0f} s")
        time.sleep(0.25)
        state = _connector_state(settings, name)


def _replay_scores(settings: Settings, name: str, echo: Echo) -> None:
    """moto keeps DynamoDB in memory, so a freshly started one is empty while the sink's committed offsets
    say every score was written. Rewind the sink (stop, delete offsets, resume: KIP-875) so it replays the
    compacted scores topic into the new table; writes are idempotent upserts and deletes."""
    path = f"/connectors/{quote(name)}"
    status, body = connect_request(settings, "GET", f"{path}/offsets")
    if status != 200 or not isinstance(body, dict):
        raise StackError(f"connector {name}: reading its offsets answered {status}: {body}")
    if not body.get("offsets"):
        return  # never committed anything: it starts from the beginning anyway
    echo("connector: DynamoDB was empty, rewinding the sink to replay the scores topic")
    for method, step, wanted in (("PUT", "/stop", "STOPPED"), ("DELETE", "/offsets", ""), ("PUT", "/resume", "RUNNING")):
        status, body = connect_request(settings, method, f"{path}{step}")
        if status >= 300:
            raise StackError(f"connector {name}: {method} {step} answered {status}: {body}")
        if wanted:
            _await_connector_state(settings, name, wanted)


def _stop_services(layout: StackLayout, services: Sequence[str], echo: Echo) -> list[str]:
    stopped = []
    for service in reversed(SERVICES):  # Connect first, the broker last
        if service not in services:
            continue
        pid_file = layout.pid_file(service)
        record = procs.read_record(pid_file)
        if record is None:
            echo(f"{service}: not started by `nudge stack`, left alone")
            continue
        if not procs.is_running(record):
            echo(f"{service}: was not running (pid {record.pid} gone or reused)")
            pid_file.unlink(missing_ok=True)
            continue
        t = time.monotonic()
        procs.stop(record, timeout=STOP_TIMEOUT_S[service])
        pid_file.unlink(missing_ok=True)
        echo(f"{service}: stopped (pid {record.pid}, {time.monotonic() - t:.1f} s)")
        stopped.append(service)
    return stopped


def down(settings: Settings, *, only: Sequence[str] | None = None, echo: Echo = print) -> list[str]:
    """Stop the processes `up` started (all, or `only` those services); returns the ones stopped."""
    layout = StackLayout.of(settings)
    unknown = set(only or ()) - set(SERVICES)
    if unknown:
        raise StackError(f"unknown service(s) {sorted(unknown)}; known: {', '.join(SERVICES)}")
    with _locked(layout):
        return _stop_services(layout, list(only) if only is not None else list(SERVICES), echo)


def status(settings: Settings) -> list[ServiceStatus]:
    layout = StackLayout.of(settings)
    out = []
    for service in SERVICES:
        record = _owned_record(layout, service)
        reason = PROBES[service](settings)
        if _external(settings, service):
            detail = "external"
        elif record is not None:
            detail = "started by nudge stack"
        elif reason is None:
            detail = "not started by nudge stack"
        else:
            detail = "stopped"
        if reason is not None and detail != "stopped":
            detail += f"; not answering: {reason}"
        pid = record.pid if record else None
        out.append(ServiceStatus(
            service, _address(settings, service), reason is None, detail, pid,
            procs.rss_bytes(pid) if pid else None,
        ))
    return out


def logs(settings: Settings, service: str, lines: int) -> tuple[Path, list[str]]:
    if service not in SERVICES:
        raise StackError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    path = StackLayout.of(settings).log_file(service)
    return path, procs.tail(path, lines)


def fetch(settings: Settings, *, force: bool = False) -> bool:
    """Fetch the jars if the pom changed since the last fetch; True when something was fetched."""
    layout = StackLayout.of(settings)
    with _locked(layout):
        return fetch_jars(layout, force=force)
