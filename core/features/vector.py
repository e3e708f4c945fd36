"""The feature vector: every name in ``REGISTRY`` computed from a ``CustomerState`` as of a moment.

Windows are relative to ``as_of`` (event time): "last 30 days" is booking days in ``(today - 30, today]``,
so a nightly sweep sees current windows for a customer with no new transactions. Figures are exact when
``as_of`` is on or after the latest transaction day (the state keeps history relative to that day); for an
earlier ``as_of`` transactions after it are left out of windows but detected streams are not rewound.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from core.features.recurring import AMOUNT_TOLERANCE, CADENCE_DAYS
from core.features.registry import REGISTRY
from core.features.state import CARD, CASH, CREDIT, FEE_CASH, FEE_FX, OWN, REFUND, CustomerState

__all__ = ["TOP_MERCHANTS", "changed_features", "features_at"]

TOP_MERCHANTS = 10
_MONTHLY_FACTOR = {"weekly": 52 / 12, "fourweekly": 13 / 12, "monthly": 1.0, "quarterly": 1 / 3, "annual": 1 / 12}
_NOT_CATEGORIES = frozenset({"spend", "od_fee"})
_fromordinal = date.fromordinal


def _windows(entry: list[list[int]], bounds: tuple[int, ...]) -> list[int]:
    """Sums of the daily series between consecutive ``bounds`` (each segment is ``(b[i], b[i+1]]``)."""
    days, values = entry
    idx = [bisect_right(days, b) for b in bounds]
    return [sum(values[idx[i]:idx[i + 1]]) for i in range(len(idx) - 1)]


def _month_start(d: date, back: int) -> date:
    index = d.year * 12 + d.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _overdraft_days(state: CustomerState, t: int) -> int | None:
    """Days in ``(t - 30, t]`` whose end-of-day booked balance, summed over accounts, was negative."""
    if not state.eod:
        return None
    start = t - 30
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


def features_at(state: CustomerState, as_of: datetime) -> dict[str, object]:
    """The feature vector for ``as_of``: every registry name, typed as the registry says, None if unknown."""
    today = as_of.date()
    t = today.toordinal()
    f: dict[str, object] = {"today": today}
    f["days_of_history"] = max(0, t - state.first_day) if state.first_day else None

    # --- balances
    booked = [a[1] for a in state.accounts.values() if a[1] is not None]
    f["balance_current"] = sum(booked) / 100 if booked else None
    available: list[int] = []
    limits = 0
    for a in state.accounts.values():
        if a[4] is not None:
            limits += a[4]
        if a[3] is not None:
            available.append(a[3])
        elif a[1] is not None:
            available.append(a[1] + (a[4] or 0))
    f["balance_available"] = sum(available) / 100 if available else None
    f["overdraft_limit"] = limits / 100
    f["overdraft_days_30d"] = _overdraft_days(state, t)

    # --- spending windows
    spend = state.series.get("spend")
    month_start = _month_start(today, 0).toordinal()
    last_month = _month_start(today, 1)
    same_day_last_month = last_month.toordinal() + min(today.day, calendar.monthrange(last_month.year,
                                                                                      last_month.month)[1]) - 1
    if spend is not None:
        p180, p90, p60, p30, p7 = _windows(spend, (t - 180, t - 90, t - 60, t - 30, t - 7, t))
        mtd, lmtd = _windows(spend, (month_start - 1, t))[0], _windows(spend, (last_month.toordinal() - 1,
                                                                               same_day_last_month))[0]
        spend_90 = p90 + p60 + p30 + p7
    else:
        p180 = p90 = p60 = p30 = p7 = mtd = lmtd = spend_90 = 0
    f["spend_7d"] = max(0, p7) / 100
    f["spend_30d"] = max(0, p30 + p7) / 100
    f["spend_90d"] = max(0, spend_90) / 100
    f["spend_prev_30d"] = max(0, p60) / 100
    f["spend_prev_90d"] = max(0, p180) / 100
    f["spend_month_to_date"] = max(0, mtd) / 100
    f["spend_last_month_to_date"] = max(0, lmtd) / 100
    od = state.series.get("od_fee")
    od30, od90 = (_windows(od, (t - 90, t - 30, t)) if od is not None else (0, 0))
    f["overdraft_fees_30d"] = od90 / 100
    f["overdraft_fees_90d"] = (od30 + od90) / 100

    # --- one pass over the ledger's last 30 days
    l_days, l_pence, l_flags, l_merchants, _ = state.ledger
    lo, hi = bisect_right(l_days, t - 30), bisect_right(l_days, t)
    income = largest_debit = largest_credit = cash_n = cash_amount = cash_fees = fx_fees = round_up = 0
    m_spend: dict[str, int] = {}
    m_count: dict[str, int] = {}
    charges: dict[tuple[str, int], list[int]] = {}
    for i in range(lo, hi):
        pence, flags, merchant = l_pence[i], l_flags[i], l_merchants[i]
        if flags & CREDIT:
            if pence > largest_credit:
                largest_credit = pence
            if not flags & OWN:
                income += pence
                if flags & REFUND and merchant:
                    m_spend[merchant] = m_spend.get(merchant, 0) - pence
            continue
        if pence > largest_debit:
            largest_debit = pence
        if flags & CARD and pence % 100:
            round_up += 100 - pence % 100
        if flags & CASH:
            cash_n += 1
            cash_amount += pence
        elif flags & FEE_CASH:
            cash_fees += pence
        elif flags & FEE_FX:
            fx_fees += pence
        if merchant and not flags & OWN:
            m_spend[merchant] = m_spend.get(merchant, 0) + pence
            m_count[merchant] = m_count.get(merchant, 0) + 1
            charges.setdefault((merchant, pence), []).append(l_days[i])
    f["income_30d"] = income / 100
    f["largest_debit_30d"] = largest_debit / 100
    f["largest_credit_30d"] = largest_credit / 100
    f["cash_withdrawals_30d_count"] = cash_n
    f["cash_withdrawals_30d_amount"] = cash_amount / 100
    f["cash_fees_30d"] = cash_fees / 100
    f["fx_fees_30d"] = fx_fees / 100
    f["round_up_potential_30d"] = round_up / 100

    # --- duplicate charges: same merchant and amount within 2 days
    duplicates: dict[str, dict[str, object]] = {}
    for (merchant, pence), days in charges.items():
        if len(days) < 2:
            continue
        for j in range(len(days) - 1, 0, -1):
            if days[j] - days[j - 1] <= 2:
                count = 2
                k = j - 1
                while k > 0 and days[k] - days[k - 1] <= 2:
                    count += 1
                    k -= 1
                item = duplicates.get(merchant)
                if item is None or days[j] >= item["_day"]:  # type: ignore[operator]
                    duplicates[merchant] = {"merchant": merchant, "amount": pence / 100, "count": count,
                                            "date": _fromordinal(days[j]), "_day": days[j]}
                break
    for item in duplicates.values():
        del item["_day"]
    f["duplicate_charges"] = sorted(duplicates.values(), key=lambda x: x["merchant"])  # type: ignore[arg-type,return-value]

    # --- categories
    categories = []
    for name, entry in state.series.items():
        if name in _NOT_CATEGORIES:
            continue
        c120, c90, c60, c30, c7 = _windows(entry, (t - 120, t - 90, t - 60, t - 30, t - 7, t))
        if not (c120 or c90 or c60 or c30 or c7):
            continue
        categories.append({
            "category": name, "spend_7d": max(0, c7) / 100, "spend_30d": max(0, c30 + c7) / 100,
            "spend_prev_30d": max(0, c60) / 100, "spend_90d": max(0, c90 + c60 + c30 + c7) / 100,
            "avg_monthly_prev_90d": max(0, c120 + c90 + c60) / 300,
        })
    categories.sort(key=lambda x: str(x["category"]))
    f["categories"] = categories

    # --- merchants: the top by net 30-day spend (fully refunded ones drop out), 90-day spend from histories
    top = sorted(((m, p) for m, p in m_spend.items() if p > 0), key=lambda kv: (-kv[1], kv[0]))[:TOP_MERCHANTS]
    merchants = []
    for merchant, pence in top:
        entry_m = state.merchants.get(merchant)
        if entry_m is not None:
            days_m, values_m = entry_m[1], entry_m[2]
            s90 = sum(values_m[bisect_right(days_m, t - 90):bisect_right(days_m, t)])
            category = entry_m[0]
        else:
            s90, category = pence, "other"
        merchants.append({"merchant": merchant, "category": category, "spend_30d": max(0, pence) / 100,
                          "count_30d": m_count.get(merchant, 0), "spend_90d": max(0, s90, pence) / 100})
    f["merchants"] = merchants

    # --- recurring outgoing payments
    recurring = []
    bills_monthly = 0.0
    active_streams: list[tuple[int, int]] = []
    for merchant, s in state.streams.items():
        (cadence, typical, last, previous, first_day, last_day, count, _, trial, next_day) = s
        period = CADENCE_DAYS[cadence]
        since = t - last_day
        if since > 3 * period:
            continue  # auto-closed: nothing charged for three periods
        active = since <= 1.5 * period
        in_window = 0
        d = last_day
        while d > t - 30 and d >= first_day:
            if d <= t:
                in_window += 1
            d -= period
        if active:
            bills_monthly += typical * _MONTHLY_FACTOR[cadence]
            active_streams.append((next_day, last))
        entry_m = state.merchants.get(merchant)
        recurring.append({
            "merchant": merchant, "category": entry_m[0] if entry_m is not None else "other",
            "cadence": cadence, "typical_amount": typical / 100, "last_amount": last / 100,
            "previous_amount": previous / 100,
            "price_change_pct": (last / previous - 1) if previous > 0 else None,
            "first_seen": _fromordinal(first_day), "last_seen": _fromordinal(last_day),
            "next_expected": _fromordinal(next_day), "days_until_next": next_day - t, "days_since_last": since,
            "count": count, "active": active, "trial_converted": bool(trial),
            "usage_30d": max(0, m_count.get(merchant, 0) - in_window),
        })
    recurring.sort(key=lambda x: str(x["merchant"]))
    f["recurring"] = recurring

    # --- income
    main: tuple[Any, ...] | None = None
    main_payer = ""
    best = -1.0
    sources = 0
    new_source = False
    income_monthly = 0.0
    for payer, s in state.incomes.items():
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
    f["income_sources_count"] = sources
    f["new_income_source"] = new_source
    if main is None:
        f["income_amount"] = f["income_next_date"] = f["income_last_date"] = None
        f["income_last_amount"] = f["income_previous_amount"] = None
        f["income_days_late"] = f["days_to_next_income"] = None
        f["income_cadence"] = "none"
        f["bills_due_before_payday"] = f["projected_balance_at_payday"] = f["monthly_surplus"] = None
    else:
        next_income = main[9]
        f["income_amount"] = main[1] / 100
        f["income_cadence"] = main[0]
        f["income_next_date"] = _fromordinal(next_income)
        f["income_last_date"] = _fromordinal(main[5])
        f["income_last_amount"] = main[2] / 100
        f["income_previous_amount"] = main[3] / 100
        f["income_days_late"] = max(0, t - next_income)
        f["days_to_next_income"] = max(0, next_income - t)
        due = sum(last for next_day, last in active_streams if next_day < max(next_income, t + 1)) / 100
        f["bills_due_before_payday"] = due
        bal = f["balance_available"]
        f["projected_balance_at_payday"] = bal - due if isinstance(bal, float) else None
        history = min(90, max(30, t - state.first_day)) if state.first_day else 30
        months = history / 30.4375
        spent = max(0, _windows(spend, (t - history, t))[0]) if spend is not None else 0
        other = max(0.0, spent / months - bills_monthly)
        f["monthly_surplus"] = (income_monthly - bills_monthly - other) / 100

    # --- refunds awaited: pending merchant credits
    awaited = []
    for record in state.pending.values():
        _, day, pence, flags, merchant = record[:5]
        if flags & CREDIT and flags & REFUND:
            awaited.append({"merchant": merchant, "amount": pence / 100, "days_waiting": max(0, t - day)})
    awaited.sort(key=lambda x: (str(x["merchant"]), float(x["amount"])))
    f["refunds_awaited"] = awaited

    # --- the newest transaction
    last_txn = state.recent[0] if state.recent else None
    if last_txn is None:
        f["last_txn_amount"] = f["last_txn_date"] = None
        f["last_txn_direction"] = f["last_txn_merchant"] = f["last_txn_category"] = ""
        f["last_txn_is_income"] = False
    else:
        f["last_txn_amount"] = last_txn[2] / 100
        f["last_txn_direction"] = last_txn[3]
        f["last_txn_merchant"] = last_txn[4]
        f["last_txn_category"] = last_txn[5]
        f["last_txn_date"] = _fromordinal(last_txn[7])
        f["last_txn_is_income"] = bool(
            main is not None and last_txn[6] == main_payer
            and abs(last_txn[2] - main[1]) <= AMOUNT_TOLERANCE * main[1]
        )
    return f


def changed_features(before: Mapping[str, object], after: Mapping[str, object]) -> set[str]:
    """Names whose values differ between two feature vectors (exact, for callers that diff)."""
    return {name for name in REGISTRY if before.get(name) != after.get(name)}
