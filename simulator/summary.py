"""A month-by-month table of one simulated customer's year, from its records and categories."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from simulator.generator import SimulatedCustomer

__all__ = ["MonthSummary", "summarise", "render_summary"]

COLUMNS = ("income", "housing", "bills", "subscriptions", "spend", "cash", "refund", "transfer", "fees")


@dataclass(slots=True)
class MonthSummary:
    month: str
    pence: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    end_balance: int | None = None
    records: int = 0
    pending: int = 0
    duplicates: int = 0


def _pence(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def summarise(customer: SimulatedCustomer) -> list[MonthSummary]:
    """Money in and out per category per booking month (credits positive), with the month-end balance.

    Pending records and duplicate deliveries are counted but not added: they are not new money.
    """
    months: dict[str, MonthSummary] = {}
    last_booking: dict[str, str] = defaultdict(str)
    for record, category in zip(customer.records, customer.categories, strict=True):
        when = record["BookingDateTime"]
        key = when[:7]
        month = months.get(key)
        if month is None:
            month = months[key] = MonthSummary(key)
        month.records += 1
        if category == "pending":
            month.pending += 1
            continue
        if category == "duplicate":
            month.duplicates += 1
            continue
        amount = _pence(record["Amount"]["Amount"])
        month.pence[category] += amount if record["CreditDebitIndicator"] == "Credit" else -amount
        balance = record["Balance"]
        if balance is not None and when >= last_booking[key]:
            last_booking[key] = when
            b = _pence(balance["Amount"]["Amount"])
            month.end_balance = b if balance["CreditDebitIndicator"] == "Credit" else -b
    return [months[k] for k in sorted(months)]


def _money(pence: int | None) -> str:
    if pence is None:
        return "-"
    sign = "-" if pence < 0 else ""
    pence = abs(pence)
    return f"{sign}£{pence // 100:,}.{pence % 100:02d}"


def render_summary(customer: SimulatedCustomer) -> object:
    """A rich ``Table`` of :func:`summarise` (imported lazily: rich is only needed for display)."""
    from rich.table import Table

    p = customer.profile
    housing = "no rent or mortgage" if p.housing == "none" else f"{p.housing} {_money(p.housing_cost)}"
    title = (f"{p.customer_id}: {p.pay_cycle.replace('_', '-')} pay {_money(p.net_pay)} from {p.payer}, "
             f"{housing}, opening balance {_money(p.opening_balance)}")
    table = Table(title=title)
    table.add_column("month")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    table.add_column("end balance", justify="right")
    table.add_column("records (pending/dup)", justify="right")
    for m in summarise(customer):
        table.add_row(m.month, *(_money(m.pence[c]) for c in COLUMNS), _money(m.end_balance),
                      f"{m.records} ({m.pending}/{m.duplicates})")
    subs = Table(title="subscriptions (ground truth)")
    for col in ("name", "descriptor", "price", "first charge", "trial until", "price rise", "cancelled", "used"):
        subs.add_column(col)
    for s in p.subscriptions:
        subs.add_row(s.name, s.descriptor, _money(s.price), str(s.first_charge), str(s.trial_until or "-"),
                     f"{s.rise_on} → {_money(s.rise_to)}" if s.rise_on else "-", str(s.cancelled_after or "-"),
                     "yes" if s.used else "no")
    from rich.console import Group

    return Group(table, subs)
