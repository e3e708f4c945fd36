"""``nudge simulate`` end to end: files, summary, the HTTP endpoint and a Kafka producer stand-in."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from schemas.codec import default_codec
from schemas.records import to_transaction
from simulator import simulate
from simulator.outputs import HttpSink, KafkaSink
from streams.cli import main
from streams.web.auth import ApiKeyStore, hash_api_key
from streams.web.ingest import create_ingest_app

START = date(2025, 1, 1)
ARGS = ["simulate", "--customers", "3", "--months", "2", "--seed", "9", "--start", "2025-01-01"]


def test_jsonl_output_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main([*ARGS, "--out", str(a)]) == 0
    assert main([*ARGS, "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_bytes().splitlines()
    expected = sum(len(simulate(9, i, START, 2).records) for i in range(3))
    assert len(lines) == expected
    assert {orjson.loads(line)["customer_id"] for line in lines} == {"sim9-000000", "sim9-000001", "sim9-000002"}


def test_summary_prints_each_month(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--summary", "--seed", "9", "--start", "2025-01-01", "--months", "13"]) == 0
    out = capsys.readouterr().out
    for month in ("2025-01", "2025-06", "2026-01"):
        assert month in out
    assert "end balance" in out and "subscriptions (ground truth)" in out


def test_live_mode_streams_the_following_month(tmp_path: Path) -> None:
    out = tmp_path / "live.jsonl"
    assert main([*ARGS, "--customers", "1", "--out", str(out), "--rate", "5000", "--duration", "0.2"]) == 0
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    backfill = len(simulate(9, 0, START, 2).records)
    assert len(rows) > backfill  # the live tail was appended
    assert rows[-1]["received_at"] > rows[backfill - 1]["received_at"]


async def test_http_sink_posts_to_the_ingestion_endpoint() -> None:
    sent: list[bytes] = []

    async def publish(topic: str, key: bytes, value: bytes) -> None:
        sent.append(value)

    key = "nsk_simulator_test_key_000000000001"
    app = create_ingest_app(publish, ApiKeyStore.parse(f"sim:{hash_api_key(key)}:transactions:write"),
                            client_max_size=8 << 20, max_items=500)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        records = simulate(9, 0, START, 2).records
        sink = HttpSink(str(server.make_url("/")), key, batch=200)
        await asyncio.to_thread(sink.write, records)
        assert "posted" in sink.close()
    finally:
        await server.close()
    assert len(sent) == len(records)
    decoded = [to_transaction(default_codec().decode(v)) for v in sent]
    assert [t.transaction_id for t in decoded] == [r["TransactionId"] for r in records]
    assert all(t.source == "sim" for t in decoded)


def test_kafka_sink_encodes_avro_keyed_by_customer() -> None:
    produced: list[tuple[str, bytes, bytes]] = []

    class Producer:
        def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
            produced.append((topic, key, value))
            on_delivery(None, None)

        def poll(self, timeout: float) -> int:
            return 0

        def flush(self, timeout: float) -> int:
            return 0

    records = simulate(9, 1, START, 1).records
    sink = KafkaSink(Producer())
    sink.write(records)
    assert sink.close() == f"{len(records)} records produced to transactions"
    assert {k for _, k, _ in produced} == {b"sim9-000001"}
    assert default_codec().decode(produced[0][2]) == records[0]
