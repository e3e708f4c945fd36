"""One customer's whole record as the workers keep it, and the incremental scoring step.

A :class:`CustomerRecord` is the feature state (bounded, a few KB), the score book (what was emitted
downstream) and the latest event time. The workers store it as two values under the customer's id, in two
RocksDB tables:

- ``customers``: the feature state and latest event time (:meth:`CustomerRecord.to_bytes`), rewritten by
  every batch of the customer's transactions;
- ``score-books``: the score book (:meth:`CustomerRecord.book_bytes`), rewritten only when a score or alert
  changed.

Split so that a sweep, which changes scores but never the features, writes ~2 KB per changed customer
instead of the whole ~13 KB record (one changelog record each, through the worker's single producer).
Records written before the split (formats 1 and 2) carry the book inside; they are still read, and a book
stored in ``score-books`` wins over one carried inside.

:func:`apply_transactions` is the incremental path in pure form: fold, find the rules reading a changed
feature, evaluate them, and return the score changes and alerts. The Faust agent only adds Kafka around it.
"""

from __future__ import annotations

import json
import marshal
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.events import Transaction
from core.features import CustomerState, features_at, fold
from core.scoring import AlertOut, Origin, ScoreBook, ScoreUpdate, rescore

__all__ = ["CustomerRecord", "BatchResult", "apply_transactions", "reads_of", "sweep_customer"]

_WITH_BOOK = struct.Struct(">BII")  # formats 1 and 2: version, state length, book length; state, book
_STATE_ONLY = struct.Struct(">Bd")  # format 3: version, latest event time; then the state
_FORMAT = 3
_BOOK_FORMAT = 1  # the first byte of a ``score-books`` value; then marshal (version 4)


@dataclass
class CustomerRecord:
    state: CustomerState = field(default_factory=CustomerState)
    book: ScoreBook = field(default_factory=ScoreBook)
    as_of: float = 0.0  # latest event time folded in (epoch seconds); event time, never wall-clock

    def to_bytes(self) -> bytes:
        """The ``customers`` table's value: the feature state and the latest event time (not the book)."""
        return _STATE_ONLY.pack(_FORMAT, float(self.as_of)) + self.state.to_bytes()

    def book_bytes(self) -> bytes:
        """The ``score-books`` table's value. marshal, not JSON: a third of the cost of writing a record."""
        book = self.book
        return bytes((_BOOK_FORMAT,)) + marshal.dumps((book.scores, sorted(book.firing), book.last_alert), 4)

    @classmethod
    def from_bytes(cls, data: bytes | None, book: bytes | None = None) -> CustomerRecord:
        """A record from its ``customers`` value and, if stored, its ``score-books`` value (None: the book
        carried inside a record of format 1 or 2, or else an empty book)."""
        record = cls._from_record(data)
        if book:
            record.book = _book_from_bytes(book)
        return record

    @classmethod
    def _from_record(cls, data: bytes | None) -> CustomerRecord:
        if not data:
            return cls()
        version = data[0]
        if version == _FORMAT:
            _, as_of = _STATE_ONLY.unpack_from(data)
            return cls(state=CustomerState.from_bytes(data[_STATE_ONLY.size :]), as_of=as_of)
        if version not in (1, 2):
            raise ValueError(f"unknown customer record format {version}")
        _, state_len, book_len = _WITH_BOOK.unpack_from(data)
        start = _WITH_BOOK.size
        state = CustomerState.from_bytes(data[start : start + state_len])
        book_raw = data[start + state_len : start + state_len + book_len]
        if version == 1:  # the book as JSON
            legacy: dict[str, Any] = json.loads(book_raw)
            return cls(state=state, book=ScoreBook.from_json(legacy), as_of=float(legacy.get("t", 0.0)))
        try:
            scores, firing, last_alert, as_of = marshal.loads(book_raw)
        except (EOFError, ValueError, TypeError) as exc:
            raise ValueError(f"corrupt customer record (score book): {exc}") from exc
        return cls(state=state, book=ScoreBook(scores, set(firing), last_alert), as_of=as_of)

    @property
    def as_of_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.as_of, tz=UTC)


def _book_from_bytes(data: bytes) -> ScoreBook:
    if data[0] != _BOOK_FORMAT:
        raise ValueError(f"unknown score book format {data[0]}")
    try:
        scores, firing, last_alert = marshal.loads(data[1:])
    except (EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"corrupt score book: {exc}") from exc
    return ScoreBook(scores, set(firing), last_alert)


def reads_of(rules: Sequence[Any]) -> frozenset[str]:
    """Every feature the rules read: the feature vector computes only those groups."""
    names: set[str] = set()
    for rule in rules:
        names |= rule.reads
    return frozenset(names)


@dataclass
class BatchResult:
    scores: list[ScoreUpdate]
    alerts: list[AlertOut]
    evaluations: int
    duplicates: int
    changed_features: set[str]


def apply_transactions(
    record: CustomerRecord, txns: Sequence[Transaction], catalogue: Any, customer_id: str
) -> BatchResult:
    """Fold ``txns`` into ``record`` (in place) and re-score the real-time rules reading a changed feature
    (all real-time rules when every transaction was already folded)."""
    changed: set[str] = set()
    duplicates = 0
    for txn in txns:
        result = fold(record.state, txn)
        if result.duplicate:
            duplicates += 1
        changed |= result.changed
        record.as_of = max(record.as_of, txn.booked_at.timestamp())
    if changed:
        rules = catalogue.rules_reading(changed, trigger="realtime")
    elif duplicates:
        # Only already-folded transactions: a redelivery, e.g. after a crash that may have come before their
        # scores were sent. Re-scoring every real-time rule sends again whatever the book does not have
        # (nothing, when all was sent and booked).
        rules = catalogue.for_trigger("realtime")
    else:
        return BatchResult([], [], 0, duplicates, changed)
    if not rules:
        return BatchResult([], [], 0, duplicates, changed)
    as_of = record.as_of_datetime
    features = features_at(record.state, as_of, reads_of(rules))
    origin = Origin("transaction", txns[-1].transaction_id)
    scores, alerts, evaluations = rescore(
        record.book, rules, features, customer_id=customer_id, now=as_of, origin=origin, alerts_enabled=True
    )
    return BatchResult(scores, alerts, evaluations, duplicates, changed)


def sweep_customer(
    record: CustomerRecord,
    rules: Sequence[Any],
    removed_rule_ids: Sequence[str],
    customer_id: str,
    as_of: datetime,
    origin: Origin,
    alerts_enabled: bool,
    reads: frozenset[str] | None = None,
) -> tuple[list[ScoreUpdate], list[AlertOut], int]:
    """Evaluate ``rules`` for one customer as of the sweep's time (windows advanced to it), and tombstone
    the scores of rules that no longer exist. ``reads`` is :func:`reads_of` ``rules``, when the caller sweeps
    many customers with the same rules and has it already."""
    tombstones = []
    for rule_id in removed_rule_ids:
        if record.book.scores.pop(rule_id, None) is not None:
            tombstones.append(ScoreUpdate(f"{customer_id}#{rule_id}", None))
        record.book.firing = {k for k in record.book.firing if not k.startswith(f"{rule_id}/")}
    if not rules:
        return tombstones, [], 0
    features = features_at(record.state, as_of, reads_of(rules) if reads is None else reads)
    scores, alerts, evaluations = rescore(
        record.book,
        rules,
        features,
        customer_id=customer_id,
        now=as_of,
        origin=origin,
        alerts_enabled=alerts_enabled,
    )
    return tombstones + scores, alerts, evaluations
