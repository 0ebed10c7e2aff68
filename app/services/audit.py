"""Accountability: an AuditEvent for every access and a Provenance for every write.

- Writes: WriteRecorder.record (the last step of the write pipeline, app/services/writes.py)
  queues the write's AuditEvent row and its Provenance on the write's own transaction; they
  are inserted at commit, one statement per table per transaction, and roll back with it.
- Everything else (reads, searches, history, operations, refusals, failed writes): the API
  layer hands an Access to AuditRecorder.record, which only queues it; a background thread
  builds the AuditEvents and appends them in batches (every flush interval or batch size,
  one transaction a batch), and drains the queue on shutdown. A crash loses at most the
  unflushed queue (README, "Audit").
- AuditService reads and searches the audit_event table (read-only through the API).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.audit import (
    AuditFacts,
    action_of,
    audit_event,
    is_server_provenance,
    outcome_code,
    provenance,
)
from app.fhir.errors import Forbidden, InvalidRequest, MethodNotAllowed, NotFound, Transient
from app.fhir.jsonio import loads_stored
from app.fhir.registry import is_resource_type, is_valid_id
from app.fhir.resource import stamp
from app.search.dates import parse_date_range
from app.search.extract import extract_index
from app.search.registry import compiled, param
from app.security.caller import Caller
from app.services.everything import compartment
from app.services.params import Cursors, page_size
from app.services.uow import transaction
from app.services.writes import FollowUp, WriteEvent
from app.storage.audit import AuditFilter, AuditRow, AuditStore
from app.storage.repository import Repository, StoredVersion
from app.storage.rows import new_rows

log = logging.getLogger(__name__)

_WRITE_INTERACTIONS: Final = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


# --- the request being served ------------------------------------------------------------


@dataclass(slots=True)
class RequestAudit:
    """What the services tell the audit about the HTTP request they serve (a context
    variable: the write hook and the Bundle service run on a handler thread, whose copied
    context still points at this one object)."""

    address: str | None = None
    # Set by services that know better than the route: "transaction" or "batch".
    interaction: str | None = None
    # How many writes the write hook audited (0: the route must audit the request itself).
    writes: int = 0


_CURRENT: contextvars.ContextVar[RequestAudit | None] = contextvars.ContextVar(
    "casebridge_request_audit", default=None
)


@contextmanager
def auditing_request(address: str | None) -> Iterator[RequestAudit]:
    """Mark the current context as serving one HTTP request."""
    state = RequestAudit(address=address)
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def note_interaction(interaction: str) -> None:
    """Tell the audit which interaction the current request turned out to be."""
    state = _CURRENT.get()
    if state is not None:
        state.interaction = interaction


# --- the patient an access concerns ------------------------------------------------------


@cache
def _patient_paths(resource_type: str) -> tuple[Any, ...]:
    """The compiled extractors of the parameters that put resource_type in the Patient
    compartment (spec compartmentdefinition-patient.html)."""
    paths = []
    for code in compartment("Patient").get(resource_type, ()):
        search_param = param(resource_type, code)
        extractor = compiled(search_param) if search_param is not None else None
        if extractor is not None:
            paths.append(extractor)
    return tuple(paths)


def patients_of(resource_type: str, resource_id: str | None, body: Any, own_base: str) -> list[str]:
    """ "Patient/{id}" of every patient whose compartment holds this resource (the patient
    itself for a Patient), in order of appearance, at most 10."""
    if resource_type == "Patient":
        return [f"Patient/{resource_id}"] if resource_id else []
    if not isinstance(body, dict):
        return []
    found: dict[str, None] = {}
    prefix = own_base.rstrip("/") + "/"
    for extractor in _patient_paths(resource_type):
        for _tag, value in extractor(body):
            literal = value.get("reference") if isinstance(value, dict) else None
            if not isinstance(literal, str):
                continue
            if literal.startswith(prefix):
                literal = literal[len(prefix) :]
            parts = literal.split("/")
            if len(parts) in (2, 4) and parts[0] == "Patient" and is_valid_id(parts[1]):
                found[f"Patient/{parts[1]}"] = None
    return list(found)[:10]


def patients_in_query(resource_type: str | None, params: Sequence[tuple[str, str]]) -> list[str]:
    """The patients a search names: patient= and subject= references to a Patient, and
    _id of a Patient search."""
    found: dict[str, None] = {}
    for key, raw in params:
        name, _, modifier = key.partition(":")
        for value in raw.split(","):
            value = value.strip()
            if name == "patient" or (name == "subject" and modifier == "Patient"):
                reference = value if "/" in value else f"Patient/{value}"
            elif name == "subject" or (name == "_id" and resource_type == "Patient"):
                reference = value if name == "subject" else f"Patient/{value}"
            else:
                continue
            parts = reference.rsplit("/", 2)
            if len(parts) >= 2 and parts[-2] == "Patient" and is_valid_id(parts[-1]):
                found[f"Patient/{parts[-1]}"] = None
    return list(found)[:10]


# How many versions' patients the flush thread remembers (a few MB at most).
_REMEMBERED_VERSIONS: Final = 20_000


def _record_id() -> str:
    """A random id for an AuditEvent or a server Provenance: unique across every process
    and server writing to the database, whatever clock each was given (tests fix clocks,
    and several test servers with their own clocks share one database)."""
    return str(uuid.uuid4())


# --- accesses queued by the API ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Access:
    """One request as the API saw it; turned into an AuditEvent on the flush thread."""

    interaction: str
    status: int
    recorded: datetime
    caller: Caller | None
    address: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: str | None = None
    query: str | None = None
    description: str | None = None
    patients: tuple[str, ...] = ()
    # A read's response body, from which the patient is found off the request path.
    body: bytes | None = None
    # An error's OperationOutcome, whose diagnostics become AuditEvent.outcomeDesc.
    error: bytes | None = None
    # The request path under the FHIR base, as sent.
    path: str = ""


def _row(facts: AuditFacts, event_id: str, server: str, entity: tuple[str, str] | None) -> AuditRow:
    event = audit_event(facts, event_id=event_id, server=server)
    entity_type, entity_id = entity if entity is not None else (facts.entity_type, None)
    return AuditRow(
        id=event_id,
        recorded=facts.recorded,
        agency=facts.agency,
        client_id=facts.client_id[:255] if facts.client_id else None,
        patient=facts.patients[0] if facts.patients else None,
        subtype=facts.interaction,
        action=action_of(facts.interaction),
        outcome=outcome_code(facts.status),
        entity_type=entity_type,
        entity_id=entity_id,
        body=orjson.dumps(event),
    )


class AuditRecorder:
    """Queues accesses and appends their AuditEvents in batches on a background thread.

    The request path only appends to a deque. The thread wakes every flush interval, or as
    soon as a batch is full, and writes up to batch_size events in one transaction; on
    shutdown it writes whatever is queued. When the database refuses a batch it is retried
    (the events stay queued); backlog() lets the API slow requests down rather than grow the
    queue without bound.
    """

    def __init__(self, *, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._server = settings.base_url
        self._interval = settings.audit_flush_ms / 1000
        self._batch = settings.audit_batch_size
        self._queue: deque[Access] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._thread: threading.Thread | None = None
        # Only the flush thread touches it.
        self._patients: dict[tuple[str, str, str], tuple[str, ...]] = {}

    def start(self) -> None:
        """Start the flush thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
            self._thread.start()

    def record(self, access: Access) -> None:
        """Queue one access (cheap: called on the event loop for every request)."""
        self._queue.append(access)
        if len(self._queue) >= self._batch:
            self._wake.set()

    def backlog(self) -> int:
        """How many accesses wait to be written."""
        return len(self._queue)

    def shutdown(self) -> None:
        """Write everything queued, then stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._queue and not self._drain():
            log.error("%d audit events could not be written and are lost", len(self._queue))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> bool:
        """Write the queue out, a batch a transaction; False when the database refused
        (what is left stays queued for the next flush)."""
        while self._queue:
            # Indexing, not iterating: the event loop appends meanwhile.
            batch = [self._queue[i] for i in range(min(self._batch, len(self._queue)))]
            rows = []
            for access in batch:
                try:
                    rows.append(self._build(access))
                except Exception:  # one malformed access must not block the log
                    log.exception("an access could not be turned into an AuditEvent")
            try:
                self._append(rows)
            except Transient:
                log.warning("the database is unavailable: %d audit events wait", len(rows))
                return False
            except Exception:
                # Not the database's state but a row it refuses: write the rows one by one
                # so that one bad row cannot hold the whole log back.
                log.exception("a batch of %d audit events was refused; writing singly", len(rows))
                for row in rows:
                    try:
                        self._append([row])
                    except Transient:
                        return False
                    except Exception:
                        log.exception("AuditEvent %s refused by the database: dropped", row.id)
            for _ in batch:
                self._queue.popleft()
        return True

    def _patients_of_version(self, access: Access) -> tuple[str, ...]:
        """The patients of a version read, remembered: a version never changes, and the
        same versions are read again and again (parsing and walking cost ~30 us)."""
        assert access.body is not None and access.resource_type is not None
        key = (access.resource_type, access.resource_id or "", access.version_id or "")
        found = self._patients.get(key) if access.version_id else None
        if found is None:
            try:
                body = orjson.loads(access.body)
            except orjson.JSONDecodeError:
                body = None
            found = tuple(patients_of(access.resource_type, access.resource_id, body, self._server))
            if access.version_id:
                if len(self._patients) >= _REMEMBERED_VERSIONS:
                    self._patients.clear()
                self._patients[key] = found
        return found

    def _append(self, rows: Sequence[AuditRow]) -> None:
        with transaction(self._engine, write=True) as repo:
            AuditStore(repo.connection).append(rows)

    def _build(self, access: Access) -> AuditRow:
        if not _names_a_resource(access.resource_type, access.resource_id):
            # A malformed request (unknown type, id outside the id pattern): keep what was
            # asked as the query entity, not as a reference that is none.
            query = access.query or access.path
            access = replace(
                access, resource_type=None, resource_id=None, patients=(), query=query[:2000]
            )
        patients = access.patients
        if not patients and access.body is not None and access.resource_type is not None:
            patients = self._patients_of_version(access)
        if not patients and access.query is not None and access.interaction.startswith("search"):
            _, _, raw = access.query.partition("?")
            pairs = parse_qsl(raw, keep_blank_values=True)
            patients = tuple(patients_in_query(access.resource_type, pairs))
        entity = None
        entity_ref = None
        if access.resource_type is not None and access.resource_id is not None:
            entity = (access.resource_type, access.resource_id)
            entity_ref = f"{access.resource_type}/{access.resource_id}"
            if access.version_id is not None:
                entity_ref += f"/_history/{access.version_id}"
        caller = access.caller
        facts = AuditFacts(
            interaction=access.interaction,
            recorded=access.recorded,
            status=access.status,
            agency=caller.agency if caller else None,
            client_id=caller.client_id if caller else None,
            address=access.address,
            entity=entity_ref,
            entity_type=access.resource_type,
            query=access.query,
            description=access.description,
            patients=patients,
            outcome_text=_diagnostics(access.error) if access.error else None,
        )
        return _row(facts, _record_id(), self._server, entity)


def _names_a_resource(resource_type: str | None, resource_id: str | None) -> bool:
    if resource_type is None:
        return resource_id is None
    return is_resource_type(resource_type) and (resource_id is None or is_valid_id(resource_id))


def _diagnostics(body: bytes) -> str | None:
    """The first issue's diagnostics of an OperationOutcome answer (our error messages name
    what was wrong, never the record's content)."""
    try:
        outcome = orjson.loads(body)
        return str(outcome["issue"][0]["diagnostics"])[:500]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None


