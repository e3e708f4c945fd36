"""Single-object framing, evolution on the wire, and every decode failure with its machine reason."""

from __future__ import annotations

import copy

import pytest

from schemas.codec import MAGIC, SCHEMA_DIR, Codec, DecodeError, EncodeError, default_codec, load_schema_files
from schemas.compat import sample_records
from schemas.examples import example_transaction as txn

SCHEMAS = {s["name"]: s for s in load_schema_files(SCHEMA_DIR)}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_round_trips(name: str) -> None:
    codec = default_codec()
    for record in sample_records(SCHEMAS[name]):
        data = codec.encode(name, record)
        assert data[:2] == MAGIC and data[2:10] == codec.fingerprint(name)
        full, back = codec.decode_named(data)
        assert full == f"io.nudgestream.v1.{name}"
        if name in ("Transaction", "Balance"):
            assert back == record
        else:  # timestamp-millis fields come back as aware datetimes
            assert set(back) == set(record)


def test_fingerprint_is_crc64_avro_of_canonical_form() -> None:
    # Known vector from the Avro spec test suite: CRC-64-AVRO of "int" is 0x7275d51a3f395c8f (LE on the wire).
    from schemas.codec import schema_fingerprint

    assert schema_fingerprint({"type": "int"}) == bytes.fromhex("8f5c393f1ad57572")


def test_v1_data_is_read_as_v2_with_default_filled() -> None:
    v1 = SCHEMAS["Transaction"]
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "category", "type": ["null", "string"], "default": None, "doc": "added in v2"})
    v2["fields"].append({"name": "channel", "type": "string", "default": "unknown", "doc": "added in v2"})
    old_writer = Codec([v1])
    new_reader = Codec([v2], older=[v1])
    data = old_writer.encode("Transaction", txn())
    record = new_reader.decode(data, expect="Transaction")
    assert record["category"] is None and record["channel"] == "unknown"
    assert record["Amount"] == {"Amount": "12.30", "Currency": "GBP"}
    # and the new writer's own data still decodes
    v2_data = new_reader.encode("Transaction", {**txn(), "category": "groceries", "channel": "card"})
    assert new_reader.decode(v2_data)["category"] == "groceries"
    # an old reader that never saw v2 refuses it instead of guessing
    with pytest.raises(DecodeError) as err:
        old_writer.decode(v2_data)
    assert err.value.reason == "unknown_fingerprint"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "undecodable"),
        (b"", "undecodable"),
        (b'{"json": true}', "undecodable"),
        (MAGIC + b"\x00" * 8 + b"\x02", "unknown_fingerprint"),
    ],
)
def test_bad_bytes_give_machine_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        default_codec().decode(data)
    assert err.value.reason == reason
    assert err.value.message


def test_truncated_and_trailing_bytes_are_undecodable() -> None:
    codec = default_codec()
    data = codec.encode("Transaction", txn())
    for bad in (data[:-5], data[:12], data + b"\x00\x01"):
        with pytest.raises(DecodeError) as err:
            codec.decode(bad)
        assert err.value.reason == "undecodable", bad


def test_wrong_record_type_is_refused() -> None:
    codec = default_codec()
    data = codec.encode("RuleChange", sample_records(SCHEMAS["RuleChange"])[0])
    with pytest.raises(DecodeError) as err:
        codec.decode(data, expect="Transaction")
    assert err.value.reason == "undecodable"
    assert "RuleChange" in err.value.message


def test_encode_refuses_a_record_that_does_not_fit() -> None:
    with pytest.raises(EncodeError):
        default_codec().encode("Transaction", txn(Amount={"Amount": 12.3}))
    with pytest.raises(KeyError):
        default_codec().encode("Nope", {})
