"""The one Avro codec every agent, producer and tool uses.

Framing: **Avro single-object encoding** (Avro spec, "Single object encoding"): two magic bytes
``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical
Form, then the Avro binary body. We chose it over the Confluent wire format because there is no schema
registry service here: the fingerprint lets a reader find the writer's schema in a local registry built
from ``schemas/*.avsc`` (current versions, also the reader schemas) and ``schemas/released/*.avsc``
(previous released versions, kept so their data stays readable). A writer using a schema the reader
does not know yields ``unknown_fingerprint``, never a wrong decode.

Decoding resolves the writer schema to the reader (current) schema of the same full name, so evolution
works on the wire: data written with a released v1 is read as the current v2 with defaults filled in.
Schemas are parsed once, when the :class:`Codec` is built; :func:`default_codec` builds the shared one
lazily (nothing happens at import time).

Every failure is a :class:`DecodeError` with a short machine ``reason`` (``undecodable``,
``unknown_fingerprint``, ``invalid_record``) for dead-letter headers and metrics, and a human message.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

__all__ = [
    "MAGIC",
    "SCHEMA_DIR",
    "RELEASED_DIR",
    "Codec",
    "DecodeError",
    "EncodeError",
    "default_codec",
    "load_schema_files",
    "schema_fingerprint",
]

MAGIC = b"\xc3\x01"
_HEADER_LEN = 10
SCHEMA_DIR = Path(__file__).resolve().parent
RELEASED_DIR = SCHEMA_DIR / "released"

UNDECODABLE = "undecodable"
UNKNOWN_FINGERPRINT = "unknown_fingerprint"
INVALID_RECORD = "invalid_record"


class DecodeError(Exception):
    """Bytes that cannot become a valid record; ``reason`` is a short machine code, ``message`` for humans."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class EncodeError(ValueError):
    """A record that does not match the schema it is encoded with (a bug in the producer)."""


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, as the 8 bytes that go on the wire."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(dict(schema)), "CRC-64-AVRO"))


def load_schema_files(directory: Path) -> list[dict[str, Any]]:
    """Every ``*.avsc`` of a directory as JSON, sorted by file name."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.avsc"))]


def _full_name(schema: Mapping[str, Any]) -> str:
    ns = schema.get("namespace")
    name = str(schema["name"])
    return name if "." in name or not ns else f"{ns}.{name}"


class _Writer:
    __slots__ = ("full_name", "parsed", "reader", "fingerprint")

    def __init__(self, full_name: str, parsed: Any, fingerprint: bytes) -> None:
        self.full_name = full_name
        self.parsed = parsed
        self.fingerprint = fingerprint
        self.reader: Any = None  # reader schema to resolve into; None when writer is the current schema


class Codec:
    """Encode records with the current schemas; decode anything written with a known schema.

    :param current: the current schemas (one per record full name); records are encoded with them and
        decoded into them.
    :param older: earlier versions (e.g. ``schemas/released``) whose data must stay readable.
    """

    def __init__(self, current: Iterable[Mapping[str, Any]], older: Iterable[Mapping[str, Any]] = ()) -> None:
        self._current: dict[str, _Writer] = {}
        self._short: dict[str, str] = {}
        self._by_fp: dict[bytes, _Writer] = {}
        for schema in current:
            w = self._add(schema)
            if w.full_name in self._current:
                raise ValueError(f"two current schemas named {w.full_name}")
            self._current[w.full_name] = w
            self._short[w.full_name.rsplit(".", 1)[-1]] = w.full_name
        for schema in older:
            self._add(schema)
        for w in self._by_fp.values():
            cur = self._current.get(w.full_name)
            if cur is not None and cur is not w:
                w.reader = cur.parsed

    def _add(self, schema: Mapping[str, Any]) -> _Writer:
        fp = schema_fingerprint(schema)
        existing = self._by_fp.get(fp)
        if existing is not None:
            return existing
        w = _Writer(_full_name(schema), parse_schema(dict(schema), named_schemas={}), fp)
        self._by_fp[fp] = w
        return w

    @classmethod
    def from_directories(cls, current: Path = SCHEMA_DIR, *older: Path) -> Codec:
        """A codec over the ``.avsc`` files of ``current`` and of each ``older`` directory."""
        return cls(load_schema_files(current), [s for d in older for s in load_schema_files(d)])

    # -- names ------------------------------------------------------------------------------------------
    def full_name(self, name: str) -> str:
        """``Transaction`` or ``io.nudgestream.v1.Transaction`` → the full name of a current schema."""
        if name in self._current:
            return name
        try:
            return self._short[name]
        except KeyError:
            raise KeyError(f"no current schema named {name!r}") from None

    def schema(self, name: str) -> Any:
        """The parsed current schema (for fastavro tools such as validation)."""
        return self._current[self.full_name(name)].parsed

    def fingerprint(self, name: str) -> bytes:
        return self._current[self.full_name(name)].fingerprint

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    # -- encode / decode --------------------------------------------------------------------------------
    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encode ``record`` with the current schema ``name``; :class:`EncodeError` if it does not fit."""
        w = self._current[self.full_name(name)]
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(w.fingerprint)
        try:
            schemaless_writer(buf, w.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(f"record does not fit schema {w.full_name}: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes | bytearray | memoryview | None, expect: str | None = None) -> dict[str, Any]:
        """Decode single-object-encoded bytes into the current version of the writer's record type.

        :param expect: the record name the caller requires (``"Transaction"``); anything else is
            ``undecodable`` (a message on the wrong topic).
        :raises DecodeError: ``undecodable`` (no magic, truncated, garbage, wrong record type) or
            ``unknown_fingerprint`` (written with a schema this codec does not know).
        """
        return self.decode_named(data, expect)[1]

    def decode_named(
        self, data: bytes | bytearray | memoryview | None, expect: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Like :meth:`decode`, also returning the record's full name."""
        if data is None:
            raise DecodeError(UNDECODABLE, "empty message (null value)")
        raw = bytes(data)
        if len(raw) < _HEADER_LEN or raw[:2] != MAGIC:
            raise DecodeError(UNDECODABLE, "not Avro single-object encoding (missing C3 01 header)")
        w = self._by_fp.get(raw[2:_HEADER_LEN])
        if w is None:
            raise DecodeError(UNKNOWN_FINGERPRINT, f"unknown writer schema fingerprint {raw[2:_HEADER_LEN].hex()}")
        if expect is not None and w.full_name != expect and self._short.get(expect) != w.full_name:
            raise DecodeError(UNDECODABLE, f"record is a {w.full_name}, expected {expect}")
        buf = io.BytesIO(raw)
        buf.seek(_HEADER_LEN)
        try:
            record = schemaless_reader(buf, w.parsed, w.reader)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, IndexError...
            raise DecodeError(UNDECODABLE, f"corrupt Avro body for {w.full_name} ({type(exc).__name__})") from exc
        if buf.tell() != len(raw):
            raise DecodeError(UNDECODABLE, f"{len(raw) - buf.tell()} trailing bytes after the {w.full_name} body")
        if not isinstance(record, dict):
            raise DecodeError(UNDECODABLE, f"body of {w.full_name} is not a record")
        return w.full_name, record


@functools.cache
def default_codec() -> Codec:
    """The shared codec over ``schemas/*.avsc`` (current) and ``schemas/released/*.avsc``, built once."""
    return Codec.from_directories(SCHEMA_DIR, RELEASED_DIR)
