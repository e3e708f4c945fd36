"""Every Kafka topic nudgestream uses, declared once.

`nudge topics` (and `nudge stack up`) create them from this list, the Faust app declares its topics from
it, and a test checks docker-compose.yml against it. Faust's own changelog and repartition topics are
created by Faust and are not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TopicSpec", "TOPICS", "dead_letter_of", "topic_by_name"]

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    doc: str = ""
    has_dead_letter: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        """Topic-level configs as Kafka expects them."""
        cfg = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(-1 if self.compacted else self.retention_ms),
        }
        cfg.update(self.extra_config)
        return cfg


def dead_letter_of(topic: str) -> str:
    """Name of the dead-letter twin of an input topic."""
    return f"{topic}.dlq"


_INPUTS = [
    TopicSpec("transactions", 4, doc="Avro transactions keyed by customer_id.", has_dead_letter=True),
    TopicSpec("balances", 4, doc="Avro balance snapshots keyed by customer_id.", has_dead_letter=True),
    TopicSpec(
        "customers",
        4,
        compacted=True,
        doc="Customer lifecycle (consent, erasure), keyed by customer_id.",
        has_dead_letter=True,
    ),
    TopicSpec(
        "rules", 1, compacted=True, doc="Rule catalogue, keyed by rule_id, versioned.", has_dead_letter=True
    ),
    TopicSpec(
        "sweep", 4, retention_ms=14 * DAY_MS, doc="Sweep requests keyed by customer_id.", has_dead_letter=True
    ),
    TopicSpec(
        "alerts", 4, doc="Alerts to deliver to the app's webhook, keyed by customer_id.", has_dead_letter=True
    ),
]

_OUTPUTS = [
    TopicSpec(
        "scores", 4, compacted=True, doc="Latest score per customer_id#rule_id (JSON); null = deleted."
    ),
    TopicSpec(
        "alerts.retry", 4, doc="Alerts waiting for a delivery retry (attempt and due time in headers)."
    ),
    TopicSpec("sweep-progress", 1, compacted=True, doc="Sweep start/finish markers and per-worker progress."),
    TopicSpec(
        "transaction-counts", 4, doc="Running transaction count per customer (the first vertical slice)."
    ),
    TopicSpec("scores.connect.dlq", 1, doc="Records the DynamoDB sink connector could not write."),
]

TOPICS: list[TopicSpec] = [
    *_INPUTS,
    *[
        TopicSpec(dead_letter_of(t.name), 1, retention_ms=30 * DAY_MS, doc=f"Dead letters of {t.name}.")
        for t in _INPUTS
        if t.has_dead_letter
    ],
    *_OUTPUTS,
]


def topic_by_name(name: str) -> TopicSpec:
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
