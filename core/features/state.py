"""The compact per-customer state that the feature vector is computed from.

Everything is bounded whatever the customer's history length (days are ``date.toordinal()`` numbers,
money is integer pence, ``watermark`` is the latest event day seen):

- ``seen``: transaction-id hashes (64-bit BLAKE2b) of the last ``DEDUPE_DAYS`` days, for idempotency.
  An event older than ``watermark - DEDUPE_DAYS`` is *stale*: it is ignored (counted in no feature),
  because its id may have been forgotten and counting it could double count it. Aggregators re-send at most
  the last 90 days, and pending transactions are booked within days, so the horizon covers both. A customer
  with more than ``MAX_SEEN`` ids in the horizon loses the oldest whole days of ids, and ``dedupe_floor``
  moves up so that events of those days are stale too (never double counted).
- ``pending``: pending transactions by id hash, with their reference hash and contribution, so the booked
  version (same id, or same reference) replaces them; one not booked within ``PENDING_DAYS`` lapses
  (its contribution is removed, as banks drop expired authorisations).
- ``series``: sparse daily sums per series (``spend``, each category, ``od_fee``) for ``SERIES_DAYS``.
- ``ledger``: one compact record per transaction of the last ``LEDGER_DAYS`` days (largest, cash, fees,
  round-ups, duplicate charges, per-merchant 30-day figures).
- ``merchants`` / ``payers``: per normalised merchant (debits and refunds) and per payer (credits) the
  latest payments, at most ``HISTORY_CAP`` each, kept ``HISTORY_DAYS``; at most ``MAX_MERCHANTS`` /
  ``MAX_PAYERS`` of them (the least recently paid are dropped first).
- ``streams`` / ``incomes``: the recurring streams detected from those histories.
- ``accounts`` and ``eod``: latest balances per account and end-of-day booked balances for ``EOD_DAYS``.

Serialisation is ``marshal`` of plain containers (fast, C-implemented, stable format version 4) behind a
one-byte layout version; the dedupe hashes are packed arrays, and so are the numbers of the daily series and of
the ledger: kept in memory as ``array`` columns, they load as a few copies instead of one int object per day or
entry (a nightly sweep loads every customer and reads every series). The series are stored as one ``SeriesView``
(layout 6): every series' days end to end, with running totals, so that a window sum is two bisects and a
subtraction; a loaded state keeps that view (``features_at`` reads it) until a fold needs the series themselves. A fold of a loaded state looks ids up in the
packed keys (an aligned byte search) and keeps new ids aside, so the dict of every id is built only when ids are
dropped (weekly horizon, lapsed pendings, ``MAX_SEEN``); the bytes written are the same either way.
"""

from __future__ import annotations

import marshal
import sys
from array import array
from typing import Any, TypeAlias

import numpy

__all__ = [
    "DEDUPE_DAYS", "EOD_DAYS", "MAX_SEEN", "HISTORY_CAP", "HISTORY_DAYS", "LEDGER_DAYS", "MAX_MERCHANTS", "MAX_PAYERS",
    "PENDING_DAYS", "RECENT_KEPT", "SERIES_DAYS", "CustomerState", "StateDecodeError",
]

LAYOUT_VERSION = 6
# 3: merchant histories as lists in the histories blob (read as already decoded); 3 and 4: series and ledger
# numbers as lists (converted to arrays on load); 5: each series as its own (days, pence) bytes
READABLE_LAYOUTS = (3, 4, 5, 6)
DAY_CODE, PENCE_CODE, FLAGS_CODE = "i", "q", "H"  # array type codes of days, pence and ledger flags
DEDUPE_DAYS = 95
MAX_SEEN = 4096  # a very busy customer: past this many ids the horizon shortens (see dedupe_floor)
PENDING_DAYS = 14
LEDGER_DAYS = 40
SERIES_DAYS = 185
HISTORY_DAYS = 400
HISTORY_CAP = 16
MAX_MERCHANTS = 48
MAX_PAYERS = 8
EOD_DAYS = 40

RECENT_KEPT = 4
# ledger / kind flags
CREDIT, OWN, REFUND, CARD, CASH, FEE_OD, FEE_CASH, FEE_FX, PENDING = (1 << i for i in range(9))


# every series' days end to end, the running total of their pence (one more than days: totals[k] is the sum of
# the pence before position k), and each series' (start, end) positions: a sum over positions i..j is
# totals[j] - totals[i]
SeriesView: TypeAlias = "tuple[array[int], array[int], dict[str, tuple[int, int]]]"


class StateDecodeError(ValueError):
    """The bytes are not a customer state this version can read."""


