"""The feature vector: every name in ``REGISTRY`` computed from a ``CustomerState`` as of a moment.

Windows are relative to ``as_of`` (event time): "last 30 days" is booking days in ``(today - 30, today]``,
so a nightly sweep sees current windows for a customer with no new transactions. Figures are exact when
``as_of`` is on or after the latest transaction day (the state keeps history relative to that day); for an
earlier ``as_of`` transactions after it are left out of windows but detected streams are not rewound.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from core.features.recurring import AMOUNT_TOLERANCE, CADENCE_DAYS
from core.features.registry import REGISTRY
from core.features.state import CARD, CASH, CREDIT, FEE_CASH, FEE_FX, OWN, REFUND, CustomerState, SeriesView

__all__ = ["TOP_MERCHANTS", "changed_features", "features_at"]

TOP_MERCHANTS = 10
_MONTHLY_FACTOR = {"weekly": 52 / 12, "fourweekly": 13 / 12, "monthly": 1.0, "quarterly": 1 / 3, "annual": 1 / 12}
_NOT_CATEGORIES = frozenset({"spend", "od_fee"})
_DATES: dict[int, date] = {}  # ordinal -> date, shared by every vector (dates are immutable)
_DATES_KEPT = 8192


def _fromordinal(day: int) -> date:
    """``date.fromordinal`` from a bounded cache: a sweep asks for the same few hundred days per customer."""
    found = _DATES.get(day)
    if found is None:
        if len(_DATES) >= _DATES_KEPT:
            _DATES.clear()
        found = _DATES[day] = date.fromordinal(day)
    return found
_RARE = CASH | FEE_CASH | FEE_FX


def _window(view: SeriesView, span: tuple[int, int], lo: int, hi: int) -> int:
    """Sum of one series (its ``span`` in the view) over the days ``(lo, hi]``."""
    days, totals, _ = view
    start, end = span
    return totals[bisect_right(days, hi, start, end)] - totals[bisect_right(days, lo, start, end)]


def _month_start(d: date, back: int) -> date:
    index = d.year * 12 + d.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


@lru_cache(maxsize=64)
def _month_bounds(today: date) -> tuple[int, int, int]:
    """(day before this month, day before last month, same day of last month) as ordinals: one per sweep day."""
    last_month = _month_start(today, 1)
    same_day = last_month.toordinal() - 1 + min(today.day, calendar.monthrange(last_month.year, last_month.month)[1])
    return date(today.year, today.month, 1).toordinal() - 1, last_month.toordinal() - 1, same_day


def _overdraft_days(state: CustomerState, t: int) -> int | None:
    """Days in ``(t - 30, t]`` whose end-of-day booked balance, summed over accounts, was negative."""
    if not state.eod:
        return None
    start = t - 30
    if len(state.eod) == 1:
        return _overdraft_days_one(next(iter(state.eod.values())), start, t)
    current: dict[str, int] = {}
    base_day: dict[str, int] = {}
    changes: list[tuple[int, str, int]] = []
    for account, eod in state.eod.items():
        for day, (_, pence) in eod.items():
            if day <= start:
                if day > base_day.get(account, -1):
                    base_day[account], current[account] = day, pence
            elif day <= t:
                changes.append((day, account, pence))
    changes.sort()
    negative_days = 0
    cursor = start + 1
    for day, account, pence in changes:
        if current and sum(current.values()) < 0:
            negative_days += day - cursor
        cursor = day
        current[account] = pence
    if current and sum(current.values()) < 0:
        negative_days += t + 1 - cursor
    return negative_days


def _overdraft_days_one(eod: dict[int, list[Any]], start: int, t: int) -> int:
    """``_overdraft_days`` of a customer with one account (the usual case): its days in order, no merging."""
    days = sorted(eod)
    lo = bisect_right(days, start)
    hi = bisect_right(days, t, lo)
    # the balance carried into the window (none before the first end-of-day known: those days are not counted)
    balance = eod[days[lo - 1]][1] if lo else None
    negative_days = 0
    cursor = start + 1
    for day in days[lo:hi]:
        if balance is not None and balance < 0:
            negative_days += day - cursor
        cursor = day
        balance = eod[day][1]
    if balance is not None and balance < 0:
        negative_days += t + 1 - cursor
    return negative_days


class _Context:
    """Inputs shared by the feature groups, each computed at most once per call."""

    __slots__ = ("state", "today", "t", "f", "_ledger", "_streams", "_income", "_activity", "_view")

    def __init__(self, state: CustomerState, as_of: datetime) -> None:
        self.state = state
        self.today = as_of.date()
        self.t = self.today.toordinal()
        self.f: dict[str, object] = {}
        self._ledger: tuple[int, int] | None = None
        self._streams: tuple[float, list[tuple[int, int]]] | None = None
        self._income: tuple[Any, ...] | None = None
        self._activity: tuple[dict[str, int], dict[str, int], dict[tuple[str, int], list[int]]] | None = None
        self._view: SeriesView | None = None

    def view(self) -> SeriesView:
        """The state's daily series as one view (window sums by bisection), once per call."""
        if self._view is None:
            self._view = self.state.series_view()
        return self._view

    def ledger(self) -> tuple[int, int]:
        """Index range of the ledger's last 30 days."""
        if self._ledger is None:
            days = self.state.ledger[0]
            self._ledger = (bisect_right(days, self.t - 30), bisect_right(days, self.t))
        return self._ledger

    def activity(self) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, int], list[int]]]:
        """``_merchant_activity`` once per call (the duplicates and merchants groups both need it)."""
        if self._activity is None:
            self._activity = _merchant_activity(self)
        return self._activity

    def merchant_counts(self) -> Counter[str]:
        """Transactions per merchant in the last 30 days (counted in C)."""
        lo, hi = self.ledger()
        return Counter(self.state.ledger[3][lo:hi])

    def streams(self) -> tuple[float, list[tuple[int, int]]]:
        """Monthly cost of the active recurring payments, and (next day, last amount) of each."""
        if self._streams is None:
            t = self.t
            bills_monthly = 0.0
            active: list[tuple[int, int]] = []
            for s in self.state.streams.values():
                if t - s[5] <= 1.5 * CADENCE_DAYS[s[0]]:
                    bills_monthly += s[1] * _MONTHLY_FACTOR[s[0]]
                    active.append((s[9], s[2]))
            self._streams = (bills_monthly, active)
        return self._streams

    def income(self) -> tuple[Any, ...]:
        """(main stream or None, its payer, active sources, new source?, monthly income)."""
        if self._income is None:
            t = self.t
            main: tuple[Any, ...] | None = None
            main_payer = ""
            best = -1.0
            sources = 0
            new_source = False
            income_monthly = 0.0
            for payer, s in self.state.incomes.items():
                cadence, typical = s[0], s[1]
                if t - s[5] > 1.5 * CADENCE_DAYS[cadence]:
                    continue
                sources += 1
                monthly = typical * _MONTHLY_FACTOR[cadence]
                income_monthly += monthly
                if 0 <= t - s[7] <= 35:
                    new_source = True
                if monthly > best or (monthly == best and payer < main_payer):
                    best, main, main_payer = monthly, s, payer
            self._income = (main, main_payer, sources, new_source, income_monthly)
        return self._income


