"""The pure part of alert delivery: payload, signature, back-off schedule and retry headers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from core.delivery import (
    ATTEMPT_HEADER,
    DUE_HEADER,
    DeliveryPolicy,
    GiveUp,
    InvalidRetryHeaders,
    Retry,
    alert_payload,
    next_step,
    parse_delays,
    parse_retry_headers,
    request_headers,
    retry_headers,
    sign,
    verify_signature,
)

RECORD = {
    "alert_id": "a-1",
    "customer_id": "c-1",
    "rule_id": "r",
    "rule_version": 2,
    "item_key": None,
    "title": "Price rise",
    "message": "Netflix went up to £12.99",
    "score": 0.75,
    "created_at": datetime(2026, 11, 25, 8, 30, 1, 250000, tzinfo=UTC),
    "transaction_id": "t-9",
}


def test_payload_is_stable_json_with_iso_times() -> None:
    body = alert_payload(RECORD)
    assert body == alert_payload(dict(reversed(list(RECORD.items()))))
    decoded = json.loads(body)
    assert decoded["created_at"] == "2026-11-25T08:30:01.250Z"
    assert decoded["message"] == "Netflix went up to £12.99"
    assert list(decoded) == sorted(decoded)


def test_payload_refuses_unknown_types() -> None:
    with pytest.raises(TypeError, match="set"):
        alert_payload({"x": {1}})


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"alert_id":"a-1"}'
    expected = hmac.new(b"s3cret", b"1764059400." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1764059400", body) == f"sha256={expected}"
    assert sign(b"s3cret", "1764059400", body) == sign("s3cret", "1764059400", body)
    assert sign("other", "1764059400", body) != sign("s3cret", "1764059400", body)
    assert sign("s3cret", "1764059401", body) != sign("s3cret", "1764059400", body)


def test_verify_signature_checks_body_secret_and_age() -> None:
    body = b"{}"
    sig = sign("k", "1000", body)
    assert verify_signature("k", "1000", body, sig, now=1100)
    assert not verify_signature("k", "1000", b"{ }", sig, now=1100)
    assert not verify_signature("x", "1000", body, sig, now=1100)
    assert not verify_signature("k", "1000", body, sig, now=1000 + 301)
    assert not verify_signature("k", "soon", body, sig, now=1000)


def test_request_headers_carry_id_timestamp_signature_attempt() -> None:
    body = alert_payload(RECORD)
    headers = request_headers("k", "a-1", body, attempt=3, now=1764059400.9)
    assert headers["X-Nudge-Alert-Id"] == "a-1"
    assert headers["X-Nudge-Timestamp"] == "1764059400"
    assert headers["X-Nudge-Attempt"] == "3"
    assert headers["Content-Type"] == "application/json"
    assert verify_signature("k", "1764059400", body, headers["X-Nudge-Signature"], now=1764059401)


def test_parse_delays() -> None:
    assert parse_delays("10,60, 300,1800") == (10.0, 60.0, 300.0, 1800.0)
    assert parse_delays("0.1,0.2") == (0.1, 0.2)
    assert parse_delays("") == ()
    with pytest.raises(ValueError, match="'ten' is not a number"):
        parse_delays("1,ten")
    with pytest.raises(ValueError, match=">= 0"):
        parse_delays("-1")
    with pytest.raises(ValueError, match=">= 0"):
        parse_delays("nan")
    with pytest.raises(ValueError, match="must not decrease"):
        parse_delays("60,10")


def test_schedule_five_attempts_with_increasing_waits() -> None:
    policy = DeliveryPolicy.from_spec("10,60,300,1800")
    assert policy.max_attempts == 5
    now = 1_000_000
    steps = [next_step(policy, n, now) for n in range(1, 6)]
    assert steps[:4] == [
        Retry(2, now + 10_000),
        Retry(3, now + 60_000),
        Retry(4, now + 300_000),
        Retry(5, now + 1_800_000),
    ]
    assert steps[4] == GiveUp(5)
    assert next_step(policy, 7, now) == GiveUp(7)
    with pytest.raises(ValueError):
        next_step(policy, 0, now)


def test_no_delays_means_one_attempt() -> None:
    assert next_step(DeliveryPolicy(()), 1, 0) == GiveUp(1)


def test_retry_after_lengthens_but_never_shortens_and_is_capped() -> None:
    policy = DeliveryPolicy((10.0, 60.0))
    assert next_step(policy, 1, 0, retry_after_s=120) == Retry(2, 120_000)
    assert next_step(policy, 1, 0, retry_after_s=2) == Retry(2, 10_000)
    assert next_step(policy, 1, 0, retry_after_s=10**9) == Retry(2, 3_600_000)


def test_retry_headers_round_trip() -> None:
    headers = retry_headers(Retry(3, 12345), "HTTP 503: busy", first_failed_ms=999)
    state = parse_retry_headers(headers)
    assert (state.attempt, state.due_ms, state.last_error, state.first_failed_ms) == (3, 12345, "HTTP 503: busy", 999)
    assert parse_retry_headers(dict(headers)) == state


def test_retry_headers_trim_long_errors() -> None:
    state = parse_retry_headers(retry_headers(Retry(2, 1), "x" * 5000, 1))
    assert len(state.last_error) == 500


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "nudge.attempt is missing"),
        ([(ATTEMPT_HEADER, b"2")], "nudge.due_ms is missing"),
        ([(ATTEMPT_HEADER, b"two"), (DUE_HEADER, b"1")], "not an integer"),
        ([(ATTEMPT_HEADER, b"1"), (DUE_HEADER, b"1")], "attempts 2 and later"),
        ([(ATTEMPT_HEADER, b"\xff"), (DUE_HEADER, b"1")], "not an integer"),
    ],
)
def test_bad_retry_headers_are_named(headers: list[tuple[str, bytes]], message: str) -> None:
    with pytest.raises(InvalidRetryHeaders, match=message):
        parse_retry_headers(headers)