class CustomerState:
    """Mutable per-customer state; build with ``CustomerState()`` or ``CustomerState.from_bytes``."""

    __slots__ = (
        "currency", "first_day", "watermark", "dedupe_floor", "_seen", "_seen_raw", "_seen_new", "pending", "_booked_refs", "_series",
        "ledger", "_merchants", "_payers", "streams", "incomes", "accounts", "eod", "recent", "_cold_raw",
        "_series_view",
    )

    def __init__(self) -> None:
        self.currency: str = ""
        self.first_day: int = 0
        self.watermark: int = 0
        # events before this day are stale even inside the horizon: set when MAX_SEEN forced old ids out
        self.dedupe_floor: int = 0
        self._seen: dict[int, int] | None = {}
        self._seen_raw: tuple[bytes, bytes] = (b"", b"")
        # ids added to a loaded state while ``_seen`` is not decoded (none of them is in ``_seen_raw``)
        self._seen_new: dict[int, int] = {}
        # id hash -> [ref hash (0 = none), day, cents, flags, merchant, category, payer]
        self.pending: dict[int, list[Any]] = {}
        self._booked_refs: dict[int, int] = {}
        self._cold_raw: bytes | None = None  # merchants, payers, booked_refs as loaded, until a fold needs them
        # series name -> [sorted days, pence per day] (arrays)
        self._series: dict[str, list[array[int]]] | None = {}
        # the series as loaded (layout 6), while ``_series`` is None: see ``series_view``
        self._series_view: SeriesView | None = None
        # parallel columns sorted by day: days, pence, flags (arrays), merchants (list)
        self.ledger: list[Any] = new_ledger()
        # merchant -> [category, sorted days, signed pence]; payer -> [sorted days, pence]
        # merchant -> its history, or the marshal bytes of it until a fold or features_at reads that merchant
        self._merchants: dict[str, list[Any] | bytes] = {}
        self._payers: dict[str, list[list[int]]] = {}
        # merchant -> Stream fields + category; payer -> Stream fields
        self.streams: dict[str, tuple[Any, ...]] = {}
        self.incomes: dict[str, tuple[Any, ...]] = {}
        # account -> [booked ts, booked pence, available ts, available pence, limit pence or None]
        self.accounts: dict[str, list[Any]] = {}
        # account -> {day: [ts, booked pence at the end of that day]}
        self.eod: dict[str, dict[int, list[Any]]] = {}
        # the newest applied transactions, newest first (a few, so that when the newest is replaced or
        # lapses the next one is known): [ts, txn id, pence, direction, merchant, category, payer, day, id hash]
        self.recent: list[list[Any]] = []

    @property
    def seen(self) -> dict[int, int]:
        """Dedupe memory, id hash -> day, in insertion order (decoded on first use: most folds need only
        ``seen_contains`` / ``seen_set`` / ``seen_count``, and ``features_at`` never needs it)."""
        if self._seen is None:
            keys = array("Q")
            keys.frombytes(self._seen_raw[0])
            days = array("i")
            days.frombytes(self._seen_raw[1])
            seen = dict(zip(keys, days, strict=True))
            seen.update(self._seen_new)
            self._seen, self._seen_new = seen, {}
        return self._seen

    def seen_contains(self, id_hash: int) -> bool:
        """Whether the id hash is in the dedupe memory, without decoding it."""
        if self._seen is not None:
            return id_hash in self._seen
        return id_hash in self._seen_new or _packed_index(self._seen_raw[0], id_hash) >= 0

    def seen_set(self, id_hash: int, day: int) -> None:
        """``seen[id_hash] = day`` (a new id is kept aside; re-dating a packed one decodes the memory)."""
        if self._seen is None and (id_hash in self._seen_new or _packed_index(self._seen_raw[0], id_hash) < 0):
            self._seen_new[id_hash] = day
            return
        self.seen[id_hash] = day

    def seen_count(self) -> int:
        """``len(seen)`` without decoding it."""
        if self._seen is not None:
            return len(self._seen)
        return len(self._seen_raw[0]) // 8 + len(self._seen_new)

    @property
    def series(self) -> dict[str, list[array[int]]]:
        """The daily series, name -> [days, pence per day] (decoded from the loaded view on first use: a fold)."""
        if self._series is None:
            view = self._series_view
            assert view is not None
            days, totals, index = view
            pence = array(PENCE_CODE)
            pence.frombytes(numpy.diff(numpy.frombuffer(totals, dtype=numpy.int64)).tobytes())  # in C: one call
            self._series = {name: [days[start:end], pence[start:end]] for name, (start, end) in index.items()}
            self._series_view = None
        return self._series

    def series_view(self) -> SeriesView:
        """The series as one ``SeriesView`` (as loaded, or built from the decoded series: they may have changed)."""
        if self._series is None:
            assert self._series_view is not None
            return self._series_view
        return _series_view(self._series)

    def _thaw(self) -> None:
        if self._cold_raw is not None:
            try:
                self._merchants, self._payers, self._booked_refs = marshal.loads(self._cold_raw)
            except (EOFError, ValueError, TypeError) as exc:
                raise StateDecodeError(f"corrupt customer state (histories): {exc}") from exc
            self._cold_raw = None

    @property
    def merchants(self) -> dict[str, list[Any]]:
        """Every merchant's payment history, all decoded (a fold or the merchants group needs only
        ``merchant_entry``: one merchant's, decoded on its own)."""
        table = self.merchant_table()
        for name in [name for name, entry in table.items() if isinstance(entry, bytes)]:
            self.merchant_entry(name)
        return table  # type: ignore[return-value]

    def merchant_table(self) -> dict[str, list[Any] | bytes]:
        """The merchants dict whose histories may still be packed: for adding, deleting and counting."""
        self._thaw()
        return self._merchants

    def merchant_entry(self, merchant: str) -> list[Any] | None:
        """One merchant's history ``[category, days, signed pence]`` (decoded in place), or None."""
        table = self.merchant_table()
        entry = table.get(merchant)
        if isinstance(entry, bytes):
            try:
                entry = table[merchant] = marshal.loads(entry)
            except (EOFError, ValueError, TypeError) as exc:
                raise StateDecodeError(f"corrupt customer state (history of {merchant!r}): {exc}") from exc
        return entry

    @property
    def payers(self) -> dict[str, list[list[int]]]:
        self._thaw()
        return self._payers

    @property
    def booked_refs(self) -> dict[int, int]:
        self._thaw()
        return self._booked_refs

    def to_bytes(self) -> bytes:
        if self._seen is None:
            seen_raw = self._seen_raw
            if self._seen_new:  # appended after the packed ids: the same bytes as encoding the decoded dict
                seen_raw = (seen_raw[0] + array("Q", list(self._seen_new)).tobytes(),
                            seen_raw[1] + array("i", list(self._seen_new.values())).tobytes())
        else:
            seen_raw = (array("Q", self._seen.keys()).tobytes(), array("i", self._seen.values()).tobytes())
        cold = self._cold_raw
        if cold is None:
            packed = {name: entry if isinstance(entry, bytes) else marshal.dumps(entry, 4)
                      for name, entry in self._merchants.items()}
            cold = marshal.dumps((packed, self._payers, self._booked_refs), 4)
        days, pence, flags, merchants = self.ledger
        days_all, totals, index = self.series_view()
        body = (
            self.currency, self.first_day, (self.watermark, self.dedupe_floor), seen_raw, self.pending, cold,
            (days_all.tobytes(), totals.tobytes(), index),
            (days.tobytes(), pence.tobytes(), flags.tobytes(), merchants),
            self.streams, self.incomes, self.accounts, self.eod, self.recent,
        )
        return bytes((LAYOUT_VERSION,)) + marshal.dumps(body, 4)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerState:
        if not data or data[0] not in READABLE_LAYOUTS:
            raise StateDecodeError(
                f"customer state layout {data[0] if data else 'empty'} is not one of {READABLE_LAYOUTS}"
            )
        try:
            body = marshal.loads(data[1:])
            state = cls.__new__(cls)
            (
                state.currency, state.first_day, (state.watermark, state.dedupe_floor), state._seen_raw, state.pending,
                state._cold_raw, series, ledger, state.streams, state.incomes, state.accounts,
                state.eod, state.recent,
            ) = body
            state.ledger = _ledger(data[0], ledger)
            if data[0] >= 6:
                state._series, state._series_view = None, _loaded_view(series)
            else:
                state._series, state._series_view = _series(data[0], series), None
        except (EOFError, ValueError, TypeError, OverflowError) as exc:
            raise StateDecodeError(f"corrupt customer state: {exc}") from exc
        raw = state._seen_raw
        if not (isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], bytes) and isinstance(raw[1], bytes)
                and len(raw[0]) % 8 == 0 and len(raw[0]) == 2 * len(raw[1])):
            raise StateDecodeError("corrupt customer state: the dedupe memory is not two packed arrays of one length")
        state._seen = None
        state._seen_new = {}
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomerState):
            return NotImplemented
        self._thaw()
        other._thaw()
        skip = ("_seen", "_seen_raw", "_seen_new", "_cold_raw", "_merchants", "_series", "_series_view")
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__ if s not in skip) \
            and self.seen == other.seen and self.merchants == other.merchants and self.series == other.series

    __hash__ = None  # type: ignore[assignment]