def _g_base(c: _Context) -> None:
    c.f["today"] = c.today
    c.f["days_of_history"] = max(0, c.t - c.state.first_day) if c.state.first_day else None


def _g_balances(c: _Context) -> None:
    f = c.f
    booked = [a[1] for a in c.state.accounts.values() if a[1] is not None]
    f["balance_current"] = sum(booked) / 100 if booked else None
    available: list[int] = []
    limits = 0
    for a in c.state.accounts.values():
        if a[4] is not None:
            limits += a[4]
        if a[3] is not None:
            available.append(a[3])
        elif a[1] is not None:
            available.append(a[1] + (a[4] or 0))
    f["balance_available"] = sum(available) / 100 if available else None
    f["overdraft_limit"] = limits / 100
    f["overdraft_days_30d"] = _overdraft_days(c.state, c.t)


def _g_spend(c: _Context) -> None:
    f, t = c.f, c.t
    view = c.view()
    days, totals, index = view
    spend = index.get("spend")
    if spend is not None:
        start, end = spend
        i180 = bisect_right(days, t - 180, start, end)
        i90 = bisect_right(days, t - 90, i180, end)
        i60 = bisect_right(days, t - 60, i90, end)
        i30 = bisect_right(days, t - 30, i60, end)
        i7 = bisect_right(days, t - 7, i30, end)
        now = totals[bisect_right(days, t, i7, end)]
        p7, p30, p90 = now - totals[i7], now - totals[i30], now - totals[i90]
        p60, p180 = totals[i30] - totals[i60], totals[i90] - totals[i180]
        before_month, before_last_month, same_day = _month_bounds(c.today)
        mtd = now - totals[bisect_right(days, before_month, start, end)]
        lmtd = _window(view, spend, before_last_month, same_day)
    else:
        p180 = p90 = p60 = p30 = p7 = mtd = lmtd = 0
    f["spend_7d"] = max(0, p7) / 100
    f["spend_30d"] = max(0, p30) / 100
    f["spend_90d"] = max(0, p90) / 100
    f["spend_prev_30d"] = max(0, p60) / 100
    f["spend_prev_90d"] = max(0, p180) / 100
    f["spend_month_to_date"] = max(0, mtd) / 100
    f["spend_last_month_to_date"] = max(0, lmtd) / 100
    od = index.get("od_fee")
    if od is not None:
        i90 = bisect_right(days, t - 90, od[0], od[1])
        i30 = bisect_right(days, t - 30, i90, od[1])
        now = totals[bisect_right(days, t, i30, od[1])]
        od90, od30 = now - totals[i90], now - totals[i30]
    else:
        od90 = od30 = 0
    f["overdraft_fees_30d"] = od30 / 100
    f["overdraft_fees_90d"] = od90 / 100


