"""Sweeping a batch of stored customer records: the work a sweep request hands to a sweep process.

Everything here is picklable and pure, so the same function runs in the worker's own process (agent tests,
``NUDGE_SWEEP_PROCESSES=0``) and in the worker's sweep processes, which keep the evaluation off the thread
that serves live transactions. Rules travel as their source text (a compiled rule is a generated function
and cannot be pickled); each process compiles a rule the first time it sees it and keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from core.customer import CustomerRecord, reads_of, sweep_customer
from core.rules import CompiledRule, compile_rule
from core.scoring import AlertOut, Origin, ScoreUpdate

__all__ = ["RuleSource", "StoredCustomer", "SweepJob", "SweptCustomer", "sweep_records", "rule_sources", "encode_score"]

_MAX_RULES_KEPT = 1024  # compiled rules kept per process (a catalogue is ~40; old versions age out)
_MAX_LISTS_KEPT = 64


class RuleSource(NamedTuple):
    """What a process needs to compile a rule exactly as the worker did."""

    source: str
    filename: str


@dataclass(frozen=True)
class SweepJob:
    """What one sweep request asks of every customer in it."""

    rules: tuple[RuleSource, ...]
    removed: tuple[str, ...]
    as_of: datetime | None  # None: each customer's own latest event time (a rule change re-scores "now")
    origin: Origin
    alerts_enabled: bool
    dry_run: bool


class StoredCustomer(NamedTuple):
    """A customer as the worker read them: the ``customers`` value and the ``score-books`` value (None:
    none stored yet)."""

    customer_id: str
    record: bytes
    book: bytes | None


class SweptCustomer(NamedTuple):
    """One customer's result. ``book`` is the score book to store (None: nothing changed, or a dry run): a
    sweep never changes the feature state, only what was emitted. ``scores`` are ready-encoded (key, JSON
    value or None for a tombstone) records for the scores topic."""

    customer_id: str
    book: bytes | None
    scores: list[tuple[bytes, bytes | None]]
    alerts: list[AlertOut]
    evaluations: int
    error: str | None = None


_compiled: dict[RuleSource, CompiledRule] = {}
_lists: dict[tuple[RuleSource, ...], list[CompiledRule]] = {}


def rule_sources(rules: Sequence[CompiledRule]) -> tuple[RuleSource, ...]:
    """The rules as a job carries them; this process remembers the compiled ones, so it never recompiles
    rules it already has (the worker's own, when it sweeps in-process)."""
    sources = tuple(RuleSource(rule.source, rule.filename) for rule in rules)
    _remember(sources, list(rules))
    return sources


def _remember(sources: tuple[RuleSource, ...], rules: list[CompiledRule]) -> list[CompiledRule]:
    if len(_compiled) + len(rules) > _MAX_RULES_KEPT:
        _compiled.clear()
    if len(_lists) >= _MAX_LISTS_KEPT:
        _lists.clear()
    _compiled.update(zip(sources, rules, strict=True))
    _lists[sources] = rules
    return rules


def _rules_of(sources: tuple[RuleSource, ...]) -> list[CompiledRule]:
    """The same list object for the same sources, so the catalogue-level evaluator (cached by the rules'
    identity) is generated once per process and rule list."""
    found = _lists.get(sources)
    if found is not None:
        return found
    rules = [_compiled.get(s) or compile_rule(s.source, s.filename) for s in sources]
    return _remember(sources, rules)


def encode_score(update: ScoreUpdate) -> tuple[bytes, bytes | None]:
    """The scores topic's record: key ``customer_id#rule_id``, compact JSON value, None for a tombstone."""
    value = None if update.value is None else json.dumps(update.value, separators=(",", ":")).encode()
    return update.key.encode(), value


def sweep_records(job: SweepJob, customers: Sequence[StoredCustomer]) -> list[SweptCustomer]:
    """Sweep each stored customer; one customer's failure is reported in its result and never stops the
    others."""
    rules = _rules_of(job.rules)
    reads = reads_of(rules)
    out: list[SweptCustomer] = []
    for customer in customers:
        try:
            out.append(_sweep_one(job, rules, reads, customer))
        except Exception as exc:  # noqa: BLE001 - reported per customer; the caller dead-letters it
            out.append(SweptCustomer(customer.customer_id, None, [], [], 0, f"{type(exc).__name__}: {exc}"))
    return out


def _sweep_one(
    job: SweepJob, rules: list[CompiledRule], reads: frozenset[str], customer: StoredCustomer
) -> SweptCustomer:
    customer_id = customer.customer_id
    record = CustomerRecord.from_bytes(customer.record, customer.book)
    as_of = record.as_of_datetime if job.as_of is None else job.as_of
    scores, alerts, evaluations = sweep_customer(
        record, rules, job.removed, customer_id, as_of, job.origin, job.alerts_enabled, reads=reads
    )
    changed = bool(scores or alerts) and not job.dry_run
    encoded = [encode_score(update) for update in scores]
    return SweptCustomer(customer_id, record.book_bytes() if changed else None, encoded, alerts, evaluations)
