"""The domain view of an open-banking transaction, independent of any wire format.

Avro records (schemas/) and aggregator JSON (the ingestion endpoint) are both turned into this one
shape before features are folded, so the feature code never sees wire details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

__all__ = ["BalanceSnapshot", "BalanceKind", "Direction", "Status", "Transaction", "balance_kind"]

Direction = Literal["Credit", "Debit"]
Status = Literal["Booked", "Pending"]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction as the features see it.

    ``amount`` is always positive; ``direction`` says which way the money went. ``reference`` is the
    aggregator's TransactionReference: a pending transaction later booked under another id is matched on it.
    ``own_transfer`` is set by ingestion when the counterparty is one of the customer's own linked accounts;
    the features also recognise own-account transfers from bank codes and narrative.
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
    own_transfer: bool = False

    @property
    def signed_amount(self) -> Decimal:
        """Credits positive, debits negative."""
        return self.amount if self.direction == "Credit" else -self.amount


BalanceKind = Literal["booked", "available", "other"]

_BOOKED_TYPES = frozenset(
    {"ClosingBooked", "InterimBooked", "OpeningBooked", "PreviouslyClosedBooked",
     "CLBD", "ITBD", "OPBD", "PRCD"}
)
_AVAILABLE_TYPES = frozenset(
    {"ClosingAvailable", "InterimAvailable", "OpeningAvailable", "ForwardAvailable", "Expected",
     "CLAV", "ITAV", "OPAV", "FWAV", "XPCD"}
)


def balance_kind(balance_type: str) -> BalanceKind:
    """Map an OB balance Type (v3.1 names or v4 codes) to what the features use it for."""
    if balance_type in _BOOKED_TYPES:
        return "booked"
    if balance_type in _AVAILABLE_TYPES:
        return "available"
    return "other"


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """One balance of one account at one time (an OB Balance item), as the features see it.

    ``amount`` is signed (negative = overdrawn: OB CreditDebitIndicator Debit). ``overdraft_limit`` is the
    arranged overdraft from the OB CreditLine list (Pre-Agreed/Available lines), ``None`` when not sent.
    """

    customer_id: str
    account_id: str
    balance_type: str
    amount: Decimal
    currency: str
    at: datetime
    overdraft_limit: Decimal | None = None
    event_id: str = ""
    source: str = ""
