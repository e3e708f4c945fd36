"""Run code as if a given event were the stream's current event.

Faust tables find the partition to write (RocksDB partition store and changelog partition) from the
*current event*. Agents that batch with ``stream.take_events()`` process events after the stream has moved
on, so each table write must be made inside the context of the event it belongs to. Faust keeps that
context in a ContextVar; this is the one place that sets it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust import streams as faust_streams
from faust.types import EventT

__all__ = ["event_context"]


@contextmanager
def event_context(event: EventT) -> Iterator[None]:
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)
