"""Folding transactions and balance snapshots into a ``CustomerState``.

Semantics (see ``state.py`` for the bounds):

- Idempotent: a transaction id already seen changes nothing (``duplicate``).
- Order-tolerant: every contribution lands on its own booking day, histories are kept sorted, and pruning
  depends only on the latest event day, so the same set of transactions gives the same state in any order
  (up to the dedupe horizon: an event older than ``watermark - DEDUPE_DAYS`` is ignored as ``stale``).
- Pending: a pending debit counts as spend at once (the money is reserved); a pending credit counts nowhere
  until booked (a pending merchant credit is a refund awaited). The booked version, under the same
  TransactionId or the same TransactionReference, replaces it (``replaced``) with the booked amount and
  day. A pending that arrives after its booked twin is ignored.
- Refunds and reversals: a credit carrying merchant details (merchant name or MCC) is a refund from that
  merchant; it reduces the spend of that merchant and of its category on the day it arrives (window sums
  never go below zero), and is not income.
- Own-account transfers (``Transaction.own_transfer`` or recognised from codes and narrative) count in
  neither spend nor income; they stay in the ledger (largest debit/credit).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from hashlib import blake2b
from typing import Any

from core.events import BalanceSnapshot, Transaction, balance_kind
from core.features.merchants import categorise, fee_kind, normalise_merchant
from core.features.recurring import detect_stream
from core.features.state import (
    CARD,
    CASH,
    CREDIT,
    DEDUPE_DAYS,
    EOD_DAYS,
    FEE_CASH,
    FEE_FX,
    FEE_OD,
    HISTORY_CAP,
    HISTORY_DAYS,
    LEDGER_DAYS,
    MAX_MERCHANTS,
    MAX_PAYERS,
    MAX_SEEN,
    OWN,
    PENDING,
    PENDING_DAYS,
    RECENT_KEPT,
    REFUND,
    SERIES_DAYS,
    CustomerState,
    new_series,
)

__all__ = ["FoldError", "FoldResult", "apply_balance", "fold"]

CATEGORY_DAYS = 125  # categories need 120 days (avg_monthly_prev_90d), od_fee 90
MERCHANT_WINDOW_DAYS = 92  # merchant histories keep every payment of this many days (spend_90d) ...
MERCHANT_WINDOW_CAP = 64  # ... up to this many
MAX_PENCE = 100_000_000_000  # £1bn: anything larger is a data error
INCOME_CADENCES = ("weekly", "fourweekly", "monthly")

_OWN = re.compile(r"OWN ACCOUNT|INTERNAL TRANSFER|INTRA ?COMPANY|TO SAVINGS|FROM SAVINGS|SAVINGS POT|"
                  r"\bPOT (TRANSFER|WITHDRAWAL|DEPOSIT)|TRANSFER (TO|FROM) (MY|OWN)|INTERNALTRANSFER")
_CARD = re.compile(r"CARD|POS|CONTACTLESS|\bCPT\b|VISA|MASTERCARD")

SPEND = frozenset({"spend_7d", "spend_30d", "spend_90d", "spend_prev_30d", "spend_prev_90d",
                   "spend_month_to_date", "spend_last_month_to_date", "categories", "monthly_surplus"})
MERCHANT = frozenset({"merchants", "recurring", "duplicate_charges", "bills_due_before_payday",
                      "projected_balance_at_payday", "monthly_surplus"})
INCOME = frozenset({"income_amount", "income_cadence", "income_next_date", "income_last_date",
                    "income_last_amount", "income_previous_amount", "income_days_late", "days_to_next_income",
                    "income_sources_count", "new_income_source", "last_txn_is_income", "bills_due_before_payday",
                    "projected_balance_at_payday", "monthly_surplus"})
LAST = frozenset({"last_txn_amount", "last_txn_direction", "last_txn_merchant", "last_txn_category",
                  "last_txn_is_income", "last_txn_date"})
BALANCE = frozenset({"balance_current", "balance_available", "overdraft_limit", "overdraft_days_30d",
                     "projected_balance_at_payday"})

Kind = tuple[int, int, int, str, str, str]  # day, pence, flags, merchant, category, payer


class FoldError(ValueError):
    """The event cannot be folded (bad amount, currency mismatch...); the state is unchanged."""


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What a fold did. ``changed``: feature names whose value may differ for the same ``as_of``."""

    changed: frozenset[str]
    duplicate: bool = False
    replaced: bool = False
    stale: bool = False


_NOTHING = FoldResult(frozenset())


