"""Example records, valid against the current schemas: for tests, docs and quick manual checks."""

from __future__ import annotations

from typing import Any

__all__ = ["example_transaction", "example_open_banking_item"]


def example_transaction(**over: Any) -> dict[str, Any]:
    """A valid Avro ``Transaction`` record (a card payment at Tesco); keyword arguments replace fields."""
    record: dict[str, Any] = {
        "event_id": "e-1", "customer_id": "cust-1", "received_at": 1_760_000_000_000, "source": "test",
        "AccountId": "acc-1", "TransactionId": "tx-1", "TransactionReference": "ref-1",
        "CreditDebitIndicator": "Debit", "Status": "Booked", "BookingDateTime": "2025-10-09T10:00:00+00:00",
        "ValueDateTime": None, "TransactionInformation": "TESCO STORES 3297",
        "Amount": {"Amount": "12.30", "Currency": "GBP"}, "ChargeAmount": None, "CurrencyExchange": None,
        "BankTransactionCode": None, "ProprietaryBankTransactionCode": {"Code": "POS", "Issuer": None},
        "Balance": None, "MerchantDetails": {"MerchantName": "Tesco", "MerchantCategoryCode": "5411"},
        "CreditorAccount": None, "DebtorAccount": None,
    }
    record.update(over)
    return record


def example_open_banking_item(**over: Any) -> dict[str, Any]:
    """A valid aggregator JSON transaction (OB v3.1 OBTransaction6, the spec's own example shape)."""
    item: dict[str, Any] = {
        "AccountId": "22289", "TransactionId": "123", "TransactionReference": "Ref 1",
        "Amount": {"Amount": "10.00", "Currency": "GBP"}, "CreditDebitIndicator": "Credit",
        "Status": "Booked", "BookingDateTime": "2025-10-05T00:00:00+00:00",
        "ValueDateTime": "2025-10-05T00:00:00+00:00", "TransactionInformation": "Cash from Aubrey",
        "BankTransactionCode": {"Code": "ReceivedCreditTransfer", "SubCode": "DomesticCreditTransfer"},
        "ProprietaryBankTransactionCode": {"Code": "Transfer", "Issuer": "AlphaBank"},
        "Balance": {"Amount": {"Amount": "230.00", "Currency": "GBP"}, "CreditDebitIndicator": "Credit",
                    "Type": "InterimBooked"},
        "DebtorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "80200112345678",
                          "Name": "A Person"},
    }
    item.update(over)
    return item
