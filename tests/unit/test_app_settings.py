"""The worker app takes its Faust producer settings from :class:`streams.settings.Settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.app import create_app
from streams.settings import load_settings


def _conf(tmp_path: Path, **overrides: object) -> Any:
    settings = load_settings({}, worker_data_dir=tmp_path, **overrides)
    return create_app(settings, store="memory://", agent_modules=()).app.conf


def test_worker_compression_defaults_to_none_and_can_be_chosen(tmp_path: Path) -> None:
    assert _conf(tmp_path).producer_compression_type is None
    assert _conf(tmp_path, worker_compression="lz4").producer_compression_type == "lz4"


def test_an_unknown_compression_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NUDGE_WORKER_COMPRESSION must be none, lz4, gzip or snappy, not 'brotli'"):
        _conf(tmp_path, worker_compression="brotli")


def test_fetches_are_capped_below_the_stream_buffers_slack(tmp_path: Path) -> None:
    assert _conf(tmp_path).broker_max_poll_records == 500
    assert _conf(tmp_path, worker_max_poll_records=1000).broker_max_poll_records == 1000
    with pytest.raises(ValueError, match="NUDGE_WORKER_MAX_POLL_RECORDS must be between 1 and 1639, not 5000"):
        _conf(tmp_path, worker_max_poll_records=5000)


def test_producer_batches_hold_many_customer_records_and_stay_within_the_broker_limit(tmp_path: Path) -> None:
    assert _conf(tmp_path).producer_max_batch_size == 512 * 1024
    assert _conf(tmp_path, worker_producer_batch_bytes=65536).producer_max_batch_size == 65536
    with pytest.raises(ValueError, match="NUDGE_WORKER_PRODUCER_BATCH_BYTES must be between 16384 and 1048576, not 2000000"):
        _conf(tmp_path, worker_producer_batch_bytes=2_000_000)


def test_rocksdb_tables_get_bounded_memory(tmp_path: Path) -> None:
    settings = load_settings({}, worker_data_dir=tmp_path, worker_rocksdb_cache_mb=32)
    pipeline = create_app(settings, agent_modules=("agents.transactions",))
    expected = {"driver": "rocksdict", "block_cache_size": 32 * 1024 * 1024, "write_buffer_size": 16 * 1024 * 1024}
    assert pipeline.tables["customers"].options == expected
    store = pipeline.tables["customers"].data  # the RocksDB store Faust opens each partition with
    assert (store.rocksdb_options.block_cache_size, store.rocksdb_options.write_buffer_size) == (32 << 20, 16 << 20)
    assert store.use_rocksdict
    with pytest.raises(ValueError, match="NUDGE_WORKER_ROCKSDB_CACHE_MB must be between 1 and 65536, not 0"):
        create_app(load_settings({}, worker_data_dir=tmp_path, worker_rocksdb_cache_mb=0), agent_modules=())


def test_sweep_batches_are_bounded_and_refused_by_name(tmp_path: Path) -> None:
    settings = load_settings({"NUDGE_SWEEP_BATCH_REQUESTS": "32"}, worker_data_dir=tmp_path)
    assert settings.sweep_batch_requests == 32
    create_app(settings, store="memory://", agent_modules=("agents.sweep",))
    with pytest.raises(ValueError, match="NUDGE_SWEEP_BATCH_REQUESTS must be between 1 and 256, not 0"):
        create_app(load_settings({}, worker_data_dir=tmp_path, sweep_batch_requests=0), store="memory://",
                   agent_modules=("agents.sweep",))


@pytest.mark.parametrize("bad", [0, 9])
def test_sweep_batches_in_flight_are_bounded_and_refused_by_name(tmp_path: Path, bad: int) -> None:
    settings = load_settings({"NUDGE_SWEEP_BATCHES_IN_FLIGHT": "3"}, worker_data_dir=tmp_path)
    assert settings.sweep_batches_in_flight == 3
    assert load_settings({}, worker_data_dir=tmp_path).sweep_batches_in_flight == 1
    with pytest.raises(ValueError, match=f"NUDGE_SWEEP_BATCHES_IN_FLIGHT must be between 1 and 8, not {bad}"):
        create_app(load_settings({}, worker_data_dir=tmp_path, sweep_batches_in_flight=bad), store="memory://",
                   agent_modules=("agents.sweep",))
