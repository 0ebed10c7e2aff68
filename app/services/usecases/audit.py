"""AuditService reads and searches the audit_event table (read-only through the API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

import orjson
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import InvalidRequest, NotFound
from app.fhir.registry import is_resource_type, is_valid_id
from app.search.dates import parse_date_range
from app.security.caller import Caller
from app.services.jobs.audit import AuditRecorder
from app.services.params import Cursors, page_size
from app.services.uow import transaction
from app.storage.audit import AuditFilter, AuditStore
from app.storage.repository import StoredVersion

# --- reading the log ---------------------------------------------------------------------

_SEARCH_PARAMS: Final = frozenset(
    {"patient", "agent", "date", "entity", "subtype", "action", "outcome", "_count", "_cursor"}
)
_SILENT: Final = frozenset({"_format", "_pretty"})
_PREFIXES: Final = ("ge", "gt", "le", "lt", "eq")
_ACTIONS: Final = frozenset({"C", "R", "U", "D", "E"})
_OUTCOMES: Final = frozenset({"0", "4", "8", "12"})


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of AuditEvents, newest first."""

    events: list[StoredVersion]
    next_cursor: str | None
    applied: list[tuple[str, str]] = field(default_factory=list)


class AuditService:
    """GET AuditEvent/{id} and GET AuditEvent?...: the audit log, read-only.

    An agency sees the events of its own requests; the unconfined local operator sees all.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        settings: Settings,
        recorder: AuditRecorder,
        cursors: Cursors,
    ) -> None:
        self._cursors = cursors
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self.recorder = recorder

    @property
    def reads_audited(self) -> bool:
        """False when CASEBRIDGE_AUDIT_READS is off (benchmarks only)."""
        return self._settings.audit_reads

    def now(self) -> datetime:
        """The instant an access is recorded at."""
        return self._clock.now()

    def start(self) -> None:
        """Start the background flush."""
        self.recorder.start()

    def shutdown(self) -> None:
        """Flush what is queued and stop."""
        self.recorder.shutdown()

    def read(self, *, caller: Caller, event_id: str) -> StoredVersion:
        """read of an AuditEvent (spec http.html#read); another agency's event is 404."""
        if not is_valid_id(event_id):
            raise InvalidRequest(f"{event_id[:70]!r} is not a valid id")
        with transaction(self._engine, write=False, single_read=True) as repo:
            found = AuditStore(repo.connection).get(event_id)
        if found is None or (caller.agency is not None and found[2] != caller.agency):
            raise NotFound(f"AuditEvent/{event_id} is not known")
        recorded, body, _ = found
        return StoredVersion("AuditEvent", event_id, 1, recorded, False, body)

    def search(self, *, caller: Caller, params: Sequence[tuple[str, str]]) -> AuditPage:
        """search-type on AuditEvent (spec auditevent.html#search): patient, agent, date
        (ge/gt/le/lt/eq), entity, subtype, action, outcome; _count; keyset paging."""
        params = [(k, v) for k, v in params if k not in _SILENT]
        for name, _ in params:
            if name not in _SEARCH_PARAMS:
                raise InvalidRequest(
                    f"AuditEvent search parameter {name!r} is not supported",
                    expression=(name,),
                )
        # An agency sees its own requests only, whatever agent= asks for.
        where = replace(_filter(params), visible_to=caller.agency)
        count = page_size(
            params, default=self._settings.default_page_size, maximum=self._settings.max_page_size
        )
        cursors = [v for k, v in params if k == "_cursor"]
        if len(cursors) > 1:
            raise InvalidRequest("_cursor may be given once", expression=("_cursor",))
        after = _load_cursor(self._cursors, cursors[0]) if cursors else None
        with transaction(self._engine, write=False, single_read=True) as repo:
            rows = AuditStore(repo.connection).find(where, after=after, limit=count + 1)
        page = rows[:count]
        next_cursor = None
        if len(rows) > count and page:
            last_id, last_recorded, _ = page[-1]
            next_cursor = self._cursors.seal(orjson.dumps([last_recorded.isoformat(), last_id]))
        events = [
            StoredVersion("AuditEvent", event_id, 1, recorded, False, body)
            for event_id, recorded, body in page
        ]
        applied = [(k, v) for k, v in params if k != "_cursor"]
        return AuditPage(events, next_cursor, applied)


def _filter(params: Sequence[tuple[str, str]]) -> AuditFilter:
    agencies: list[str] = []
    clients: list[str] = []
    patients: list[str] = []
    entities: list[tuple[str, str | None]] = []
    subtypes: list[str] = []
    actions: list[str] = []
    outcomes: list[str] = []
    recorded: list[tuple[str, datetime]] = []
    for name, raw in params:
        values = [v.strip() for v in raw.split(",")] if name not in ("_count", "_cursor") else []
        if name in ("_count", "_cursor"):
            continue
        if not all(values):
            raise InvalidRequest(f"{name}: empty value", expression=(name,))
        if name == "patient":
            for value in values:
                reference = value if "/" in value else f"Patient/{value}"
                parts = reference.split("/")
                if len(parts) != 2 or parts[0] != "Patient" or not is_valid_id(parts[1]):
                    raise InvalidRequest(f"patient: {value[:80]!r} is not a Patient reference")
                patients.append(reference)
        elif name == "agent":
            for value in values:
                if value.startswith("Organization/"):
                    if not is_valid_id(value.split("/", 1)[1]):
                        raise InvalidRequest(f"agent: {value[:80]!r} is not a valid reference")
                    agencies.append(value)
                else:
                    clients.append(value)
        elif name == "entity":
            for value in values:
                parts = value.split("/")
                if (
                    len(parts) not in (2, 4)
                    or not is_resource_type(parts[0])
                    or not is_valid_id(parts[1])
                ):
                    raise InvalidRequest(f"entity: {value[:80]!r} is not a reference Type/id")
                entities.append((parts[0], parts[1]))
        elif name == "subtype":
            subtypes.extend(v.rpartition("|")[2] for v in values)
        elif name == "action":
            bad = [v for v in values if v not in _ACTIONS]
            if bad:
                raise InvalidRequest(f"action must be one of C, R, U, D, E, not {bad[0][:10]!r}")
            actions.extend(values)
        elif name == "outcome":
            codes = [v.rpartition("|")[2] for v in values]
            bad = [v for v in codes if v not in _OUTCOMES]
            if bad:
                raise InvalidRequest(f"outcome must be one of 0, 4, 8, 12, not {bad[0][:10]!r}")
            outcomes.extend(codes)
        elif name == "date":
            if len(values) != 1:
                raise InvalidRequest("date: one value per parameter (repeat it for a range)")
            recorded.extend(_date_bounds(values[0]))
    return AuditFilter(
        agencies=tuple(agencies),
        clients=tuple(clients),
        patients=tuple(patients),
        entities=tuple(entities),
        subtypes=tuple(subtypes),
        actions=tuple(actions),
        outcomes=tuple(outcomes),
        recorded=tuple(recorded),
    )


def _date_bounds(value: str) -> list[tuple[str, datetime]]:
    """date=[prefix]value (spec search.html#date) against the instant recorded."""
    prefix = value[:2] if value[:2].isalpha() else "eq"
    text = value[2:] if value[:2].isalpha() else value
    if prefix not in _PREFIXES:
        raise InvalidRequest(
            f"date: prefix {prefix!r} is not supported here (use ge, gt, le, lt or eq)",
            expression=("date",),
        )
    try:
        span = parse_date_range(text)
    except ValueError as exc:
        raise InvalidRequest(f"date: {exc}", expression=("date",)) from exc
    if prefix == "ge":
        return [(">=", span.low)]
    if prefix == "gt":
        return [(">=", span.high)]
    if prefix == "le":
        return [("<", span.high)]
    if prefix == "lt":
        return [("<", span.low)]
    return [(">=", span.low), ("<", span.high)]


def _bad_cursor() -> InvalidRequest:
    return InvalidRequest("The _cursor paging token is not valid", expression=("_cursor",))


def _load_cursor(cursors: Cursors, token: str) -> tuple[datetime, str]:
    try:
        value = orjson.loads(cursors.open(token))
        moment = datetime.fromisoformat(value[0])
        last_id = value[1]
    except (orjson.JSONDecodeError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(last_id, str) or not is_valid_id(last_id) or moment.tzinfo is None:
        raise _bad_cursor()
    return moment, last_id


__all__ = ["AuditPage", "AuditService"]
