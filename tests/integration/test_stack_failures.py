"""A service that cannot start fails `up` with its log's tail, and `up` stops what it had started."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import launcher
from stack.errors import ServiceDidNotStart
from stack.layout import StackLayout
from stack.probes import port_open
from streams.settings import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port held by a listener that accepts connections but speaks no Kafka."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_broker_that_cannot_bind_fails_up_and_its_partner_is_stopped(
    stack: Settings, squatter: int, tmp_path: Path
) -> None:
    # A second stack folder sharing the jars and the built plugin, with ports of its own.
    shared = StackLayout.of(stack)
    other = load_settings(
        cache_dir=tmp_path, kafka_port=squatter, kafka_controller_port=_free_port(),
        connect_port=_free_port(), dynamodb_port=_free_port(),
    )
    layout = StackLayout.of(other)
    layout.root.mkdir(parents=True)
    (layout.root / "lib").symlink_to(shared.lib_dir)
    (layout.root / "plugins").symlink_to(shared.plugins_dir)
    layout.lib_stamp.write_text(shared.lib_stamp.read_text())

    lines: list[str] = []
    with pytest.raises(ServiceDidNotStart) as failure:
        launcher.up(other, echo=lines.append)
    message = str(failure.value)
    assert message.startswith("kafka exited during start-up"), message
    # The cause first (from the errors of this start), then a short tail of the log.
    errors, tail = message.split(f"last {launcher.ERROR_LINES} lines of {layout.log_file('kafka')}:")
    assert "first errors of this start:" in errors and "Address already in use" in errors
    assert len(tail.strip().splitlines()) == launcher.ERROR_LINES
    # moto was started by this call, so it was stopped again; nothing of it is left.
    assert any(line.startswith("dynamodb: starting") for line in lines)
    assert "dynamodb: stopped" in "\n".join(lines)
    assert not layout.pid_file("dynamodb").exists() and not layout.pid_file("kafka").exists()
    assert not port_open("127.0.0.1", other.dynamodb_port)
    assert launcher.down(other) == []
