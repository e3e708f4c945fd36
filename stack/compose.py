"""The parts of docker-compose.yml that are generated from the code, so compose and code cannot drift.

``python -m stack.compose`` prints the topic-init job's script (from streams/topics.py); paste it into the
``topic-init`` service's ``command``. tests/unit/test_compose_stack.py fails when the two differ.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.topics import TOPICS, TopicSpec

__all__ = ["COMPOSE_BOOTSTRAP", "topic_init_script"]

COMPOSE_BOOTSTRAP = "kafka:29092"  # the broker's listener on the compose network
KAFKA_TOPICS = "/opt/kafka/bin/kafka-topics.sh"


def topic_init_script(specs: Sequence[TopicSpec] = TOPICS, bootstrap: str = COMPOSE_BOOTSTRAP) -> str:
    """A bash script creating every declared topic with kafka-topics.sh (already there: left alone)."""
    lines = [
        "set -euo pipefail",
        f"create() {{ {KAFKA_TOPICS} --bootstrap-server {bootstrap} --create --if-not-exists \"$@\"; }}",
    ]
    for spec in specs:
        configs = " ".join(f"--config {key}={value}" for key, value in spec.config.items())
        lines.append(f"create --topic {spec.name} --partitions {spec.partitions} --replication-factor 1 {configs}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(topic_init_script(), end="")
