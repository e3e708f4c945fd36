"""connectors.sink: the connector config it registers, its REST conversation with Connect, and when it builds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors import sink
from streams.settings import Settings, load_settings

NAME = "nudge-dynamodb-sink"


# ------------------------------------------------------------------------------------------- config


def test_local_config_points_at_moto_with_its_dummy_keys() -> None:
    config = sink.connector_config(load_settings({}))
    assert config["dynamodb.endpoint"] == "http://127.0.0.1:18000"
    assert config["aws.region"] == "eu-west-2"
    assert (config["aws.access.key.id"], config["aws.secret.access.key"]) == sink.LOCAL_CREDENTIALS
    assert config["topics"] == "scores"
    assert config["errors.tolerance"] == "all"
    assert config["errors.deadletterqueue.topic.name"] == "scores.connect.dlq"
    assert config["errors.deadletterqueue.context.headers.enable"] == "true"
    assert config["connector.class"] == "io.nudgestream.connect.dynamodb.DynamoDbSinkConnector"
    assert not any("${" in value for value in config.values())


@pytest.mark.parametrize("endpoint", ["aws", "AWS", "https://dynamodb.eu-west-1.amazonaws.com"])
def test_real_aws_uses_the_regional_endpoint_and_the_default_credential_chain(endpoint: str) -> None:
    config = sink.connector_config(load_settings({"NUDGE_DYNAMODB_ENDPOINT": endpoint, "NUDGE_AWS_REGION": "eu-west-1"}))
    assert config["aws.region"] == "eu-west-1"
    for key in ("dynamodb.endpoint", "aws.access.key.id", "aws.secret.access.key"):
        assert key not in config


def test_another_endpoint_is_kept_and_credentials_left_to_the_chain() -> None:
    url = "https://vpce-0abc.dynamodb.eu-west-2.vpce.amazonaws.com"
    config = sink.connector_config(load_settings({"NUDGE_DYNAMODB_ENDPOINT": url}))
    assert config["dynamodb.endpoint"] == url
    assert "aws.access.key.id" not in config


def test_a_config_file_with_an_unknown_placeholder_or_a_non_string_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "x", "config": {"dynamodb.table": "${table_name}"}}))
    with pytest.raises(sink.ConnectorError, match="unknown placeholder"):
        sink.connector_config(load_settings({}), path)
    path.write_text(json.dumps({"name": "x", "config": {"tasks.max": 2}}))
    with pytest.raises(sink.ConnectorError, match="must be a string"):
        sink.connector_config(load_settings({}), path)
    path.write_text("[]")
    with pytest.raises(sink.ConnectorError, match="'name'"):
        sink.connector_config(load_settings({}), path)
    # Connect's own config-provider references pass through untouched.
    path.write_text(json.dumps({"name": "x", "config": {"aws.secret.access.key": "${file:/s.properties:key}"}}))
    assert sink.connector_config(load_settings({}), path) == {"aws.secret.access.key": "${file:/s.properties:key}"}


# ------------------------------------------------------------------------------------ fake Connect


class FakeConnect:
    """Just enough of Kafka Connect's REST API: PUT config, GET status, POST restart."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.put_answers: list[tuple[int, Any]] = []  # served first, then 200/201
        self.task_states: list[list[str]] = [["RUNNING", "RUNNING"]]  # one per status poll; the last repeats
        self.after_restart: list[list[str]] | None = None
        self.connector_state = "RUNNING"

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.calls.append((method, path))
        if method == "GET" and path == f"/connectors/{NAME}/config":
            if NAME not in self.configs:
                return 404, {"error_code": 404, "message": f"Connector {NAME} not found"}
            return 200, {**self.configs[NAME], "name": NAME}
        if method == "PUT" and path == f"/connectors/{NAME}/config":
            if self.put_answers:
                return self.put_answers.pop(0)
            created = NAME not in self.configs
            self.configs[NAME] = body
            return (201 if created else 200), {"name": NAME, "config": body}
        if method == "GET" and path == f"/connectors/{NAME}/status":
            if NAME not in self.configs:
                return 404, {"error_code": 404, "message": f"No status found for connector {NAME}"}
            states = self.task_states.pop(0) if len(self.task_states) > 1 else self.task_states[0]
            tasks = [
                {"id": i, "state": s, "worker_id": "w", **({"trace": f"boom in task {i}"} if s == "FAILED" else {})}
                for i, s in enumerate(states)
            ]
            return 200, {"name": NAME, "connector": {"state": self.connector_state, "worker_id": "w"}, "tasks": tasks}
        if method == "PUT" and path in (f"/connectors/{NAME}/pause", f"/connectors/{NAME}/resume"):
            if NAME not in self.configs:
                return 404, {"message": f"Connector {NAME} not found"}
            state = "PAUSED" if path.endswith("/pause") else "RUNNING"
            self.connector_state = state
            self.task_states = [[state] * len(self.task_states[-1])]
            return 202, None
        if method == "POST" and path.startswith(f"/connectors/{NAME}/restart"):
            if self.after_restart is not None:
                self.task_states = self.after_restart
            return 202, {}
        return 404, {"message": "not found"}


