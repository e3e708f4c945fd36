"""Install nudgestream's DynamoDB sink plugin into Kafka Connect and register the connector.

Two steps, called by the stack launcher (``nudge stack up``):

* :func:`install` builds the Maven project ``connectors/dynamodb-sink`` (only when the plugin directory is
  missing or the sources changed since it was built) and puts the connector jar and its runtime jars into
  ``<stack_dir>/plugins/nudge-dynamodb-sink``. Call it before the Connect worker starts: a worker scans its
  plugin path only at start-up.
* :func:`register` puts ``connectors/dynamodb-sink.json`` (with endpoint, region and credentials filled from
  the settings) to the worker's REST API, idempotently, and waits until the connector and all its tasks run.

Why a connector of our own: no DynamoDB sink connector is served by Maven Central (see connectors/README.md).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streams.settings import PROJECT_ROOT, Settings, load_settings

__all__ = [
    "CONNECTOR_CONFIG_FILE",
    "ConnectorError",
    "PLUGIN_NAME",
    "connector_config",
    "connector_name",
    "connector_status",
    "install",
    "plugin_dir",
    "register",
    "unregister",
]

PLUGIN_NAME = "nudge-dynamodb-sink"
MAVEN_PROJECT = PROJECT_ROOT / "connectors" / "dynamodb-sink"
CONNECTOR_CONFIG_FILE = PROJECT_ROOT / "connectors" / "dynamodb-sink.json"
STAMP_FILE = ".source-sha256"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# The dummy key pair of the local moto server (the same as stack/dynamodb.py's); real AWS never sees it.
LOCAL_CREDENTIALS = ("nudgestream-local", "nudgestream-local")
AWS_ENDPOINT = "aws"
RUNNING_STEADY_S = 2.0


class ConnectorError(RuntimeError):
    """The sink could not be built, registered or started; the message says why (with the task trace)."""


# --------------------------------------------------------------------------------------------- install


def plugin_dir(settings: Settings) -> Path:
    """The directory Connect's plugin.path must contain: ``<stack_dir>/plugins/nudge-dynamodb-sink``."""
    return settings.stack_dir / "plugins" / PLUGIN_NAME