def _hash(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little")


def _pence(amount: Decimal, what: str) -> int:
    try:
        pence = int((amount * 100).to_integral_value(ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError, OverflowError, TypeError) as exc:
        raise FoldError(f"{what}: not a finite amount: {amount!r}") from exc
    if abs(pence) >= MAX_PENCE:
        raise FoldError(f"{what}: {amount} is out of range")
    return pence


def _timestamp(at: datetime, what: str) -> float:
    if at.tzinfo is None:
        raise FoldError(f"{what}: datetime {at.isoformat()} has no timezone")
    return at.timestamp()


@lru_cache(maxsize=4096)
def _codes(bank_code: str, proprietary_code: str) -> str:
    """The bank's codes as one upper-case text (few distinct pairs: cached)."""
    return f"{bank_code} {proprietary_code}".upper()


@lru_cache(maxsize=65536)
def _own_text(narrative: str, codes: str) -> bool:
    """Whether the narrative or codes say own-account transfer (cached per text, like merchant names)."""
    return _OWN.search(f"{narrative.upper()} {codes}") is not None


@lru_cache(maxsize=4096)
def _card_codes(codes: str) -> bool:
    return _CARD.search(codes) is not None


def classify(txn: Transaction) -> Kind:
    """The compact description of a transaction's contribution (pure, cached pieces)."""
    pence = _pence(txn.amount, "amount")
    if pence < 0:
        raise FoldError(f"amount must be positive (direction carries the sign), got {txn.amount}")
    if txn.direction not in ("Credit", "Debit"):
        raise FoldError(f"direction must be Credit or Debit, got {txn.direction!r}")
    if txn.status not in ("Booked", "Pending"):
        raise FoldError(f"status must be Booked or Pending, got {txn.status!r}")
    _timestamp(txn.booked_at, "booked_at")
    day = txn.booked_at.date().toordinal()
    codes = _codes(txn.bank_code or "", txn.proprietary_code or "")
    narrative = txn.description or ""
    flags = PENDING if txn.status == "Pending" else 0
    if txn.own_transfer or _own_text(narrative, codes):
        flags |= OWN
    merchant = normalise_merchant(txn.merchant_name or narrative)
    payer = ""
    if txn.direction == "Credit":
        flags |= CREDIT
        if not flags & OWN and (txn.merchant_name or txn.mcc):
            flags |= REFUND
        category = "income" if not flags & (OWN | REFUND) else "transfers"
        if flags & REFUND:
            category = categorise(merchant, narrative, txn.mcc)
        elif not flags & OWN:
            payer = normalise_merchant(narrative or txn.merchant_name or "") or "unknown payer"
    else:
        category = "transfers" if flags & OWN else categorise(merchant, narrative, txn.mcc)
        if txn.mcc or _card_codes(codes):
            flags |= CARD
        if category == "cash":
            flags |= CASH
        elif category == "fees":
            flags |= {"overdraft": FEE_OD, "cash": FEE_CASH, "fx": FEE_FX, None: 0}[fee_kind(narrative, codes)]
    return day, pence, flags, merchant, category, payer


def _series_add(state: CustomerState, name: str, keep_days: int, day: int, pence: int) -> None:
    if day < state.watermark - keep_days or pence == 0:
        return
    entry = state.series.get(name)
    if entry is None:
        entry = state.series[name] = new_series()
    days, values = entry
    # the usual case is today's day or a later one: no bisection (each probe of an array makes an int)
    i = len(days) if not days or days[-1] < day else bisect_left(days, day)
    if i < len(days) and days[i] == day:
        values[i] += pence
        if values[i] == 0:
            del days[i], values[i]
            if not days:
                del state.series[name]
    else:
        days.insert(i, day)
        values.insert(i, pence)


def _history_add(days: list[int], values: list[int], day: int, pence: int, sign: int) -> None:
    """Insert (sign 1) or remove (sign -1) one payment, keeping (day, pence) order."""
    lo, hi = bisect_left(days, day), bisect_right(days, day)
    if sign > 0:
        i = lo + bisect_left(values[lo:hi], pence)
        days.insert(i, day)
        values.insert(i, pence)
        return
    for i in range(lo, hi):
        if values[i] == pence:
            del days[i], values[i]
            return


def _history_prune(days: list[int], values: list[int], watermark: int) -> bool:
    """Keep the latest HISTORY_CAP payments plus every payment of the merchant window, bounded."""
    n = len(days)
    if n <= HISTORY_CAP and (not n or days[0] >= watermark - HISTORY_DAYS):
        return False
    keep_from = max(0, n - HISTORY_CAP)
    window_from = bisect_left(days, watermark - MERCHANT_WINDOW_DAYS)
    start = min(keep_from, window_from)
    start = max(start, n - MERCHANT_WINDOW_CAP, bisect_left(days, watermark - HISTORY_DAYS))
    if start > 0:
        del days[:start], values[:start]
        return True
    return False


def _redetect_merchant(state: CustomerState, merchant: str) -> None:
    entry = state.merchant_entry(merchant)
    stream = None
    if entry is not None:
        days, values = entry[1], entry[2]
        if not values or min(values) >= 0:  # no refund in the history (the usual case): no filtering pass
            stream = detect_stream(days[-HISTORY_CAP:], values[-HISTORY_CAP:])
        else:
            pos = [i for i, v in enumerate(values) if v >= 0][-HISTORY_CAP:]  # refunds are negative
            stream = detect_stream([days[i] for i in pos], [values[i] for i in pos])
    if stream is None:
        state.streams.pop(merchant, None)
    else:
        category = entry[0] if entry is not None else "other"
        state.streams[merchant] = (*stream, category)  # with the merchant's category


def _redetect_payer(state: CustomerState, payer: str) -> None:
    entry = state.payers.get(payer)
    stream = detect_stream(entry[0], entry[1], INCOME_CADENCES) if entry is not None else None
    if stream is None:
        state.incomes.pop(payer, None)
    else:
        state.incomes[payer] = tuple(stream)


def _evict(table: dict[str, Any], limit: int, last_day: Any) -> list[str]:
    evicted = []
    while len(table) > limit:
        victim = min(table, key=lambda k: (last_day(table[k]), k))
        del table[victim]
        evicted.append(victim)
    return evicted


def _apply(state: CustomerState, kind: Kind, sign: int, changed: set[str]) -> None:
    """Add (sign 1) or remove (sign -1) a transaction's contribution."""
    day, pence, flags, merchant, category, payer = kind
    if flags & CREDIT and flags & PENDING:
        if flags & REFUND:
            changed.add("refunds_awaited")
        return
    if not flags & OWN:
        if not flags & CREDIT or flags & REFUND:
            signed = sign * (-pence if flags & CREDIT else pence)
            _series_add(state, "spend", SERIES_DAYS, day, signed)
            _series_add(state, category, CATEGORY_DAYS, day, signed)
            changed.update(SPEND)
            if flags & FEE_OD:
                _series_add(state, "od_fee", CATEGORY_DAYS, day, signed)
                changed.update(("overdraft_fees_30d", "overdraft_fees_90d"))
            if merchant and day >= state.watermark - HISTORY_DAYS:
                entry = state.merchant_entry(merchant)
                if entry is None:
                    entry = state.merchant_table()[merchant] = [category, [], []]
                _history_add(entry[1], entry[2], day, -pence if flags & CREDIT else pence, sign)
                _history_prune(entry[1], entry[2], state.watermark)
                if not entry[1]:
                    del state.merchant_table()[merchant]
                if len(state.merchant_table()) > MAX_MERCHANTS:  # (decodes every history: rare)
                    for gone in _evict(state.merchants, MAX_MERCHANTS, lambda e: e[1][-1]):
                        state.streams.pop(gone, None)
                _redetect_merchant(state, merchant)
                changed.update(MERCHANT)
        elif payer and day >= state.watermark - HISTORY_DAYS:
            entry_p = state.payers.get(payer)
            if entry_p is None:
                entry_p = state.payers[payer] = [[], []]
            _history_add(entry_p[0], entry_p[1], day, pence, sign)
            _history_prune(entry_p[0], entry_p[1], state.watermark)
            if not entry_p[0]:
                del state.payers[payer]
            for gone in _evict(state.payers, MAX_PAYERS, lambda e: e[0][-1]):
                state.incomes.pop(gone, None)
            _redetect_payer(state, payer)
            changed.update(INCOME)
    if day >= state.watermark - LEDGER_DAYS:
        _ledger_change(state, day, pence, flags & ~PENDING, merchant, sign)
        if flags & CREDIT:
            changed.update(("largest_credit_30d", "income_30d"))
        else:
            changed.add("largest_debit_30d")
            if flags & CARD:
                changed.add("round_up_potential_30d")
            if flags & CASH:
                changed.update(("cash_withdrawals_30d_count", "cash_withdrawals_30d_amount"))
            if flags & FEE_CASH:
                changed.add("cash_fees_30d")
            if flags & FEE_FX:
                changed.add("fx_fees_30d")
        if merchant:
            changed.update(("merchants", "recurring", "duplicate_charges"))


def _ledger_change(state: CustomerState, day: int, pence: int, flags: int, merchant: str, sign: int) -> None:
    days, values, flag_list, merchants = state.ledger
    if not days or days[-1] < day:  # a later day than any (the usual case): no bisection
        lo = hi = len(days)
    else:
        lo, hi = bisect_left(days, day), bisect_right(days, day)
    if sign > 0:
        key = (pence, flags, merchant)
        i = lo
        while i < hi and (values[i], flag_list[i], merchants[i]) <= key:
            i += 1
        for column, value in zip(state.ledger, (day, pence, flags, merchant), strict=True):
            column.insert(i, value)
        return
    for i in range(lo, hi):
        if values[i] == pence and flag_list[i] == flags and merchants[i] == merchant:
            for column in state.ledger:
                del column[i]
            return


def _bound_seen(state: CustomerState) -> None:
    """Forget the oldest whole days of ids (not pending ones) and raise the dedupe floor past them."""
    seen = state.seen
    counts = Counter(seen.values())
    remaining = len(seen)
    floor = state.dedupe_floor
    for d in sorted(counts):
        if remaining <= MAX_SEEN * 7 // 8:
            break
        remaining -= counts[d]
        floor = d + 1
    state.dedupe_floor = floor
    for key in [k for k, d in seen.items() if d < floor and k not in state.pending]:
        del seen[key]


def _forget_recent(state: CustomerState, id_hash: int, changed: set[str]) -> None:
    for i, entry in enumerate(state.recent):
        if entry[8] == id_hash:
            del state.recent[i]
            if i == 0:
                changed.update(LAST)
            return


def _advance(state: CustomerState, day: int, changed: set[str]) -> None:
    """Move the watermark to ``day`` and drop everything that fell out of its horizon."""
    previous = state.watermark
    state.watermark = day
    for id_hash, record in list(state.pending.items()):
        if record[1] < day - PENDING_DAYS:
            del state.pending[id_hash]
            state.seen.pop(id_hash, None)
            _forget_recent(state, id_hash, changed)
            _apply(state, tuple(record[1:]), -1, changed)
    if day // 7 != previous // 7:  # weekly: ids past the horizon are harmless meanwhile (stale anyway)
        cutoff = day - DEDUPE_DAYS
        seen = state.seen
        for key in [k for k, d in seen.items() if d < cutoff]:
            del seen[key]
    for key in [k for k, d in state.booked_refs.items() if d < day - PENDING_DAYS]:
        del state.booked_refs[key]
    for name in list(state.series):
        days, values = state.series[name]
        keep = SERIES_DAYS if name == "spend" else CATEGORY_DAYS
        if not days or days[0] >= day - keep:
            continue  # nothing to drop (the usual case): no bisection
        i = bisect_left(days, day - keep)
        if i:
            del days[:i], values[:i]
            if not days:
                del state.series[name]
    l_days = state.ledger[0]
    i = bisect_left(l_days, day - LEDGER_DAYS) if l_days and l_days[0] < day - LEDGER_DAYS else 0
    if i:
        for column in state.ledger:
            del column[:i]
    if day // 7 == previous // 7:
        return  # histories are pruned weekly: their horizons (92 and 400 days) need no daily precision
    merchants = state.merchants
    for merchant in list(merchants):
        entry = merchants[merchant]
        if _history_prune(entry[1], entry[2], day):
            if not entry[1]:
                del merchants[merchant]
            _redetect_merchant(state, merchant)
            changed.update(MERCHANT)
    payers = state.payers
    for payer in list(payers):
        entry_p = payers[payer]
        if _history_prune(entry_p[0], entry_p[1], day):
            if not entry_p[0]:
                del payers[payer]
            _redetect_payer(state, payer)
            changed.update(INCOME)


def fold(state: CustomerState, txn: Transaction) -> FoldResult:
    """Fold one transaction into ``state`` (in place). Raises ``FoldError`` on bad input, state untouched."""
    kind = classify(txn)
    if txn.currency != state.currency:
        if state.currency:
            raise FoldError(f"currency {txn.currency!r} differs from the customer's {state.currency!r}")
        if len(txn.currency) != 3 or not txn.currency.isalpha():
            raise FoldError(f"currency must be an ISO 4217 code, got {txn.currency!r}")
    day = kind[0]
    history: frozenset[str] = frozenset()
    if not state.first_day or day < state.first_day:
        # any valid transaction, even one ignored below, is history: this keeps it order-independent
        state.first_day = day
        history = frozenset(("days_of_history",))
    if (state.watermark and day < state.watermark - DEDUPE_DAYS) or day < state.dedupe_floor:
        return FoldResult(history, stale=True)
    if kind[2] & PENDING and state.watermark and day < state.watermark - PENDING_DAYS:
        return FoldResult(history, stale=True)  # a pending this old has lapsed already
    id_hash = _hash(txn.transaction_id)
    ref_hash = _hash(txn.reference) if txn.reference else 0
    pending_now = txn.status == "Pending"
    replaced_key: int | None = None
    if state.seen_contains(id_hash):
        if pending_now or id_hash not in state.pending:
            return FoldResult(history, duplicate=True)
        replaced_key = id_hash
    elif ref_hash:
        if pending_now and ref_hash in state.booked_refs:
            state.seen_set(id_hash, day)
            return FoldResult(history, duplicate=True)
        # a booked twin replaces its pending; a re-issued pending under a new id replaces the old one
        replaced_key = next((k for k, r in state.pending.items()
                             if r[0] == ref_hash and (r[3] & CREDIT) == (kind[2] & CREDIT)), None)

    state.currency = txn.currency
    changed: set[str] = set(history)
    if day > state.watermark:
        _advance(state, day, changed)
    if replaced_key is not None:
        record = state.pending.pop(replaced_key)
        _apply(state, tuple(record[1:]), -1, changed)
        _forget_recent(state, replaced_key, changed)
    state.seen_set(id_hash, day)
    if state.seen_count() > MAX_SEEN:
        _bound_seen(state)
    if pending_now:
        state.pending[id_hash] = [ref_hash, *kind]
    elif ref_hash:
        state.booked_refs[ref_hash] = day
    _apply(state, kind, 1, changed)
    ts = txn.booked_at.timestamp()
    recent = state.recent
    key = (ts, txn.transaction_id)
    i = 0
    while i < len(recent) and (recent[i][0], recent[i][1]) > key:
        i += 1
    if i < RECENT_KEPT:
        recent.insert(i, [ts, txn.transaction_id, kind[1], txn.direction, kind[3], kind[4], kind[5], day, id_hash])
        del recent[RECENT_KEPT:]
        if i == 0:
            changed.update(LAST)
    if txn.balance_after is not None and not pending_now:
        _record_balance(state, txn.account_id, "booked", _pence(txn.balance_after, "balance_after"), ts, day, None)
        changed.update(BALANCE)
    return FoldResult(frozenset(changed), replaced=replaced_key is not None)


def _record_balance(state: CustomerState, account: str, kind: str, pence: int, ts: float, day: int,
                    limit: int | None) -> bool:
    entry = state.accounts.get(account)
    if entry is None:
        entry = state.accounts[account] = [0.0, None, 0.0, None, None]
    updated = False
    if kind == "booked":
        if entry[1] is None or ts >= entry[0]:
            entry[0], entry[1] = ts, pence
            updated = True
        eod = state.eod.setdefault(account, {})
        slot = eod.get(day)
        if slot is None or ts >= slot[0]:
            eod[day] = [ts, pence]
            updated = True
        if len(eod) > EOD_DAYS + 8:  # amortised; keep the newest old day: it carries into the window
            newest = max(eod)
            old_days = sorted(d for d in eod if d < newest - EOD_DAYS)
            for old in old_days[:-1]:
                del eod[old]
    elif kind == "available" and (entry[3] is None or ts >= entry[2]):
        entry[2], entry[3] = ts, pence
        updated = True
    if limit is not None and limit != entry[4]:
        entry[4] = limit
        updated = True
    return updated


def apply_balance(state: CustomerState, snapshot: BalanceSnapshot) -> FoldResult:
    """Record a balance snapshot (newest per account and type wins; older ones only fill end-of-day)."""
    pence = _pence(snapshot.amount, "amount")
    ts = _timestamp(snapshot.at, "at")
    limit = _pence(snapshot.overdraft_limit, "overdraft_limit") if snapshot.overdraft_limit is not None else None
    if limit is not None and limit < 0:
        raise FoldError(f"overdraft_limit must not be negative, got {snapshot.overdraft_limit}")
    if state.currency and snapshot.currency != state.currency:
        raise FoldError(f"currency {snapshot.currency!r} differs from the customer's {state.currency!r}")
    kind = balance_kind(snapshot.balance_type)
    if kind == "other" and limit is None:
        return _NOTHING
    day = snapshot.at.date().toordinal()
    if _record_balance(state, snapshot.account_id, kind, pence, ts, day, limit):
        return FoldResult(BALANCE)
    return _NOTHING
