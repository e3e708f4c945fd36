"""Faust agent tests: the real agents on Faust's in-memory harness (``memory://`` tables, no Kafka).

Output topics are replaced by recorders, so a test sees exactly what an agent would have produced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.rules import load_catalogue
from streams.app import Pipeline, create_app
from streams.settings import PROJECT_ROOT, load_settings


@dataclass
class Recorded:
    key: bytes | None
    value: bytes | None
    headers: Any = None


@dataclass
class Recorder:
    """Stands in for a Faust topic's send/send_soon. ``send_soon`` returns the record's acknowledgement, as
    Faust's does: done at once, or failed with ``refuse_with`` (a broker that never took the record)."""

    records: list[Recorded] = field(default_factory=list)
    refuse_with: BaseException | None = None

    def send_soon(self, *, key: Any = None, value: Any = None, headers: Any = None, **_kw: Any) -> Any:
        self.records.append(Recorded(key, value, headers))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse_with is None:
            ack.set_result(None)
        else:
            ack.set_exception(self.refuse_with)
        return ack

    async def send(self, *, key: Any = None, value: Any = None, headers: Any = None, **_kw: Any) -> None:
        self.send_soon(key=key, value=value, headers=headers)


@dataclass
class RecordingProducer:
    """Stands in for the confluent-kafka producer of the worker's scores and alerts (streams/output.py):
    each record goes to its topic's recorder and is acknowledged at once, or refused with that recorder's
    ``refuse_with``."""

    recorders: dict[str, Recorder]

    def produce(self, topic: str, *, key: Any = None, value: Any = None, headers: Any = None,
                on_delivery: Any = None) -> None:
        recorder = self.recorders[topic]
        recorder.records.append(Recorded(key, value, headers))
        on_delivery(recorder.refuse_with, None)

    def poll(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Any]:
    built: list[Pipeline] = []

    def build(*agent_modules: str, **settings: Any) -> tuple[Pipeline, dict[str, Recorder]]:
        # One sweep batch at a time: Faust's test harness feeds its in-memory channel to every concurrent
        # actor (a worker's topic queue gives each message to one). Concurrent batches are covered by
        # tests/unit/test_in_flight.py and, on the real stack, by the integration tests' sweeps.
        settings.setdefault("sweep_batches_in_flight", 1)
        pipeline = create_app(
            load_settings(worker_data_dir=tmp_path, **settings), store="memory://", agent_modules=agent_modules
        )
        built.append(pipeline)
        pipeline.app.flow_control.resume()
        recorders: dict[str, Recorder] = {}
        for name, topic in pipeline.topics.items():
            recorder = recorders[name] = Recorder()
            topic.send_soon = recorder.send_soon  # type: ignore[method-assign]
            topic.send = recorder.send  # type: ignore[method-assign]
        output = pipeline.services.get("output")
        if output is not None:
            output.producer_factory = lambda: RecordingProducer(recorders)
        feed = pipeline.services.get("catalogue")
        if feed is not None:
            feed.load(list(load_catalogue(PROJECT_ROOT / "rules").values()))
        return pipeline, recorders

    yield build
    for pipeline in built:  # the output producer's polling thread, the sweep processes if any started
        output = pipeline.services.get("output")
        if output is not None:
            output.stop_polling()
        lane = pipeline.services.get("sweep-processes")
        if lane is not None:
            lane.close()
