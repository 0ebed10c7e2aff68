"""Every access the API serves becomes an AuditEvent, built and appended off the request path.

The API layer hands an Access to AuditRecorder.record, which only queues it; a background
thread builds the AuditEvents and appends them in batches (every flush interval or batch
size, one transaction a batch), and drains the queue on shutdown. A crash loses at most the
unflushed queue (README, "Audit"). Writes are recorded by the write pipeline instead
(rules/audit.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl

import orjson
from sqlalchemy.engine import Engine

from app.config import Settings
from app.fhir.audit import (
    AuditFacts,
)
from app.fhir.errors import Transient
from app.fhir.registry import is_resource_type, is_valid_id
from app.security.caller import Caller
from app.services.request_audit import audit_row, patients_in_query, patients_of, record_id
from app.services.uow import transaction
from app.storage.audit import AuditRow, AuditStore

log = logging.getLogger(__name__)

# How many versions' patients the flush thread remembers (a few MB at most).
_REMEMBERED_VERSIONS: Final = 20_000


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
    # The request's X-Request-ID.
    request_id: str | None = None


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
            person=caller.person if caller else None,
            address=access.address,
            entity=entity_ref,
            entity_type=access.resource_type,
            query=access.query,
            description=access.description,
            patients=patients,
            outcome_text=_diagnostics(access.error) if access.error else None,
            request_id=access.request_id,
        )
        return audit_row(facts, record_id(), self._server, entity)


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
