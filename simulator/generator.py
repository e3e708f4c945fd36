"""Believable financial lives, deterministic from a seed.

Each customer gets their own ``random.Random(f"{seed}:{index}")`` (string seeds hash the same in every
process), a :class:`Profile` (income, housing, bills, subscriptions, habits) and a day-by-day life:
salary with pay-day drift, rent or mortgage, council tax, utilities, subscriptions (free trials that
convert, price rises, cancellations, ones never used), groceries, eating out, transport, shopping with
refunds, card reversals, cash with occasional fees, savings transfers, trips abroad with FX fees, and
overdraft interest when the month ends overdrawn. A second pass walks the events in booking order to
keep the running balance, and adds what a real aggregator feed contains: pending card payments later
booked under a new id with the same TransactionReference (tips and fuel pre-authorisations change the
amount) and the odd duplicate delivery (same TransactionId, new event_id).

Speed (≥100k records/s per core, written to a file): money is integer pence, descriptors and the shared
sub-objects (MerchantDetails, codes, tokenised accounts) are built once per customer, and each payee's
constant fields once more as a record template that every record of theirs copies; equal amounts share one
``Amount`` object; event times are seconds since the start (small ints) until ``received_at``; date-time
strings, transaction numbers, bills' due days and other calendar arithmetic come from tables and caches
shared by all customers of a run; no Decimal or datetime is created per record; the cyclic garbage collector
is paused while a customer is built. Nested objects are shared between records: copy one before changing it
in place. ``bench/bench_simulator.py`` measures all this; ``tests/unit/test_simulator_output.py`` pins the
output of a seed byte for byte.
"""

from __future__ import annotations

import calendar
import gc
import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from random import Random
from typing import Any

from simulator import catalogue as cat

__all__ = ["Profile", "SubscriptionPlan", "SimulatedCustomer", "simulate", "simulate_customer", "population"]

DAY = 86_400
CARD, REVERSIBLE, FX, TIP, PREAUTH = 1, 2, 4, 8, 16
PENDING_SHARE = 0.3
DUPLICATE_SHARE = 0.004
SOURCE = "simulator"


@dataclass(slots=True)
class SubscriptionPlan:
    """One subscription of a customer, as the simulator decided it (ground truth for tests/backtests)."""

    name: str
    descriptor: str
    price: int
    first_charge: date
    cancelled_after: date | None
    rise_on: date | None
    rise_to: int
    trial_until: date | None
    used: bool


@dataclass(slots=True)
class Profile:
    customer_id: str
    account_id: str
    pay_cycle: str  # "monthly" | "four_weekly"
    payer: str
    net_pay: int
    housing: str  # "rent" | "mortgage" | "none"
    housing_cost: int
    opening_balance: int
    commuter: bool
    driver: bool
    saver: bool
    travels: bool
    subscriptions: list[SubscriptionPlan] = field(default_factory=list)


@dataclass(slots=True)
class SimulatedCustomer:
    """Records in delivery order (``received_at``) and, parallel to them, each record's category
    (income, housing, bills, subscriptions, spend, cash, transfer, refund, fees) or ``pending`` /
    ``duplicate`` for records that are not new money movements."""

    profile: Profile
    records: list[dict[str, Any]]
    categories: list[str]


class _Payee:
    """Everything constant about a counterparty, built once per customer and shared by its records."""

    __slots__ = ("info", "merchant", "btc", "pbtc", "creditor", "debtor", "category", "template")

    def __init__(self, info: str, category: str, btc: dict[str, str], pbtc: dict[str, Any],
                 merchant: dict[str, Any] | None = None, creditor: dict[str, Any] | None = None,
                 debtor: dict[str, Any] | None = None) -> None:
        self.info, self.category, self.btc, self.pbtc = info, category, btc, pbtc
        self.merchant, self.creditor, self.debtor = merchant, creditor, debtor
        self.template: dict[str, Any] | None = None  # its records' constant fields, made by build_records


def _code(code: str, sub: str) -> dict[str, str]:
    return {"Code": code, "SubCode": sub}


