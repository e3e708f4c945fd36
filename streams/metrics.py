"""Prometheus metrics of the pipeline (served at /metrics by the worker's web server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "EVENTS_IN",
    "EVENTS_OUT",
    "EVALUATIONS",
    "EVALUATION_SECONDS",
    "DUPLICATES",
    "PROCESSING_ERRORS",
    "SWEEP_CUSTOMERS",
    "SWEEP_REQUESTS",
    "SWEEP_RESWEPT",
    "CATALOGUE_RULES",
    "EVENT_AGE",
    "EVENT_AGE_BUCKETS",
]

EVENTS_IN = Counter("nudge_events_in_total", "Messages consumed, per topic.", ["topic"])
EVENTS_OUT = Counter("nudge_events_out_total", "Messages produced, per topic.", ["topic"])
EVALUATIONS = Counter("nudge_rule_evaluations_total", "Rule evaluations, per path.", ["path"])
EVALUATION_SECONDS = Histogram(
    "nudge_customer_scoring_seconds",
    "Time to fold and re-score one customer's batch (or one sweep request).",
    ["path"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1),
)
DUPLICATES = Counter("nudge_duplicate_transactions_total", "Transactions already folded (redeliveries).")
PROCESSING_ERRORS = Counter(
    "nudge_processing_errors_total", "Messages that failed processing, per topic.", ["topic"]
)
SWEEP_CUSTOMERS = Counter("nudge_sweep_customers_total", "Sweep requests processed, per sweep.", ["sweep_id"])
SWEEP_REQUESTS = Counter(
    "nudge_sweep_requests_total", "Sweep request messages finished: swept, or dead-lettered whole."
)
SWEEP_RESWEPT = Counter(
    "nudge_sweep_reswept_total",
    "Customers swept a second time because a transaction changed their record while a sweep process had it.",
)
CATALOGUE_RULES = Gauge("nudge_catalogue_rules", "Rules in this worker's catalogue.")
EVENT_AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
EVENT_AGE = Histogram(
    "nudge_event_age_seconds",
    "Age of a message (its Kafka timestamp to now) when its agent takes it in: time spent before the agent, "
    "in the broker, the fetcher or Faust's buffers, as opposed to processing time.",
    ["topic"],
    buckets=EVENT_AGE_BUCKETS,
)
