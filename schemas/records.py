"""Validation of transaction records into the domain :class:`core.events.Transaction`.

Two entry points share one set of checks, so Kafka and HTTP refuse exactly the same things:

- :func:`to_transaction` takes a decoded Avro ``Transaction`` record (what agents read);
- :func:`from_open_banking_json` takes one aggregator JSON item (UK OB v3.1 ``OBTransaction6``, v4 status
  and balance codes accepted), builds the Avro record (tokenising counterparty accounts) and validates it.

Both raise :class:`InvalidRecord` naming the field path (OB names, e.g. ``Amount.Currency``) and the
problem. Messages never quote free text or account data, so they are safe to log and return.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.events import Transaction
from core.scoring import alert_id
from schemas.codec import INVALID_RECORD, DecodeError

__all__ = [
    "CURRENCIES",
    "DEFAULT_TOKEN_KEY",
    "InvalidRecord",
    "alert_id",
    "from_open_banking_json",
    "to_transaction",
    "tokenise_account",
]

# ISO 4217 active alphabetic codes (2024 list), plus XAU/XAG-style units left out on purpose: no bank
# account transaction is denominated in a metal or a fund code.
_ISO_4217 = """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP
    SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG ZWL"""
CURRENCIES = frozenset(_ISO_4217.split())

AMOUNT_RE = re.compile(r"\d{1,13}(?:\.\d{1,5})?")
MCC_RE = re.compile(r"\d{3,4}")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=7)
DEFAULT_TOKEN_KEY = b"nudgestream-account-token-v1"
_MAX_LEN = {
    "AccountId": 40,
    "TransactionId": 210,
    "TransactionReference": 210,
    "TransactionInformation": 500,
    "MerchantDetails.MerchantName": 350,
    "ProprietaryBankTransactionCode.Code": 35,
    "ProprietaryBankTransactionCode.Issuer": 35,
}
_V4_STATUS = {"BOOK": "Booked", "PDNG": "Pending", "RJCT": "Rejected"}
_V4_BALANCE = {
    "CLAV": "ClosingAvailable", "CLBD": "ClosingBooked", "FWAV": "ForwardAvailable", "INFO": "Information",
    "ITAV": "InterimAvailable", "ITBD": "InterimBooked", "OPAV": "OpeningAvailable", "OPBD": "OpeningBooked",
    "PRCD": "PreviouslyClosedBooked", "XPCD": "Expected",
}
_BALANCE_TYPE_TEXT = (
    "ClosingAvailable ClosingBooked ClosingCleared Expected ForwardAvailable Information InterimAvailable "
    "InterimBooked InterimCleared OpeningAvailable OpeningBooked OpeningCleared PreviouslyClosedBooked"
)
_BALANCE_TYPES = frozenset(_BALANCE_TYPE_TEXT.split())


class InvalidRecord(DecodeError):
    """A well-formed record whose content is refused; ``field_path`` says where, ``detail`` what."""

    def __init__(self, field_path: str, detail: str) -> None:
        super().__init__(INVALID_RECORD, f"{field_path}: {detail}")
        self.field_path = field_path
        self.detail = detail

    def under(self, prefix: str) -> InvalidRecord:
        """The same error with its path placed under ``prefix`` (e.g. ``[3]``)."""
        if not prefix:
            return self
        if self.field_path == "$":
            return InvalidRecord(prefix, self.detail)
        sep = "" if self.field_path.startswith("[") else "."
        return InvalidRecord(f"{prefix}{sep}{self.field_path}", self.detail)


def tokenise_account(scheme: str | None, identification: str, key: bytes = DEFAULT_TOKEN_KEY) -> str:
    """Keyed token of an account identification (HMAC-SHA256, 32 hex chars).

    Equal accounts give equal tokens (so payees can be recognised) but the account number cannot be read
    back or brute-forced without the key. Spaces and dashes are ignored (``12-34-56`` = ``123456``).
    """
    norm = re.sub(r"[\s-]", "", identification).upper()
    return hmac.new(key, f"{scheme or ''}|{norm}".encode(), hashlib.sha256).hexdigest()[:32]


# -- Avro record → domain ----------------------------------------------------------------------------------
def _text(record: Mapping[str, Any], name: str, path: str, required: bool) -> str | None:
    value = record.get(name)
    if type(value) is str:  # the common case first: this runs ~10 times per message
        if required and (not value or value.isspace()):
            raise InvalidRecord(path, "must not be empty")
        if len(value) > 35:
            limit = _MAX_LEN.get(path)
            if limit is not None and len(value) > limit:
                raise InvalidRecord(path, f"longer than {limit} characters")
        return value
    if value is None:
        if required:
            raise InvalidRecord(path, "is required")
        return None
    raise InvalidRecord(path, "must be a string")


def _amount(obj: Any, path: str) -> tuple[Decimal, str]:
    if not isinstance(obj, dict):
        raise InvalidRecord(path, "must be an object with Amount and Currency")
    raw = obj.get("Amount")
    if raw is None:
        raise InvalidRecord(f"{path}.Amount", "is required")
    if not isinstance(raw, str):
        raise InvalidRecord(f"{path}.Amount", "must be a decimal string such as \"12.30\", not a number")
    if not AMOUNT_RE.fullmatch(raw):
        if raw.startswith("-"):
            raise InvalidRecord(f"{path}.Amount", "negative amount (the direction goes in CreditDebitIndicator)")
        raise InvalidRecord(f"{path}.Amount", "not a valid amount (up to 13 digits, up to 5 decimals)")
    currency = obj.get("Currency")
    if currency is None:
        raise InvalidRecord(f"{path}.Currency", "is required")
    if not isinstance(currency, str) or currency not in CURRENCIES:
        shown = currency if isinstance(currency, str) and len(currency) <= 8 else "?"
        raise InvalidRecord(f"{path}.Currency", f"unknown ISO 4217 currency {shown!r}")
    return Decimal(raw), currency


def _when(raw: Any, path: str, received: datetime) -> datetime:
    if not isinstance(raw, str):
        raise InvalidRecord(path, "must be an ISO-8601 date-time string")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRecord(path, "not an ISO-8601 date-time") from None
    if value.tzinfo is None:
        raise InvalidRecord(path, "has no timezone (OB date-times must carry one, e.g. +00:00)")
    if value < EARLIEST:
        raise InvalidRecord(path, "before 2000-01-01")
    if value > received + MAX_FUTURE:
        raise InvalidRecord(path, "more than 7 days after the time it was received")
    return value


def _received(record: Mapping[str, Any]) -> datetime:
    raw = record.get("received_at")
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            raise InvalidRecord("received_at", "has no timezone")
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw / 1000, UTC)
    raise InvalidRecord("received_at", "is required (epoch milliseconds)")


def to_transaction(record: Mapping[str, Any]) -> Transaction:
    """Validate a ``Transaction`` record and turn it into the domain :class:`Transaction`.

    :raises InvalidRecord: on the first problem found, naming its field path.
    """
    customer_id = _text(record, "customer_id", "customer_id", True)
    transaction_id = _text(record, "TransactionId", "TransactionId", True)
    account_id = _text(record, "AccountId", "AccountId", True)
    reference = _text(record, "TransactionReference", "TransactionReference", False)
    information = _text(record, "TransactionInformation", "TransactionInformation", False)
    received = _received(record)

    direction = record.get("CreditDebitIndicator")
    if direction is None:
        raise InvalidRecord("CreditDebitIndicator", "is required (Credit or Debit)")
    if direction not in ("Credit", "Debit"):
        raise InvalidRecord("CreditDebitIndicator", "must be Credit or Debit")
    status = record.get("Status")
    if status == "Rejected":
        raise InvalidRecord("Status", "rejected transactions are not ingested (only Booked or Pending)")
    if status not in ("Booked", "Pending"):
        raise InvalidRecord("Status", "must be Booked or Pending")
    amount, currency = _amount(record.get("Amount"), "Amount")
    booked_at = _when(record.get("BookingDateTime"), "BookingDateTime", received)
    value_raw = record.get("ValueDateTime")
    value_at = None if value_raw is None else _when(value_raw, "ValueDateTime", received)

    merchant_name = mcc = None
    merchant = record.get("MerchantDetails")
    if merchant is not None:
        if not isinstance(merchant, dict):
            raise InvalidRecord("MerchantDetails", "must be an object")
        merchant_name = _text(merchant, "MerchantName", "MerchantDetails.MerchantName", False)
        mcc = _text(merchant, "MerchantCategoryCode", "MerchantDetails.MerchantCategoryCode", False)
        if mcc is not None:
            if not MCC_RE.fullmatch(mcc):
                raise InvalidRecord("MerchantDetails.MerchantCategoryCode", "must be 3 or 4 digits (ISO 18245)")
            mcc = mcc.zfill(4)

    bank_code = proprietary = None
    btc = record.get("BankTransactionCode")
    if btc is not None:
        if not isinstance(btc, dict):
            raise InvalidRecord("BankTransactionCode", "must be an object")
        code = _text(btc, "Code", "BankTransactionCode.Code", True)
        sub = _text(btc, "SubCode", "BankTransactionCode.SubCode", True)
        bank_code = f"{code}/{sub}"
    pbtc = record.get("ProprietaryBankTransactionCode")
    if pbtc is not None:
        if not isinstance(pbtc, dict):
            raise InvalidRecord("ProprietaryBankTransactionCode", "must be an object")
        proprietary = _text(pbtc, "Code", "ProprietaryBankTransactionCode.Code", True)
        _text(pbtc, "Issuer", "ProprietaryBankTransactionCode.Issuer", False)

    balance_after = None
    balance = record.get("Balance")
    if balance is not None:
        if not isinstance(balance, dict):
            raise InvalidRecord("Balance", "must be an object")
        b_amount, b_currency = _amount(balance.get("Amount"), "Balance.Amount")
        b_dir = balance.get("CreditDebitIndicator")
        if b_dir not in ("Credit", "Debit"):
            raise InvalidRecord("Balance.CreditDebitIndicator", "must be Credit or Debit")
        if balance.get("Type") not in _BALANCE_TYPES:
            raise InvalidRecord("Balance.Type", "unknown balance type")
        if b_currency == currency:
            balance_after = b_amount if b_dir == "Credit" else -b_amount

    return Transaction(
        customer_id=customer_id,  # type: ignore[arg-type]  # required=True never returns None
        transaction_id=transaction_id,  # type: ignore[arg-type]
        account_id=account_id,  # type: ignore[arg-type]
        amount=amount,
        currency=currency,
        direction=direction,
        status=status,
        booked_at=booked_at,
        description=information or "",
        merchant_name=merchant_name,
        mcc=mcc,
        reference=reference,
        bank_code=bank_code,
        proprietary_code=proprietary,
        balance_after=balance_after,
        value_at=value_at,
        event_id=str(record.get("event_id") or ""),
        source=str(record.get("source") or ""),
        received_at=received,
    )


# -- aggregator JSON → Avro record -------------------------------------------------------------------------
def _obj(item: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRecord(name, "must be an object")
    return value


def _json_amount(obj: Mapping[str, Any] | None, path: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    amount, currency = obj.get("Amount"), obj.get("Currency")
    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
        raise InvalidRecord(f"{path}.Amount", "must be a decimal string such as \"12.30\", not a number")
    return {"Amount": amount, "Currency": currency}


def _json_account(obj: Mapping[str, Any] | None, path: str, key: bytes) -> dict[str, Any] | None:
    if obj is None:
        return None
    ident = obj.get("Identification")
    if not isinstance(ident, str) or not ident.strip():
        raise InvalidRecord(f"{path}.Identification", "is required")
    if len(ident) > 256:
        raise InvalidRecord(f"{path}.Identification", "longer than 256 characters")
    scheme = obj.get("SchemeName")
    name = obj.get("Name")
    if scheme is not None and not isinstance(scheme, str):
        raise InvalidRecord(f"{path}.SchemeName", "must be a string")
    if name is not None and (not isinstance(name, str) or len(name) > 350):
        raise InvalidRecord(f"{path}.Name", "must be a string of at most 350 characters")
    return {"SchemeName": scheme, "Token": tokenise_account(scheme, ident, key), "Name": name}


def _opt_str(item: Mapping[str, Any], name: str, path: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRecord(path, "must be a string")
    return value


def from_open_banking_json(
    customer_id: str,
    item: Any,
    source: str,
    *,
    event_id: str,
    received_at_ms: int,
    token_key: bytes = DEFAULT_TOKEN_KEY,
) -> dict[str, Any]:
    """Turn one aggregator JSON transaction into a validated Avro ``Transaction`` record.

    Unknown OB fields are ignored (the spec has many we do not use); v4 status codes (BOOK, PDNG, RJCT)
    and balance codes (ITBD...) are mapped to v3.1. Counterparty account identifications are replaced by
    :func:`tokenise_account` tokens. Callers prefix the error path with the item index (``[3].Amount``).

    :raises InvalidRecord: naming the JSON field path.
    """
    if not isinstance(item, dict):
        raise InvalidRecord("$", "a transaction must be a JSON object")
    status = item.get("Status")
    if isinstance(status, str):
        status = _V4_STATUS.get(status, status)
    if status not in ("Booked", "Pending", "Rejected"):
        raise InvalidRecord("Status", "must be Booked or Pending (or BOOK/PDNG)")
    direction = item.get("CreditDebitIndicator")
    if direction is not None and direction not in ("Credit", "Debit"):
        raise InvalidRecord("CreditDebitIndicator", "must be Credit or Debit")
    amount = _json_amount(_obj(item, "Amount"), "Amount")
    if amount is None:
        raise InvalidRecord("Amount", "is required")

    merchant = _obj(item, "MerchantDetails")
    btc = _obj(item, "BankTransactionCode")
    pbtc = _obj(item, "ProprietaryBankTransactionCode")
    balance = _obj(item, "Balance")
    fx = _obj(item, "CurrencyExchange")
    record_balance = None
    if balance is not None:
        b_type = balance.get("Type")
        b_type = _V4_BALANCE.get(b_type, b_type) if isinstance(b_type, str) else b_type
        if b_type not in _BALANCE_TYPES:
            raise InvalidRecord("Balance.Type", "unknown balance type")
        b_dir = balance.get("CreditDebitIndicator")
        if b_dir not in ("Credit", "Debit"):
            raise InvalidRecord("Balance.CreditDebitIndicator", "must be Credit or Debit")
        b_amount = _json_amount(_obj(balance, "Amount") if "Amount" in balance else None, "Balance.Amount")
        if b_amount is None:
            raise InvalidRecord("Balance.Amount", "is required")
        record_balance = {"CreditDebitIndicator": b_dir, "Type": b_type, "Amount": b_amount}
    record_fx = None
    if fx is not None:
        src = fx.get("SourceCurrency")
        if not isinstance(src, str) or src not in CURRENCIES:
            raise InvalidRecord("CurrencyExchange.SourceCurrency", "unknown ISO 4217 currency")
        rate = fx.get("ExchangeRate")
        if isinstance(rate, bool) or not isinstance(rate, (int, float, str)):
            raise InvalidRecord("CurrencyExchange.ExchangeRate", "is required (a number)")
        try:
            rate_text = str(Decimal(str(rate)))
        except ArithmeticError:
            raise InvalidRecord("CurrencyExchange.ExchangeRate", "not a number") from None
        instructed = _obj(fx, "InstructedAmount")
        record_fx = {
            "SourceCurrency": src,
            "TargetCurrency": _opt_str(fx, "TargetCurrency", "CurrencyExchange.TargetCurrency"),
            "ExchangeRate": rate_text,
            "InstructedAmount": _json_amount(instructed, "CurrencyExchange.InstructedAmount"),
        }
        if record_fx["InstructedAmount"] is not None:
            _amount(record_fx["InstructedAmount"], "CurrencyExchange.InstructedAmount")

    record: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": customer_id,
        "received_at": received_at_ms,
        "source": source,
        "AccountId": item.get("AccountId"),
        "TransactionId": item.get("TransactionId"),
        "TransactionReference": item.get("TransactionReference"),
        "CreditDebitIndicator": direction,
        "Status": status,
        "BookingDateTime": item.get("BookingDateTime"),
        "ValueDateTime": item.get("ValueDateTime"),
        "TransactionInformation": item.get("TransactionInformation"),
        "Amount": amount,
        "ChargeAmount": _json_amount(_obj(item, "ChargeAmount"), "ChargeAmount"),
        "CurrencyExchange": record_fx,
        "BankTransactionCode": None if btc is None else {"Code": btc.get("Code"), "SubCode": btc.get("SubCode")},
        "ProprietaryBankTransactionCode": None
        if pbtc is None
        else {"Code": pbtc.get("Code"), "Issuer": _opt_str(pbtc, "Issuer", "ProprietaryBankTransactionCode.Issuer")},
        "Balance": record_balance,
        "MerchantDetails": None
        if merchant is None
        else {
            "MerchantName": merchant.get("MerchantName"),
            "MerchantCategoryCode": merchant.get("MerchantCategoryCode"),
        },
        "CreditorAccount": _json_account(_obj(item, "CreditorAccount"), "CreditorAccount", token_key),
        "DebtorAccount": _json_account(_obj(item, "DebtorAccount"), "DebtorAccount", token_key),
    }
    to_transaction(record)  # the same checks as the Kafka path; raises InvalidRecord with OB field paths
    if record["ChargeAmount"] is not None:
        _amount(record["ChargeAmount"], "ChargeAmount")
    return record
