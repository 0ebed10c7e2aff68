"""Bulk data export (HL7 Bulk Data Access IG v2.0.0, export.html): $export at system and
Patient level, run asynchronously.

- Kick-off parses and checks the request, records a job row (state lives in the database, so
  any API process answers the status poll and file requests) and hands the work to this
  process's thread pool.
- A worker reads live current versions type by type in id order (keyset pages, one short
  read each, never one long transaction), last updated no later than the job's
  transactionTime (and at or after ``_since``), and writes one NDJSON file per type under
  ``data_dir/exports/<job id>``: the stored bodies as they are, one a line. Between pages it
  checks that the job still exists, so a cancel (DELETE, from any process) stops it at the
  next page. Processes that answer file requests must share data_dir (a shared volume).
- A monitor thread heartbeats the jobs this process holds, removes expired jobs (row and
  files) and fails jobs whose process stopped heartbeating (crashed).

Patient-level export: the Patient resources, and resources of the types of a patient's
record that refer to a live Patient through that type's membership parameters in the
reference index. The record is what Patient $everything gathers (app/fhir/compartments.py:
the R4B Patient CompartmentDefinition, schemas/fhir/compartments.json, plus Task.for), so a
client's export and its $everything agree on membership.

Times: transactionTime comes from the injected clock, which stamps lastUpdated, so it can be
used as the next ``_since``. Job bookkeeping (expiry, heartbeats) measures real elapsed time
and uses the wall clock. Job ids are random (uuid4), since until requests are authenticated
the status and file URLs are all that protects an export.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, BinaryIO, Final, Literal

import orjson
from sqlalchemy.engine import Engine

from app.clock import Clock, format_instant
from app.config import Settings
from app.fhir.compartments import patient_record
from app.fhir.errors import FHIRError, InvalidRequest, NotFound, Transient
from app.fhir.registry import is_resource_type, resource_types
from app.search.dates import parse_date_range
from app.search.registry import params_for
from app.security.caller import Caller
from app.security.policy import scope_for
from app.security.scopes import require
from app.services.disclosure import DisclosureLog
from app.services.params import single
from app.services.uow import transaction
from app.storage.access import AccessScope
from app.storage.repository import StoredVersion

log = logging.getLogger(__name__)

Level = Literal["system", "patient"]
JobState = Literal["queued", "running", "completed", "failed"]

# application/fhir+ndjson, and the abbreviations the IG requires servers to accept.
OUTPUT_FORMATS: Final = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
# Kick-off parameters of the IG this server does not implement: refused (400), or ignored
# with Prefer: handling=lenient.
_UNSUPPORTED: Final = frozenset({"_elements", "patient", "includeAssociatedData", "_typeFilter"})
_PARAMETERS: Final = frozenset({"_outputFormat", "_type", "_since"})
_INSTANT_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.ASCII
)
# The manifest extension naming the files that hold labelled records of other agencies.
LABELLED_FILES: Final = "https://casebridge.org/fhir/export-labelled-files"
JOB_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$", re.ASCII)
FILE_RE: Final = re.compile(r"^[A-Za-z]{1,64}\.ndjson$", re.ASCII)
_PENDING: Final = ("queued", "running")
# A queued or running job whose process has not heartbeaten for this long is failed.
STALE_AFTER: Final = timedelta(minutes=5)
# Heartbeat and sweep at most this far apart (and more often with a short retention).
_MAX_TICK_S: Final = 30.0
_MIN_TICK_S: Final = 0.2
# Progress is written to the job row at most this often while a worker runs.
_PROGRESS_EVERY_S: Final = 1.0
_SWEEP_BATCH: Final = 100


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A checked kick-off request."""

    level: Level
    types: tuple[str, ...]
    since: datetime | None
    output_format: str
    # Resource type -> the reference parameters that put it in a patient's compartment
    # (Patient-level only; the Patient type itself is listed with no parameters).
    patient_params: Mapping[str, tuple[str, ...]] | None = None
    ignored: tuple[str, ...] = ()

    def params_json(self) -> bytes:
        """What the job row records of the request."""
        return orjson.dumps(
            {
                "level": self.level,
                "types": list(self.types),
                "since": self.since.isoformat() if self.since else None,
                "outputFormat": self.output_format,
            }
        )


@dataclass(frozen=True, slots=True)
class ExportJobStatus:
    """What a status poll answers."""

    state: JobState
    progress: str | None = None
    manifest: dict[str, Any] | None = None
    error: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KickOff:
    """An accepted export: the job id and the parameters ignored (lenient handling)."""

    job_id: str
    ignored: tuple[str, ...] = ()


