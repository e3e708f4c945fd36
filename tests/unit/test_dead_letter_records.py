"""The dead-letter record of each DLQ path carries the original bytes, the reason and the origin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from schemas.codec import DecodeError, default_codec
from schemas.examples import example_transaction
from schemas.records import to_transaction
from streams.dead_letter import build_dead_letter, send_dead_letter

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def count(topic: str, reason: str) -> float:
    return REGISTRY.get_sample_value("nudge_dead_letters_total", {"topic": topic, "reason": reason}) or 0.0


def failure(value: bytes) -> DecodeError:
    try:
        to_transaction(default_codec().decode(value, expect="Transaction"))
    except DecodeError as exc:
        return exc
    raise AssertionError("expected a failure")


CODEC = default_codec()
CASES = {
    "undecodable": b"not avro at all",
    "unknown_fingerprint": b"\xc3\x01" + b"\x11" * 8 + b"\x00",
    "invalid_record": CODEC.encode("Transaction", example_transaction(Amount={"Amount": "-5", "Currency": "GBP"})),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_dlq_path_records_reason_origin_and_original_bytes(reason: str) -> None:
    value = CASES[reason]
    exc = failure(value)
    assert exc.reason == reason
    before = count("transactions", reason)
    key, out_value, headers = build_dead_letter(
        key=b"cust-1", value=value, error=exc, reason=exc.reason, topic="transactions", partition=3,
        offset=4711, timestamp=1_760_000_000.25, now=NOW,
    )
    h = dict(headers)
    assert key == b"cust-1" and out_value == value
    assert h["dlq.reason"] == reason.encode()
    assert h["dlq.origin.topic"] == b"transactions"
    assert h["dlq.origin.partition"] == b"3" and h["dlq.origin.offset"] == b"4711"
    assert h["dlq.origin.timestamp"] == b"1760000000250"
    assert h["dlq.failed_at"] == b"2026-01-02T03:04:05.678+00:00"
    assert exc.message.encode() in h["dlq.error"]
    assert count("transactions", reason) == before + 1


def test_invalid_record_error_names_the_field() -> None:
    exc = failure(CASES["invalid_record"])
    letter = build_dead_letter(key=None, value=CASES["invalid_record"], error=exc, reason=exc.reason,
                               topic="transactions", partition=0, offset=1)
    assert b"Amount.Amount: negative amount" in dict(letter.headers)["dlq.error"]
    assert letter.key is None


def test_long_errors_are_trimmed_and_strings_accepted() -> None:
    letter = build_dead_letter(key="k", value="v", error="x" * 5000, reason="processing_failed",
                               topic="rules", partition=None, offset=None, original_headers=[("trace", b"1")])
    h = dict(letter.headers)
    assert len(h["dlq.error"]) == 1000 and h["dlq.origin.partition"] == b"" and h["trace"] == b"1"
    assert letter.key == b"k" and letter.value == b"v"


class FakeMsg:
    def topic(self) -> str:
        return "sweep"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 9

    def key(self) -> bytes:
        return b"cust-9"

    def value(self) -> bytes:
        return b"\x00garbage"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_123)

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None


def test_send_dead_letter_produces_to_the_twin_topic() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    class Producer:
        def produce(self, topic: str, **kwargs: Any) -> None:
            sent.append((topic, kwargs))

    send_dead_letter(Producer(), FakeMsg(), DecodeError("undecodable", "garbage"), "undecodable")
    (topic, kwargs), = sent
    assert topic == "sweep.dlq" and kwargs["key"] == b"cust-9" and kwargs["value"] == b"\x00garbage"
    assert dict(kwargs["headers"])["dlq.origin.timestamp"] == b"1700000000123"
