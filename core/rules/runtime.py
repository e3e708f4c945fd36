"""Helpers the generated rule code calls: the fixed function set and the message formatters.

Generated code only ever references these by the names in :data:`RUNTIME`; nothing else is in scope.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

__all__ = ["RUNTIME", "format_value"]


def clamp(value: float, low: float, high: float) -> float:
    """Bound ``value`` to ``[low, high]`` (NaN stays NaN and is caught by the score check)."""
    return low if value < low else high if value > high else value


def days_between(start: date, end: date) -> int:
    """Whole days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    return (end - start).days


def date_diff(later: date, earlier: date) -> int:
    """``later - earlier`` in days: the meaning of subtracting two dates in the language."""
    return (later - earlier).days


def date_add(day: date, days: float) -> date:
    return day + timedelta(days=days)


def pct_change(old: float, new: float) -> float:
    """Relative change from ``old`` to ``new`` (0.25 = +25 %); ``old`` of 0 raises ZeroDivisionError."""
    return (new - old) / old


def agg_max(values: object) -> float | None:
    return max(values, default=None)  # type: ignore[call-overload]


def agg_min(values: object) -> float | None:
    return min(values, default=None)  # type: ignore[call-overload]


def check_score(value: float) -> float:
    """Scores are relevance in 0..1: clamp what the validator could not bound; NaN is an evaluation error."""
    if value != value:
        raise ValueError("score is NaN")
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value)


def fmt_money(value: float) -> str:
    return f"{value:,.2f}"


def fmt_ratio(value: float) -> str:
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct) >= 10 or pct == int(pct) else f"{pct:.1f}%"


def fmt_number(value: float) -> str:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a bool")
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fmt_date(value: date) -> str:
    """``3 Mar 2026`` (strftime is locale-dependent and ten times slower)."""
    return f"{value.day} {_MONTHS[value.month]} {value.year}"


def fmt_string(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def fmt_bool(value: bool) -> str:
    return "yes" if value else "no"


FORMATTERS = {
    "money": fmt_money,
    "ratio": fmt_ratio,
    "pct": fmt_ratio,
    "count": fmt_number,
    "days": fmt_number,
    "number": fmt_number,
    "int": lambda v: f"{round(v):,}",
    "date": fmt_date,
    "string": fmt_string,
    "bool": fmt_bool,
}


def format_value(kind: str, value: object) -> str:
    """Render ``value`` the way a message placeholder of type ``kind`` shows it."""
    if value is None:
        raise TypeError("placeholder value is not known (None)")
    return FORMATTERS[kind](value)  # type: ignore[operator]


RUNTIME: dict[str, object] = {
    "_clamp": clamp,
    "_days_between": days_between,
    "_date_diff": date_diff,
    "_date_add": date_add,
    "_pct_change": pct_change,
    "_agg_max": agg_max,
    "_agg_min": agg_min,
    "_check_score": check_score,
    "_min": min,
    "_max": max,
    "_abs": abs,
    "_round": round,
    "_floor": math.floor,
    "_ceil": math.ceil,
    "_any": any,
    "_all": all,
    "_sum": sum,
    "_len": len,
    **{f"_fmt_{k}": v for k, v in FORMATTERS.items()},
}
