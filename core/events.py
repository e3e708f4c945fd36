"""The domain view of an open-banking transaction, independent of any wire format.

Avro records (schemas/) and aggregator JSON (the ingestion endpoint) are both turned into this one
shape before features are folded, so the feature code never sees wire details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = ["Direction", "Status", "Transaction"]

Direction = Literal["Credit", "Debit"]
Status = Literal["Booked", "Pending"]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction as the features see it.

    ``amount`` is always positive; ``direction`` says which way the money went. ``reference`` is the
    aggregator's TransactionReference: a pending transaction later booked under another id is matched on it.
    """

    customer_id: str
    transaction_id: str
    account_id: str
    amount: Decimal
    currency: str
    direction: Direction
    status: Status
    booked_at: datetime
    description: str = ""
    merchant_name: str | None = None
    mcc: str | None = None
    reference: str | None = None
    bank_code: str | None = None
    proprietary_code: str | None = None
    balance_after: Decimal | None = None
    value_at: datetime | None = None
    event_id: str = ""
    source: str = ""
    received_at: datetime | None = None

    @property
    def signed_amount(self) -> Decimal:
        """Credits positive, debits negative."""
        return self.amount if self.direction == "Credit" else -self.amount
