"""Hypothesis properties of the fold: idempotency, order tolerance, pending counted once, complete change sets."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_features_support import at, folded, tx

from core.events import Transaction
from core.features import CustomerState, changed_features, features_at, fold

_MERCHANTS = [("Tesco", "5411"), ("Netflix", "4899"), ("Pret A Manger", "5814"), ("ASOS", "5651"),
              (None, None)]


@st.composite
def customer_events(draw: st.DrawFn, max_size: int = 25) -> list[Transaction]:
    """Unique-id transactions within 60 days, some pending first and booked later (same id or reference)."""
    n = draw(st.integers(min_value=1, max_value=max_size))
    out: list[Transaction] = []
    for i in range(n):
        day = draw(st.integers(min_value=0, max_value=60))
        hour = draw(st.integers(min_value=0, max_value=23))
        pence = draw(st.integers(min_value=1, max_value=300_000))
        amount = f"{pence // 100}.{pence % 100:02d}"
        direction = draw(st.sampled_from(["Debit", "Debit", "Debit", "Credit"]))
        merchant, mcc = draw(st.sampled_from(_MERCHANTS))
        own = draw(st.booleans()) and draw(st.booleans())
        desc = draw(st.sampled_from(["", "ACME PAYROLL", "CASH WITHDRAWAL ATM", "OVERDRAFT FEE"]))
        kind = draw(st.sampled_from(["booked", "booked", "pending-same-id", "pending-ref", "pending-only"]))
        common = dict(merchant=merchant, mcc=mcc, own=own, desc=desc, hour=hour)
        if kind == "booked":
            out.append(tx(f"t{i}", day, amount, direction, **common))
            continue
        pending_amount = f"{pence // 100 + draw(st.integers(0, 5))}.{pence % 100:02d}"
        out.append(tx(f"p{i}", day, pending_amount, direction, status="Pending", ref=f"r{i}", **common))
        if kind != "pending-only":
            booked_day = day + draw(st.integers(min_value=0, max_value=4))
            booked_id = f"p{i}" if kind == "pending-same-id" else f"b{i}"
            out.append(tx(booked_id, booked_day, amount, direction, ref=f"r{i}", **common))
    return out


def _as_of(events: list[Transaction], extra: int) -> object:
    return max(e.booked_at for e in events) + timedelta(days=extra, hours=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer_events(), st.data())
def test_folding_a_duplicate_changes_nothing(events: list[Transaction], data: st.DataObject) -> None:
    state = folded(events)
    before = state.to_bytes()
    again = data.draw(st.sampled_from(events))
    result = fold(state, again)
    assert (result.duplicate or result.stale) and not result.changed  # a lapsed pending re-sent is stale
    assert CustomerState.from_bytes(state.to_bytes()) == CustomerState.from_bytes(before)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer_events(), st.randoms(use_true_random=False), st.integers(min_value=0, max_value=200))
def test_a_permutation_gives_the_same_features(events: list[Transaction], rnd: object, extra: int) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    as_of = _as_of(events, extra)
    a = features_at(folded(events), as_of)  # type: ignore[arg-type]
    b = features_at(folded(shuffled), as_of)  # type: ignore[arg-type]
    assert changed_features(a, b) == set(), {k: (a[k], b[k]) for k in changed_features(a, b)}


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=500_000), st.integers(min_value=1, max_value=500_000),
       st.booleans(), st.integers(min_value=0, max_value=5), st.booleans())
def test_pending_then_booked_counts_once_with_booked_amount(
    pending_pence: int, booked_pence: int, same_id: bool, delay: int, booked_first: bool
) -> None:
    pending = tx("auth", 1, f"{pending_pence / 100:.2f}", merchant="Tesco", mcc="5411", status="Pending", ref="R")
    booked = tx("auth" if same_id else "book", 1 + delay, f"{booked_pence / 100:.2f}", merchant="Tesco",
                mcc="5411", ref="R")
    state = folded([booked, pending] if booked_first else [pending, booked])
    f = features_at(state, at(10))
    assert f["spend_30d"] == round(booked_pence / 100, 2)
    assert f["merchants"][0]["count_30d"] == 1  # type: ignore[index]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer_events(max_size=15), st.integers(min_value=0, max_value=100))
def test_fold_reports_every_feature_that_changed(events: list[Transaction], extra: int) -> None:
    as_of = _as_of(events, extra)
    state = CustomerState()
    for event in events:
        before = features_at(state, as_of)  # type: ignore[arg-type]
        result = fold(state, event)
        after = features_at(state, as_of)  # type: ignore[arg-type]
        missed = changed_features(before, after) - result.changed - {"today"}
        assert not missed, (event, missed)
