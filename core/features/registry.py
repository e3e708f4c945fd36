"""The typed feature registry: every name a rule may read, with its type, unit and meaning.

The registry is the contract between the feature code (which must produce every feature listed here in
the feature vector) and the rule compiler (which resolves names and checks types against it).

Value representation in a feature vector (a plain ``dict[str, object]``):

- ``money``: ``float`` in the customer's currency (GBP), positive unless the doc says signed
- ``count``: ``int``
- ``days``: ``float`` or ``int`` number of days (durations such as ``30d`` compile to this)
- ``ratio``: ``float`` (0.25 means 25 %)
- ``date``: ``datetime.date``
- ``string``: ``str``
- ``bool``: ``bool``
- ``collection``: ``list[dict[str, object]]``, each item typed by ``item``; ``key`` names the item field
  that identifies it (one rule result per item under ``for_each``)

A feature may be ``None`` when it is not known yet (a new customer has no detected income); the evaluator
treats reading ``None`` in arithmetic or comparison as "not eligible", with the reason recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["FeatureSpec", "FeatureType", "FieldSpec", "REGISTRY", "feature", "collection"]


class FeatureType(StrEnum):
    MONEY = "money"
    COUNT = "count"
    DAYS = "days"
    RATIO = "ratio"
    DATE = "date"
    STRING = "string"
    BOOL = "bool"
    COLLECTION = "collection"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a collection item."""

    name: str
    type: FeatureType
    doc: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    type: FeatureType
    doc: str
    unit: str = ""
    item: Mapping[str, FieldSpec] = field(default_factory=dict)
    key: str | None = None


def feature(name: str, type_: FeatureType, doc: str, unit: str = "") -> FeatureSpec:
    return FeatureSpec(name=name, type=type_, doc=doc, unit=unit)


def collection(name: str, doc: str, key: str, fields: list[FieldSpec]) -> FeatureSpec:
    return FeatureSpec(
        name=name, type=FeatureType.COLLECTION, doc=doc, key=key, item={f.name: f for f in fields}
    )


M, C, D, R, DT, S, B = (
    FeatureType.MONEY,
    FeatureType.COUNT,
    FeatureType.DAYS,
    FeatureType.RATIO,
    FeatureType.DATE,
    FeatureType.STRING,
    FeatureType.BOOL,
)