def _g_ledger(c: _Context) -> None:
    """The 30-day ledger figures in one pass (integer pence throughout, divided once)."""
    lo, hi = c.ledger()
    _, l_pence, l_flags, _ = c.state.ledger
    income = largest_debit = largest_credit = cash_count = cash = cash_fees = fx_fees = round_up = 0
    for p, fl in zip(l_pence[lo:hi], l_flags[lo:hi], strict=True):
        if fl & CREDIT:
            if not fl & OWN:
                income += p
            if p > largest_credit:
                largest_credit = p
        elif p > largest_debit:
            largest_debit = p
        if fl & _RARE:  # cash and fees: one test for the usual entry
            if fl & CASH:
                cash_count += 1
                cash += p
            if fl & FEE_CASH:
                cash_fees += p
            if fl & FEE_FX:
                fx_fees += p
        if fl & CARD and p % 100:
            round_up += 100 - p % 100
    f = c.f
    f["income_30d"] = income / 100
    f["largest_debit_30d"] = largest_debit / 100
    f["largest_credit_30d"] = largest_credit / 100
    f["cash_withdrawals_30d_count"] = cash_count
    f["cash_withdrawals_30d_amount"] = cash / 100
    f["cash_fees_30d"] = cash_fees / 100
    f["fx_fees_30d"] = fx_fees / 100
    f["round_up_potential_30d"] = round_up / 100


