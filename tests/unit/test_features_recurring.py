"""Recurring-payment and income detection, through the fold and features_at."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from test_features_support import at, every, folded, monthly, tx

from core.features import features_at
from core.features.recurring import add_cadence, detect_stream


def _stream(features: dict[str, object], merchant: str) -> dict[str, Any]:
    items = [i for i in features["recurring"] if i["merchant"] == merchant]  # type: ignore[attr-defined]
    assert len(items) == 1, features["recurring"]
    return items[0]


def test_monthly_subscription_price_rise() -> None:
    txns = monthly("nf", date(2025, 1, 5), 5, ["10.99", "10.99", "10.99", "10.99", "12.99"],
                   merchant="NETFLIX.COM 866-579", mcc="4899")
    f = features_at(folded(txns), at(date(2025, 5, 10)))
    s = _stream(f, "Netflix")
    assert s["cadence"] == "monthly"
    assert s["category"] == "streaming"
    assert (s["last_amount"], s["previous_amount"], s["typical_amount"]) == (12.99, 10.99, 10.99)
    assert abs(s["price_change_pct"] - (12.99 / 10.99 - 1)) < 1e-9
    assert s["first_seen"] == date(2025, 1, 5) and s["last_seen"] == date(2025, 5, 5)
    assert s["next_expected"] == date(2025, 6, 5)
    assert s["days_until_next"] == 26 and s["days_since_last"] == 5
    assert s["count"] == 5 and s["active"] is True and s["trial_converted"] is False


def test_two_payments_are_not_a_stream_but_three_are() -> None:
    txns = monthly("sp", date(2025, 1, 11), 3, "11.99", merchant="Spotify")
    assert features_at(folded(txns[:2]), at(date(2025, 2, 20)))["recurring"] == []
    assert _stream(features_at(folded(txns), at(date(2025, 3, 20))), "Spotify")["count"] == 3


def test_lapsed_subscription_goes_inactive_then_closes() -> None:
    state = folded(monthly("gym", date(2025, 1, 1), 4, "24.99", merchant="PUREGYM LTD"))
    last = date(2025, 4, 1)
    assert _stream(features_at(state, at(last + timedelta(days=40))), "PureGym")["active"] is True
    lapsed = _stream(features_at(state, at(last + timedelta(days=46))), "PureGym")
    assert lapsed["active"] is False and lapsed["days_until_next"] < 0
    assert features_at(state, at(last + timedelta(days=91)))["recurring"] == []


def test_free_trial_converted() -> None:
    txns = monthly("dp", date(2025, 1, 20), 4, ["0.00", "7.99", "7.99", "7.99"], merchant="Disney Plus")
    s = _stream(features_at(folded(txns), at(date(2025, 4, 21))), "Disney Plus")
    assert s["trial_converted"] is True and s["typical_amount"] == 7.99 and s["count"] == 4


def test_weekly_quarterly_and_annual() -> None:
    weekly = every("veg", date(2025, 1, 3), 7, 5, "18.50", merchant="Riverford Organic")
    quarterly = [tx(f"q{i}", d, "150.00", merchant="Severn Trent") for i, d in
                 enumerate([date(2024, 7, 10), date(2024, 10, 10), date(2025, 1, 10)])]
    annual = [tx("a1", date(2024, 1, 28), "95.00", merchant="Amazon Prime"),
              tx("a2", date(2025, 1, 28), "95.00", merchant="Amazon Prime")]
    in_time_order = sorted(weekly + quarterly + annual, key=lambda t: t.booked_at)
    f = features_at(folded(in_time_order), at(date(2025, 2, 1)))
    assert _stream(f, "Riverford Organic")["cadence"] == "weekly"
    assert _stream(f, "Severn Trent")["cadence"] == "quarterly"
    prime = _stream(f, "Amazon Prime")
    assert prime["cadence"] == "annual" and prime["next_expected"] == date(2026, 1, 28)


def test_irregular_payments_are_not_recurring() -> None:
    days = [date(2025, 1, 2), date(2025, 1, 9), date(2025, 1, 30), date(2025, 2, 3), date(2025, 3, 19)]
    txns = [tx(f"x{i}", d, "20.00", merchant="Tesco") for i, d in enumerate(days)]
    assert features_at(folded(txns), at(date(2025, 3, 20)))["recurring"] == []


def test_amount_out_of_tolerance_breaks_the_stream() -> None:
    txns = monthly("e", date(2025, 1, 15), 3, ["30.00", "95.00", "10.00"], merchant="Octopus Energy")
    assert features_at(folded(txns), at(date(2025, 3, 20)))["recurring"] == []


def test_subscription_found_among_one_off_purchases() -> None:
    subs = monthly("pr", date(2025, 1, 8), 4, "8.99", merchant="AMZN Mktp UK*2K3")
    shopping = [tx(f"sh{i}", date(2025, 1, 8) + timedelta(days=d), amt, merchant="AMZN Mktp UK*9Z")
                for i, (d, amt) in enumerate([(4, "35.00"), (19, "120.00"), (50, "62.10")])]
    s = _stream(features_at(folded(subs + shopping), at(date(2025, 4, 10))), "Amazon")
    assert s["cadence"] == "monthly" and s["last_amount"] == 8.99 and s["count"] == 4


def test_monthly_salary() -> None:
    txns = monthly("sal", date(2025, 1, 28), 4, "2500.00", "Credit", desc="ACME LTD SALARY")
    f = features_at(folded(txns), at(date(2025, 5, 1)))
    assert f["income_cadence"] == "monthly" and f["income_amount"] == 2500.0
    assert f["income_next_date"] == date(2025, 5, 28) and f["days_to_next_income"] == 27
    assert f["income_sources_count"] == 1 and f["income_days_late"] == 0


def test_fourweekly_salary_is_not_monthly() -> None:
    txns = every("sal", date(2025, 1, 3), 28, 6, "1900.00", direction="Credit", desc="NHS PAYROLL")
    f = features_at(folded(txns), at(date(2025, 5, 25)))
    assert f["income_cadence"] == "fourweekly"
    assert f["income_next_date"] == date(2025, 1, 3) + timedelta(days=28 * 6)


def test_late_salary_and_new_source() -> None:
    txns = monthly("sal", date(2025, 1, 25), 3, "2000.00", "Credit", desc="EMPLOYER PAYROLL")
    f = features_at(folded(txns), at(date(2025, 4, 29)))
    assert f["income_days_late"] == 4 and f["days_to_next_income"] == 0
    assert features_at(folded(txns), at(date(2025, 4, 30)))["new_income_source"] is False  # 36 days after
    assert features_at(folded(txns), at(date(2025, 3, 26)))["new_income_source"] is True


def test_detect_stream_direct() -> None:
    days = [date(2025, 1, 31).toordinal(), date(2025, 2, 28).toordinal(), date(2025, 3, 31).toordinal()]
    stream = detect_stream(days, [1000, 1000, 1000])
    assert stream is not None and stream.cadence == "monthly"
    assert date.fromordinal(stream.next_day) == date(2025, 4, 30)
    # Jan 31, Feb 28, Mar 28: both cadences fit; the calendar month wins the tie, anchored on the 31st
    tie = detect_stream(days[:2] + [date(2025, 3, 28).toordinal()], [1000, 1000, 1000])
    assert tie is not None and tie.cadence == "monthly"
    assert date.fromordinal(add_cadence(days[0], "monthly")) == date(2025, 2, 28)
    assert detect_stream(days[:1], [1000]) is None
    assert detect_stream(days[:2], [1000, 1000]) is None