class _Cancelled(Exception):
    """The job row is gone (DELETE) or no longer running: stop quietly."""


class _Interrupted(Exception):
    """This process is shutting down."""


@dataclass
class _Held:
    """A job this process has accepted and not finished."""

    future: Future[None] | None = None
    started: bool = False


@cache
def patient_compartment() -> Mapping[str, tuple[str, ...]]:
    """Resource type -> the indexed reference parameters that put a resource of that type in
    a patient's record (the R4B Patient compartment plus the client's Tasks, exactly what
    Patient $everything gathers); Patient itself maps to no parameters (every one is in)."""
    out: dict[str, tuple[str, ...]] = {"Patient": ()}
    for resource_type, names in sorted(patient_record().items()):
        if resource_type == "Patient" or not is_resource_type(resource_type):
            continue
        params = params_for(resource_type)
        chosen = tuple(
            sorted(
                n
                for n in names
                if n in params and params[n].type == "reference" and params[n].indexed
            )
        )
        if chosen:
            out[resource_type] = chosen
    return out


def parse_request(
    level: Level, params: Sequence[tuple[str, str]], *, lenient: bool
) -> ExportRequest:
    """Check the kick-off parameters (export.html#query-parameters); InvalidRequest (400)
    for anything the server cannot honour, unless lenient handling lets it be ignored."""
    ignored: list[str] = []
    for name, _ in params:
        if name in _PARAMETERS or name in ignored:
            continue
        if lenient:
            ignored.append(name)
            continue
        reason = "is not supported by this server" if name in _UNSUPPORTED else "is not known"
        raise InvalidRequest(
            f"$export parameter {name!r} {reason} (send Prefer: handling=lenient to have "
            "unsupported parameters ignored)",
            expression=(name,),
        )

    raw_format = single(params, "_outputFormat")
    output_format = "application/fhir+ndjson"
    if raw_format is not None:
        # An unencoded "+" in a query string arrives as a space.
        normal = raw_format.strip().replace(" ", "+").lower()
        if normal not in OUTPUT_FORMATS:
            raise InvalidRequest(
                f"_outputFormat={raw_format!r} is not supported; use application/fhir+ndjson",
                expression=("_outputFormat",),
            )

    since = None
    raw_since = single(params, "_since")
    if raw_since is not None:
        value = raw_since.strip().replace(" ", "+")
        if not _INSTANT_RE.match(value):
            raise InvalidRequest(
                f"_since={raw_since!r} is not a FHIR instant such as 2026-01-05T09:00:00Z",
                expression=("_since",),
            )
        try:
            since = parse_date_range(value).low
        except ValueError as exc:
            raise InvalidRequest(f"_since: {exc}", expression=("_since",)) from exc

    compartment = patient_compartment() if level == "patient" else None
    requested: list[str] = []
    for key, raw in params:
        if key != "_type":
            continue
        for part in raw.split(","):
            name = part.strip()
            if not name:
                raise InvalidRequest(f"_type={raw!r} holds an empty type", expression=("_type",))
            if not is_resource_type(name):
                raise InvalidRequest(
                    f"_type names {name!r}, which is not a FHIR R4B resource type",
                    expression=("_type",),
                )
            if name not in requested:
                requested.append(name)
    has_type = any(key == "_type" for key, _ in params)
    if compartment is not None:
        outside = [t for t in requested if t not in compartment]
        if outside and not lenient:
            raise InvalidRequest(
                f"_type names {', '.join(outside)}, outside the Patient compartment that "
                "Patient/$export exports (send Prefer: handling=lenient to skip them)",
                expression=("_type",),
            )
        requested = [t for t in requested if t in compartment]
        if has_type and not requested:
            raise InvalidRequest(
                "_type names no type of the Patient compartment", expression=("_type",)
            )
        types = tuple(requested) if has_type else tuple(sorted(compartment))
    else:
        types = tuple(requested) if has_type else tuple(sorted(resource_types()))
    return ExportRequest(
        level=level,
        types=types,
        since=since,
        output_format=output_format,
        patient_params=compartment,
        ignored=tuple(ignored),
    )


def _one_line(body: bytes) -> bytes:
    # Stored bodies are compact JSON; a raw line break can only be whitespace between
    # tokens (JSON strings escape them), so dropping it keeps the resource intact.
    if b"\n" in body or b"\r" in body:
        return body.replace(b"\r", b"").replace(b"\n", b"")
    return body