def _merchant_activity(c: _Context) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, int], list[int]]]:
    """Net spend and debit count per merchant, and debit days per (merchant, amount), over 30 days."""
    lo, hi = c.ledger()
    l_days, l_pence, l_flags, l_merchants = c.state.ledger
    m_spend: dict[str, int] = {}
    m_count: dict[str, int] = {}
    charges: dict[tuple[str, int], list[int]] = {}
    for i in range(lo, hi):
        merchant, flags = l_merchants[i], l_flags[i]
        if not merchant or flags & OWN:
            continue
        pence = l_pence[i]
        if flags & CREDIT:
            if flags & REFUND:
                m_spend[merchant] = m_spend.get(merchant, 0) - pence
            continue
        m_spend[merchant] = m_spend.get(merchant, 0) + pence
        m_count[merchant] = m_count.get(merchant, 0) + 1
        charges.setdefault((merchant, pence), []).append(l_days[i])
    return m_spend, m_count, charges


def _g_duplicates(c: _Context) -> None:
    """Same merchant and amount charged again within 2 days: one item per merchant (the latest)."""
    duplicates: dict[str, dict[str, object]] = {}
    latest: dict[str, int] = {}
    for (merchant, pence), days in c.activity()[2].items():
        if len(days) < 2:
            continue
        for j in range(len(days) - 1, 0, -1):
            if days[j] - days[j - 1] <= 2:
                count = 2
                k = j - 1
                while k > 0 and days[k] - days[k - 1] <= 2:
                    count += 1
                    k -= 1
                if days[j] >= latest.get(merchant, -1):
                    latest[merchant] = days[j]
                    duplicates[merchant] = {"merchant": merchant, "amount": pence / 100, "count": count,
                                            "date": _fromordinal(days[j])}
                break
    c.f["duplicate_charges"] = [duplicates[m] for m in sorted(duplicates)]


def _g_categories(c: _Context) -> None:
    t = c.t
    t120, t90, t60, t30, t7 = t - 120, t - 90, t - 60, t - 30, t - 7
    days, totals, index = c.view()
    categories = []
    for name in sorted(index):
        if name in _NOT_CATEGORIES:
            continue
        start, end = index[name]
        # the running total after each bound: a window's sum is the difference of two
        i120 = bisect_right(days, t120, start, end)
        i90 = bisect_right(days, t90, i120, end)
        i60 = bisect_right(days, t60, i90, end)
        i30 = bisect_right(days, t30, i60, end)
        i7 = bisect_right(days, t7, i30, end)
        i0 = bisect_right(days, t, i7, end)
        if i0 == i120:
            continue  # nothing in the 120 days
        s120, s90, s60, s30, s7, now = totals[i120], totals[i90], totals[i60], totals[i30], totals[i7], totals[i0]
        if s120 == s90 == s60 == s30 == s7 == now:
            continue  # every segment sums to zero
        c7, c30, c60, c90, prev90 = now - s7, now - s30, s30 - s60, now - s90, s30 - s120
        categories.append({
            "category": name, "spend_7d": (c7 if c7 > 0 else 0) / 100, "spend_30d": (c30 if c30 > 0 else 0) / 100,
            "spend_prev_30d": (c60 if c60 > 0 else 0) / 100, "spend_90d": (c90 if c90 > 0 else 0) / 100,
            "avg_monthly_prev_90d": (prev90 if prev90 > 0 else 0) / 300,
        })
    c.f["categories"] = categories


def _g_merchants(c: _Context) -> None:
    """The top merchants by net 30-day spend (fully refunded ones drop out), 90-day spend from histories."""
    t = c.t
    m_spend, m_count, _ = c.activity()
    top = sorted(((m, p) for m, p in m_spend.items() if p > 0), key=lambda kv: (-kv[1], kv[0]))[:TOP_MERCHANTS]
    merchants = []
    for merchant, pence in top:
        entry = c.state.merchant_entry(merchant)
        if entry is not None:
            days, values = entry[1], entry[2]
            s90 = sum(values[bisect_right(days, t - 90):bisect_right(days, t)])
            category = entry[0]
        else:
            s90, category = pence, "other"
        merchants.append({"merchant": merchant, "category": category, "spend_30d": pence / 100,
                          "count_30d": m_count.get(merchant, 0), "spend_90d": max(s90, pence) / 100})
    c.f["merchants"] = merchants


