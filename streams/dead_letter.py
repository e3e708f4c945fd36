"""Dead letters: a message nudgestream cannot use goes, untouched, to its topic's ``.dlq`` twin.

The dead letter keeps the original key and value bytes (nothing is lost: fix the cause and replay them
onto the source topic), and says what went wrong and where the message came from in headers:

==========================  ==========================================================================
``dlq.error``               human message (never the payload itself)
``dlq.reason``              machine reason: ``undecodable``, ``unknown_fingerprint``, ``invalid_record``,
                            ``processing_failed``...
``dlq.origin.topic``        source topic
``dlq.origin.partition``    source partition
``dlq.origin.offset``       source offset
``dlq.origin.timestamp``    source message timestamp, epoch milliseconds
``dlq.failed_at``           when it was dead-lettered, ISO-8601 UTC
==========================  ==========================================================================

:func:`build_dead_letter` is a plain function so Faust agents can send its result with Faust, and
:func:`send_dead_letter` sends it with a confluent-kafka producer. Building counts the dead letter in
``nudge_dead_letters_total{topic,reason}`` (build one only when you are going to send it), so both paths
are counted without the caller having to remember.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from prometheus_client import Counter

from streams.topics import dead_letter_of

__all__ = ["DEAD_LETTERS", "DeadLetter", "build_dead_letter", "send_dead_letter"]

DEAD_LETTERS = Counter(
    "nudge_dead_letters_total", "Messages sent to a dead-letter topic, per source topic and reason.",
    ["topic", "reason"],
)
MAX_ERROR_CHARS = 1000
Header = tuple[str, bytes]


class DeadLetter(NamedTuple):
    """What to produce to ``dead_letter_of(topic)``: unpacks as ``key, value, headers``."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]


def _bytes(value: bytes | bytearray | memoryview | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def _timestamp_ms(timestamp: float | None, timestamp_ms: int | None) -> int | None:
    if timestamp_ms is not None:
        return int(timestamp_ms)
    if timestamp is not None:
        return int(round(timestamp * 1000))
    return None


def build_dead_letter(
    *,
    key: bytes | bytearray | memoryview | str | None,
    value: bytes | bytearray | memoryview | str | None,
    error: str | BaseException,
    reason: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    timestamp: float | None = None,
    timestamp_ms: int | None = None,
    original_headers: Sequence[Header] | None = None,
    now: datetime | None = None,
) -> DeadLetter:
    """The dead-letter record of one failed message (and one count in ``nudge_dead_letters_total``).

    :param error: the exception or its message; trimmed to 1000 characters.
    :param reason: short machine reason (a ``DecodeError.reason`` or e.g. ``processing_failed``).
    :param timestamp: source timestamp in seconds (Faust's ``message.timestamp``), or give
        ``timestamp_ms`` (confluent-kafka's ``msg.timestamp()[1]``).
    :param original_headers: the source message's headers, kept after the ``dlq.*`` ones.
    """
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    ts = _timestamp_ms(timestamp, timestamp_ms)
    failed_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    headers: list[Header] = [
        ("dlq.error", message[:MAX_ERROR_CHARS].encode("utf-8", "replace")),
        ("dlq.reason", reason.encode()),
        ("dlq.origin.topic", topic.encode()),
        ("dlq.origin.partition", b"" if partition is None else str(partition).encode()),
        ("dlq.origin.offset", b"" if offset is None else str(offset).encode()),
        ("dlq.origin.timestamp", b"" if ts is None else str(ts).encode()),
        ("dlq.failed_at", failed_at.encode()),
    ]
    if original_headers:
        headers.extend((k, _bytes(v) or b"") for k, v in original_headers)
    DEAD_LETTERS.labels(topic, reason).inc()
    return DeadLetter(_bytes(key), _bytes(value), headers)


def send_dead_letter(
    producer: Any,
    msg: Any,
    error: str | BaseException,
    reason: str,
    on_delivery: Callable[[Any, Any], None] | None = None,
) -> DeadLetter:
    """Dead-letter a confluent-kafka message ``msg`` through ``producer`` (asynchronously: the caller
    polls/flushes as usual and should commit the source offset only after delivery)."""
    ts_type, ts = msg.timestamp()
    letter = build_dead_letter(
        key=msg.key(), value=msg.value(), error=error, reason=reason, topic=msg.topic(),
        partition=msg.partition(), offset=msg.offset(), timestamp_ms=ts if ts_type and ts >= 0 else None,
        original_headers=msg.headers(),
    )
    kwargs: dict[str, Any] = {"key": letter.key, "value": letter.value, "headers": letter.headers}
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    producer.produce(dead_letter_of(msg.topic()), **kwargs)
    return letter
