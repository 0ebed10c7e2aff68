"""A fixed, thread-safe clock and id source for tests (time advances 1 ms per reading)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from app.clock import Clock

EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def fixed_clock(start: datetime = EPOCH) -> Clock:
    """A Clock whose readings and ids are deterministic for a given call order."""
    lock = threading.Lock()
    ticks = itertools.count()
    ids = itertools.count(1)

    def now() -> datetime:
        with lock:
            return start + timedelta(milliseconds=next(ticks))

    def new_id() -> str:
        with lock:
            return f"t{next(ids):08d}"

    return Clock(now=now, new_id=new_id)
