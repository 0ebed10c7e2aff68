"""Time and new ids come from one injected source so tests can fix them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Clock:
    """Supplies the current instant and fresh logical ids."""

    now: Callable[[], datetime] = field(default=_utc_now)
    new_id: Callable[[], str] = field(default=_new_id)


def format_instant(moment: datetime) -> str:
    """Render a FHIR instant (spec 2.24.0.1 instant) in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