# --- writes: the same transaction --------------------------------------------------------


class WriteRecorder:
    """The write pipeline's record (AuditEvent and Provenance of every write, in the
    write's transaction) and its rule that refuses writes of AuditEvents (405) and changes
    to server-written Provenance (403)."""

    def __init__(self, *, settings: Settings) -> None:
        self._server = settings.base_url
        self._provenance = settings.provenance

    def before_write(self, repo: Repository, event: WriteEvent) -> bool:  # noqa: ARG002
        """AuditEvents are written by the server alone (BALP: the log is not editable)."""
        if event.resource_type == "AuditEvent":
            raise MethodNotAllowed(
                "AuditEvents are recorded by the server and cannot be created, updated or "
                "deleted through the API",
                headers={"Allow": "GET"},
            )
        if event.resource_type == "Provenance":
            current = event.current
            if (
                current is not None
                and current.body is not None
                and is_server_provenance(loads_stored(current.body))
            ):
                raise Forbidden(
                    f"Provenance/{event.resource_id} was recorded by the server and "
                    "cannot be changed or deleted"
                )
            if event.resource is not None and is_server_provenance(event.resource):
                raise Forbidden(
                    "Provenance carrying the server's tag can only be recorded by the server"
                )
        return False

    def after_write(
        self,
        repo: Repository,  # noqa: ARG002 (the WriteRule signature)
        event: WriteEvent,  # noqa: ARG002
        version: StoredVersion,  # noqa: ARG002
    ) -> Sequence[FollowUp]:
        """Nothing: the record of a write is the pipeline's last step (record)."""
        return ()

    def record(self, repo: Repository, event: WriteEvent, version: StoredVersion) -> None:
        """Queue the write's AuditEvent row and its Provenance on the transaction."""
        created = event.current is None or event.current.deleted
        interaction = _WRITE_INTERACTIONS.get(event.method, "update")
        body = event.resource
        if body is None and event.current is not None and event.current.body is not None:
            body = loads_stored(event.current.body)
        patients = tuple(patients_of(event.resource_type, event.resource_id, body, self._server))
        target = f"{event.resource_type}/{event.resource_id}/_history/{version.version_id}"
        state = _CURRENT.get()
        caller = event.caller
        facts = AuditFacts(
            interaction=interaction,
            recorded=version.last_updated,
            status=201 if created and event.method != "DELETE" else 200,
            agency=caller.agency,
            client_id=caller.client_id,
            address=state.address if state else None,
            entity=target,
            entity_type=event.resource_type,
            patients=patients,
        )
        row = _row(facts, _record_id(), self._server, (event.resource_type, event.resource_id))
        repo.append_audit_later([row])
        if state is not None:
            state.writes += 1
        if self._provenance:
            self._queue_provenance(repo, event, version, target, created)

    def _queue_provenance(
        self,
        repo: Repository,
        event: WriteEvent,
        version: StoredVersion,
        target: str,
        created: bool,
    ) -> None:
        # A record of the write, not a write of its own: no rule applies to it, nothing in
        # the transaction reads it back, and it is queued with the audit row.
        interaction = "delete" if version.deleted else ("create" if created else "update")
        resource = provenance(
            target=target,
            interaction=interaction,
            recorded=version.last_updated,
            agency=event.caller.agency,
            client_id=event.caller.client_id,
        )
        resource_id = _record_id()
        body = stamp(
            resource, resource_id=resource_id, version_id=1, last_updated=version.last_updated
        )
        index = extract_index("Provenance", resource, own_base=self._server)
        rows = new_rows("Provenance", resource_id, 1, version.last_updated, "POST", body, index)
        # The Provenance belongs to whoever owns its target and is as sensitive (the agency
        # access rules: docs/threat-model.md), as the access rule left it.
        owner = event.owner if event.owner is not None else (event.caller.agency, False)
        repo.append_new_later(rows, owner)


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
        self.recorder_of_writes = WriteRecorder(settings=settings)

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


__all__ = [
    "Access",
    "AuditPage",
    "AuditRecorder",
    "AuditService",
    "WriteRecorder",
    "auditing_request",
    "note_interaction",
    "patients_in_query",
    "patients_of",
]
