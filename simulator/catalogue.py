"""UK merchants, billers and employers the simulator draws from: bank-style descriptors, MCCs, prices.

Descriptors imitate what UK current accounts show ("TESCO STORES 3297", "NETFLIX.COM 866-579"); ``{n}``
in a descriptor is replaced by a store number fixed per customer (their local branch). Prices are in
pence. MCCs are ISO 18245.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Shop",
    "Subscription",
    "GROCERS",
    "EATING_OUT",
    "TRANSPORT_TFL",
    "FUEL",
    "TAXIS",
    "SHOPPING",
    "SUBSCRIPTIONS",
    "ENERGY",
    "WATER",
    "BROADBAND",
    "PHONE",
    "INSURANCE",
    "COUNCILS",
    "LANDLORDS",
    "LENDERS",
    "EMPLOYERS",
    "PENSION_PAYERS",
    "ATMS",
    "FOREIGN",
]


@dataclass(frozen=True, slots=True)
class Shop:
    """A card merchant: descriptor template, merchant name, MCC and a typical price range in pence."""

    descriptor: str
    name: str
    mcc: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Subscription:
    """A recurring card payment; ``rise_to`` is the price after a mid-year rise (0 = no rise)."""

    descriptor: str
    name: str
    mcc: str
    price: int
    rise_to: int = 0
    trial_days: int = 0


GROCERS = (
    Shop("TESCO STORES {n}", "Tesco", "5411", 400, 9500),
    Shop("SAINSBURYS S/MKTS", "Sainsbury's", "5411", 450, 9800),
    Shop("ASDA STORES {n}", "Asda", "5411", 500, 11000),
    Shop("MORRISONS {n}", "Morrisons", "5411", 400, 8500),
    Shop("ALDI {n} 782", "Aldi", "5411", 600, 7500),
    Shop("LIDL GB {n}", "Lidl", "5411", 500, 7000),
    Shop("WAITROSE {n}", "Waitrose", "5411", 600, 12000),
    Shop("CO-OP GROUP {n}", "Co-op", "5411", 250, 3500),
    Shop("M&S SIMPLY FOOD {n}", "Marks & Spencer", "5411", 350, 4500),
)
EATING_OUT = (
    Shop("PRET A MANGER {n}", "Pret A Manger", "5814", 350, 1400),
    Shop("GREGGS PLC {n}", "Greggs", "5814", 150, 800),
    Shop("COSTA COFFEE {n}", "Costa Coffee", "5814", 250, 900),
    Shop("STARBUCKS {n}", "Starbucks", "5814", 300, 950),
    Shop("MCDONALDS {n}", "McDonald's", "5814", 300, 1500),
    Shop("NANDOS {n}", "Nando's", "5812", 1200, 5500),
    Shop("WAGAMAMA LTD", "Wagamama", "5812", 1400, 6000),
    Shop("DELIVEROO", "Deliveroo", "5812", 1200, 4500),
    Shop("JUST EAT.CO.UK LTD", "Just Eat", "5812", 1100, 4200),
    Shop("UBER *EATS", "Uber Eats", "5812", 1000, 4000),
    Shop("THE RED LION {n}", "The Red Lion", "5813", 600, 4500),
)
TRANSPORT_TFL = (
    Shop("TFL TRAVEL CH", "Transport for London", "4111", 280, 810),
    Shop("TRAINLINE.COM", "Trainline", "4112", 900, 9500),
)
FUEL = (
    Shop("SHELL {n}", "Shell", "5541", 4000, 8500),
    Shop("BP {n}", "BP", "5541", 4000, 8500),
    Shop("ESSO {n}", "Esso", "5541", 3500, 8000),
    Shop("TESCO PFS {n}", "Tesco Petrol", "5542", 3500, 8000),
)
TAXIS = (
    Shop("UBER *TRIP", "Uber", "4121", 700, 3500),
    Shop("BOLT.EU/O/{n}", "Bolt", "4121", 600, 3000),
)
SHOPPING = (
    Shop("AMAZON.CO.UK*{n}AB", "Amazon", "5942", 499, 6500),
    Shop("AMZNMKTPLACE*{n}KX", "Amazon Marketplace", "5999", 599, 4500),
    Shop("ARGOS LTD {n}", "Argos", "5311", 999, 9000),
    Shop("BOOTS {n}", "Boots", "5912", 250, 3500),
    Shop("PRIMARK {n}", "Primark", "5651", 600, 5000),
    Shop("JOHN LEWIS {n}", "John Lewis", "5311", 1500, 15000),
    Shop("TK MAXX {n}", "TK Maxx", "5651", 800, 6000),
    Shop("SCREWFIX DIRECT", "Screwfix", "5200", 500, 8000),
    Shop("IKEA LTD {n}", "IKEA", "5712", 1000, 20000),
)
SUBSCRIPTIONS = (
    Subscription("NETFLIX.COM 866-579", "Netflix", "4899", 1099, rise_to=1299),
    Subscription("SPOTIFY P{n}B7C3", "Spotify", "5815", 1199, rise_to=1299, trial_days=30),
    Subscription("DISNEY PLUS", "Disney+", "4899", 799, rise_to=899),
    Subscription("AMAZON PRIME*{n}A2B", "Amazon Prime", "5968", 899, trial_days=30),
    Subscription("APPLE.COM/BILL", "Apple", "5818", 299),
    Subscription("NOW TV", "NOW", "4899", 999, trial_days=7),
    Subscription("GOOGLE *YouTubePremium", "YouTube Premium", "5815", 1299, trial_days=30),
    Subscription("AUDIBLE UK*{n}", "Audible", "5815", 799, trial_days=30),
    Subscription("PUREGYM LTD", "PureGym", "7997", 2499, rise_to=2699),
    Subscription("THE GYM GROUP", "The Gym Group", "7997", 2299),
    Subscription("DAVID LLOYD LEISURE", "David Lloyd", "7997", 8900),
    Subscription("HEADSPACE", "Headspace", "5818", 999, trial_days=14),
    Subscription("MICROSOFT*XBOX", "Xbox Game Pass", "5816", 1099, rise_to=1299),
)
ENERGY = ("OCTOPUS ENERGY", "BRITISH GAS", "EDF ENERGY", "E.ON NEXT", "OVO ENERGY")
WATER = ("THAMES WATER", "SEVERN TRENT WATER", "ANGLIAN WATER", "UNITED UTILITIES", "YORKSHIRE WATER")
BROADBAND = ("BT GROUP PLC", "VIRGIN MEDIA", "SKY DIGITAL", "TALKTALK", "PLUSNET")
PHONE = ("EE LIMITED", "VODAFONE LTD", "O2 UK", "THREE", "GIFFGAFF", "TESCO MOBILE")
INSURANCE = ("AVIVA INSURANCE", "ADMIRAL INSURANCE", "DIRECT LINE INS", "LV INSURANCE")
COUNCILS = ("LB CAMDEN CTAX", "BIRMINGHAM CC CTAX", "MANCHESTER CC CTAX", "LEEDS CITY COUNCIL",
            "BRISTOL CITY COUNCIL", "GLASGOW CITY CNCL", "CARDIFF COUNCIL")
LANDLORDS = ("FOXTONS LTD RENT", "OPENRENT LTD", "LETTINGS DIRECT RENT", "GRAINGER PLC RENT")
LENDERS = ("NATIONWIDE BS MORTGAGE", "HALIFAX MORTGAGE", "SANTANDER MORTGAGE", "BARCLAYS MORTGAGE")
EMPLOYERS = ("ACME LOGISTICS LTD", "NHS BUSINESS SVCS", "NORTHGATE SCHOOLS TRUST", "GREENFIELD ENGINEERING",
             "TESCO PLC PAYROLL", "BRIGHTWATER CONSULTING", "CITY OF LONDON CORP", "HARBOUR RETAIL LTD")
PENSION_PAYERS = ("DWP STATE PENSION", "LEGAL & GENERAL PENSION", "AVIVA ANNUITY")
ATMS = ("CASH NOTEMACHINE {n}", "LINK ATM {n}", "CASH HSBC {n}", "CASH BARCLAYS {n}")
FOREIGN = (
    Shop("BOULANGERIE PAUL PARIS", "Paul", "5814", 350, 1800),
    Shop("CARREFOUR MADRID {n}", "Carrefour", "5411", 800, 6500),
    Shop("ALBERT HEIJN AMSTERDAM", "Albert Heijn", "5411", 500, 4500),
    Shop("HOTEL IBIS BARCELONA", "Ibis", "7011", 6500, 24000),
    Shop("RISTORANTE DA MARIO ROMA", "Da Mario", "5812", 2500, 9000),
    Shop("FNAC PARIS {n}", "Fnac", "5732", 1500, 12000),
)
