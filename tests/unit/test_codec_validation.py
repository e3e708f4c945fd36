"""Record → domain Transaction validation, and aggregator JSON → record, with field paths."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from schemas.codec import default_codec
from schemas.examples import example_open_banking_item as ob_item
from schemas.examples import example_transaction as txn
from schemas.records import InvalidRecord, alert_id, from_open_banking_json, to_transaction, tokenise_account

RECEIVED_MS = 1_760_000_000_000  # 2025-10-09T08:53:20Z


def convert(item: Any) -> dict[str, Any]:
    return from_open_banking_json("cust-1", item, "aggregator-x", event_id="ev-1", received_at_ms=RECEIVED_MS)


def test_valid_record_becomes_domain_transaction() -> None:
    t = to_transaction(txn(Balance={"CreditDebitIndicator": "Debit", "Type": "InterimBooked",
                                    "Amount": {"Amount": "40.5", "Currency": "GBP"}}))
    assert t.amount == Decimal("12.30") and t.direction == "Debit" and t.signed_amount == Decimal("-12.30")
    assert t.booked_at == datetime(2025, 10, 9, 10, tzinfo=UTC)
    assert t.mcc == "5411" and t.merchant_name == "Tesco" and t.proprietary_code == "POS"
    assert t.balance_after == Decimal("-40.5")
    assert t.received_at == datetime.fromtimestamp(1_760_000_000, UTC)


def test_decoded_record_validates_too() -> None:
    codec = default_codec()
    t = to_transaction(codec.decode(codec.encode("Transaction", txn()), expect="Transaction"))
    assert t.transaction_id == "tx-1" and t.reference == "ref-1"


@pytest.mark.parametrize(
    ("over", "path", "words"),
    [
        ({"Amount": {"Amount": "-12.30", "Currency": "GBP"}}, "Amount.Amount", "negative"),
        ({"Amount": {"Amount": "12.3.4", "Currency": "GBP"}}, "Amount.Amount", "not a valid amount"),
        ({"Amount": {"Amount": "1.123456", "Currency": "GBP"}}, "Amount.Amount", "not a valid amount"),
        ({"Amount": {"Amount": "12.30", "Currency": "XXZ"}}, "Amount.Currency", "unknown ISO 4217"),
        ({"CreditDebitIndicator": None}, "CreditDebitIndicator", "required"),
        ({"Status": "Rejected"}, "Status", "rejected"),
        ({"BookingDateTime": "2025-10-09T10:00:00"}, "BookingDateTime", "no timezone"),
        ({"BookingDateTime": "1999-12-31T23:00:00+00:00"}, "BookingDateTime", "before 2000"),
        ({"BookingDateTime": "2025-10-17T10:00:00+00:00"}, "BookingDateTime", "more than 7 days"),
        ({"BookingDateTime": "yesterday"}, "BookingDateTime", "ISO-8601"),
        ({"ValueDateTime": "2025-10-09"}, "ValueDateTime", "no timezone"),
        ({"TransactionId": ""}, "TransactionId", "empty"),
        ({"AccountId": "x" * 41}, "AccountId", "longer than 40"),
        ({"MerchantDetails": {"MerchantName": None, "MerchantCategoryCode": "54a1"}},
         "MerchantDetails.MerchantCategoryCode", "digits"),
        ({"Balance": {"CreditDebitIndicator": "Credit", "Type": "Bogus", "Amount": {"Amount": "1", "Currency": "GBP"}}},
         "Balance.Type", "unknown balance type"),
        ({"received_at": None}, "received_at", "required"),
    ],
)
def test_invalid_records_name_field_and_reason(over: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        to_transaction(txn(**over))
    assert err.value.field_path == path
    assert words in err.value.detail
    assert err.value.reason == "invalid_record"


def test_booking_within_seven_days_of_receipt_is_accepted() -> None:
    assert to_transaction(txn(BookingDateTime="2025-10-15T10:00:00+01:00")).booked_at.utcoffset() is not None


def test_open_banking_json_becomes_a_record_that_encodes_and_validates() -> None:
    record = convert(ob_item())
    assert record["customer_id"] == "cust-1" and record["source"] == "aggregator-x"
    debtor = record["DebtorAccount"]
    assert debtor["Token"] == tokenise_account("UK.OBIE.SortCodeAccountNumber", "80200112345678")
    assert "80200112345678" not in repr(record)
    codec = default_codec()
    t = to_transaction(codec.decode(codec.encode("Transaction", record)))
    assert t.amount == Decimal("10.00") and t.direction == "Credit" and t.balance_after == Decimal("230.00")
    assert t.bank_code == "ReceivedCreditTransfer/DomesticCreditTransfer"


def test_v4_codes_are_mapped() -> None:
    record = convert(ob_item(Status="PDNG", Balance={"Amount": {"Amount": "5", "Currency": "GBP"},
                                                      "CreditDebitIndicator": "Debit", "Type": "ITAV"}))
    assert record["Status"] == "Pending" and record["Balance"]["Type"] == "InterimAvailable"


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ([1, 2], "$"),
        (ob_item(Amount={"Amount": 10.0, "Currency": "GBP"}), "Amount.Amount"),
        (ob_item(Amount={"Amount": "10.00", "Currency": "gbp"}), "Amount.Currency"),
        (ob_item(Amount=None), "Amount"),
        (ob_item(Amount="10"), "Amount"),
        (ob_item(Status="FUTR"), "Status"),
        (ob_item(CreditDebitIndicator="Both"), "CreditDebitIndicator"),
        (ob_item(DebtorAccount={"SchemeName": "IBAN"}), "DebtorAccount.Identification"),
        (ob_item(TransactionId=None), "TransactionId"),
        (ob_item(AccountId=22289), "AccountId"),
        (ob_item(ChargeAmount={"Amount": "-1", "Currency": "GBP"}), "ChargeAmount.Amount"),
        (ob_item(CurrencyExchange={"SourceCurrency": "EUR", "ExchangeRate": "abc"}), "CurrencyExchange.ExchangeRate"),
    ],
)
def test_open_banking_json_errors_carry_json_path(item: Any, path: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        convert(item)
    assert err.value.field_path == path
    assert err.value.under("[3]").field_path == ("[3]" if path == "$" else f"[3].{path}")


def test_error_messages_never_echo_personal_text() -> None:
    with pytest.raises(InvalidRecord) as err:
        convert(ob_item(TransactionInformation="Jane Doe 07700900123 " * 30))
    assert "Jane" not in str(err.value)


def test_tokens_are_keyed_and_normalised() -> None:
    a = tokenise_account("UK.OBIE.SortCodeAccountNumber", "80-20-01 12345678")
    assert a == tokenise_account("UK.OBIE.SortCodeAccountNumber", "80200112345678")
    assert a != tokenise_account("UK.OBIE.SortCodeAccountNumber", "80200112345678", key=b"other")
    assert len(a) == 32


def test_alert_id_is_deterministic_and_distinguishes_inputs() -> None:
    base = alert_id("c1", "r1", "netflix", "tx-9")
    assert base == alert_id("c1", "r1", "netflix", "tx-9")
    others = {alert_id("c1", "r1", None, "tx-9"), alert_id("c2", "r1", "netflix", "tx-9"),
              alert_id("c1", "r2", "netflix", "tx-9"), alert_id("c1", "r1", "netflix", "tx-8")}
    assert base not in others and len(others) == 4