BTC_CARD = _code("CustomerCardTransactions", "PointOfSalePaymentDebitCard")
BTC_REVERSAL = _code("CustomerCardTransactions", "Reversal")
BTC_ATM = _code("CustomerCardTransactions", "CashWithdrawal")
BTC_DD = _code("IssuedDirectDebits", "DirectDebitPayment")
BTC_SO = _code("IssuedCreditTransfers", "StandingOrder")
BTC_FPO = _code("IssuedCreditTransfers", "DomesticCreditTransfer")
BTC_FPI = _code("ReceivedCreditTransfers", "DomesticCreditTransfer")
BTC_FEE = _code("AccountManagement", "Charges")
BTC_INT = _code("AccountManagement", "Interest")
PBTC = {c: {"Code": c, "Issuer": None} for c in ("POS", "RVSL", "REF", "ATM", "DD", "SO", "FPO", "FPI", "BGC",
                                                 "FEE", "INT")}


_FIRST = itemgetter(0)
_ONE_DAY = timedelta(days=1)
_CENTS = tuple(f"{c:02d}" for c in range(100))


# Time of day as "T" + hours and minutes (one per minute of the day) + seconds and offset: two small tables stay
# in the CPU cache, where one string per second of the day (86,400, 5 MB) missed it on most records.
_HOURS_MINUTES = tuple(f"T{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECONDS_UTC = tuple(f"{s:02d}+00:00" for s in range(60))


@lru_cache(maxsize=64)
def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@lru_cache(maxsize=16)
def _calendar(start: date, n: int) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """For each of ``n`` days from ``start``: its ISO date, its month, and the offset (days from ``start``) of
    its month's first day. Shared by every customer of a run instead of rebuilt for each."""
    all_days = [start + timedelta(days=i) for i in range(n)]
    return (tuple(d.isoformat() for d in all_days), tuple(d.month for d in all_days),
            tuple((d.replace(day=1) - start).days for d in all_days))


@lru_cache(maxsize=1)
def _seq_digits() -> tuple[str, ...]:
    """Zero-padded transaction numbers (a format spec per record costs more than the rest of the id)."""
    return tuple(f"{i:06d}" for i in range(10_000))


# The calendar helpers below are pure functions of a few dates that every customer of a run shares (their
# bills fall on the same handful of days): cached, a call is a dictionary lookup instead of date arithmetic.
@lru_cache(maxsize=1024)
def _token(customer_id: str, what: str) -> str:
    return hashlib.sha256(f"{customer_id}|{what}".encode()).hexdigest()[:32]


@lru_cache(maxsize=4096)
def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return date(d.year + y, m + 1, min(d.day, _month_length(d.year + y, m + 1)))


@lru_cache(maxsize=4096)
def _working_day_back(d: date) -> date:
    while d.weekday() >= 5:
        d -= _ONE_DAY
    return d


@lru_cache(maxsize=4096)
def _working_day_forward(d: date) -> date:
    while d.weekday() >= 5:
        d += _ONE_DAY
    return d


@lru_cache(maxsize=256)
def _due_days(start: date, end: date, day: int) -> tuple[tuple[date, int], ...]:
    """A monthly payment on ``day`` (the month's last day if shorter), moved to the next working day: for each
    month from ``start``'s to ``end`` (exclusive), the month's first day and the due day's offset from
    ``start`` in days."""
    out = []
    first = start.replace(day=1)
    while first < end:
        due = _working_day_forward(first.replace(day=min(day, _month_length(first.year, first.month))))
        out.append((first, (due - start).days))
        first = _add_months(first, 1)
    return tuple(out)


class _Life:
    """Builds one customer's events (first pass) then records (second pass)."""

    def __init__(self, seed: int, index: int, start: date, months: int) -> None:
        self.rng = rng = Random(f"{seed}:{index}")
        rnd = rng.random

        def ri(lo: int, hi: int) -> int:
            """Uniform integer in [lo, hi]: ``random()`` based, 5x cheaper than ``randint``."""
            return lo + int(rnd() * (hi - lo + 1))

        self.ri = ri
        self.start, self.end = start, _add_months(start, months)
        self.t0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self.customer_id = cid = f"sim{seed}-{index:06d}"
        # (seconds since t0, ...): event times are kept small (one-digit ints, Python's fast path) and only
        # received_at (epoch milliseconds) adds t0
        self.events: list[tuple[int, int, int, bool, _Payee, int, Any, Any]] = []
        self.store_no = {d: str(ri(100, 9999)) for d in ("g", "e", "f", "s", "a", "x")}
        four_weekly = rng.random() < 0.25
        pensioner = rng.random() < 0.08
        net_pay = ri(130_000, 480_000) if not pensioner else ri(90_000, 220_000)
        housing = rng.choices(("rent", "mortgage", "none"), (0.55, 0.35, 0.10))[0]
        housing_cost = {"rent": int(net_pay * rng.uniform(0.28, 0.42)),
                        "mortgage": int(net_pay * rng.uniform(0.22, 0.35)), "none": 0}[housing]
        self.profile = Profile(
            customer_id=cid, account_id=f"{cid}-ca", pay_cycle="four_weekly" if four_weekly or pensioner else "monthly",
            payer=rng.choice(cat.PENSION_PAYERS if pensioner else cat.EMPLOYERS), net_pay=net_pay, housing=housing,
            housing_cost=housing_cost, opening_balance=ri(5_000, 300_000), commuter=rng.random() < 0.45,
            driver=rng.random() < 0.55, saver=rng.random() < 0.5, travels=rng.random() < 0.35,
        )
        self.savings = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Token": _token(cid, "savings"),
                        "Name": None}

    # -- payees ---------------------------------------------------------------------------------------------
    def card(self, shop: cat.Shop | cat.Subscription, slot: str, category: str) -> _Payee:
        info = shop.descriptor.replace("{n}", self.store_no[slot])
        return _Payee(info, category, BTC_CARD, PBTC["POS"],
                      merchant={"MerchantName": shop.name, "MerchantCategoryCode": shop.mcc})

    def biller(self, name: str, category: str, code: str = "DD") -> _Payee:
        creditor = {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Token": _token(name, "biller"), "Name": name}
        return _Payee(name, category, BTC_DD if code == "DD" else BTC_SO, PBTC[code], creditor=creditor)

    def add(self, when: int, pence: int, credit: bool, payee: _Payee, flags: int = 0, extra: Any = None) -> None:
        if 0 <= when < self.t_end:
            self.events.append((when, len(self.events), pence, credit, payee, flags, extra, None))

    def at(self, d: date, lo_h: int, hi_h: int) -> int:
        return (d - self.start).days * DAY + self.ri(lo_h * 3600, hi_h * 3600 - 1)

    # -- first pass -----------------------------------------------------------------------------------------
    def build_events(self) -> None:
        self.t_end = (self.end - self.start).days * DAY
        self.income()
        self.fixed_bills()
        self.subscriptions()
        self.daily_life()

    def income(self) -> None:
        rng, p, ri = self.rng, self.profile, self.ri
        payee = _Payee(f"{p.payer} {'SALARY' if 'PENSION' not in p.payer else 'SP'}", "income", BTC_FPI,
                       PBTC["BGC"], debtor={"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                            "Token": _token(p.payer, "payer"), "Name": p.payer})
        if p.pay_cycle == "four_weekly":
            d = self.start + timedelta(days=ri(0, 27))
            amount = p.net_pay * 12 // 13
            while d < self.end:
                self.add(self.at(d, 1, 6), amount, True, payee)
                d += timedelta(days=28)
            return
        pay_day = rng.choice((15, 20, 25, 25, 26, 27, 28, 0))  # 0 = last working day
        overtime = rng.random() < 0.3
        for m in range(-1, (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1):
            first = _add_months(self.start.replace(day=1), m)
            last = _month_length(first.year, first.month)
            d = _working_day_back(first.replace(day=last if pay_day == 0 else pay_day))
            if rng.random() < 0.15:  # drift: payroll a day or two early
                d = _working_day_back(d - timedelta(days=ri(1, 2)))
            amount = p.net_pay + (ri(-4, 12) * p.net_pay // 100 if overtime else 0)
            if first.month == 3 and rng.random() < 0.25:
                amount += p.net_pay * ri(10, 60) // 100  # annual bonus
            self.add(self.at(d, 1, 6), amount, True, payee)

    def monthly(self, payee: _Payee, day: int, amount: int, months_of_year: tuple[int, ...] = ()) -> None:
        for first, due in _due_days(self.start, self.end, day):
            if not months_of_year or first.month in months_of_year:
                self.add(due * DAY + self.ri(3 * 3600, 6 * 3600 - 1), amount, False, payee)  # 03:00-06:00

    def fixed_bills(self) -> None:
        rng, p, ri = self.rng, self.profile, self.ri
        if p.housing == "rent":
            self.monthly(self.biller(rng.choice(cat.LANDLORDS), "housing", "SO"), rng.choice((1, 1, 28)),
                         p.housing_cost)
        elif p.housing == "mortgage":
            self.monthly(self.biller(rng.choice(cat.LENDERS), "housing"), ri(1, 5), p.housing_cost)
        if p.housing != "none":
            self.monthly(self.biller(rng.choice(cat.COUNCILS), "bills"), rng.choice((1, 15)),
                         ri(11_000, 22_000), (4, 5, 6, 7, 8, 9, 10, 11, 12, 1))
            energy = self.biller(rng.choice(cat.ENERGY), "bills")
            base = ri(6_000, 16_000)
            change = _add_months(self.start, ri(3, 9))
            day = ri(1, 28)
            for first, due in _due_days(self.start, self.end, day):  # energy DD re-assessed once a year
                amount = base if first < change else base * rng.choice((85, 110, 120)) // 100 // 100 * 100
                self.add(due * DAY + ri(3 * 3600, 6 * 3600 - 1), amount, False, energy)
            self.monthly(self.biller(rng.choice(cat.WATER), "bills"), ri(1, 28), ri(2_500, 5_500))
            self.monthly(self.biller(rng.choice(cat.BROADBAND), "bills"), ri(1, 28),
                         ri(2_500, 4_500))
        self.monthly(self.biller(rng.choice(cat.PHONE), "bills"), ri(1, 28), ri(800, 4_500))
        if rng.random() < 0.5:
            self.monthly(self.biller(rng.choice(cat.INSURANCE), "bills"), ri(1, 28),
                         ri(1_500, 6_000))

    def subscriptions(self) -> None:
        rng, ri = self.rng, self.ri
        horizon = (self.end - self.start).days
        for sub in rng.sample(cat.SUBSCRIPTIONS, ri(1, 6)):
            payee = self.card(sub, "x", "subscriptions")
            if rng.random() < 0.35:  # signs up during the period, maybe through a free trial
                signup = self.start + timedelta(days=ri(20, max(21, horizon - 60)))
                trial = signup + timedelta(days=sub.trial_days) if sub.trial_days else None
                first = trial or signup
            else:
                trial = None
                first = self.start + timedelta(days=ri(0, 27))
            cancelled = first + timedelta(days=ri(60, 300)) if rng.random() < 0.2 else None
            rise_on = self.start + timedelta(days=ri(90, 330)) if sub.rise_to else None
            self.profile.subscriptions.append(SubscriptionPlan(
                sub.name, payee.info, sub.price, first, cancelled, rise_on, sub.rise_to, trial,
                used=rng.random() < 0.7,
            ))
            d = first
            while d < self.end and (cancelled is None or d <= cancelled):
                price = sub.rise_to if rise_on is not None and d >= rise_on else sub.price
                self.add(self.at(d, 0, 4), price, False, payee, CARD)
                d = _add_months(first, (d.year - first.year) * 12 + d.month - first.month + 1)

    def daily_life(self) -> None:
        rng, p, ri = self.rng, self.profile, self.ri
        scale = p.net_pay / 250_000
        grocers = [self.card(s, "g", "spend") for s in rng.sample(cat.GROCERS, 2)]
        eats = [self.card(s, "e", "spend") for s in rng.sample(cat.EATING_OUT, 4)]
        shops = [self.card(s, "s", "spend") for s in rng.sample(cat.SHOPPING, 3)]
        fuel = self.card(rng.choice(cat.FUEL), "f", "spend")
        taxis = self.card(rng.choice(cat.TAXIS), "f", "spend")
        tfl = self.card(cat.TRANSPORT_TFL[0], "f", "spend")
        rail = self.card(cat.TRANSPORT_TFL[1], "f", "spend")
        atm_name = rng.choice(cat.ATMS).replace("{n}", self.store_no["a"])
        atm = _Payee(atm_name, "cash", BTC_ATM, PBTC["ATM"], merchant={"MerchantName": None,
                                                                      "MerchantCategoryCode": "6011"})
        atm_fee = _Payee("CASH WITHDRAWAL FEE", "fees", BTC_FEE, PBTC["FEE"])
        to_savings = _Payee("TRANSFER TO SAVINGS", "transfer", BTC_FPO, PBTC["FPO"], creditor=self.savings)
        from_savings = _Payee("TRANSFER FROM SAVINGS", "transfer", BTC_FPI, PBTC["FPI"], debtor=self.savings)
        foreign = [self.card(s, "x", "spend") for s in cat.FOREIGN]
        fx_fee = _Payee("NON-STERLING TRANSACTION FEE", "fees", BTC_FEE, PBTC["FEE"])
        trips: list[tuple[date, date]] = []
        if p.travels:
            for _ in range(ri(1, 2)):
                a = self.start + timedelta(days=ri(30, max(31, (self.end - self.start).days - 10)))
                trips.append((a, a + timedelta(days=ri(3, 8))))
        groceries_p = min(0.85, 0.35 * (0.7 + 0.3 * scale))
        eat_p = min(0.9, 0.3 * scale)
        shop_p = min(0.6, 0.15 * scale)
        save_day = ri(1, 28)
        day = self.start
        base = 0
        while day < self.end:
            wd = day.weekday()
            abroad = bool(trips) and any(a <= day < b for a, b in trips)
            if abroad:
                for _ in range(ri(1, 4)):
                    shop = rng.choice(cat.FOREIGN)
                    payee = foreign[cat.FOREIGN.index(shop)]
                    eur = ri(shop.low, shop.high)
                    rate = ri(8_350, 8_750)  # GBP per EUR x 10^4
                    gbp = eur * rate // 10_000
                    t = base + ri(28800, 79199)
                    self.add(t, gbp, False, payee, CARD | FX, ("EUR", rate, eur))
                    self.add(t + 60, max(1, gbp * 299 // 10_000), False, fx_fee)
            else:
                if rng.random() < groceries_p:
                    big = rng.random() < 0.35
                    shop_amount = ri(3_500, 11_000) if big else ri(300, 2_200)
                    self.add(base + ri(28800, 75599), int(shop_amount * (0.8 + 0.3 * scale)), False,
                             rng.choice(grocers), CARD | REVERSIBLE)
                if rng.random() < eat_p + (0.25 if wd >= 4 else 0.0):
                    payee = rng.choice(eats)
                    flags = CARD | (TIP if payee.merchant and payee.merchant["MerchantCategoryCode"] == "5812" else 0)
                    self.add(base + ri(25200, 82799), ri(250, 4_500), False, payee, flags)
                if p.commuter and wd < 5 and rng.random() < 0.85:
                    self.add(base + ri(68400, 82799), rng.choice((280, 560, 810)), False, tfl, CARD)
                if p.driver and rng.random() < 0.09:
                    self.add(base + ri(25200, 75599), ri(4_000, 8_500), False, fuel, CARD | PREAUTH)
                if rng.random() < 0.04:
                    self.add(base + ri(32400, 71999), ri(900, 9_500), False, rail, CARD)
                if rng.random() < 0.05 + 0.05 * (wd >= 4):
                    self.add(base + ri(64800, 86399), ri(700, 3_500), False, taxis, CARD)
                if rng.random() < shop_p:
                    payee = rng.choice(shops)
                    amount = ri(499, 9_000)
                    t = base + ri(28800, 82799)
                    self.add(t, amount, False, payee, CARD | REVERSIBLE)
                    if rng.random() < 0.05:  # returned it: refund a week or two later
                        refund = _Payee(f"{payee.info} REFUND", "refund", BTC_REVERSAL, PBTC["REF"],
                                        merchant=payee.merchant)
                        self.add(t + ri(5, 20) * DAY, amount, True, refund)
                if rng.random() < 0.05:
                    t = base + ri(32400, 79199)
                    self.add(t, rng.choice((1_000, 2_000, 2_000, 3_000, 5_000, 10_000)), False, atm)
                    if rng.random() < 0.12:
                        self.add(t + 1, rng.choice((150, 185, 199, 250)), False, atm_fee)
            if p.saver and day.day == save_day:
                self.add(base + ri(32400, 43199), ri(5, 50) * 1_000, False, to_savings)
            if p.saver and day.day == 14 and rng.random() < 0.25:
                self.add(base + ri(32400, 43199), ri(10, 40) * 1_000, True, from_savings)
            day += _ONE_DAY
            base += DAY

    # -- second pass ------------------------------------------------------------------------------------------
    def build_records(self) -> SimulatedCustomer:
        rng, p, ri = self.rng, self.profile, self.ri
        rnd = rng.random
        days, month_of_day, month_start_day = _calendar(self.start, (self.end - self.start).days + 8)
        hours_minutes, seconds_utc, seq_digits = _HOURS_MINUTES, _SECONDS_UTC, _seq_digits()
        cents = _CENTS
        t0, cid, acc = self.t0, self.customer_id, p.account_id
        tx_prefix, ref_prefix = f"{cid}-", f"{cid}-R"
        interest = _Payee("OVERDRAFT INTEREST", "fees", BTC_INT, PBTC["INT"])
        reversal_payees: dict[str, _Payee] = {}
        out: list[tuple[int, dict[str, Any], str]] = []
        append = out.append
        balance = p.opening_balance
        month = self.start.month
        seq = 0

        template: dict[str, Any] = {
            "event_id": None, "customer_id": cid, "received_at": None, "source": SOURCE, "AccountId": acc,
            "TransactionId": None, "TransactionReference": None, "CreditDebitIndicator": None, "Status": None,
            "BookingDateTime": None, "ValueDateTime": None, "TransactionInformation": None, "Amount": None,
            "ChargeAmount": None, "CurrencyExchange": None, "BankTransactionCode": None,
            "ProprietaryBankTransactionCode": None, "Balance": None, "MerchantDetails": None,
            "CreditorAccount": None, "DebtorAccount": None,
        }
        amounts: dict[int, dict[str, str]] = {}  # pence -> {"Amount", "Currency"}, shared by equal amounts

        def payee_template(payee: _Payee) -> dict[str, Any]:
            """The record with this customer's and this payee's constant fields filled in (key order kept)."""
            t = payee.template = template.copy()
            t["TransactionInformation"] = payee.info
            t["BankTransactionCode"] = payee.btc
            t["ProprietaryBankTransactionCode"] = payee.pbtc
            t["MerchantDetails"] = payee.merchant
            t["CreditorAccount"] = payee.creditor
            t["DebtorAccount"] = payee.debtor
            return t

        def record(ts: int, received_ms: int, txid: str, ref: str, pence: int, credit: bool, payee: _Payee,
                   status: str, fx: Any) -> dict[str, Any]:
            """A copy of the payee's template with what changes per record set (the balance by the caller)."""
            r = (payee.template or payee_template(payee)).copy()
            r["event_id"] = txid + "-1"
            r["received_at"] = received_ms
            r["TransactionId"] = txid
            r["TransactionReference"] = ref
            r["CreditDebitIndicator"] = "Credit" if credit else "Debit"
            r["Status"] = status
            second = ts % DAY
            r["BookingDateTime"] = r["ValueDateTime"] = days[ts // DAY] + hours_minutes[second // 60] + seconds_utc[
                second % 60]
            amount = amounts.get(pence)
            if amount is None:
                amount = amounts[pence] = {"Amount": f"{pence // 100}.{cents[pence % 100]}", "Currency": "GBP"}
            r["Amount"] = amount
            if fx is not None:
                r["CurrencyExchange"] = {
                    "SourceCurrency": fx[0], "TargetCurrency": "GBP", "ExchangeRate": f"{fx[1] / 10_000:.4f}",
                    "InstructedAmount": {"Amount": f"{fx[2] // 100}.{cents[fx[2] % 100]}", "Currency": fx[0]}}
            return r

        events = sorted(self.events, key=_FIRST)
        deferred: list[tuple[int, int, int, bool, _Payee, int, Any, Any]] = []  # bookings due later, a heap
        tiebreak = 0

        def later(ts: int, pence: int, credit: bool, payee: _Payee, flags: int, fx: Any, ids: Any) -> None:
            nonlocal tiebreak
            tiebreak += 1
            heapq.heappush(deferred, (ts, tiebreak, pence, credit, payee, flags, fx, ids))

        def book(ts: int, pence: int, credit: bool, payee: _Payee, flags: int, fx: Any, ids: Any) -> None:
            """Book now (balance moves) or, for a card payment going through pending first, emit the pending
            record and schedule the booking a few days later, where the balance will move."""
            nonlocal balance, seq
            if ids is None:
                seq += 1
                digits = seq_digits[seq] if seq < 10_000 else f"{seq:06d}"
                txid, ref = tx_prefix + digits, ref_prefix + digits
                if flags & CARD and rnd() < PENDING_SHARE:
                    auth = pence
                    if flags & TIP:
                        pence = pence * rng.choice((100, 110, 112, 115)) // 100
                    elif flags & PREAUTH:
                        auth = 10_000
                    received = (t0 + ts + ri(5, 90)) * 1000
                    append((received, record(ts, received, txid + "P", ref, auth, credit, payee, "Pending", fx),
                            "pending"))
                    later(ts + ri(1, 3) * DAY + ri(0, 3600), pence, credit, payee, flags, fx, (txid, ref))
                    return
            else:
                txid, ref = ids
            balance += pence if credit else -pence
            received = (t0 + ts + 60 + int(rnd() * 14_341)) * 1000  # ri(60, 4 * 3600) inlined (every record)
            rec = record(ts, received, txid, ref, pence, credit, payee, "Booked", fx)
            b = balance if balance >= 0 else -balance
            rec["Balance"] = {
                "CreditDebitIndicator": "Credit" if balance >= 0 else "Debit", "Type": "InterimBooked",
                "Amount": {"Amount": f"{b // 100}.{cents[b % 100]}", "Currency": "GBP"},
            }
            append((received, rec, payee.category))
            if rnd() < DUPLICATE_SHARE:
                dup = dict(rec)
                dup["event_id"] = txid + "-2"
                dup["received_at"] = received + ri(1, 6) * 3_600_000
                append((dup["received_at"], dup, "duplicate"))
            if flags & REVERSIBLE and rnd() < 0.004:
                rp = reversal_payees.get(payee.info)
                if rp is None:
                    rp = reversal_payees[payee.info] = _Payee(f"REVERSAL {payee.info}", "refund", BTC_REVERSAL,
                                                              PBTC["RVSL"], merchant=payee.merchant)
                later(ts + DAY, pence, True, rp, 0, None, None)

        # Events in time order, each preceded by the deferred bookings due by then; on the first booking of a
        # month, overdraft interest (about 36% a year on the overdrawn balance) is charged on the 1st.
        pop = heapq.heappop
        i, n = 0, len(events)
        while True:
            if deferred and (i == n or deferred[0][0] <= events[i][0]):
                ts, _, pence, credit, payee, flags, fx, ids = pop(deferred)
            elif i < n:
                ts, _, pence, credit, payee, flags, fx, ids = events[i]
                i += 1
            else:
                break
            di = ts // DAY
            if month_of_day[di] != month:
                month = month_of_day[di]
                if balance < 0:
                    book(min(month_start_day[di] * DAY + 60, ts), max(1, -balance * 300 // 10_000),
                         False, interest, 0, None, None)
            book(ts, pence, credit, payee, flags, fx, ids)
        out.sort(key=_FIRST)
        _, records, categories = zip(*out, strict=True) if out else ((), (), ())
        return SimulatedCustomer(p, list(records), list(categories))


def simulate(seed: int, customer_index: int, start: date, months: int = 13) -> SimulatedCustomer:
    """One customer's profile, records (delivery order) and record categories.

    The cyclic garbage collector is paused while one customer is built: its thousands of new dicts hold no
    cycles (reference counting frees them), yet they would trigger repeated scans of every live record.
    """
    life = _Life(seed, customer_index, start, months)
    collecting = gc.isenabled()
    gc.disable()
    try:
        life.build_events()
        return life.build_records()
    finally:
        if collecting:
            gc.enable()


def simulate_customer(seed: int, customer_index: int, start: date, months: int = 13) -> list[dict[str, Any]]:
    """One customer's Avro-shaped ``Transaction`` records, in delivery (``received_at``) order."""
    return simulate(seed, customer_index, start, months).records


def population(seed: int, n: int, start: date, months: int = 13, first_index: int = 0) -> Iterator[SimulatedCustomer]:
    """``n`` customers, one after the other (each independent of the others, so any slice is reproducible)."""
    for index in range(first_index, first_index + n):
        yield simulate(seed, index, start, months)
