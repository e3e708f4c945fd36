"""The customers and score-books tables' values: round trip, older formats (the book inside the record)
still read, corruption reported."""

from __future__ import annotations

import json
import marshal
import struct
from datetime import date

import pytest

from core.customer import CustomerRecord, apply_transactions
from core.rules import load_catalogue
from core.scoring import ScoreBook
from schemas.records import to_transaction
from simulator.generator import population
from streams.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def record() -> CustomerRecord:
    """A simulated customer's year folded and scored, so the book has scores, firing keys and alerts."""
    catalogue = load_catalogue(PROJECT_ROOT / "rules")
    for customer in population(2024, 20, date(2025, 10, 1), 13):
        rec = CustomerRecord()
        txns = [to_transaction(r) for r in customer.records]
        for i in range(0, len(txns), 25):
            apply_transactions(rec, txns[i : i + 25], catalogue, customer.profile.customer_id)
        if rec.book.scores and rec.book.firing and rec.book.last_alert:
            return rec
    raise AssertionError("no simulated customer with scores, firing keys and alerts")


def test_round_trip_keeps_state_book_and_time(record: CustomerRecord) -> None:
    again = CustomerRecord.from_bytes(record.to_bytes(), record.book_bytes())
    assert again.state == record.state
    assert again.book == record.book
    assert again.as_of == record.as_of
    # (not byte-equal: marshal marks objects shared by reference, which depends on how they were built)
    assert CustomerRecord.from_bytes(again.to_bytes(), again.book_bytes()).book == record.book


def test_the_customers_value_holds_no_book(record: CustomerRecord) -> None:
    """What a sweep rewrites (the book) is stored apart from what it never changes (the features)."""
    state_only = CustomerRecord.from_bytes(record.to_bytes())
    assert state_only.state == record.state and state_only.as_of == record.as_of
    assert state_only.book == ScoreBook()
    assert len(record.book_bytes()) < len(record.to_bytes()) / 2


def _format_2(record: CustomerRecord) -> bytes:
    state = record.state.to_bytes()
    book = record.book
    packed = marshal.dumps((book.scores, sorted(book.firing), book.last_alert, float(record.as_of)), 4)
    return struct.pack(">BII", 2, len(state), len(packed)) + state + packed


def test_a_format_2_record_with_its_book_inside_is_still_read(record: CustomerRecord) -> None:
    """Tables and changelogs written before the book moved to ``score-books`` stay readable, and a book
    stored in ``score-books`` wins over the one carried inside."""
    legacy = _format_2(record)
    again = CustomerRecord.from_bytes(legacy)
    assert again.book == record.book and again.as_of == record.as_of and again.state == record.state
    newer = ScoreBook({"low_balance": "0123456789abcdef"})
    assert CustomerRecord.from_bytes(legacy, CustomerRecord(book=newer).book_bytes()).book == newer


def test_a_format_1_record_with_a_json_book_is_still_read(record: CustomerRecord) -> None:
    state = record.state.to_bytes()
    book = json.dumps(record.book.to_json() | {"t": record.as_of}).encode()
    legacy = struct.pack(">BII", 1, len(state), len(book)) + state + book
    again = CustomerRecord.from_bytes(legacy)
    assert again.book == record.book and again.as_of == record.as_of and again.state == record.state


def test_a_corrupt_book_or_unknown_format_is_a_value_error(record: CustomerRecord) -> None:
    good = _format_2(record)
    version, state_len, book_len = struct.unpack_from(">BII", good)
    head = struct.calcsize(">BII")
    with pytest.raises(ValueError, match="score book"):
        CustomerRecord.from_bytes(good[: head + state_len] + b"\x00" * book_len)
    with pytest.raises(ValueError, match="unknown customer record format 9"):
        CustomerRecord.from_bytes(bytes([9]) + good[1:])
    with pytest.raises(ValueError, match="corrupt score book"):
        CustomerRecord.from_bytes(record.to_bytes(), b"\x01 not marshal")
    with pytest.raises(ValueError, match="unknown score book format 7"):
        CustomerRecord.from_bytes(record.to_bytes(), b"\x07" + record.book_bytes()[1:])


def test_an_empty_value_is_a_new_customer() -> None:
    assert CustomerRecord.from_bytes(None).book.scores == {}
    assert CustomerRecord.from_bytes(b"").as_of == 0.0
