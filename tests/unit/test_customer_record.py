"""The customers table's value: round trip, the older JSON-book format still read, corruption reported."""

from __future__ import annotations

import json
import struct
from datetime import date

import pytest

from core.customer import CustomerRecord, apply_transactions
from core.rules import load_catalogue
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
    again = CustomerRecord.from_bytes(record.to_bytes())
    assert again.state == record.state
    assert again.book == record.book
    assert again.as_of == record.as_of
    # (not byte-equal: marshal marks objects shared by reference, which depends on how they were built)
    assert CustomerRecord.from_bytes(again.to_bytes()).book == record.book


def test_a_format_1_record_with_a_json_book_is_still_read(record: CustomerRecord) -> None:
    """Tables and changelogs written before the book moved to marshal stay readable."""
    state = record.state.to_bytes()
    book = json.dumps(record.book.to_json() | {"t": record.as_of}).encode()
    legacy = struct.pack(">BII", 1, len(state), len(book)) + state + book
    again = CustomerRecord.from_bytes(legacy)
    assert again.book == record.book and again.as_of == record.as_of and again.state == record.state


def test_a_corrupt_book_or_unknown_format_is_a_value_error(record: CustomerRecord) -> None:
    good = record.to_bytes()
    version, state_len, book_len = struct.unpack_from(">BII", good)
    head = struct.calcsize(">BII")
    broken_book = good[: head + state_len] + b"\x00" * book_len
    with pytest.raises(ValueError, match="score book"):
        CustomerRecord.from_bytes(broken_book)
    with pytest.raises(ValueError, match="unknown customer record format 9"):
        CustomerRecord.from_bytes(bytes([9]) + good[1:])


def test_an_empty_value_is_a_new_customer() -> None:
    assert CustomerRecord.from_bytes(None).book.scores == {}
    assert CustomerRecord.from_bytes(b"").as_of == 0.0