@pytest.fixture
def connect() -> Iterator[tuple[FakeConnect, Settings]]:
    fake = FakeConnect()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path, body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_PUT = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, load_settings({}, connect_port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_register_puts_the_config_and_waits_for_running_tasks(
    connect: tuple[FakeConnect, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, settings = connect
    monkeypatch.setattr(sink, "RUNNING_STEADY_S", 0.3)
    fake.task_states = [[], ["UNASSIGNED", "RUNNING"], ["RUNNING", "RUNNING"]]
    sink.register(settings, timeout=10)
    assert fake.configs[NAME] == sink.connector_config(settings)
    assert [c for c in fake.calls if c[0] == "PUT"] == [("PUT", f"/connectors/{NAME}/config")]
    assert sum(1 for c in fake.calls if c[0] == "GET" and c[1].endswith("/status")) >= 3

    sink.register(settings, timeout=10)  # the same config again: no PUT (Connect would restart the tasks)
    assert list(fake.configs) == [NAME]
    assert [c for c in fake.calls if c[0] == "PUT"] == [("PUT", f"/connectors/{NAME}/config")]

    sink.register(settings, timeout=10, overrides={"tasks.max": "3"})  # a change is put
    assert fake.configs[NAME]["tasks.max"] == "3"
    assert [c[0] for c in fake.calls].count("PUT") == 2


def test_the_sink_is_paused_and_resumed_and_stack_up_resumes_a_sink_left_paused(
    connect: tuple[FakeConnect, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, settings = connect
    monkeypatch.setattr(sink, "RUNNING_STEADY_S", 0.0)
    sink.register(settings, timeout=10)
    sink.set_paused(settings, True, timeout=10)
    assert fake.connector_state == "PAUSED" and fake.task_states == [["PAUSED", "PAUSED"]]
    sink.set_paused(settings, False, timeout=10)
    assert fake.connector_state == "RUNNING"

    sink.set_paused(settings, True, timeout=10)  # an interrupted benchmark left it paused
    sink.register(settings, timeout=10)
    assert fake.connector_state == "RUNNING" and ("PUT", f"/connectors/{NAME}/resume") in fake.calls[-4:]


def test_pausing_an_unregistered_sink_says_so(connect: tuple[FakeConnect, Settings]) -> None:
    _, settings = connect
    with pytest.raises(sink.ConnectorError, match="pause of connector .*404"):
        sink.set_paused(settings, True, timeout=1)


def test_register_retries_while_connect_rebalances(connect: tuple[FakeConnect, Settings]) -> None:
    fake, settings = connect
    fake.put_answers = [(409, {"message": "rebalance in progress"}), (500, {"message": "timeout"})]
    sink.register(settings, timeout=10)
    assert [c[0] for c in fake.calls].count("PUT") == 3


def test_a_refused_config_raises_with_connects_message(connect: tuple[FakeConnect, Settings]) -> None:
    fake, settings = connect
    fake.put_answers = [(400, {"error_code": 400, "message": "Invalid value 26 for configuration batch.size"})]
    with pytest.raises(sink.ConnectorError, match="batch.size"):
        sink.register(settings, timeout=10)


def test_a_failed_task_is_restarted_once(connect: tuple[FakeConnect, Settings]) -> None:
    fake, settings = connect
    fake.task_states = [["RUNNING", "FAILED"]]
    fake.after_restart = [["RUNNING", "RUNNING"]]
    sink.register(settings, timeout=10)
    assert ("POST", f"/connectors/{NAME}/restart?includeTasks=true&onlyFailed=true") in fake.calls


def test_a_task_failing_again_raises_with_its_trace(connect: tuple[FakeConnect, Settings]) -> None:
    fake, settings = connect
    fake.task_states = [["FAILED", "RUNNING"]]
    fake.after_restart = [["FAILED", "RUNNING"]]
    with pytest.raises(sink.ConnectorError, match="task 0 FAILED on w:\nboom in task 0"):
        sink.register(settings, timeout=10)


def test_register_gives_up_when_connect_never_answers() -> None:
    settings = load_settings({}, connect_port=1)  # nothing listens on port 1
    with pytest.raises(sink.ConnectorError, match="unreachable"):
        sink.register(settings, timeout=1)


# ------------------------------------------------------------------------------------------ install


def test_install_builds_only_when_the_sources_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "src" / "main" / "java").mkdir(parents=True)
    (project / "pom.xml").write_text("<project/>")
    source = project / "src" / "main" / "java" / "A.java"
    source.write_text("class A {}")
    monkeypatch.setattr(sink, "MAVEN_PROJECT", project)
    builds: list[Path] = []

    def fake_build(build_dir: Path) -> Path:
        out = build_dir / "plugin" / sink.PLUGIN_NAME
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{sink.PLUGIN_NAME}-0.1.0.jar").write_text(source.read_text())
        (out / "dep.jar").write_text("dep")
        builds.append(build_dir)
        return out

    monkeypatch.setattr(sink, "_maven_package", fake_build)
    settings = load_settings({}, cache_dir=tmp_path / "cache")
    target = sink.plugin_dir(settings)
    assert target == tmp_path / "cache" / "stack" / "plugins" / "nudge-dynamodb-sink"

    sink.install(settings)
    assert sorted(p.name for p in target.iterdir()) == [sink.STAMP_FILE, "dep.jar", "nudge-dynamodb-sink-0.1.0.jar"]
    sink.install(settings)
    assert len(builds) == 1

    source.write_text("class A { int x; }")
    sink.install(settings)
    assert len(builds) == 2
    assert (target / "nudge-dynamodb-sink-0.1.0.jar").read_text() == "class A { int x; }"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".nudge-dynamodb-sink-")]


def test_the_fingerprint_follows_the_main_sources_only(tmp_path: Path) -> None:
    (tmp_path / "src" / "main").mkdir(parents=True)
    (tmp_path / "src" / "test").mkdir(parents=True)
    (tmp_path / "pom.xml").write_text("<project/>")
    first = sink.source_fingerprint(tmp_path)
    (tmp_path / "src" / "test" / "T.java").write_text("class T {}")
    assert sink.source_fingerprint(tmp_path) == first
    (tmp_path / "src" / "main" / "M.java").write_text("class M {}")
    assert sink.source_fingerprint(tmp_path) != first


def test_the_repository_config_file_names_the_connector() -> None:
    assert sink.connector_name() == NAME
    data = json.loads(sink.CONNECTOR_CONFIG_FILE.read_text())
    assert data["config"]["key.converter"].endswith("StringConverter")
    assert data["config"]["value.converter"].endswith("ByteArrayConverter")
