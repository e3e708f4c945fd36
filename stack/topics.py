"""Create the declared topics (streams/topics.py) and report any existing topic that disagrees.

Partitions, cleanup policy, retention and every extra config of a declaration are compared with the
broker's view. A mismatch is never "fixed" here (fewer partitions would break key ordering, a changed
cleanup policy can delete data): it is reported and the command fails, so an operator decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from stack.errors import StackError, TopicMismatchError
from streams.topics import TopicSpec

__all__ = ["TopicMismatch", "TopicsReport", "ensure_topics", "check_topics", "admin_client"]

REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicMismatch:
    topic: str
    setting: str
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, declared {self.declared}"


@dataclass
class TopicsReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    mismatches: list[TopicMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        text = f"topics: {len(self.created)} created, {len(self.unchanged)} already as declared"
        if self.mismatches:
            text += f", {len(self.mismatches)} mismatch(es):\n" + "\n".join(f"  {m}" for m in self.mismatches)
        return text

    def raise_for_mismatch(self) -> None:
        if self.mismatches:
            raise TopicMismatchError(
                "existing topics disagree with streams/topics.py (fix the declaration or the topic; "
                "nothing was changed):\n" + "\n".join(f"  {m}" for m in self.mismatches)
            )


_quiet = logging.getLogger("stack.topics.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def admin_client(bootstrap_servers: str) -> AdminClient:
    """An AdminClient whose librdkafka chatter is dropped: failures surface as exceptions instead."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 10000, "logger": _quiet}
    return AdminClient(conf)


def _same_value(setting: str, declared: str, actual: str) -> bool:
    if setting == "cleanup.policy":
        return {p.strip() for p in declared.split(",")} == {p.strip() for p in actual.split(",")}
    try:
        return int(declared) == int(actual)
    except ValueError:
        return declared == actual


def check_topics(admin: AdminClient, specs: Sequence[TopicSpec]) -> tuple[list[TopicSpec], TopicsReport]:
    """Compare the declarations with the cluster: returns the missing specs and a report on the others."""
    metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
    existing = {name: len(meta.partitions) for name, meta in metadata.topics.items() if meta.error is None}
    report = TopicsReport()
    present = [s for s in specs if s.name in existing]
    missing = [s for s in specs if s.name not in existing]
    configs = _describe(admin, [s.name for s in present])
    for spec in present:
        found: list[TopicMismatch] = []
        if existing[spec.name] != spec.partitions:
            found.append(TopicMismatch(spec.name, "partitions", str(spec.partitions), str(existing[spec.name])))
        actual = configs[spec.name]
        for setting, declared in spec.config.items():
            value = actual.get(setting)
            if value is None or not _same_value(setting, declared, value):
                found.append(TopicMismatch(spec.name, setting, declared, "unset" if value is None else value))
        if found:
            report.mismatches.extend(found)
        else:
            report.unchanged.append(spec.name)
    return missing, report


def _describe(admin: AdminClient, names: Iterable[str]) -> dict[str, dict[str, str]]:
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    futures = admin.describe_configs(resources, request_timeout=REQUEST_TIMEOUT_S)
    out: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        entries = future.result()
        out[resource.name] = {key: entry.value for key, entry in entries.items() if entry.value is not None}
    return out


def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], *, admin: AdminClient | None = None
) -> TopicsReport:
    """Create every missing topic of specs; report (not fix) existing ones that differ.

    Idempotent: a second run creates nothing. A topic created concurrently by someone else is checked like
    any existing one. The replication factor is the broker's default (1 on the local stack).
    """
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise StackError(f"a topic is declared twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    admin = admin if admin is not None else admin_client(bootstrap_servers)  # an AdminClient has len() 0
    try:
        missing, report = check_topics(admin, specs)
        if not missing:
            return report
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, config=dict(s.config)) for s in missing],
            request_timeout=REQUEST_TIMEOUT_S,
        )
        raced: list[TopicSpec] = []
        by_name = {s.name: s for s in missing}
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                error = exc.args[0]
                if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    raced.append(by_name[name])
                    continue
                raise StackError(f"creating topic {name!r} failed: {error}") from exc
            report.created.append(name)
        if raced:
            _, again = check_topics(admin, raced)
            report.unchanged.extend(again.unchanged)
            report.mismatches.extend(again.mismatches)
        return report
    except KafkaException as exc:
        raise StackError(f"talking to Kafka at {bootstrap_servers} failed: {exc.args[0]}") from exc
