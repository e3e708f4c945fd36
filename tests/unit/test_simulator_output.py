"""Simulator output: byte-for-byte stable for a seed, JSON lines intact across chunk flushes, GC state kept."""

from __future__ import annotations

import gc
import hashlib
import io
from datetime import date
from pathlib import Path

import orjson

from simulator import population, simulate
from simulator.outputs import JsonLinesSink

START = date(2024, 11, 1)

# JSON lines of population(1, 3, START, 13), recorded from the generator as it was before the speed work
# (commit 29542d6). Speed changes must leave it unchanged; a deliberate change to the simulated lives updates
# it (print hashlib.sha256(<the bytes below>).hexdigest()) and says so in its commit.
SEED1_THREE_CUSTOMERS_SHA256 = "db73c8b6f7c259e7793ba37e4b06ca5a1f96efd9930e55e3da5176419ad8eec4"
SEED1_THREE_CUSTOMERS_RECORDS = 2708


def _lines(records: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def test_output_for_a_seed_is_byte_for_byte_the_recorded_one() -> None:
    out = io.BytesIO()
    sink = JsonLinesSink(out)
    for customer in population(1, 3, START, 13):
        sink.write(customer.records)
    assert sink.close() == f"{SEED1_THREE_CUSTOMERS_RECORDS} records written"
    assert hashlib.sha256(out.getvalue()).hexdigest() == SEED1_THREE_CUSTOMERS_SHA256


def test_json_lines_survive_chunk_flushes(tmp_path: Path) -> None:
    first, second = simulate(4, 0, START, 2).records, simulate(4, 1, START, 2).records
    expected = _lines(first) + _lines(second)
    small = io.BytesIO()
    sink = JsonLinesSink(small)
    sink.CHUNK = 1_500  # a flush every line or two (lines are ~900 bytes)
    sink.write(first)
    sink.write(second)
    sink.close()
    assert small.getvalue() == expected
    path = tmp_path / "out.jsonl"
    file_sink = JsonLinesSink(path)
    file_sink.write(first)
    file_sink.write([])
    file_sink.write(second)
    assert file_sink.close() == f"{len(first) + len(second)} records written"
    assert path.read_bytes() == expected


def test_simulate_restores_the_garbage_collector_state() -> None:
    was = gc.isenabled()
    try:
        gc.enable()
        simulate(2, 0, START, 1)
        assert gc.isenabled()
        gc.disable()
        simulate(2, 0, START, 1)
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