class ExportService:
    """Kick-off, status, cancel and files of bulk exports; owns the worker threads."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        settings: Settings,
        workers: int = 2,
        page_size: int = 1000,
        wall: Callable[[], datetime] = _wall_now,
        disclosures: DisclosureLog,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._base = settings.base_url
        self._tokens_required = settings.auth == "smart"
        self._disclosures = disclosures
        self._root = settings.data_dir / "exports"
        self._retention = timedelta(seconds=settings.export_retention_s)
        self._tick = min(_MAX_TICK_S, max(_MIN_TICK_S, settings.export_retention_s / 4))
        self._page_size = page_size
        self._wall = wall
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export")
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the monitor thread (heartbeats, expiry sweep); the app lifespan calls it."""
        if self._monitor is None:
            self._monitor = threading.Thread(
                target=self._monitor_loop, name="export-monitor", daemon=True
            )
            self._monitor.start()

    def shutdown(self) -> None:
        """Stop: running jobs stop at their next page and are failed, as are queued ones."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
            self._monitor = None
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            never_started = [job_id for job_id, held in self._held.items() if not held.started]
            self._held.clear()
        for job_id in never_started:
            self._fail(job_id, "The server stopped before the export started; start it again")

    # -- requests ----------------------------------------------------------------------
    def kick_off(self, request: ExportRequest, *, caller: Caller, request_url: str) -> KickOff:
        """Record a job and queue it on this process's workers (export.html#response---success)."""
        if self._stopping.is_set():
            raise Transient("The server is shutting down; retry the export")
        job_id = uuid.uuid4().hex
        now = self._wall()
        with transaction(self._engine, write=True) as repo:
            repo.insert_export_job(
                {
                    "id": job_id,
                    "status": "queued",
                    "request_url": request_url,
                    "params": request.params_json().decode(),
                    "requester": caller.agency,
                    "transaction_time": self._clock.now(),
                    "created_at": now,
                    "updated_at": now,
                    "progress": "queued",
                }
            )
        held = _Held()
        with self._lock:
            self._held[job_id] = held
            try:
                held.future = self._executor.submit(self._run, job_id, request)
            except RuntimeError:  # the executor shut down in between
                del self._held[job_id]
                held.future = None
        if held.future is None:
            self._fail(job_id, "The server stopped before the export started; start it again")
            raise Transient("The server is shutting down; retry the export")
        return KickOff(job_id, request.ignored)

    def status(self, job_id: str, *, caller: Caller) -> ExportJobStatus:
        """The state of a job (export.html#bulk-data-status-request); NotFound when unknown,
        cancelled or expired."""
        row = self._live_row(job_id, caller)
        state: JobState = row["status"]
        if state in _PENDING and row["updated_at"] < self._wall() - STALE_AFTER:
            return ExportJobStatus(
                "failed", error="The server process running this export stopped; start it again"
            )
        if state == "completed":
            manifest = orjson.loads(row["manifest"] or "{}")
            manifest["output"] = [
                {
                    "type": item["type"],
                    "url": f"{self._base}/$export-file/{job_id}/{item['file']}",
                    "count": item["count"],
                }
                for item in manifest.get("output", [])
            ]
            return ExportJobStatus(state, manifest=manifest, expires_at=row["expires_at"])
        if state == "failed":
            return ExportJobStatus(state, error=row["error"], expires_at=row["expires_at"])
        return ExportJobStatus(state, progress=row["progress"])

    def cancel(self, job_id: str, *, caller: Caller) -> None:
        """Delete a job and its files (export.html#bulk-data-delete-request); a running
        worker, in whichever process, stops at its next page."""
        self._live_row(job_id, caller)
        with transaction(self._engine, write=True) as repo:
            deleted = repo.delete_export_jobs([job_id])
        self._remove_files(job_id)
        if not deleted:
            raise NotFound(f"No export job {job_id!r}")

    def open_file(self, job_id: str, name: str, *, caller: Caller) -> tuple[BinaryIO, bool]:
        """An output file of a completed, unexpired job, opened for reading, and whether it
        holds labelled records of other agencies; NotFound otherwise. The handle stays
        readable if the file is removed meanwhile."""
        row = self._live_row(job_id, caller)
        if FILE_RE.match(name):
            # The file holds one type: the token that fetches it must read that type (another
            # client of the same agency may have started the export).
            require(caller, name.removesuffix(".ndjson"), "rs")
        manifest = orjson.loads(row["manifest"] or "{}")
        listed = {item["file"] for item in manifest.get("output", [])}
        labelled = name in (manifest.get("extension") or {}).get(LABELLED_FILES, ())
        if row["status"] != "completed" or not FILE_RE.match(name) or name not in listed:
            raise NotFound(f"Export job {job_id} has no file {name!r}")
        try:
            return (self._root / job_id / name).open("rb"), labelled
        except FileNotFoundError as exc:
            # Another process wrote it and data_dir is not shared, or it was just removed.
            log.warning("export file %s/%s is listed but not on disk", job_id, name)
            raise NotFound(f"Export job {job_id} has no file {name!r}") from exc

    def _live_row(self, job_id: str, caller: Caller) -> dict[str, Any]:
        """The job's row; an agency sees only its own jobs (another's answer 404)."""
        unknown = NotFound(f"No export job {job_id!r} (it may have been cancelled or expired)")
        if not JOB_ID_RE.match(job_id):
            raise unknown
        with transaction(self._engine, write=False, single_read=True) as repo:
            row = repo.export_job(job_id)
        if row is not None and caller.agency is not None and row["requester"] != caller.agency:
            raise unknown  # another agency's job answers as one that does not exist
        if row is None:
            self._remove_files(job_id)  # left behind if another process removed the row
            raise unknown
        expires = row["expires_at"]
        if expires is not None and expires <= self._wall():
            with transaction(self._engine, write=True) as repo:
                repo.delete_export_jobs([job_id])
            self._remove_files(job_id)
            raise NotFound(f"Export job {job_id} expired; its files were removed")
        return row

    # -- the work ----------------------------------------------------------------------
    def _run(self, job_id: str, request: ExportRequest) -> None:
        with self._lock:
            held = self._held.get(job_id)
            if held is not None:
                held.started = True
        try:
            self._export(job_id, request)
        except _Cancelled:
            self._remove_files(job_id)
        except _Interrupted:
            self._fail(job_id, "The server stopped before the export finished; start it again")
        except Exception as exc:
            log.exception("export job %s failed", job_id)
            message = (
                exc.diagnostics
                if isinstance(exc, FHIRError)
                else "The export failed on the server; the server log has the details"
            )
            self._fail(job_id, message)
        finally:
            with self._lock:
                self._held.pop(job_id, None)

    def _export(self, job_id: str, request: ExportRequest) -> None:
        with transaction(self._engine, write=True) as repo:
            row = repo.export_job(job_id)
            started = row is not None and repo.update_export_job(
                job_id,
                statuses=("queued",),
                values={"status": "running", "updated_at": self._wall(), "progress": "running"},
            )
        if not started or row is None:
            raise _Cancelled
        until: datetime = row["transaction_time"]
        directory = self._root / job_id
        directory.mkdir(parents=True, exist_ok=True)
        outputs: list[dict[str, Any]] = []
        # Files holding labelled records of agencies other than the requester: served with
        # the redisclosure notice (42 CFR 2.32).
        labelled: list[str] = []
        written = 0
        last_progress = time.monotonic()
        for resource_type in request.types:
            count = 0
            patient_params = None
            if request.patient_params is not None and resource_type != "Patient":
                patient_params = request.patient_params[resource_type]
            path = directory / f"{resource_type}.ndjson"
            handle: BinaryIO | None = None
            try:
                pages = self._pages(
                    job_id, resource_type, request, until, patient_params, row["requester"]
                )
                for page in pages:
                    if handle is None:
                        handle = path.open("wb")
                    handle.writelines(
                        line for _, body, _ in page for line in (_one_line(body), b"\n")
                    )
                    if self._disclosed(row["requester"], resource_type, page, until):
                        labelled.append(path.name)
                    count += len(page)
                    written += len(page)
                    if time.monotonic() - last_progress >= _PROGRESS_EVERY_S:
                        last_progress = time.monotonic()
                        self._progress(job_id, f"{written} resources written ({resource_type})")
            finally:
                if handle is not None:
                    handle.close()
            if count:
                outputs.append({"type": resource_type, "file": path.name, "count": count})
        manifest = {
            "transactionTime": format_instant(until),
            "request": row["request_url"],
            # Files are served to bearers of an access token only when auth is on, and
            # only to the agency that asked for the export.
            "requiresAccessToken": self._tokens_required,
            "output": outputs,
            "error": [],
        }
        if labelled:
            manifest["extension"] = {LABELLED_FILES: sorted(set(labelled))}
        now = self._wall()
        with transaction(self._engine, write=True) as repo:
            done = repo.update_export_job(
                job_id,
                statuses=("running",),
                values={
                    "status": "completed",
                    "manifest": orjson.dumps(manifest).decode(),
                    "progress": f"completed: {written} resources",
                    "updated_at": now,
                    "expires_at": now + self._retention,
                },
            )
        if not done:
            raise _Cancelled

    def _scope(self, requester: str | None) -> AccessScope | None:
        # Evaluated per page: a consent revoked while the export runs stops the release.
        return scope_for(requester, self._clock.now())

    def _disclosed(
        self,
        requester: str | None,
        resource_type: str,
        page: Sequence[tuple[str, bytes, int]],
        until: datetime,
    ) -> bool:
        """Log the page's releases; True when it released labelled records."""
        if requester is None:
            return False
        versions = [
            StoredVersion(resource_type, resource_id, version_id, until, False, None)
            for resource_id, _, version_id in page
        ]
        return self._disclosures.record(Caller(agency=requester), versions, "export").sensitive

    def _pages(
        self,
        job_id: str,
        resource_type: str,
        request: ExportRequest,
        until: datetime,
        patient_params: tuple[str, ...] | None,
        requester: str | None,
    ) -> Iterator[list[tuple[str, bytes, int]]]:
        after: str | None = None
        while True:
            if self._stopping.is_set():
                raise _Interrupted
            scope = self._scope(requester)
            with transaction(self._engine, write=False, scope=scope) as repo:
                page = repo.export_page(
                    resource_type,
                    after_id=after,
                    since=request.since,
                    until=until,
                    patient_params=patient_params,
                    limit=self._page_size,
                )
            if not page:
                return
            # Cancelled (by any process)? Checked per page read, before it is written.
            self._check(job_id)
            yield page
            if len(page) < self._page_size:
                return
            after = page[-1][0]

    def _check(self, job_id: str) -> None:
        if self._stopping.is_set():
            raise _Interrupted
        with transaction(self._engine, write=False, single_read=True) as repo:
            row = repo.export_job(job_id)
        if row is None or row["status"] != "running":
            raise _Cancelled

    def _progress(self, job_id: str, text: str) -> None:
        with transaction(self._engine, write=True) as repo:
            ok = repo.update_export_job(
                job_id,
                statuses=("running",),
                values={"progress": text[:255], "updated_at": self._wall()},
            )
        if not ok:
            raise _Cancelled

    def _fail(self, job_id: str, message: str) -> None:
        self._remove_files(job_id)
        now = self._wall()
        try:
            with transaction(self._engine, write=True) as repo:
                repo.update_export_job(
                    job_id,
                    statuses=_PENDING,
                    values={
                        "status": "failed",
                        "error": message,
                        "progress": None,
                        "updated_at": now,
                        "expires_at": now + self._retention,
                    },
                )
        except Exception:  # the stale-job sweep of any process fails it later
            log.warning("could not record the failure of export job %s", job_id, exc_info=True)

    def _remove_files(self, job_id: str) -> None:
        if JOB_ID_RE.match(job_id):
            shutil.rmtree(self._root / job_id, ignore_errors=True)

    # -- the monitor -------------------------------------------------------------------
    def _monitor_loop(self) -> None:
        while not self._stopping.wait(self._tick):
            try:
                self.heartbeat()
                self.sweep()
            except Exception:  # retried next tick
                log.warning("export monitor tick failed", exc_info=True)

    def heartbeat(self) -> None:
        """Tell other processes this one still holds its queued and running jobs."""
        with self._lock:
            ids = list(self._held)
        if ids:
            with transaction(self._engine, write=True) as repo:
                repo.touch_export_jobs(ids, statuses=_PENDING, at=self._wall())

    def sweep(self) -> None:
        """Remove expired jobs and their files; fail jobs whose process stopped."""
        now = self._wall()
        with transaction(self._engine, write=False) as repo:
            expired = repo.expired_export_jobs(now, _SWEEP_BATCH)
            stale = repo.stale_export_jobs(statuses=_PENDING, before=now - STALE_AFTER)
        if expired:
            with transaction(self._engine, write=True) as repo:
                repo.delete_export_jobs(expired)
            for job_id in expired:
                self._remove_files(job_id)
        for job_id in stale:
            self._fail(job_id, "The server process running this export stopped; start it again")


__all__ = [
    "ExportJobStatus",
    "ExportRequest",
    "ExportService",
    "KickOff",
    "parse_request",
    "patient_compartment",
]