def new_ledger() -> list[Any]:
    """Empty ledger columns: days, pence, flags, merchants."""
    return [array(DAY_CODE), array(PENCE_CODE), array(FLAGS_CODE), []]


def new_series() -> list[array[int]]:
    """An empty daily series: days, pence."""
    return [array(DAY_CODE), array(PENCE_CODE)]


def _ledger(layout: int, ledger: Any) -> list[Any]:
    """The ledger of a decoded body as array columns (layout 5 on: from their bytes; 3 and 4: from lists)."""
    packed = bytes if layout >= 5 else list
    if not isinstance(ledger, tuple | list) or len(ledger) != 4:
        raise ValueError("the ledger has the wrong shape")
    days, pence, flags, merchants = ledger
    if not (isinstance(days, packed) and isinstance(pence, packed) and isinstance(flags, packed)
            and isinstance(merchants, list)):
        raise ValueError("ledger columns have the wrong types")
    columns = [array(DAY_CODE, days), array(PENCE_CODE, pence), array(FLAGS_CODE, flags), merchants]
    if not len(columns[0]) == len(columns[1]) == len(columns[2]) == len(merchants):
        raise ValueError("ledger columns differ in length")
    return columns


def _series(layout: int, series: Any) -> dict[str, list[array[int]]]:
    """Layouts 3 to 5: each series on its own (5: its days and pence as bytes; 3 and 4: as lists)."""
    packed = bytes if layout >= 5 else list
    if not isinstance(series, dict):
        raise ValueError("the series have the wrong shape")
    out = {}
    for name, entry in series.items():
        if not (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], packed)
                and isinstance(entry[1], packed)):
            raise ValueError(f"series {name!r} has the wrong shape")
        d, v = out[name] = [array(DAY_CODE, entry[0]), array(PENCE_CODE, entry[1])]
        if len(d) != len(v):
            raise ValueError(f"series {name!r}: days and values differ in length")
    return out


