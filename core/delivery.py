"""Webhook delivery of alerts, the pure part: payload, signature, back-off schedule, attempt bookkeeping.

The delivery agents (``agents/alerts.py``) do the I/O; everything they decide comes from here so it can be
tested without Kafka or HTTP.

**Signature.** The receiver gets ``X-Nudge-Timestamp: <unix seconds>`` and
``X-Nudge-Signature: sha256=<hex>`` where ``hex = HMAC-SHA256(secret, timestamp + "." + body)``. Signing
the timestamp with the body lets a receiver refuse replays of an old, captured request
(:func:`verify_signature` checks both, in constant time). ``X-Nudge-Alert-Id`` carries the alert's
deterministic id: a redelivery has the same id (and the same body), so the receiver can drop duplicates.

**Attempts.** Attempt 1 is made from the ``alerts`` topic. A failure schedules attempt ``n + 1`` after
``delays[n - 1]`` seconds by re-publishing the alert on ``alerts.retry`` with the attempt number and the
due time in headers (:func:`retry_headers`); after the last attempt the alert is dead-lettered. So at most
``1 + len(delays)`` attempts are made, five with the default four delays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ATTEMPT_HEADER",
    "DUE_HEADER",
    "ERROR_HEADER",
    "FIRST_FAILED_HEADER",
    "DeliveryPolicy",
    "GiveUp",
    "InvalidRetryHeaders",
    "Retry",
    "RetryState",
    "alert_payload",
    "next_step",
    "parse_delays",
    "parse_retry_headers",
    "request_headers",
    "retry_headers",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Nudge-Signature"
TIMESTAMP_HEADER = "X-Nudge-Timestamp"
ALERT_ID_HEADER = "X-Nudge-Alert-Id"
ATTEMPT_REQUEST_HEADER = "X-Nudge-Attempt"

ATTEMPT_HEADER = "nudge.attempt"
DUE_HEADER = "nudge.due_ms"
ERROR_HEADER = "nudge.last_error"
FIRST_FAILED_HEADER = "nudge.first_failed_ms"
MAX_ERROR_CHARS = 500
MAX_RETRY_AFTER_S = 3600.0


# -- payload and signature ----------------------------------------------------------------------------
def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise TypeError(f"cannot put a {type(value).__name__} in an alert payload")


def alert_payload(record: Mapping[str, Any]) -> bytes:
    """The JSON body for an alert record: keys sorted and compact, times as ISO-8601 UTC, so every
    delivery of the same alert is byte-for-byte the same body."""
    return json.dumps(dict(record), default=_json_default, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 over ``timestamp + "." + body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes, timestamp: str, body: bytes, signature: str, *, now: float, tolerance_s: float = 300.0
) -> bool:
    """What a receiver should check: the signature matches and the timestamp is within ``tolerance_s`` of
    ``now`` (unix seconds)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def request_headers(secret: str | bytes, alert_id: str, body: bytes, attempt: int, now: float) -> dict[str, str]:
    """Every header of one delivery request (signed at ``now``, unix seconds)."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        ALERT_ID_HEADER: alert_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        ATTEMPT_REQUEST_HEADER: str(attempt),
    }


# -- schedule -----------------------------------------------------------------------------------------
def parse_delays(spec: str) -> tuple[float, ...]:
    """``"10,60,300,1800"`` → delays in seconds before attempts 2, 3, ...; clear ``ValueError`` otherwise."""
    delays: list[float] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            delay = float(part)
        except ValueError:
            raise ValueError(f"retry delay {part!r} is not a number of seconds") from None
        if not delay >= 0 or delay == float("inf"):
            raise ValueError(f"retry delay {part!r} must be a finite number of seconds >= 0")
        delays.append(delay)
    if any(b < a for a, b in zip(delays, delays[1:], strict=False)):
        raise ValueError(f"retry delays {spec!r} must not decrease (back-off only increases)")
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How often and when to try: ``delays[i]`` seconds wait before attempt ``i + 2``."""

    delays: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0)

    @classmethod
    def from_spec(cls, spec: str) -> DeliveryPolicy:
        return cls(parse_delays(spec))

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.delays)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again: ``attempt`` is the number of the next attempt, due at ``due_ms`` (epoch milliseconds)."""

    attempt: int
    due_ms: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No attempt left: dead-letter the alert after ``attempts`` attempts."""

    attempts: int


def next_step(
    policy: DeliveryPolicy, failed_attempt: int, now_ms: int, retry_after_s: float | None = None
) -> Retry | GiveUp:
    """After attempt ``failed_attempt`` (1-based) failed at ``now_ms``: when to try next, or give up.

    A receiver's ``Retry-After`` (seconds) lengthens the wait, never shortens it, and is capped at an hour.
    """
    if failed_attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {failed_attempt}")
    if failed_attempt >= policy.max_attempts:
        return GiveUp(failed_attempt)
    delay = policy.delays[failed_attempt - 1]
    if retry_after_s is not None and retry_after_s > delay:
        delay = min(retry_after_s, MAX_RETRY_AFTER_S)
    return Retry(failed_attempt + 1, now_ms + int(round(delay * 1000)))


# -- bookkeeping in Kafka headers ---------------------------------------------------------------------
class InvalidRetryHeaders(ValueError):
    """A message on the retry topic without usable attempt/due headers (``reason`` for the dead letter)."""

    reason = "invalid_retry_headers"


@dataclass(frozen=True, slots=True)
class RetryState:
    attempt: int
    due_ms: int
    last_error: str
    first_failed_ms: int


def retry_headers(step: Retry, error: str, first_failed_ms: int) -> list[tuple[str, bytes]]:
    """Headers of the retry-topic copy of an alert (the value stays the original Avro bytes)."""
    return [
        (ATTEMPT_HEADER, str(step.attempt).encode()),
        (DUE_HEADER, str(step.due_ms).encode()),
        (ERROR_HEADER, error[:MAX_ERROR_CHARS].encode("utf-8", "replace")),
        (FIRST_FAILED_HEADER, str(first_failed_ms).encode()),
    ]


def _header_map(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> dict[str, bytes]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


def parse_retry_headers(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> RetryState:
    """Read what :func:`retry_headers` wrote; :class:`InvalidRetryHeaders` names the bad header."""
    found = _header_map(headers)

    def integer(name: str) -> int:
        raw = found.get(name)
        if raw is None:
            raise InvalidRetryHeaders(f"header {name} is missing")
        try:
            return int(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidRetryHeaders(f"header {name} is not an integer: {raw[:40]!r}") from None

    attempt = integer(ATTEMPT_HEADER)
    if attempt < 2:
        raise InvalidRetryHeaders(f"header {ATTEMPT_HEADER}={attempt}: retries are attempts 2 and later")
    # An attempt above the policy's maximum (the policy was shortened meanwhile) is still made once, as the
    # last one: next_step gives up after it.
    due_ms = integer(DUE_HEADER)
    first_failed_ms = integer(FIRST_FAILED_HEADER) if FIRST_FAILED_HEADER in found else due_ms
    last_error = found.get(ERROR_HEADER, b"").decode("utf-8", "replace")
    return RetryState(attempt, due_ms, last_error, first_failed_ms)
