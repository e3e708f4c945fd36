"""State serialisation: round trip, size bounds over long histories, corrupt bytes, registry coverage."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from test_features_support import at, folded, tx

from bench.bench_features import synthetic_customer
from core.features import CustomerState, StateDecodeError, features_at, fold
from core.features.registry import REGISTRY, FeatureType

_PYTHON_TYPES = {
    FeatureType.MONEY: (float, int), FeatureType.COUNT: (int,), FeatureType.DAYS: (int, float),
    FeatureType.RATIO: (float,), FeatureType.DATE: (date,), FeatureType.STRING: (str,),
    FeatureType.BOOL: (bool,), FeatureType.COLLECTION: (list,),
}


def _check_types(features: dict[str, object]) -> None:
    assert set(features) == set(REGISTRY)
    for name, spec in REGISTRY.items():
        value = features[name]
        if value is None:
            continue
        assert isinstance(value, _PYTHON_TYPES[spec.type]), (name, value)
        if spec.type is FeatureType.COUNT:
            assert not isinstance(value, bool), name
        if spec.type is FeatureType.COLLECTION:
            assert isinstance(value, list)
            for item in value:
                assert set(item) == set(spec.item), (name, item)
                for field, field_spec in spec.item.items():
                    if item[field] is not None:
                        assert isinstance(item[field], _PYTHON_TYPES[field_spec.type]), (name, field, item)


def test_every_registry_feature_is_present_and_typed() -> None:
    txns = list(synthetic_customer(7, 13))
    state = folded(txns)
    features = features_at(state, txns[-1].booked_at + timedelta(days=1))
    _check_types(features)
    assert features["income_cadence"] == "monthly" and features["balance_current"] is not None
    assert {r["merchant"] for r in features["recurring"]} >= {"Netflix", "Spotify", "PureGym", "Vodafone"}  # type: ignore[attr-defined]
    _check_types(features_at(CustomerState(), at(0)))


def test_new_customer_has_unknowns_not_errors() -> None:
    f = features_at(CustomerState(), at(0))
    assert f["income_amount"] is None and f["days_of_history"] is None and f["spend_30d"] == 0.0
    assert f["income_cadence"] == "none" and f["recurring"] == [] and f["last_txn_amount"] is None


def test_round_trip_preserves_state_and_features() -> None:
    txns = list(synthetic_customer(3, 13))
    state = folded(txns)
    data = state.to_bytes()
    again = CustomerState.from_bytes(data)
    assert again == state
    as_of = txns[-1].booked_at + timedelta(days=3)
    assert features_at(again, as_of) == features_at(state, as_of)
    assert CustomerState.from_bytes(again.to_bytes()) == state  # undecoded dedupe memory is written back
    # folding continues identically after a round trip, duplicates included
    nxt = tx("next", txns[-1].booked_at.date() + timedelta(days=1), "4.20", merchant="Greggs")
    assert fold(again, nxt) == fold(state, nxt)
    assert fold(again, txns[-1]).duplicate
    assert again == state


def test_size_stays_bounded_over_five_years() -> None:
    state = CustomerState()
    sizes = []
    for i, txn in enumerate(synthetic_customer(11, 60)):
        fold(state, txn)
        if i % 500 == 0:
            sizes.append(len(state.to_bytes()))
    one_year = sizes[len(sizes) // 5]
    assert max(sizes) < 24_000
    assert sizes[-1] < one_year * 1.25, sizes  # no growth with history length


@pytest.mark.parametrize("data", [b"", b"\x09abc", b"\x01not marshal", b"\x01" + b"\x00" * 3])
def test_corrupt_bytes_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        CustomerState.from_bytes(data)


def test_named_subset_matches_the_full_vector_and_rejects_unknown_names() -> None:
    txns = list(synthetic_customer(5, 4))
    state = folded(txns)
    as_of = txns[-1].booked_at + timedelta(days=2)
    full = features_at(state, as_of)
    wanted = {"recurring", "spend_30d", "projected_balance_at_payday", "last_txn_is_income"}
    subset = features_at(CustomerState.from_bytes(state.to_bytes()), as_of, wanted)
    assert wanted <= set(subset) < set(full)
    assert all(subset[name] == full[name] for name in subset)
    with pytest.raises(ValueError, match="no_such_feature"):
        features_at(state, as_of, {"no_such_feature"})