def _series_view(series: dict[str, list[array[int]]]) -> SeriesView:
    """Every series' days end to end, the running total of their pence, and each series' (start, end)."""
    days = array(DAY_CODE)
    pence = array(PENCE_CODE)
    index = {}
    for name, (d, v) in series.items():
        start = len(days)
        days.extend(d)
        pence.extend(v)
        index[name] = (start, len(days))
    totals = array(PENCE_CODE, (0,))
    totals.frombytes(numpy.cumsum(numpy.frombuffer(pence, dtype=numpy.int64)).tobytes())  # in C: one call
    return days, totals, index


def _loaded_view(raw: Any) -> SeriesView:
    """Layout 6's series: the view's arrays from their bytes, checked for shape and bounds."""
    if not (isinstance(raw, tuple) and len(raw) == 3 and isinstance(raw[0], bytes) and isinstance(raw[1], bytes)
            and isinstance(raw[2], dict)):
        raise ValueError("the series have the wrong shape")
    days, totals, index = array(DAY_CODE, raw[0]), array(PENCE_CODE, raw[1]), raw[2]
    if len(totals) != len(days) + 1:
        raise ValueError("the series' totals do not match their days")
    cursor = 0
    for name, span in index.items():
        if not (isinstance(span, tuple) and len(span) == 2 and span[0] == cursor and span[0] <= span[1]):
            raise ValueError(f"series {name!r} has a bad span")
        cursor = span[1]
    if cursor != len(days):
        raise ValueError("the series' spans do not cover their days")
    return days, totals, index


def _packed_index(packed: bytes, id_hash: int) -> int:
    """Position of ``id_hash`` in native-order packed ``array("Q")`` bytes, or -1 (a match must be aligned)."""
    needle = id_hash.to_bytes(8, sys.byteorder)
    i = packed.find(needle)
    while i >= 0 and i % 8:
        i = packed.find(needle, i + 1)
    return i // 8 if i >= 0 else -1


def __getattr__(name: str) -> Any:
    """Let ``from core.features.state import fold, features_at`` work (the public home is ``core.features``)."""
    if name in ("fold", "apply_balance", "FoldResult", "FoldError"):
        from core.features import folding

        return getattr(folding, name)
    if name in ("features_at", "changed_features"):
        from core.features import vector

        return getattr(vector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