_FEATURES: list[FeatureSpec] = [
    # --- time and history
    feature("today", DT, "The as-of date the features were computed for (event time, not wall-clock)."),
    feature("days_of_history", C, "Days between the customer's first transaction and today.", "days"),
    # --- balances
    feature("balance_current", M, "Latest booked balance across current accounts (signed).", "GBP"),
    feature("balance_available", M, "Latest available balance including any arranged overdraft (signed).", "GBP"),
    feature("overdraft_limit", M, "Arranged overdraft limit (0 when none is known).", "GBP"),
    feature("overdraft_days_30d", C, "Days in the last 30 with a negative end-of-day balance.", "days"),
    # --- income
    feature("income_amount", M, "Typical amount of the detected main income (salary).", "GBP"),
    feature("income_cadence", S, "Cadence of the main income: weekly, fourweekly, monthly or none."),
    feature("income_next_date", DT, "Predicted date of the next main income payment."),
    feature("income_last_date", DT, "Date the main income last arrived."),
    feature("income_last_amount", M, "Amount of the latest main income payment.", "GBP"),
    feature("income_previous_amount", M, "Amount of the main income payment before the latest.", "GBP"),
    feature("income_days_late", D, "Days the main income is overdue past its predicted date (0 if not).", "days"),
    feature("days_to_next_income", D, "Days from today to the predicted next main income.", "days"),
    feature("income_sources_count", C, "Number of distinct recurring income sources detected."),
    feature("new_income_source", B, "A recurring income source first became regular in the last 35 days."),
    # --- spending windows (debits excluding transfers between own accounts)
    feature("spend_7d", M, "Spending in the last 7 days.", "GBP"),
    feature("spend_30d", M, "Spending in the last 30 days.", "GBP"),
    feature("spend_90d", M, "Spending in the last 90 days.", "GBP"),
    feature("spend_prev_30d", M, "Spending in the 30 days before the last 30 (a month before).", "GBP"),
    feature("spend_prev_90d", M, "Spending in the 90 days before the last 90 (a quarter before).", "GBP"),
    feature("spend_month_to_date", M, "Spending since the first of this calendar month.", "GBP"),
    feature("spend_last_month_to_date", M, "Spending last month up to the same day of the month.", "GBP"),
    feature("income_30d", M, "All credits in the last 30 days excluding own-account transfers.", "GBP"),
    feature("largest_debit_30d", M, "Largest single debit in the last 30 days.", "GBP"),
    feature("largest_credit_30d", M, "Largest single credit in the last 30 days.", "GBP"),
    # --- cash and fees
    feature("cash_withdrawals_30d_count", C, "ATM cash withdrawals in the last 30 days."),
    feature("cash_withdrawals_30d_amount", M, "Total ATM cash withdrawn in the last 30 days.", "GBP"),
    feature("cash_fees_30d", M, "Cash withdrawal fees in the last 30 days.", "GBP"),
    feature("fx_fees_30d", M, "Foreign transaction fees in the last 30 days.", "GBP"),
    feature("overdraft_fees_30d", M, "Overdraft fees and interest in the last 30 days.", "GBP"),
    feature("overdraft_fees_90d", M, "Overdraft fees and interest in the last 90 days.", "GBP"),
    # --- forward-looking
    feature("bills_due_before_payday", M, "Sum of recurring payments expected before the next income.", "GBP"),
    feature("projected_balance_at_payday", M, "Available balance minus bills due before the next income.", "GBP"),
    feature("round_up_potential_30d", M, "What rounding every card debit of the last 30 days up to £1 would save.", "GBP"),
    feature("monthly_surplus", M, "Typical monthly income minus recurring bills minus average other spend.", "GBP"),
    # --- the transaction that triggered this evaluation (real-time rules)
    feature("last_txn_amount", M, "Amount of the newest transaction.", "GBP"),
    feature("last_txn_direction", S, "Credit or Debit, for the newest transaction."),
    feature("last_txn_merchant", S, "Normalised merchant of the newest transaction ('' if none)."),
    feature("last_txn_category", S, "Category of the newest transaction."),
    feature("last_txn_is_income", B, "The newest transaction matched the detected main income."),
    feature("last_txn_date", DT, "Booking date of the newest transaction."),
    # --- collections
    collection(
        "categories",
        "Spending per category over rolling windows.",
        key="category",
        fields=[
            FieldSpec("category", S, "Category name (groceries, eating_out, transport, ...)."),
            FieldSpec("spend_7d", M, "Spending in the last 7 days.", "GBP"),
            FieldSpec("spend_30d", M, "Spending in the last 30 days.", "GBP"),
            FieldSpec("spend_prev_30d", M, "Spending in the 30 days before that.", "GBP"),
            FieldSpec("spend_90d", M, "Spending in the last 90 days.", "GBP"),
            FieldSpec("avg_monthly_prev_90d", M, "Average monthly spend over the 90 days before the last 30.", "GBP"),
        ],
    ),
    collection(
        "merchants",
        "Spending per normalised merchant over rolling windows (the top merchants only).",
        key="merchant",
        fields=[
            FieldSpec("merchant", S, "Normalised merchant name."),
            FieldSpec("category", S, "Category of the merchant."),
            FieldSpec("spend_30d", M, "Spending in the last 30 days.", "GBP"),
            FieldSpec("count_30d", C, "Transactions in the last 30 days."),
            FieldSpec("spend_90d", M, "Spending in the last 90 days.", "GBP"),
        ],
    ),
    collection(
        "recurring",
        "Recurring outgoing payments (subscriptions, bills) detected per normalised merchant.",
        key="merchant",
        fields=[
            FieldSpec("merchant", S, "Normalised merchant name."),
            FieldSpec("category", S, "Category (streaming, gym, energy, broadband, mobile, insurance, ...)."),
            FieldSpec("cadence", S, "weekly, fourweekly, monthly, quarterly or annual."),
            FieldSpec("typical_amount", M, "Typical (median) amount.", "GBP"),
            FieldSpec("last_amount", M, "Latest amount charged.", "GBP"),
            FieldSpec("previous_amount", M, "Amount charged before the latest.", "GBP"),
            FieldSpec("price_change_pct", R, "last_amount / previous_amount - 1."),
            FieldSpec("first_seen", DT, "Date of the first payment."),
            FieldSpec("last_seen", DT, "Date of the latest payment."),
            FieldSpec("next_expected", DT, "Predicted date of the next payment."),
            FieldSpec("days_until_next", D, "Days from today to next_expected (negative if overdue).", "days"),
            FieldSpec("days_since_last", D, "Days from last_seen to today.", "days"),
            FieldSpec("count", C, "Payments seen in the stream."),
            FieldSpec("active", B, "Still being charged (not lapsed past 1.5x the cadence)."),
            FieldSpec("trial_converted", B, "The first charges were trivial (<= £1) and the latest is not."),
            FieldSpec("usage_30d", C, "Other transactions with the same merchant in 30 days (a usage proxy)."),
        ],
    ),
    collection(
        "duplicate_charges",
        "Same merchant and same amount charged more than once within 2 days, in the last 30 days.",
        key="merchant",
        fields=[
            FieldSpec("merchant", S, "Normalised merchant name."),
            FieldSpec("amount", M, "The repeated amount.", "GBP"),
            FieldSpec("count", C, "How many times it was charged."),
            FieldSpec("date", DT, "Date of the latest of the repeated charges."),
        ],
    ),
    collection(
        "refunds_awaited",
        "Reversed or disputed card debits whose refund has not arrived yet.",
        key="merchant",
        fields=[
            FieldSpec("merchant", S, "Normalised merchant name."),
            FieldSpec("amount", M, "Amount awaited.", "GBP"),
            FieldSpec("days_waiting", D, "Days since the refund was announced.", "days"),
        ],
    ),
]

REGISTRY: Mapping[str, FeatureSpec] = {spec.name: spec for spec in _FEATURES}
