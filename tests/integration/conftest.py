"""The real local stack for integration tests, started by the same code as `nudge stack up`.

The session-scoped ``stack`` fixture reuses a stack that is already running (a developer's terminal, or
another session) and, at the end, stops only the services this session started itself. Every test under
tests/integration gets the ``integration`` marker, so ``pytest -m "not integration"`` skips them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import launcher
from streams.settings import Settings, load_settings

INTEGRATION_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings of a running, healthy local stack (Kafka, Connect with the sink, DynamoDB + table)."""
    settings = load_settings()
    result = launcher.up(settings, echo=lambda line: print(f"[stack] {line}"))
    try:
        yield settings
    finally:
        if result.started:
            launcher.down(settings, only=result.started, echo=lambda line: print(f"[stack] {line}"))
