"""Small transaction builders shared by the feature tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from core.events import Transaction
from core.features import CustomerState, fold

T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def at(day: int | date, hour: int = 9) -> datetime:
    """Day offset from T0 (or a date) as an aware datetime."""
    if isinstance(day, date):
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return T0 + timedelta(days=day, hours=hour - 9)


def tx(
    txn_id: str,
    day: int | date,
    amount: str | int | float,
    direction: str = "Debit",
    *,
    merchant: str | None = None,
    mcc: str | None = None,
    desc: str = "",
    status: str = "Booked",
    ref: str | None = None,
    own: bool = False,
    balance_after: str | None = None,
    hour: int = 9,
    account: str = "acc1",
) -> Transaction:
    return Transaction(
        customer_id="cust-1",
        transaction_id=txn_id,
        account_id=account,
        amount=Decimal(str(amount)),
        currency="GBP",
        direction=direction,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        booked_at=at(day, hour),
        description=desc or (merchant or ""),
        merchant_name=merchant,
        mcc=mcc,
        reference=ref,
        own_transfer=own,
        balance_after=Decimal(balance_after) if balance_after is not None else None,
    )


def folded(txns: Iterable[Transaction], state: CustomerState | None = None) -> CustomerState:
    state = state if state is not None else CustomerState()
    for txn in txns:
        fold(state, txn)
    return state


def monthly(prefix: str, first: date, count: int, amounts: list[str] | str, direction: str = "Debit",
            **kw: object) -> list[Transaction]:
    """``count`` payments on the same day of consecutive months (clamped to month end)."""
    import calendar

    out = []
    for i in range(count):
        index = first.year * 12 + first.month - 1 + i
        y, m = divmod(index, 12)
        d = date(y, m + 1, min(first.day, calendar.monthrange(y, m + 1)[1]))
        amount = amounts if isinstance(amounts, str) else amounts[i]
        out.append(tx(f"{prefix}-{i}", d, amount, direction, **kw))  # type: ignore[arg-type]
    return out


def every(prefix: str, first: date, step_days: int, count: int, amount: str, **kw: object) -> list[Transaction]:
    return [tx(f"{prefix}-{i}", first + timedelta(days=i * step_days), amount, **kw)  # type: ignore[arg-type]
            for i in range(count)]
