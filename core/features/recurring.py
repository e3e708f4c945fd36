"""Recurring-payment (and recurring-income) detection from one merchant's or payer's payment history.

A stream is the longest run of payments ending at the latest one whose gaps fit one cadence:

- weekly: every gap 6-8 days; fourweekly: every gap 27-29 days;
- monthly: gaps 25-36 days and every payment within 4 days of the latest one's day of the month (month ends
  count as the same day), which separates a calendar-monthly payment from a four-weekly one that drifts by
  2-3 days a month;
- quarterly: gaps 84-98 days; annual: gaps 358-372 days.

It needs at least 3 payments (2 for annual), like Plaid's MATURE and Yodlee's 3 similar transactions.
Amounts must stay within 35 % of the run's median, except leading trivial charges (<= £1), which make a
free trial that converted. When the whole history does not form a stream (a shop with one-off purchases
besides a subscription), the payments within 35 % of the latest amount are tried on their own.

Detection runs in the fold (on the merchant's bounded history), never in ``features_at``: the result depends
only on the set of payments, so it is order-independent.
"""

from __future__ import annotations

import calendar
from datetime import date
from functools import lru_cache
from statistics import median_low
from typing import NamedTuple

__all__ = ["CADENCE_DAYS", "Stream", "add_cadence", "detect_stream"]

CADENCE_DAYS: dict[str, int] = {"monthly": 30, "fourweekly": 28, "weekly": 7, "quarterly": 91, "annual": 365}
_GAPS: dict[str, tuple[int, int]] = {
    "weekly": (6, 8), "fourweekly": (27, 29), "monthly": (25, 36), "quarterly": (84, 98), "annual": (358, 372),
}
TRIVIAL_CENTS = 100
AMOUNT_TOLERANCE = 0.35
DOM_TOLERANCE = 4


class Stream(NamedTuple):
    """A detected stream; days are ``date.toordinal()`` numbers and amounts are pence."""

    cadence: str
    typical: int
    last: int
    previous: int
    first_day: int
    last_day: int
    payments: int
    regular_since: int
    trial_converted: bool
    next_day: int


@lru_cache(maxsize=4096)
def _day_and_month_end(day: int) -> tuple[int, int]:
    """(day of the month, days in that month) of an ordinal day; cached: histories revisit the same days."""
    d = date.fromordinal(day)
    return d.day, calendar.monthrange(d.year, d.month)[1]


def _dom_close(a: int, b: int) -> bool:
    """Same day of the month within the tolerance (ordinal days), month ends and wrap-around included."""
    a_day, end_a = _day_and_month_end(a)
    b_day, end_b = _day_and_month_end(b)
    if end_a - a_day < DOM_TOLERANCE and end_b - b_day < DOM_TOLERANCE:
        return True
    diff = abs(a_day - b_day)
    return min(diff, end_a - diff) <= DOM_TOLERANCE


def _run_length(days: list[int], cadence: str) -> int:
    """How many payments, ending with the latest, are spaced on ``cadence``."""
    low, high = _GAPS[cadence]
    n = len(days)
    run = 1
    latest = days[-1] if cadence == "monthly" else None
    for i in range(n - 1, 0, -1):
        gap = days[i] - days[i - 1]
        if not low <= gap <= high:
            break
        if latest is not None and not _dom_close(days[i - 1], latest):
            break
        run += 1
    return run


def add_cadence(day: int, cadence: str, anchor_dom: int = 0) -> int:
    """The predicted next payment day after ``day``.

    :param anchor_dom: the stream's day of the month (a payment on the 31st clamped to Feb 28 is still due
        on Mar 31); 0 means ``day``'s own.
    """
    if cadence in ("weekly", "fourweekly"):
        return day + CADENCE_DAYS[cadence]
    months = {"monthly": 1, "quarterly": 3, "annual": 12}[cadence]
    d = date.fromordinal(day)
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(anchor_dom or d.day, calendar.monthrange(year, month)[1])).toordinal()


def _anchor(run_days: list[int]) -> int:
    """Day of the month a stream is due: the latest payment's, unless it sits on a month end."""
    latest = date.fromordinal(run_days[-1])
    if latest.day < calendar.monthrange(latest.year, latest.month)[1]:
        return latest.day
    return max(date.fromordinal(d).day for d in run_days[-3:])


def _detect(days: list[int], amounts: list[int], cadences: tuple[str, ...]) -> Stream | None:
    best: tuple[int, str] | None = None
    last_gap = days[-1] - days[-2]
    for cadence in cadences:
        low, high = _GAPS[cadence]
        if not low <= last_gap <= high:
            continue  # the run must end with the latest payment
        run = _run_length(days, cadence)
        needed = 2 if cadence == "annual" else 3
        if run >= needed and (best is None or run > best[0]):
            best = (run, cadence)
    if best is None:
        return None
    run, cadence = best
    run_days = days[-run:]
    run_amounts = amounts[-run:]
    lead = 0
    while lead < run - 1 and run_amounts[lead] <= TRIVIAL_CENTS:
        lead += 1
    paid = run_amounts[lead:]
    typical = median_low(paid)
    if typical <= 0:
        return None
    if any(abs(a - typical) > AMOUNT_TOLERANCE * typical for a in paid):
        return None
    needed = 2 if cadence == "annual" else 3
    return Stream(
        cadence=cadence,
        typical=typical,
        last=run_amounts[-1],
        previous=run_amounts[-2],
        first_day=run_days[0],
        last_day=run_days[-1],
        payments=run,
        regular_since=run_days[needed - 1],
        trial_converted=lead > 0 and run_amounts[-1] > TRIVIAL_CENTS,
        next_day=add_cadence(run_days[-1], cadence, _anchor(run_days)),
    )


def detect_stream(
    days: list[int], amounts: list[int], cadences: tuple[str, ...] = tuple(CADENCE_DAYS)
) -> Stream | None:
    """Detect the stream in a payment history sorted by day (positive amounts in pence), or None.

    :param cadences: the cadences to look for, in order of preference when two fit equally long runs.
    """
    if len(days) < 2:
        return None
    found = _detect(days, amounts, cadences)
    if found is not None:
        return found
    latest = amounts[-1]
    keep = [i for i, a in enumerate(amounts) if abs(a - latest) <= AMOUNT_TOLERANCE * latest or a <= TRIVIAL_CENTS]
    if 2 <= len(keep) < len(days):
        return _detect([days[i] for i in keep], [amounts[i] for i in keep], cadences)
    return None
