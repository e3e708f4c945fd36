"""Fold semantics: idempotency, pending to booked, refunds, own transfers, horizons, balances, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from test_features_support import at, folded, tx

from core.events import BalanceSnapshot
from core.features import CustomerState, FoldError, apply_balance, features_at, fold
from core.features.state import DEDUPE_DAYS, PENDING_DAYS


def test_same_transaction_twice_changes_nothing() -> None:
    state = folded([tx("a", 0, "12.50", merchant="Tesco", mcc="5411")])
    before = state.to_bytes()
    result = fold(state, tx("a", 0, "12.50", merchant="Tesco", mcc="5411"))
    assert result.duplicate and not result.changed
    assert state.to_bytes() == before


def test_pending_then_booked_same_id_counts_once_with_booked_amount() -> None:
    state = folded([tx("p1", 0, "20.00", merchant="Pret", mcc="5814", status="Pending")])
    assert features_at(state, at(1))["spend_7d"] == 20.0
    result = fold(state, tx("p1", 1, "23.40", merchant="Pret", mcc="5814"))
    assert result.replaced and not result.duplicate
    f = features_at(state, at(1))
    assert f["spend_7d"] == 23.4 and f["merchants"][0]["count_30d"] == 1  # type: ignore[index]


def test_pending_then_booked_under_another_id_matched_by_reference() -> None:
    state = folded([
        tx("auth-1", 0, "40.00", merchant="Shell", mcc="5541", status="Pending", ref="R1"),
        tx("book-1", 2, "38.10", merchant="Shell", mcc="5541", ref="R1"),
    ])
    f = features_at(state, at(3))
    assert f["spend_7d"] == 38.1 and f["largest_debit_30d"] == 38.1


def test_pending_arriving_after_its_booked_twin_is_ignored() -> None:
    state = folded([
        tx("book-1", 2, "38.10", merchant="Shell", mcc="5541", ref="R1"),
        tx("auth-1", 0, "40.00", merchant="Shell", mcc="5541", status="Pending", ref="R1"),
    ])
    assert features_at(state, at(3))["spend_7d"] == 38.1


def test_unbooked_pending_lapses() -> None:
    state = folded([tx("auth", 0, "99.00", merchant="Hotel Chain", status="Pending", ref="H")])
    fold(state, tx("later", PENDING_DAYS + 1, "1.00", merchant="Greggs"))
    f = features_at(state, at(PENDING_DAYS + 1))
    assert f["spend_30d"] == 1.0
    # booked after lapsing: it counts (once)
    fold(state, tx("auth", PENDING_DAYS + 2, "99.00", merchant="Hotel Chain", ref="H"))
    assert features_at(state, at(PENDING_DAYS + 2))["spend_30d"] == 100.0


def test_refund_reduces_merchant_and_category_spend_and_is_not_income() -> None:
    state = folded([
        tx("buy", 0, "60.00", merchant="ASOS", mcc="5651"),
        tx("buy2", 1, "15.00", merchant="Boots", mcc="5912"),
        tx("refund", 5, "60.00", "Credit", merchant="ASOS", mcc="5651"),
    ])
    f = features_at(state, at(6))
    assert f["spend_30d"] == 15.0
    shopping = [c for c in f["categories"] if c["category"] == "shopping"]  # type: ignore[attr-defined]
    assert shopping[0]["spend_30d"] == 15.0
    assert f["income_30d"] == 60.0  # all credits except own transfers
    assert f["income_sources_count"] == 0
    assert {m["merchant"] for m in f["merchants"]} == {"Boots"}  # type: ignore[attr-defined]


def test_pending_refund_is_awaited_until_booked() -> None:
    state = folded([
        tx("buy", 0, "80.00", merchant="Currys", mcc="5732"),
        tx("rf-p", 3, "80.00", "Credit", merchant="Currys", mcc="5732", status="Pending", ref="RF"),
    ])
    f = features_at(state, at(10))
    assert f["refunds_awaited"] == [{"merchant": "Currys", "amount": 80.0, "days_waiting": 7}]
    assert f["spend_30d"] == 80.0
    fold(state, tx("rf-b", 11, "80.00", "Credit", merchant="Currys", mcc="5732", ref="RF"))
    f = features_at(state, at(11))
    assert f["refunds_awaited"] == [] and f["spend_30d"] == 0.0


def test_own_account_transfers_are_neither_spend_nor_income() -> None:
    state = folded([
        tx("t1", 0, "500.00", desc="TRANSFER TO SAVINGS"),
        tx("t2", 1, "200.00", own=True, desc="Payment to J Doe"),
        tx("t3", 2, "300.00", "Credit", desc="FROM SAVINGS POT"),
        tx("t4", 3, "10.00", merchant="Greggs"),
    ])
    f = features_at(state, at(3))
    assert f["spend_30d"] == 10.0 and f["income_30d"] == 0.0
    assert f["largest_debit_30d"] == 500.0 and f["largest_credit_30d"] == 300.0


def test_windows_expire_with_event_time() -> None:
    state = folded([tx("a", 0, "30.00", merchant="Tesco", mcc="5411")])
    assert features_at(state, at(6))["spend_7d"] == 30.0
    assert features_at(state, at(7))["spend_7d"] == 0.0
    assert features_at(state, at(29))["spend_30d"] == 30.0
    f = features_at(state, at(30))
    assert f["spend_30d"] == 0.0 and f["spend_prev_30d"] == 30.0 and f["spend_90d"] == 30.0
    f = features_at(state, at(120))
    assert f["spend_90d"] == 0.0 and f["spend_prev_90d"] == 30.0
    assert features_at(state, at(181))["spend_prev_90d"] == 0.0


def test_late_event_lands_in_its_own_day() -> None:
    state = folded([tx("new", 40, "5.00", merchant="Greggs"), tx("old", 3, "70.00", merchant="Tesco", mcc="5411")])
    f = features_at(state, at(40))
    assert f["spend_30d"] == 5.0 and f["spend_prev_30d"] == 70.0


def test_event_older_than_dedupe_horizon_is_ignored_not_double_counted() -> None:
    state = folded([tx("old", 0, "70.00", merchant="Tesco"), tx("new", DEDUPE_DAYS + 5, "5.00", merchant="Greggs")])
    result = fold(state, tx("old", 0, "70.00", merchant="Tesco"))
    assert result.stale and not result.changed
    result = fold(state, tx("never-seen", 1, "9.00", merchant="Tesco"))
    assert result.stale


def test_month_to_date_windows() -> None:
    state = folded([
        tx("a", date(2025, 2, 3), "10.00", merchant="Tesco"), tx("b", date(2025, 2, 20), "99.00", merchant="Tesco"),
        tx("c", date(2025, 3, 2), "7.00", merchant="Tesco"), tx("d", date(2025, 3, 10), "1.00", merchant="Tesco"),
    ])
    f = features_at(state, at(date(2025, 3, 5)))
    assert f["spend_month_to_date"] == 7.0 and f["spend_last_month_to_date"] == 10.0


def test_cash_fees_roundups_and_duplicates() -> None:
    state = folded([
        tx("atm", 1, "50.00", desc="CASH WITHDRAWAL LINK ATM", mcc="6011"),
        tx("fee", 1, "1.50", desc="NON-STERLING CASH FEE"),
        tx("fx", 2, "0.75", desc="NON-STERLING TRANSACTION FEE"),
        tx("od", 3, "5.00", desc="UNARRANGED OVERDRAFT FEE"),
        tx("c1", 4, "3.20", merchant="Costa Coffee", mcc="5814"),
        tx("d1", 5, "19.99", merchant="Deliveroo", mcc="5812"),
        tx("d2", 6, "19.99", merchant="Deliveroo", mcc="5812"),
    ])
    f = features_at(state, at(7))
    assert f["cash_withdrawals_30d_count"] == 1 and f["cash_withdrawals_30d_amount"] == 50.0
    assert f["cash_fees_30d"] == 1.5 and f["fx_fees_30d"] == 0.75
    assert f["overdraft_fees_30d"] == 5.0 and f["overdraft_fees_90d"] == 5.0
    assert f["round_up_potential_30d"] == pytest.approx(0.80 + 0.01 + 0.01)
    assert f["duplicate_charges"] == [{"merchant": "Deliveroo", "amount": 19.99, "count": 2, "date": at(6).date()}]


def test_balances_available_and_overdraft_days() -> None:
    state = CustomerState()
    def snap(day: int, amount: str, kind: str = "InterimBooked", limit: str | None = None) -> BalanceSnapshot:
        return BalanceSnapshot("cust-1", "acc1", kind, Decimal(amount), "GBP", at(day, 22),
                               Decimal(limit) if limit else None)
    assert features_at(state, at(0))["balance_current"] is None
    apply_balance(state, snap(0, "100.00", limit="500"))
    apply_balance(state, snap(10, "-40.00"))
    apply_balance(state, snap(13, "25.00"))
    result = apply_balance(state, snap(5, "999.00"))  # older: fills its day only
    assert "balance_current" in result.changed
    f = features_at(state, at(20))
    assert f["balance_current"] == 25.0 and f["overdraft_limit"] == 500.0
    assert f["balance_available"] == 525.0  # booked + arranged overdraft when no available balance is known
    assert f["overdraft_days_30d"] == 3  # days 10, 11, 12
    apply_balance(state, snap(14, "300.00", kind="InterimAvailable"))
    assert features_at(state, at(20))["balance_available"] == 300.0


def test_balance_after_feeds_the_balance() -> None:
    state = folded([tx("a", 0, "10.00", merchant="Tesco", balance_after="-5.00")])
    f = features_at(state, at(0))
    assert f["balance_current"] == -5.0 and f["overdraft_days_30d"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": "-1"}, "positive"),
        ({"amount": "NaN"}, "finite"),
        ({"amount": "1e20"}, "out of range"),
    ],
)
def test_bad_input_raises_and_leaves_state_unchanged(kwargs: dict[str, str], message: str) -> None:
    state = folded([tx("a", 0, "10.00", merchant="Tesco")])
    before = state.to_bytes()
    with pytest.raises(FoldError, match=message):
        fold(state, tx("bad", 1, kwargs["amount"], merchant="Tesco"))
    assert state.to_bytes() == before


def test_currency_and_timezone_errors() -> None:
    state = folded([tx("a", 0, "10.00", merchant="Tesco")])
    before = state.to_bytes()
    eur = tx("b", 1, "10.00")
    with pytest.raises(FoldError, match="currency"):
        fold(state, type(eur)(**{**{s: getattr(eur, s) for s in eur.__slots__}, "currency": "EUR"}))
    naive = type(eur)(**{**{s: getattr(eur, s) for s in eur.__slots__}, "booked_at": datetime(2025, 1, 2)})
    with pytest.raises(FoldError, match="timezone"):
        fold(state, naive)
    assert state.to_bytes() == before


def test_changed_set_for_a_grocery_debit() -> None:
    state = folded([tx("a", 0, "10.00", merchant="Tesco", mcc="5411")])
    result = fold(state, tx("b", 1, "12.00", merchant="Tesco", mcc="5411"))
    assert {"spend_7d", "categories", "merchants", "last_txn_amount", "largest_debit_30d"} <= result.changed
    assert "income_amount" not in result.changed and "balance_current" not in result.changed
    assert "cash_withdrawals_30d_count" not in result.changed


def test_newest_transaction_and_income_match() -> None:
    salary = [tx(f"s{i}", date(2025, m, 28), "2100.00", "Credit", desc="ACME PAYROLL") for i, m in enumerate((1, 2, 3))]
    state = folded(salary + [tx("x", date(2025, 3, 27), "4.00", merchant="Greggs")])
    f = features_at(state, datetime(2025, 3, 28, 12, tzinfo=UTC))
    assert f["last_txn_is_income"] is True and f["last_txn_direction"] == "Credit"
    assert f["last_txn_category"] == "income" and f["last_txn_date"] == date(2025, 3, 28)
    assert f["income_last_date"] == date(2025, 3, 28) and f["income_previous_amount"] == 2100.0
    assert f["bills_due_before_payday"] == 0.0
    assert f["monthly_surplus"] is not None and f["monthly_surplus"] > 2000  # type: ignore[operator]


def test_a_very_busy_customer_keeps_a_bounded_dedupe_memory_and_never_double_counts() -> None:
    from core.features.state import MAX_SEEN

    txns = [tx(f"busy-{i}", i // 200, "1.00", merchant="Vending Co") for i in range(MAX_SEEN + 800)]
    state = folded(txns)
    assert len(state.seen) <= MAX_SEEN and state.dedupe_floor > 0
    spend = features_at(state, at(30))["spend_30d"]
    results = [fold(state, t) for t in txns]  # everything re-delivered
    assert all(r.duplicate or r.stale for r in results)
    assert features_at(state, at(30))["spend_30d"] == spend
    restored = CustomerState.from_bytes(state.to_bytes())
    assert restored.dedupe_floor == state.dedupe_floor
