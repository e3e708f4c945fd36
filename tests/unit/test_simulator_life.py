"""Simulator: determinism, validity against the schemas, and the life events the issue asks for."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from schemas.codec import default_codec
from schemas.records import from_open_banking_json, to_transaction
from simulator import population, simulate_customer
from simulator.outputs import restamp, to_open_banking_json
from simulator.summary import summarise

START = date(2024, 11, 1)


@pytest.fixture(scope="module")
def crowd() -> list[Any]:
    return list(population(11, 40, START, 13))


def test_same_seed_same_events_and_customers_are_independent() -> None:
    a = simulate_customer(5, 3, START, 13)
    assert a == simulate_customer(5, 3, START, 13)
    assert a != simulate_customer(6, 3, START, 13)
    assert a != simulate_customer(5, 4, START, 13)
    sliced = next(iter(population(5, 1, START, 13, first_index=3)))
    assert sliced.records == a


def test_every_record_encodes_and_validates(crowd: list[Any]) -> None:
    codec = default_codec()
    for customer in crowd[:10]:
        for record in customer.records:
            txn = to_transaction(codec.decode(codec.encode("Transaction", record), expect="Transaction"))
            assert txn.customer_id == customer.profile.customer_id


def test_records_are_in_delivery_order_within_the_window(crowd: list[Any]) -> None:
    for customer in crowd:
        received = [r["received_at"] for r in customer.records]
        assert received == sorted(received)
        assert customer.records[0]["BookingDateTime"] >= START.isoformat()
        assert 300 < len(customer.records) < 2500


def _booked(customer: Any) -> list[dict[str, Any]]:
    rows = [r for r, c in zip(customer.records, customer.categories, strict=True)
            if r["Status"] == "Booked" and c != "duplicate"]
    return sorted(rows, key=lambda r: r["BookingDateTime"])


def _pence(amount: dict[str, str], direction: str = "Credit") -> int:
    value = int(amount["Amount"].replace(".", ""))
    return value if direction == "Credit" else -value


def test_balance_after_each_transaction_follows_booking_order(crowd: list[Any]) -> None:
    overdrawn = 0
    for customer in crowd:
        balance = customer.profile.opening_balance
        for r in _booked(customer):
            balance += _pence(r["Amount"], r["CreditDebitIndicator"])
            assert _pence(r["Balance"]["Amount"], r["Balance"]["CreditDebitIndicator"]) == balance
        overdrawn += any(r["TransactionInformation"] == "OVERDRAFT INTEREST" for r in customer.records)
    assert 0 < overdrawn < len(crowd)  # some customers, not all, pay overdraft interest


def test_pending_then_booked_with_new_id_and_same_reference(crowd: list[Any]) -> None:
    changed_amount = 0
    pairs = 0
    for customer in crowd:
        by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in customer.records:
            by_ref[r["TransactionReference"]].append(r)
        for r in customer.records:
            if r["Status"] != "Pending":
                continue
            booked = [b for b in by_ref[r["TransactionReference"]] if b["Status"] == "Booked"]
            assert booked, "every pending payment is booked later"
            b = booked[0]
            assert b["TransactionId"] != r["TransactionId"]
            assert b["received_at"] > r["received_at"] and b["BookingDateTime"] > r["BookingDateTime"]
            pairs += 1
            changed_amount += b["Amount"] != r["Amount"]
    assert pairs > 1000 and 0 < changed_amount < pairs


def test_duplicate_deliveries_repeat_the_transaction_id(crowd: list[Any]) -> None:
    dups = 0
    for customer in crowd:
        seen: dict[str, dict[str, Any]] = {}
        for r, c in zip(customer.records, customer.categories, strict=True):
            if c == "duplicate":
                first = seen[r["TransactionId"]]
                assert r["event_id"] != first["event_id"] and r["Amount"] == first["Amount"]
                dups += 1
            else:
                seen[r["TransactionId"]] = r
    assert dups > 0


def test_salary_cadence_monthly_or_four_weekly(crowd: list[Any]) -> None:
    cycles: Counter[str] = Counter()
    for customer in crowd:
        pay = [datetime.fromisoformat(r["BookingDateTime"]).date() for r, c in
               zip(customer.records, customer.categories, strict=True) if c == "income"]
        gaps = [(b - a).days for a, b in zip(pay, pay[1:], strict=False)]
        cycles[customer.profile.pay_cycle] += 1
        if customer.profile.pay_cycle == "four_weekly":
            assert set(gaps) == {28}
        else:
            assert all(24 <= g <= 38 for g in gaps), gaps
            assert len(set(gaps)) > 1  # pay-day drift and weekends move it
    assert cycles["monthly"] and cycles["four_weekly"]


def test_subscriptions_trials_rises_and_cancellations(crowd: list[Any]) -> None:
    seen: Counter[str] = Counter()
    for customer in crowd:
        for plan in customer.profile.subscriptions:
            charges = [r for r in _booked(customer) if r["TransactionInformation"] == plan.descriptor]
            dates = [date.fromisoformat(r["BookingDateTime"][:10]) for r in charges]
            if not dates:
                continue
            assert dates[0] >= plan.first_charge
            if plan.trial_until:
                seen["trial"] += 1
                assert dates[0] >= plan.trial_until
            if plan.cancelled_after:
                seen["cancelled"] += 1
                assert dates[-1] <= plan.cancelled_after + timedelta(days=4)
            prices = {r["Amount"]["Amount"] for r in charges}
            if plan.rise_on and dates[0] < plan.rise_on < dates[-1] - timedelta(days=3):
                seen["rise"] += 1
                assert len(prices) == 2
            seen["unused"] += not plan.used
    assert min(seen.values()) > 0, seen


def test_realistic_descriptors_mccs_fx_and_fees(crowd: list[Any]) -> None:
    infos = Counter(r["TransactionInformation"] for c in crowd for r in c.records)
    mccs = {r["MerchantDetails"]["MerchantCategoryCode"] for c in crowd for r in c.records if r["MerchantDetails"]}
    assert infos["NETFLIX.COM 866-579"] > 0 and any(i.startswith("TESCO STORES ") for i in infos)
    assert {"5411", "5812", "5814", "4111", "6011", "7997"} <= mccs
    fx = [r for c in crowd for r in c.records if r["CurrencyExchange"]]
    assert fx and all(r["CurrencyExchange"]["InstructedAmount"]["Currency"] == "EUR" for r in fx)
    for name in ("NON-STERLING TRANSACTION FEE", "CASH WITHDRAWAL FEE", "TRANSFER TO SAVINGS"):
        assert infos[name] > 0, name
    assert any(i.startswith("REVERSAL ") for i in infos) and any(i.endswith(" REFUND") for i in infos)
    assert not any(c.records[0]["CreditorAccount"] and "Identification" in c.records[0]["CreditorAccount"]
                   for c in crowd)


def test_summary_adds_up(crowd: list[Any]) -> None:
    customer = crowd[0]
    months = summarise(customer)
    assert len(months) >= 13
    total = sum(sum(m.pence.values()) for m in months)
    booked = _booked(customer)
    assert total == sum(_pence(r["Amount"], r["CreditDebitIndicator"]) for r in booked)
    last = booked[-1]["Balance"]
    assert months[-1].end_balance == _pence(last["Amount"], last["CreditDebitIndicator"])


def test_open_banking_json_of_simulated_records_is_accepted(crowd: list[Any]) -> None:
    for record in crowd[1].records[:300]:
        live = restamp(record)
        again = from_open_banking_json(record["customer_id"], to_open_banking_json(live), "http",
                                       event_id="e", received_at_ms=live["received_at"])
        assert again["Amount"] == record["Amount"] and again["TransactionId"] == record["TransactionId"]
