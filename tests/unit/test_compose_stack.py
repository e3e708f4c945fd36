"""docker-compose.yml must describe the same stack as the code: services, ports, versions, topics."""

from __future__ import annotations

import base64
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.compose import topic_init_script
from stack.configs import connect_worker_properties, kafka_server_properties
from stack.layout import POM_PATH, StackLayout
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import TOPICS

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SETTINGS = Settings()
EXPECTED_SERVICES = {
    "kafka", "topic-init", "dynamodb", "table-init", "connect-plugin-build", "connect", "connector-init", "worker",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    return dict(compose["services"])


def _kafka_version() -> str:
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM_PATH.read_text())
    assert found is not None
    return found.group(1)


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for spec in service.get("ports", []):
        host_ip, host_port, container_port = str(spec).split(":")
        out.append((host_ip, int(host_port), int(container_port)))
    return out


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def parse_topic_script(script: str) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name → (partitions, configs) from the `create --topic ...` lines of a topic-init script."""
    topics: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if not words or words[0] != "create":
            continue
        args = dict(zip(words[1::2], words[2::2], strict=False))
        configs = dict(w.split("=", 1) for flag, w in zip(words[1::2], words[2::2], strict=False) if flag == "--config")
        assert args["--replication-factor"] == "1", line
        assert args["--topic"] not in topics, f"topic created twice: {line}"
        topics[args["--topic"]] = (int(args["--partitions"]), configs)
    return topics


def test_services_are_the_declared_ones(services: dict[str, Any]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_published_ports_are_the_settings_defaults_on_loopback(services: dict[str, Any]) -> None:
    expected = {
        "kafka": [("127.0.0.1", SETTINGS.kafka_port, SETTINGS.kafka_port)],
        "dynamodb": [("127.0.0.1", SETTINGS.dynamodb_port, SETTINGS.dynamodb_port)],
        "connect": [("127.0.0.1", SETTINGS.connect_port, SETTINGS.connect_port)],
        "worker": [("127.0.0.1", SETTINGS.web_port, SETTINGS.web_port)],
    }
    published = {name: _published(svc) for name, svc in services.items() if svc.get("ports")}
    assert published == expected


def test_images_match_the_pinned_versions(services: dict[str, Any]) -> None:
    kafka_image = f"apache/kafka:{_kafka_version()}"
    assert services["kafka"]["image"] == kafka_image
    assert services["topic-init"]["image"] == kafka_image
    assert services["connect"]["image"] == kafka_image
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    moto_pin = next(d for d in deps if d.startswith("moto"))
    assert services["dynamodb"]["image"] == f"motoserver/moto:{moto_pin.split('==')[1]}"
    assert services["dynamodb"]["environment"]["MOTO_PORT"] == SETTINGS.dynamodb_port


def test_nothing_uses_dynamodb_local(services: dict[str, Any]) -> None:
    assert not any("dynamodb-local" in str(svc.get("image", "")) for svc in services.values())


def test_broker_settings_agree_with_the_local_stack(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    compose_props = {
        key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
        for key, value in env.items() if key.startswith("KAFKA_") and key != "KAFKA_HEAP_OPTS"
    }
    local = _properties(kafka_server_properties(SETTINGS, StackLayout(Path("/x"))))
    shared = [
        "process.roles", "num.partitions", "default.replication.factor", "min.insync.replicas",
        "offsets.topic.replication.factor", "offsets.topic.num.partitions",
        "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor", "share.coordinator.state.topic.min.isr",
        "group.initial.rebalance.delay.ms", "auto.create.topics.enable",
    ]
    assert {k: compose_props.get(k) for k in shared} == {k: local[k] for k in shared}
    assert f"HOST://127.0.0.1:{SETTINGS.kafka_port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_connect_worker_agrees_with_the_local_stack(services: dict[str, Any]) -> None:
    mount = next(v for v in services["connect"]["volumes"] if v.endswith("connect-distributed.properties:ro"))
    compose_props = _properties((PROJECT_ROOT / mount.split(":")[0]).read_text())
    local = _properties(connect_worker_properties(SETTINGS, StackLayout(Path("/x"))))
    differing = {"bootstrap.servers", "listeners", "rest.advertised.host.name", "plugin.path"}
    assert {k: v for k, v in compose_props.items() if k not in differing} == {
        k: v for k, v in local.items() if k not in differing
    }
    assert compose_props["listeners"].endswith(f":{SETTINGS.connect_port}")
    assert compose_props["bootstrap.servers"] == "kafka:29092"
    # The plugin is built into the connect-plugins volume under plugin/ (connectors' Maven build layout).
    assert "connect-plugins:/opt/connect-plugins:ro" in services["connect"]["volumes"]
    assert compose_props["plugin.path"] == "/opt/connect-plugins/plugin"


def test_topic_init_creates_exactly_the_declared_topics(services: dict[str, Any]) -> None:
    script = services["topic-init"]["command"][0]
    declared = {t.name: (t.partitions, t.config) for t in TOPICS}
    assert parse_topic_script(script) == declared, (
        "docker-compose.yml's topic-init disagrees with streams/topics.py: regenerate it with "
        "`python -m stack.compose`"
    )


def test_topic_init_script_generator_follows_topics() -> None:
    assert parse_topic_script(topic_init_script()) == {t.name: (t.partitions, t.config) for t in TOPICS}


def test_worker_images_are_built_from_the_dockerfile(services: dict[str, Any]) -> None:
    assert (PROJECT_ROOT / "Dockerfile").is_file()
    assert services["table-init"]["build"] == "."
    image = services["table-init"]["image"]
    assert services["worker"]["image"] == image and services["connector-init"]["image"] == image
    assert services["worker"]["command"] == ["nudge", "worker"]