def _g_recurring(c: _Context) -> None:
    t = c.t
    m_count: Counter[str] | None = None
    recurring = []
    streams = c.state.streams
    for merchant in sorted(streams):
        (cadence, typical, last, previous, first_day, last_day, count, _, trial, next_day, category) = \
            streams[merchant]
        period = CADENCE_DAYS[cadence]
        since = t - last_day
        if since > 3 * period:
            continue  # auto-closed: nothing charged for three periods
        in_window = 0
        d = last_day
        while d > t - 30 and d >= first_day:
            if d <= t:
                in_window += 1
            d -= period
        if m_count is None:
            m_count = c.merchant_counts()
        recurring.append({
            "merchant": merchant, "category": category,
            "cadence": cadence, "typical_amount": typical / 100, "last_amount": last / 100,
            "previous_amount": previous / 100,
            "price_change_pct": (last / previous - 1) if previous > 0 else None,
            "first_seen": _fromordinal(first_day), "last_seen": _fromordinal(last_day),
            "next_expected": _fromordinal(next_day), "days_until_next": next_day - t, "days_since_last": since,
            "count": count, "active": since <= 1.5 * period, "trial_converted": bool(trial),
            "usage_30d": max(0, m_count.get(merchant, 0) - in_window),
        })
    c.f["recurring"] = recurring


def _g_income(c: _Context) -> None:
    f, t = c.f, c.t
    main, _, sources, new_source, _ = c.income()
    f["income_sources_count"] = sources
    f["new_income_source"] = new_source
    if main is None:
        f["income_amount"] = f["income_next_date"] = f["income_last_date"] = None
        f["income_last_amount"] = f["income_previous_amount"] = None
        f["income_days_late"] = f["days_to_next_income"] = None
        f["income_cadence"] = "none"
        return
    next_income = main[9]
    f["income_amount"] = main[1] / 100
    f["income_cadence"] = main[0]
    f["income_next_date"] = _fromordinal(next_income)
    f["income_last_date"] = _fromordinal(main[5])
    f["income_last_amount"] = main[2] / 100
    f["income_previous_amount"] = main[3] / 100
    f["income_days_late"] = max(0, t - next_income)
    f["days_to_next_income"] = max(0, next_income - t)


def _g_forward(c: _Context) -> None:
    f, t, state = c.f, c.t, c.state
    main, _, _, _, income_monthly = c.income()
    if main is None:
        f["bills_due_before_payday"] = f["projected_balance_at_payday"] = f["monthly_surplus"] = None
        return
    bills_monthly, active = c.streams()
    due = sum(last for next_day, last in active if next_day < max(main[9], t + 1)) / 100
    f["bills_due_before_payday"] = due
    if "balance_available" not in f:
        _g_balances(c)
    bal = f["balance_available"]
    f["projected_balance_at_payday"] = bal - due if isinstance(bal, float) else None
    history = min(90, max(30, t - state.first_day)) if state.first_day else 30
    view = c.view()
    spend = view[2].get("spend")
    spent = max(0, _window(view, spend, t - history, t)) if spend is not None else 0
    other = max(0.0, spent / (history / 30.4375) - bills_monthly)
    f["monthly_surplus"] = (income_monthly - bills_monthly - other) / 100


def _g_refunds(c: _Context) -> None:
    awaited = []
    for record in c.state.pending.values():
        _, day, pence, flags, merchant = record[:5]
        if flags & CREDIT and flags & REFUND:
            awaited.append({"merchant": merchant, "amount": pence / 100, "days_waiting": max(0, c.t - day)})
    awaited.sort(key=lambda x: (str(x["merchant"]), float(x["amount"])))
    c.f["refunds_awaited"] = awaited


