"""The launcher's process bookkeeping, generated configs and jar stamp, without starting the stack."""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from pathlib import Path

import pytest

from stack import procs
from stack.configs import connect_worker_properties, kafka_server_properties, new_cluster_id
from stack.jars import jars_ready
from stack.layout import StackLayout
from streams.settings import Settings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_spawned_process_is_recognised_and_stopped(tmp_path: Path) -> None:
    record = procs.spawn(SLEEPER, log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid")
    try:
        assert procs.read_record(tmp_path / "s.pid") == record
        assert procs.is_running(record)
        assert procs.rss_bytes(record.pid)
        assert procs.stop(record, timeout=5)
        assert not procs.is_running(record)
        assert procs.exited_early(record)
    finally:
        procs.stop(record, timeout=1)


def test_a_pid_running_another_command_is_never_signalled(tmp_path: Path) -> None:
    record = procs.spawn(SLEEPER, log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid")
    try:
        # Same PID, other command line: what a reused PID looks like.
        impostor = procs.ProcessRecord(record.pid, ("java", "kafka.Kafka"), record.started_at)
        assert not procs.is_running(impostor)
        assert procs.stop(impostor, timeout=1) is False
        time.sleep(0.2)
        assert procs.is_running(record)
    finally:
        procs.stop(record, timeout=5)


def test_unreadable_pid_file_counts_as_none_and_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("not json")
    assert procs.read_record(pid_file) is None
    assert not pid_file.exists()
    assert procs.read_record(tmp_path / "missing.pid") is None


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert procs.tail(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert procs.tail(tmp_path / "none.log", 3) == []
    assert procs.tail(log, 0) == []


def test_big_log_is_rotated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "LOG_ROTATE_BYTES", 10)
    log = tmp_path / "a.log"
    log.write_text("x" * 11)
    procs.rotate_log(log)
    assert not log.exists() and (tmp_path / "a.log.1").read_text() == "x" * 11


def test_kafka_config_follows_settings(tmp_path: Path) -> None:
    settings = Settings(kafka_port=29092, kafka_controller_port=29093)
    props = kafka_server_properties(settings, StackLayout(tmp_path))
    assert "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093\n" in props
    assert "controller.quorum.voters=1@127.0.0.1:29093\n" in props
    assert "group.initial.rebalance.delay.ms=0\n" in props
    assert f"log.dirs={tmp_path / 'kafka-data'}\n" in props


def test_connect_config_follows_settings(tmp_path: Path) -> None:
    settings = Settings(connect_port=28083, kafka_bootstrap="broker:9092")
    props = connect_worker_properties(settings, StackLayout(tmp_path))
    assert "listeners=http://127.0.0.1:28083\n" in props
    assert "bootstrap.servers=broker:9092\n" in props
    assert f"plugin.path={tmp_path / 'plugins'}\n" in props


def test_cluster_id_is_a_kafka_uuid() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_jars_are_current_only_for_the_pom_they_were_fetched_for(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path)
    pom = tmp_path / "pom.xml"
    pom.write_text("<project>1</project>")
    assert not jars_ready(layout, pom)
    layout.lib_dir.mkdir()
    (layout.lib_dir / "a.jar").write_bytes(b"")
    layout.lib_stamp.write_text(hashlib.sha256(pom.read_bytes()).hexdigest())
    assert jars_ready(layout, pom)
    pom.write_text("<project>2</project>")
    assert not jars_ready(layout, pom)


def test_a_script_is_recognised_behind_its_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "sleeper"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    script.chmod(0o755)
    record = procs.spawn([str(script), "--flag"], log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid")
    try:
        time.sleep(0.3)
        assert procs.is_running(record)  # /proc shows [python, script, --flag]
        assert procs.is_running(procs.read_record(tmp_path / "s.pid") or record)
    finally:
        assert procs.stop(record, timeout=5)
