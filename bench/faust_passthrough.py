"""The Faust ceilings for bench_pipeline: the worker's own Faust app settings, one agent that sends every
``transactions`` message unchanged to another topic (or, with ``-`` for the topic, only consumes them), no
decoding, no table, no rules.

Run as a process by bench_pipeline (``python -m bench.faust_passthrough OUT_TOPIC|-``, with NUDGE_APP_ID
and NUDGE_WORKER_DATA_DIR set); it shows how much of the raw confluent-kafka rate the chosen stream
framework itself leaves, so the worker's rate can be judged against both.
"""

from __future__ import annotations

import os
import sys

from faust import StreamT

from streams.app import Pipeline

__all__ = ["register"]

OUT_TOPIC_ENV = "NUDGE_BENCH_PASSTHROUGH_TOPIC"


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    settings = pipeline.settings
    out_name = os.environ[OUT_TOPIC_ENV]
    out = app.topic(
        out_name if out_name != "-" else "unused",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )

    @app.agent(pipeline.topics["transactions"], name="passthrough")
    async def passthrough(stream: StreamT[bytes]) -> None:
        # The same batching as the transactions agent (settings.batch_max / batch_within_ms).
        async for events in stream.take_events(  # type: ignore[attr-defined]  # Stream has it
            max_=settings.batch_max, within=settings.batch_within_ms / 1000
        ):
            if out_name == "-":
                continue  # consume only: the events are acked when the next batch is taken
            for event in events:
                out.send_soon(key=event.key, value=event.value)


def main() -> None:
    import faust

    from streams.app import create_app
    from streams.settings import load_settings

    os.environ[OUT_TOPIC_ENV] = sys.argv[1]
    pipeline = create_app(load_settings(), store="memory://", agent_modules=("bench.faust_passthrough",))
    faust.Worker(pipeline.app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