def source_fingerprint(project: Path = MAVEN_PROJECT) -> str:
    """Hash of the pom and every main source file: the plugin is rebuilt when it changes."""
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted(p for p in (project / "src" / "main").rglob("*") if p.is_file())]
    for path in files:
        digest.update(str(path.relative_to(project)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def install(settings: Settings) -> None:
    """Build the plugin with Maven if needed and copy it into ``<stack_dir>/plugins/nudge-dynamodb-sink``."""
    target = plugin_dir(settings)
    fingerprint = source_fingerprint(MAVEN_PROJECT)
    if _installed_fingerprint(target) == fingerprint:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{PLUGIN_NAME}.lock"):
        if _installed_fingerprint(target) == fingerprint:  # another process built it meanwhile
            return
        build_dir = settings.cache_dir / "connectors-build" / PLUGIN_NAME
        built = _maven_package(build_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_NAME}-", dir=target.parent))
        try:
            jars = sorted(built.glob("*.jar"))
            if not any(j.name.startswith(PLUGIN_NAME) for j in jars):
                raise ConnectorError(f"Maven built no {PLUGIN_NAME} jar in {built}")
            for jar in jars:
                shutil.copy2(jar, staging / jar.name)
            (staging / STAMP_FILE).write_text(fingerprint + "\n")
            staging.chmod(0o755)  # mkdtemp makes it private; the worker may run as another user
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)


def _installed_fingerprint(target: Path) -> str | None:
    try:
        return (target / STAMP_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def _maven_package(build_dir: Path) -> Path:
    """Run ``mvn -q -B package`` (unit tests included) into build_dir; return the plugin folder it made."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConnectorError("Maven (mvn) is not on PATH; it is needed to build the DynamoDB sink connector")
    cmd = [mvn, "-q", "-B", "-f", str(MAVEN_PROJECT / "pom.xml"), f"-Dnudge.build.dir={build_dir}", "package"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise ConnectorError(f"building the DynamoDB sink failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    built = build_dir / "plugin" / PLUGIN_NAME
    if not built.is_dir():
        raise ConnectorError(f"Maven finished but {built} does not exist")
    return built


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -------------------------------------------------------------------------------------------- register


def _load_file(path: Path = CONNECTOR_CONFIG_FILE) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConnectorError(f"cannot read the connector config {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("config"), dict):
        raise ConnectorError(f"{path} must be an object with a string 'name' and a 'config' object")
    return data


def connector_name(path: Path = CONNECTOR_CONFIG_FILE) -> str:
    return str(_load_file(path)["name"])


def placeholder_values(settings: Settings) -> dict[str, str]:
    """What the ``${...}`` placeholders of the config file stand for under these settings.

    Same conventions as the stack (stack/dynamodb.py): no ``NUDGE_DYNAMODB_ENDPOINT`` means the local moto
    server at ``settings.dynamodb_url``; the value ``aws`` means AWS's own endpoint for the region; any other
    value is an endpoint URL. A loopback endpoint gets the dummy key pair moto accepts; anything else leaves
    the credentials to the AWS SDK's default chain inside the Connect worker (environment, profile,
    container or instance role). AWS's regional endpoint is left out: the SDK derives it from the region.
    """
    endpoint = settings.dynamodb_url.strip()
    if endpoint.lower() == AWS_ENDPOINT:
        endpoint = ""
    parsed = urllib.parse.urlsplit(endpoint)
    host = (parsed.hostname or "").lower()
    key_id = secret = ""
    if host in LOCAL_HOSTS:
        key_id, secret = LOCAL_CREDENTIALS
    elif host == f"dynamodb.{settings.aws_region}.amazonaws.com" and parsed.path in ("", "/"):
        endpoint = ""
    return {
        "dynamodb_endpoint": endpoint,
        "aws_region": settings.aws_region,
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
    }


def connector_config(settings: Settings, path: Path = CONNECTOR_CONFIG_FILE) -> dict[str, str]:
    """The connector's config from the file, placeholders filled; a key whose value fills to "" is left out
    (so the connector's default applies, e.g. the default credential chain)."""
    values = placeholder_values(settings)
    config: dict[str, str] = {}
    for key, raw in _load_file(path)["config"].items():
        if not isinstance(raw, str):
            raise ConnectorError(f"{path}: config value of {key!r} must be a string (Connect's REST API wants strings)")
        value = raw
        for name, filled in values.items():
            value = value.replace("${" + name + "}", filled)
        if "${" in value and ":" not in value:
            raise ConnectorError(f"{path}: unknown placeholder in {key}={raw!r}; known: {sorted(values)}")
        if value != "":
            config[key] = value
    return config


def _request(settings: Settings, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
    """One call to Connect's REST API; returns (status, decoded JSON or text). Raises OSError when unreachable."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        settings.connect_url + path, data=data, method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def connector_status(settings: Settings, name: str | None = None) -> dict[str, Any] | None:
    """Connect's status of the sink (``GET /connectors/NAME/status``), or None if it is not registered."""
    name = name or connector_name()
    status, body = _request(settings, "GET", f"/connectors/{urllib.parse.quote(name)}/status")
    if status == 404:
        return None
    if status != 200 or not isinstance(body, dict):
        raise ConnectorError(f"GET status of connector {name}: HTTP {status}: {body}")
    return body


def register(
    settings: Settings,
    timeout: float = 120.0,
    *,
    name: str | None = None,
    overrides: dict[str, str] | None = None,
) -> None:
    """Put the connector config (create or update; same config twice is a no-op) and wait until the
    connector and every task are RUNNING. A failed task is restarted once; failing again raises
    :class:`ConnectorError` with its trace.

    ``name`` and ``overrides`` register another instance of the same connector (the benchmark writes its
    own topic into its own table this way); by default it is the one of ``connectors/dynamodb-sink.json``.
    """
    name = name or connector_name()
    config = {**connector_config(settings), **(overrides or {})}
    deadline = time.monotonic() + timeout
    if _state(settings, name) == "PAUSED":  # left paused (an interrupted benchmark): the stack's sink runs
        _put_state(settings, name, paused=False)
    # Connect restarts a connector on every PUT, even of the same config: skip it when nothing changed, so
    # registering twice really is a no-op. A status just after a PUT, or just after the worker started, may
    # still be the previous one (RUNNING), so RUNNING must hold for a while before it counts.
    if _current_config(settings, name) != {**config, "name": name}:
        _put_config(settings, name, config, deadline)
    restarted = False
    while True:
        failed = _wait_until_settled(settings, name, deadline, RUNNING_STEADY_S)
        if failed is None:
            return
        if restarted:
            raise ConnectorError(f"connector {name} did not start:\n{failed}")
        restarted = True
        status, body = _request(
            settings, "POST", f"/connectors/{urllib.parse.quote(name)}/restart?includeTasks=true&onlyFailed=true"
        )
        if status not in (200, 202, 204):
            raise ConnectorError(f"restart of connector {name} refused: HTTP {status}: {body}\n{failed}")


def set_paused(settings: Settings, paused: bool, *, name: str | None = None, timeout: float = 60.0) -> None:
    """Pause or resume the sink (Connect's ``PUT /connectors/NAME/pause`` or ``/resume``) and wait until the
    connector and every task are PAUSED, or RUNNING again. A paused sink keeps its committed offsets and takes
    in what it missed when resumed. bench_sweep pauses it to time a sweep without the local DynamoDB
    stand-in on the same cores; ``register`` (``nudge stack up``) resumes a sink left paused."""
    name = name or connector_name()
    _put_state(settings, name, paused)
    failed = _wait_until_settled(settings, name, time.monotonic() + timeout, want="PAUSED" if paused else "RUNNING")
    if failed is not None:
        raise ConnectorError(f"connector {name} failed:\n{failed}")


def _state(settings: Settings, name: str) -> str | None:
    try:
        status = connector_status(settings, name)
    except (OSError, ConnectorError):
        return None
    return None if status is None else status.get("connector", {}).get("state")


def _put_state(settings: Settings, name: str, paused: bool) -> None:
    action = "pause" if paused else "resume"
    status, body = _request(settings, "PUT", f"/connectors/{urllib.parse.quote(name)}/{action}")
    if status not in (200, 202, 204):
        raise ConnectorError(f"{action} of connector {name}: HTTP {status}: {_message(body)}")


def unregister(settings: Settings, name: str | None = None) -> bool:
    """Delete the connector from Connect (its committed offsets stay); False if it was not registered."""
    name = name or connector_name()
    status, body = _request(settings, "DELETE", f"/connectors/{urllib.parse.quote(name)}")
    if status == 404:
        return False
    if status not in (200, 204):
        raise ConnectorError(f"DELETE of connector {name}: HTTP {status}: {_message(body)}")
    return True


def _current_config(settings: Settings, name: str) -> dict[str, str] | None:
    """The config Connect holds for the connector, or None (not registered, or Connect not answering yet)."""
    try:
        status, body = _request(settings, "GET", f"/connectors/{urllib.parse.quote(name)}/config")
    except OSError:
        return None
    return body if status == 200 and isinstance(body, dict) else None


def _put_config(settings: Settings, name: str, config: dict[str, str], deadline: float) -> None:
    """PUT the config, retrying while the worker starts up or rebalances (connection refused, 409, 5xx)."""
    delay = 0.25
    last = ""
    while True:
        try:
            status, body = _request(settings, "PUT", f"/connectors/{urllib.parse.quote(name)}/config", config)
        except OSError as exc:
            status, body = 0, str(exc)
        if status in (200, 201):
            return
        if status == 400 or (400 < status < 500 and status != 409):
            raise ConnectorError(f"Kafka Connect refused the config of {name}: HTTP {status}: {_message(body)}")
        last = f"HTTP {status}: {_message(body)}" if status else f"unreachable: {body}"
        if time.monotonic() + delay > deadline:
            raise ConnectorError(f"could not register connector {name} at {settings.connect_url}: {last}")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _wait_until_settled(
    settings: Settings, name: str, deadline: float, steady_s: float = 0.0, want: str = "RUNNING"
) -> str | None:
    """Poll the status until the connector and all tasks are ``want`` for steady_s (→ None) or something
    FAILED (→ its description)."""
    seen = "no status yet"
    running_since: float | None = None
    while True:
        try:
            status = connector_status(settings, name)
        except OSError as exc:
            status, seen = None, f"Connect unreachable: {exc}"
        if status is not None:
            connector = status.get("connector", {})
            tasks = status.get("tasks", [])
            failures = [
                f"connector {connector.get('state')} on {connector.get('worker_id')}:\n{connector.get('trace', '')}"
            ] if connector.get("state") == "FAILED" else []
            failures += [
                f"task {t.get('id')} FAILED on {t.get('worker_id')}:\n{t.get('trace', '')}"
                for t in tasks if t.get("state") == "FAILED"
            ]
            if failures:
                return "\n".join(failures)
            if connector.get("state") == want and tasks and all(t.get("state") == want for t in tasks):
                running_since = running_since or time.monotonic()
                if time.monotonic() - running_since >= steady_s:
                    return None
            else:
                running_since = None
            seen = f"connector {connector.get('state')}, tasks {[t.get('state') for t in tasks]}"
        if time.monotonic() > deadline:
            raise ConnectorError(f"connector {name} not {want} in time: {seen}")
        time.sleep(0.25)


def _message(body: object) -> str:
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)


# ------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m connectors.sink install|register|status|config`` for manual use."""
    parser = argparse.ArgumentParser(prog="python -m connectors.sink", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["install", "register", "status", "config"])
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        if args.action == "install":
            install(settings)
            print(plugin_dir(settings))
        elif args.action == "register":
            register(settings)
            print(json.dumps(connector_status(settings), indent=2))
        elif args.action == "status":
            print(json.dumps(connector_status(settings), indent=2))
        else:
            print(json.dumps(connector_config(settings), indent=2))
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
