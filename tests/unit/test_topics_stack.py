"""Topic declarations and the create/compare logic of `nudge topics`, against an in-memory admin."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic

from stack.errors import StackError, TopicMismatchError
from stack.topics import ensure_topics
from streams.topics import TOPICS, TopicSpec, dead_letter_of


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _failed(exc: BaseException) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(exc)
    return future


@dataclass
class _Entry:
    value: str | None


@dataclass
class _TopicMeta:
    partitions: dict[int, object]
    error: object = None


@dataclass
class _Metadata:
    topics: dict[str, _TopicMeta]


@dataclass
class FakeAdmin:
    """Just the AdminClient calls stack.topics makes, over a dict of topics."""

    topics: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    exists_on_create: set[str] = field(default_factory=set)

    def list_topics(self, timeout: float) -> _Metadata:
        return _Metadata({n: _TopicMeta(dict.fromkeys(range(p))) for n, (p, _) in self.topics.items()})

    def describe_configs(self, resources: list[ConfigResource], request_timeout: float) -> dict[Any, Future[Any]]:
        defaults = {"cleanup.policy": "delete", "retention.ms": "604800000", "segment.bytes": "1073741824"}
        return {
            r: _done({k: _Entry(v) for k, v in {**defaults, **self.topics[r.name][1]}.items()}) for r in resources
        }

    def create_topics(self, new: list[NewTopic], request_timeout: float) -> dict[str, Future[Any]]:
        out: dict[str, Future[Any]] = {}
        for t in new:
            if t.topic in self.exists_on_create:
                out[t.topic] = _failed(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
                continue
            self.topics[t.topic] = (t.num_partitions, dict(t.config or {}))
            self.created.append(t.topic)
            out[t.topic] = _done(None)
        return out


def _ensure(admin: FakeAdmin, specs: list[TopicSpec]) -> Any:
    return ensure_topics("fake:9092", specs, admin=admin)  # type: ignore[arg-type]


def test_every_input_topic_has_its_dead_letter_twin_and_names_are_unique() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    for spec in TOPICS:
        if spec.has_dead_letter:
            assert dead_letter_of(spec.name) in names
    assert {"transactions", "rules", "sweep", "scores", "alerts"} <= set(names)


def test_compacted_topics_keep_everything() -> None:
    for spec in TOPICS:
        if spec.compacted:
            assert spec.config == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert {t.name for t in TOPICS if t.compacted} >= {"rules", "scores"}


def test_missing_topics_are_created_with_their_declared_settings() -> None:
    admin = FakeAdmin()
    report = _ensure(admin, TOPICS)
    assert report.ok and sorted(report.created) == sorted(t.name for t in TOPICS)
    assert admin.topics["scores"] == (4, {"cleanup.policy": "compact", "retention.ms": "-1"})


def test_second_run_creates_nothing() -> None:
    admin = FakeAdmin()
    _ensure(admin, TOPICS)
    admin.created.clear()
    report = _ensure(admin, TOPICS)
    assert admin.created == [] and report.created == []
    assert sorted(report.unchanged) == sorted(t.name for t in TOPICS)


def test_every_kind_of_mismatch_is_reported_and_nothing_is_changed() -> None:
    admin = FakeAdmin(topics={"scores": (2, {"cleanup.policy": "delete", "retention.ms": "86400000"})})
    spec = TopicSpec("scores", 4, compacted=True, extra_config={"min.compaction.lag.ms": "1000"})
    report = _ensure(admin, [spec])
    assert not report.ok
    assert {(m.setting, m.declared, m.actual) for m in report.mismatches} == {
        ("partitions", "4", "2"),
        ("cleanup.policy", "compact", "delete"),
        ("retention.ms", "-1", "86400000"),
        ("min.compaction.lag.ms", "1000", "unset"),
    }
    assert admin.topics["scores"][0] == 2 and admin.created == []
    with pytest.raises(TopicMismatchError, match="scores: partitions is 2, declared 4"):
        report.raise_for_mismatch()


def test_cleanup_policy_order_and_number_formatting_do_not_count_as_mismatch() -> None:
    admin = FakeAdmin(topics={"t": (1, {"cleanup.policy": "delete,compact", "retention.ms": "0100"})})
    spec = TopicSpec("t", 1, retention_ms=100, extra_config={"cleanup.policy": "compact,delete"})
    assert _ensure(admin, [spec]).ok


def test_topic_created_concurrently_is_checked_like_an_existing_one() -> None:
    admin = FakeAdmin(exists_on_create={"alerts"})
    spec = TopicSpec("alerts", 4)

    # Someone else creates it with 1 partition between our check and our create.
    original = admin.create_topics

    def racing_create(new: list[NewTopic], request_timeout: float) -> dict[str, Future[Any]]:
        admin.topics["alerts"] = (1, {})
        return original(new, request_timeout)

    admin.create_topics = racing_create  # type: ignore[method-assign]
    report = _ensure(admin, [spec])
    assert report.created == []
    assert [(m.topic, m.setting) for m in report.mismatches] == [("alerts", "partitions")]


def test_duplicate_declaration_is_an_error() -> None:
    with pytest.raises(StackError, match="declared twice"):
        _ensure(FakeAdmin(), [TopicSpec("a", 1), TopicSpec("a", 2)])
