"""Merchant normalisation and categorisation.

Normalisation is deterministic and depends only on the raw text (never on a customer's history), so that
folding transactions in any order yields the same merchant keys. Steps: upper-case, drop processor prefixes
(``PAYPAL *``, ``SQ *``...), domains, phone/store numbers and legal suffixes, keep the first three words,
then snap to a known brand with rapidfuzz when the match is strong. Results are cached per raw string.

Categories come from the merchant category code (ISO 18245) and from keywords in the merchant name and the
narrative; keywords win because an MCC like 4900 (utilities) does not say energy or water.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rapidfuzz import fuzz, process

__all__ = ["CATEGORIES", "SPEND_CATEGORIES", "categorise", "fee_kind", "normalise_merchant"]

CATEGORIES: tuple[str, ...] = (
    "groceries", "eating_out", "transport", "streaming", "gym", "energy", "water", "broadband", "mobile",
    "insurance", "council_tax", "rent", "mortgage", "cash", "fees", "transfers", "shopping", "travel",
    "other",
)
SPEND_CATEGORIES = frozenset(CATEGORIES)

# Canonical brand -> category. Fuzzy matching snaps cleaned names onto these.
_BRANDS: dict[str, str] = {
    "Netflix": "streaming", "Spotify": "streaming", "Disney Plus": "streaming", "Amazon Prime": "streaming",
    "Now TV": "streaming", "Apple Music": "streaming", "YouTube Premium": "streaming", "Audible": "streaming",
    "Paramount Plus": "streaming", "Apple TV": "streaming", "Deezer": "streaming", "Tidal": "streaming",
    "PureGym": "gym", "The Gym Group": "gym", "David Lloyd": "gym", "Anytime Fitness": "gym",
    "Nuffield Health": "gym", "Fitness First": "gym", "Virgin Active": "gym", "Better Gym": "gym",
    "Tesco": "groceries", "Sainsburys": "groceries", "Asda": "groceries", "Morrisons": "groceries",
    "Aldi": "groceries", "Lidl": "groceries", "Waitrose": "groceries", "Co-op": "groceries",
    "Ocado": "groceries", "Iceland": "groceries", "M&S Food": "groceries",
    "Starbucks": "eating_out", "Costa Coffee": "eating_out", "Pret A Manger": "eating_out",
    "McDonalds": "eating_out", "Greggs": "eating_out", "Nandos": "eating_out", "Deliveroo": "eating_out",
    "Just Eat": "eating_out", "Uber Eats": "eating_out", "KFC": "eating_out", "Wagamama": "eating_out",
    "TfL": "transport", "Uber": "transport", "Trainline": "transport", "National Rail": "transport",
    "Shell": "transport", "BP": "transport", "Esso": "transport",
    "British Gas": "energy", "Octopus Energy": "energy", "EDF Energy": "energy", "E.ON": "energy",
    "OVO Energy": "energy", "Scottish Power": "energy",
    "Thames Water": "water", "Severn Trent": "water", "Anglian Water": "water", "United Utilities": "water",
    "BT": "broadband", "Virgin Media": "broadband", "Sky": "broadband", "Plusnet": "broadband",
    "TalkTalk": "broadband", "Hyperoptic": "broadband",
    "Vodafone": "mobile", "EE": "mobile", "O2": "mobile", "Three": "mobile", "giffgaff": "mobile",
    "Aviva": "insurance", "Admiral": "insurance", "Direct Line": "insurance", "LV": "insurance",
    "Amazon": "shopping", "eBay": "shopping", "Argos": "shopping", "John Lewis": "shopping",
    "ASOS": "shopping", "Boots": "shopping", "IKEA": "shopping", "Currys": "shopping", "Primark": "shopping",
    "Ryanair": "travel", "easyJet": "travel", "British Airways": "travel", "Airbnb": "travel",
    "Booking.com": "travel",
}
_BRAND_KEYS = {re.sub(r"[^A-Z0-9&]+", " ", b.upper()).strip(): b for b in _BRANDS}
_BRAND_KEYS.update({"AMZN": "Amazon", "AMZN MKTP": "Amazon", "AMAZON MKTPLACE": "Amazon", "MCDONALD S": "McDonalds",
                    "SAINSBURY S": "Sainsburys", "PRET": "Pret A Manger", "DISNEYPLUS": "Disney Plus"})
_BRAND_CHOICES = list(_BRAND_KEYS)

_PREFIXES = re.compile(
    r"^(?:PAYPAL|PP|SQ|SQU|TST|SP|SUMUP|SUM UP|IZ|IZETTLE|ZTL|GOOGLE|GOOG|APPLE PAY|CRV|POS|CARD PAYMENT TO|"
    r"DIRECT DEBIT|DD|SO|STO|FPO|FPI|BGC|VIS|VISA|CPT|DEB|CHQ)\s*[*:/\-]?\s+|^(?:PAYPAL|PP|SQ|TST|SP|IZ|ZTL)\*\s*"
)
_DOMAIN = re.compile(r"\b(WWW\.)?([A-Z0-9\-]+)\.(COM|CO\.UK|UK|NET|ORG|IO|TV|CO|DE|FR|IE|EU)\b(/\S*)?")
_NOISE = re.compile(r"[#*]?\b[A-Z]*\d[\dA-Z\-/.]*\b|[^A-Z&' ]+")
_LEGAL = re.compile(r"\b(LTD|LIMITED|PLC|INC|LLC|LLP|UK|GB|GBR|CO|CORP|THE|STORES?|STORE|RETAIL|ONLINE|"
                    r"LONDON|MANCHESTER|BIRMINGHAM|LEEDS|GLASGOW|EDINBURGH|BRISTOL|PAYMENT|PAYMENTS|BILL)\b")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def normalise_merchant(raw: str) -> str:
    """Return the canonical merchant name for a raw merchant name or narrative ('' when nothing remains).

    "NETFLIX.COM 866-579", "Netflix" and "PAYPAL *NETFLIX" all give "Netflix".
    """
    text = raw.upper().replace("'", "").strip()
    for _ in range(2):  # "PAYPAL *SQ *SHOP" has two layers of prefix
        text = _PREFIXES.sub("", text)
    text = _DOMAIN.sub(lambda m: m.group(2), text)
    first = _SPACES.split(re.sub(r"[^A-Z0-9&]+", " ", text).strip(), maxsplit=1)[0]
    if first in _BRAND_KEYS and any(ch.isdigit() for ch in first):  # "O2", "3 MOBILE": digits are the name
        return _BRAND_KEYS[first]
    text = _NOISE.sub(" ", text)
    text = _LEGAL.sub(" ", text)
    words = _SPACES.sub(" ", text).strip().split(" ")[:3]
    cleaned = " ".join(w for w in words if w)
    if not cleaned:
        return ""
    exact = _BRAND_KEYS.get(cleaned)
    if exact is not None:
        return exact
    hit = process.extractOne(cleaned, _BRAND_CHOICES, scorer=fuzz.WRatio, score_cutoff=90)
    if hit is not None and (len(cleaned) >= 4 or hit[0] == cleaned):
        # WRatio scores a short name inside a longer one highly: accept only when the brand's words lead.
        brand_key = hit[0]
        if cleaned.startswith(brand_key.split(" ")[0]) or brand_key.startswith(cleaned.split(" ")[0]):
            return _BRAND_KEYS[brand_key]
    return cleaned.title()


def _mcc_category(mcc: str | None) -> str | None:
    """Category from an ISO 18245 merchant category code (3-4 digits, left-padded to 4)."""
    if not mcc or not mcc.strip().isdigit():
        return None
    code = int(mcc)
    if code in (5411, 5422, 5441, 5451, 5462, 5499, 5300):
        return "groceries"
    if code in (5811, 5812, 5813, 5814):
        return "eating_out"
    if code in (4111, 4112, 4121, 4131, 4784, 4789, 5541, 5542, 5983, 7523, 7512):
        return "transport"
    if code in (4899, 5815, 5816, 5817, 5818):
        return "streaming"
    if code in (7997, 7941, 7298):
        return "gym"
    if code == 4900:
        return "energy"
    if code in (4812, 4814):
        return "mobile"
    if code == 4816:
        return "broadband"
    if code in (6300, 5960, 6381, 6399):
        return "insurance"
    if code in (9311, 9399, 9222):
        return "council_tax"
    if code == 6513:
        return "rent"
    if code in (6010, 6011):
        return "cash"
    if code in (4829, 6012, 6051, 6540):
        return "transfers"
    if 3000 <= code <= 3999 or code in (4411, 4511, 4722, 7011, 7012, 7033):
        return "travel"
    if 5000 <= code <= 5999:
        return "shopping"
    return None


_KEYWORDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"COUNCIL TAX|\bCOUNCIL\b|\bCTAX\b"), "council_tax"),
    (re.compile(r"MORTGAGE|NATIONWIDE BS|BUILDING SOC"), "mortgage"),
    (re.compile(r"\bRENT\b|LETTINGS|LANDLORD"), "rent"),
    (re.compile(r"\bWATER\b|SEVERN TRENT|UNITED UTILITIES"), "water"),
    (re.compile(r"ENERGY|\bGAS\b|ELECTRIC|OCTOPUS|\bEDF\b|\bE\.?ON\b|\bOVO\b|SCOTTISH POWER"), "energy"),
    (re.compile(r"BROADBAND|FIBRE|VIRGIN MEDIA|\bSKY\b|PLUSNET|TALKTALK|HYPEROPTIC|\bBT\b"), "broadband"),
    (re.compile(r"VODAFONE|\bEE\b|\bO2\b|\bTHREE\b|GIFFGAFF|MOBILE|TESCO MOBILE|LEBARA"), "mobile"),
    (re.compile(r"INSURANCE|ASSURANCE|AVIVA|ADMIRAL|DIRECT LINE|\bLV\b|HASTINGS"), "insurance"),
    (re.compile(r"\bGYM\b|FITNESS|PUREGYM|DAVID LLOYD|LEISURE"), "gym"),
    (re.compile(r"\bATM\b|CASH WITHDRAWAL|CASHPOINT|\bLINK\b.*CASH|CASH MACHINE"), "cash"),
    (re.compile(r"\bFEE\b|\bFEES\b|OVERDRAFT|\bINTEREST\b|CHARGE[S]? FOR"), "fees"),
    (re.compile(r"NETFLIX|SPOTIFY|DISNEY|PRIME VIDEO|NOW TV|AUDIBLE|YOUTUBE|APPLE\.COM/BILL|ITUNES"), "streaming"),
    (re.compile(r"TRANSFER|\bTFR\b|\bFPO\b|\bFPI\b|STANDING ORDER"), "transfers"),
]


@lru_cache(maxsize=65536)
def categorise(merchant: str, narrative: str, mcc: str | None) -> str:
    """Category of a transaction: a known brand's category, then narrative keywords, then the MCC."""
    brand = _BRANDS.get(merchant)
    if brand is not None:
        return brand
    text = f"{merchant.upper()} {narrative.upper()}"
    for pattern, category in _KEYWORDS:
        if pattern.search(text):
            return category
    return _mcc_category(mcc) or "other"


_OD_FEE = re.compile(r"OVERDRAFT|\bOD\b.*(FEE|INT)|UNARRANGED|ARRANGED .*FEE|DEBIT INTEREST")
_FX_FEE = re.compile(r"NON[- ]?STERLING|FOREIGN|\bFX\b|EXCHANGE FEE|CURRENCY (CONVERSION )?FEE")
_CASH_FEE = re.compile(r"(CASH|ATM|WITHDRAWAL).*FEE|FEE.*(CASH|ATM)")


@lru_cache(maxsize=16384)
def fee_kind(narrative: str, code: str) -> str | None:
    """Which bank fee a fees-category debit is: 'overdraft', 'cash', 'fx' or None for another fee."""
    text = f"{narrative.upper()} {code.upper()}"
    if _OD_FEE.search(text):
        return "overdraft"
    if _CASH_FEE.search(text):
        return "cash"
    if _FX_FEE.search(text):
        return "fx"
    return None