def _g_last(c: _Context) -> None:
    f = c.f
    last_txn = c.state.recent[0] if c.state.recent else None
    if last_txn is None:
        f["last_txn_amount"] = f["last_txn_date"] = None
        f["last_txn_direction"] = f["last_txn_merchant"] = f["last_txn_category"] = ""
        f["last_txn_is_income"] = False
        return
    main, main_payer = c.income()[:2]
    f["last_txn_amount"] = last_txn[2] / 100
    f["last_txn_direction"] = last_txn[3]
    f["last_txn_merchant"] = last_txn[4]
    f["last_txn_category"] = last_txn[5]
    f["last_txn_date"] = _fromordinal(last_txn[7])
    f["last_txn_is_income"] = bool(
        main is not None and last_txn[6] == main_payer and abs(last_txn[2] - main[1]) <= AMOUNT_TOLERANCE * main[1]
    )


_GROUPS: dict[Callable[[_Context], None], tuple[str, ...]] = {
    _g_base: ("today", "days_of_history"),
    _g_balances: ("balance_current", "balance_available", "overdraft_limit", "overdraft_days_30d"),
    _g_spend: ("spend_7d", "spend_30d", "spend_90d", "spend_prev_30d", "spend_prev_90d", "spend_month_to_date",
               "spend_last_month_to_date", "overdraft_fees_30d", "overdraft_fees_90d"),
    _g_ledger: ("income_30d", "largest_debit_30d", "largest_credit_30d", "cash_withdrawals_30d_count",
                "cash_withdrawals_30d_amount", "cash_fees_30d", "fx_fees_30d", "round_up_potential_30d"),
    _g_duplicates: ("duplicate_charges",),
    _g_categories: ("categories",),
    _g_merchants: ("merchants",),
    _g_recurring: ("recurring",),
    _g_income: ("income_amount", "income_cadence", "income_next_date", "income_last_date", "income_last_amount",
                "income_previous_amount", "income_days_late", "days_to_next_income", "income_sources_count",
                "new_income_source"),
    _g_forward: ("bills_due_before_payday", "projected_balance_at_payday", "monthly_surplus"),
    _g_refunds: ("refunds_awaited",),
    _g_last: ("last_txn_amount", "last_txn_direction", "last_txn_merchant", "last_txn_category",
              "last_txn_is_income", "last_txn_date"),
}
_GROUP_OF = {name: group for group, names in _GROUPS.items() for name in names}
_ALL_GROUPS = tuple(_GROUPS)


def features_at(
    state: CustomerState, as_of: datetime, names: Collection[str] | None = None
) -> dict[str, object]:
    """The feature vector for ``as_of``: every registry name, typed as the registry says, None if unknown.

    :param names: compute only the features these names need (the rules' ``reads``); the result then holds
        at least those names (whole groups of related features are computed together). ``None``: all.
    """
    c = _Context(state, as_of)
    if names is None:
        groups: Collection[Callable[[_Context], None]] = _ALL_GROUPS
    elif isinstance(names, frozenset):
        groups = _groups_cached(names)  # a sweep asks every customer for the same frozenset
    else:
        groups = _groups(names)
    for group in groups:
        group(c)
    return c.f


def _groups(names: Collection[str]) -> tuple[Callable[[_Context], None], ...]:
    """The groups computing ``names``, in the order of ``_GROUPS``."""
    try:
        wanted = {_GROUP_OF[name] for name in names}
    except KeyError as exc:
        raise ValueError(f"unknown feature {exc.args[0]!r}: not in the registry") from None
    return tuple(g for g in _ALL_GROUPS if g in wanted)


_groups_cached = lru_cache(maxsize=256)(_groups)


def changed_features(before: Mapping[str, object], after: Mapping[str, object]) -> set[str]:
    """Names whose values differ between two feature vectors (exact, for callers that diff)."""
    return {name for name in REGISTRY if before.get(name) != after.get(name)}
