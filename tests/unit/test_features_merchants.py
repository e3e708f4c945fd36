"""Merchant normalisation and categorisation."""

from __future__ import annotations

import pytest

from core.features.merchants import CATEGORIES, categorise, fee_kind, normalise_merchant


@pytest.mark.parametrize("raw", ["NETFLIX.COM 866-579", "Netflix", "PAYPAL *NETFLIX", "netflix.com", "NETFLIX LTD"])
def test_netflix_variants_are_one_merchant(raw: str) -> None:
    assert normalise_merchant(raw) == "Netflix"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("TESCO STORES 3012 LONDON", "Tesco"),
        ("SQ *JOES COFFEE", "Joes Coffee"),
        ("AMZN Mktp UK*2K3", "Amazon"),
        ("SPOTIFY P1234ABCD", "Spotify"),
        ("PUREGYM LTD", "PureGym"),
        ("MCDONALD'S 123", "McDonalds"),
        ("O2 UK 1234", "O2"),
        ("www.spotify.com", "Spotify"),
        ("ACME WIDGETS LTD", "Acme Widgets"),
    ],
)
def test_normalisation(raw: str, expected: str) -> None:
    assert normalise_merchant(raw) == expected


def test_unrelated_names_are_not_snapped_to_brands() -> None:
    assert normalise_merchant("NETTLEFIELD FARM SHOP") != "Netflix"
    assert normalise_merchant("TESLA MOTORS") != "Tesco"
    assert normalise_merchant("") == ""
    assert normalise_merchant("1234 5678") == ""


@pytest.mark.parametrize(
    ("merchant", "narrative", "mcc", "expected"),
    [
        ("Tesco", "", "5411", "groceries"),
        ("Some Bistro", "", "5812", "eating_out"),
        ("Local Utility", "", "4900", "energy"),
        ("Thames Water", "", "4900", "water"),
        ("Borough", "COUNCIL TAX DD", None, "council_tax"),
        ("Halifax", "MORTGAGE PAYMENT", None, "mortgage"),
        ("J Smith", "STANDING ORDER RENT", None, "rent"),
        ("", "CASH WITHDRAWAL LINK ATM", "6011", "cash"),
        ("", "OVERDRAFT FEE", None, "fees"),
        ("Ryanair", "", "3246", "travel"),
        ("Unknown Shop", "", "5999", "shopping"),
        ("Unknown", "", None, "other"),
        ("Vodafone", "", None, "mobile"),
        ("Virgin Media", "", None, "broadband"),
        ("Admiral", "", None, "insurance"),
        ("PureGym", "", None, "gym"),
        ("Netflix", "", None, "streaming"),
        ("Trainline", "", None, "transport"),
        ("Bob", "TRANSFER TO BOB", None, "transfers"),
    ],
)
def test_categories(merchant: str, narrative: str, mcc: str | None, expected: str) -> None:
    assert expected in CATEGORIES
    assert categorise(merchant, narrative, mcc) == expected


def test_fee_kinds() -> None:
    assert fee_kind("UNARRANGED OVERDRAFT FEE", "") == "overdraft"
    assert fee_kind("NON-STERLING TRANSACTION FEE", "") == "fx"
    assert fee_kind("CASH WITHDRAWAL FEE", "") == "cash"
    assert fee_kind("MONTHLY ACCOUNT FEE", "") is None
