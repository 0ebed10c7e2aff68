"""Bulk loading: NDJSON resources (one per line) stored as new resources, fast.

Each line goes through the same steps as an HTTP create (strict JSON, check_resource, index
extraction, stamping), but on a pool of worker processes: validation is CPU-bound and one
process validates about 3,500 case-management resources a second. Workers hand back stamped
bytes and index rows; the parent writes them in batches of several hundred resources per
transaction with Repository.insert_new (multi-row inserts), on a writer thread so that
database round trips overlap with receiving the next results.

Decisions:
- A line's ``id`` is kept (references between lines must resolve); a line without one gets
  a new id. A present but malformed id fails the line rather than being replaced, since
  other lines may refer to it.
- A bulk load only creates. A resource whose type and id already exist (live or deleted) is
  reported as failed and left untouched; the check is one query per type per batch, inside
  the write transaction, so it also sees earlier batches of the same file.
- A bad line never stops the load: it is reported with its line number and an
  OperationOutcome and nothing of it is stored. Only an unavailable database stops it
  (after retries), and batches committed before that stay committed.
- Concurrent server writes are safe: batches take the writers' shared type locks on
  PostgreSQL and the write gate on SQLite. A client creating the very same id with PUT while
  its batch is open may see that PUT fail; bulk loads are for ids nobody else writes yet.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import FHIRError, Issue, StructureError, Transient, operation_outcome
from app.fhir.jsonio import parse_json
from app.fhir.resource import stamp
from app.fhir.validation import check_resource, check_type_and_id
from app.search.extract import extract_index
from app.security.policy import (
    AOD_LABELS,
    REGIMES,
    add_aod_labels,
    is_sensitive,
    labelable,
    labels_requested,
    owned,
)
from app.services.rules.access import is_aod_agency_in, rebuild_shares
from app.services.uow import transaction
from app.storage.db import create_db_engine, write_gate
from app.storage.rows import NEW_TABLES, NewRows, new_rows
from app.storage.tables import metadata, resource_owner_table, resource_table

log = logging.getLogger(__name__)

DEFAULT_BATCH: Final = 1000
# PostgreSQL takes each batch as one COPY per table: 4,000 resources a batch loaded 3,182
# resources/s against 2,784/s for 1,000 (204,089 resources, side by side). SQLite keeps
# 1,000: a batch holds the write lock that the server's writers wait for.
POSTGRES_BATCH: Final = 4000


def default_batch(engine: Engine) -> int:
    """Resources per load transaction when none is asked for."""
    return POSTGRES_BATCH if engine.dialect.name == "postgresql" else DEFAULT_BATCH


# Lines per task sent to a worker: large enough that pickling overhead is small, small
# enough that all workers stay busy near the end of a file.
CHUNK_LINES: Final = 250
MAX_KEPT_FAILURES: Final = 10_000
_TRANSIENT_RETRIES: Final = 5
# SQLite page cache of a loading connection (KiB). The default 2 MB makes every index insert
# into a large table re-read its B-tree pages; with 256 MB a 100,000-resource load ran 3,015
# resources/s instead of 2,392.
SQLITE_CACHE_KIB: Final = 262_144


def bulk_engine(settings: Settings) -> Engine:
    """An engine for bulk loading and reindexing: the app's engine with a large SQLite page
    cache (each connection of this engine holds up to SQLITE_CACHE_KIB)."""
    engine = create_db_engine(
        settings.effective_database_url, pool_size=2, busy_timeout_ms=settings.db_busy_timeout_ms
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _large_cache(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")

    return engine


@dataclass(frozen=True, slots=True)
class LineFailure:
    """A line that was not stored: its number (1-based) and why, as OperationOutcome issues."""

    line: int
    issues: tuple[Issue, ...]

    @property
    def message(self) -> str:
        """The issues' diagnostics on one line."""
        return "; ".join(issue.diagnostics for issue in self.issues[:5])

    def outcome(self) -> dict[str, Any]:
        """The failure as an OperationOutcome resource."""
        return operation_outcome(list(self.issues))


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """How far a load has got (reported after every chunk of lines)."""

    lines: int
    bytes_read: int
    loaded: int
    failed: int


@dataclass
class LoadSummary:
    """The outcome of a load: counts, time taken, and the failures (the first 10,000)."""

    loaded: int = 0
    failed: int = 0
    # Resources whose type/id already existed, left as they were (skip_existing).
    skipped: int = 0
    seconds: float = 0.0
    failures: list[LineFailure] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Resources stored per second."""
        return self.loaded / self.seconds if self.seconds > 0 else 0.0


class LoadAborted(RuntimeError):
    """The database stayed unavailable; `summary` says what was stored before that."""

    def __init__(self, message: str, summary: LoadSummary) -> None:
        super().__init__(message)
        self.summary = summary


# (line, resource type, id, its rows for NEW_TABLES, labelled). The rows are plain tuples:
# unpickling dataclasses ran Python code per row in the loading process, which is the one
# process every resource passes through.
Prepared: TypeAlias = tuple[int, str, str, NewRows, bool]


# -- the worker side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Preparer:
    """Turns raw lines into stamped bodies and index rows (runs in the worker processes)."""

    base_url: str
    max_depth: int
    clock: Clock
    # The loading agency is an AOD service: its records get the AOD labels, as on REST.
    aod: bool = False
    # The labels of the privacy regime (CASEBRIDGE_PRIVACY_REGIME).
    labels: tuple[dict[str, str], ...] = AOD_LABELS

    def line(self, number: int, raw: bytes) -> Prepared | LineFailure:
        """One line, validated like an HTTP create; a failure instead of any exception."""
        try:
            body = parse_json(raw, max_depth=self.max_depth)
            if not isinstance(body, dict):
                raise StructureError("Each line must hold one JSON object: a FHIR resource")
            resource_type = body.get("resourceType")
            if not isinstance(resource_type, str):
                raise StructureError(
                    "The resource has no resourceType", expression=("resourceType",)
                )
            check_type_and_id(resource_type)
            given_id = body.get("id")
            if given_id is not None and not isinstance(given_id, str):
                raise StructureError(
                    "Resource.id must be a string", expression=(f"{resource_type}.id",)
                )
            if given_id is not None:
                check_type_and_id(resource_type, given_id)
            resource = check_resource(body, resource_type=resource_type, resource_id=given_id)
            if labelable(resource_type) and (self.aod or labels_requested(resource)):
                add_aod_labels(resource, self.labels)
            resource_id = given_id if given_id is not None else self.clock.new_id()
            index = extract_index(resource_type, resource, own_base=self.base_url)
            now = self.clock.now()
            stamped = stamp(resource, resource_id=resource_id, version_id=1, last_updated=now)
            rows = new_rows(resource_type, resource_id, 1, now, "POST", stamped, index)
        except FHIRError as exc:
            return LineFailure(number, tuple(exc.issues))
        except Exception as exc:  # a validator's bug must cost one line, not the whole load
            log.exception("unexpected error preparing line %d", number)
            issue = Issue(
                "exception", f"Unexpected error validating the resource ({type(exc).__name__})"
            )
            return LineFailure(number, (issue,))
        sensitive = is_sensitive(resource)
        return (number, resource_type, resource_id, rows, sensitive)

    def chunk(self, lines: Sequence[tuple[int, bytes]]) -> list[Prepared | LineFailure]:
        """A chunk of lines, in order."""
        return [self.line(number, raw) for number, raw in lines]


_worker: _Preparer | None = None


def _init_worker(preparer: _Preparer) -> None:
    global _worker
    _worker = preparer
    # Validation allocates many short-lived objects; the long-lived ones (modules, models)
    # need not be scanned by every collection.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _prepare_chunk(lines: Sequence[tuple[int, bytes]]) -> list[Prepared | LineFailure]:
    assert _worker is not None, "worker not initialised"
    return _worker.chunk(lines)


# -- the parent side ---------------------------------------------------------------------


def _pool_context() -> Any:
    # forkserver: the parent may run threads (a live server in tests, the writer thread),
    # and forking a threaded process can copy a held lock into the child. The server
    # process imports the validation stack once; workers fork from it ready to go.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _read_lines(
    stream: IO[bytes], max_bytes: int, failures: list[LineFailure], counters: list[int]
) -> Iterator[list[tuple[int, bytes]]]:
    """Chunks of (line number, bytes), skipping blank lines; over-size lines fail here."""
    chunk: list[tuple[int, bytes]] = []
    for number, raw in enumerate(stream, start=1):
        counters[0] = number
        counters[1] += len(raw)
        if len(raw) > max_bytes:
            message = f"The line is {len(raw):,} bytes; at most {max_bytes:,} are accepted"
            failures.append(LineFailure(number, (Issue("too-costly", message),)))
            continue
        if not raw.strip():
            continue
        chunk.append((number, raw))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# Types whose referral shares and consent grants are derived from their bodies.
_SHARING_TYPES: Final = ("Task", "ServiceRequest", "Consent")


class _Writer:
    """Writes batches of prepared resources, each in one transaction."""

    def __init__(
        self, engine: Engine, *, skip_existing: bool = False, agency: str | None = None
    ) -> None:
        self._engine = engine
        self._skip_existing = skip_existing
        self._agency = agency
        # Ids stored of the types whose referral shares and consent grants are derived
        # afterwards (rebuild_shares).
        self.stored: dict[str, list[str]] = {name: [] for name in _SHARING_TYPES}
        self.skipped = 0
        self.wal = WalKeeper(engine)
        self._stored = 0
        # PostgreSQL: when to refresh the resource table's statistics next (see below).
        self._analyze_at = 2000 if engine.dialect.name == "postgresql" else None

    def write(self, batch: list[Prepared]) -> tuple[int, list[LineFailure]]:
        """Store what can be stored; (how many were stored, the lines refused)."""
        failures: list[LineFailure] = []
        unique: dict[tuple[str, str], Prepared] = {}
        for item in batch:
            key = (item[1], item[2])
            earlier = unique.get(key)
            if earlier is not None:
                failures.append(_duplicate(item, f"line {earlier[0]} of this file holds it too"))
            else:
                unique[key] = item
        items = list(unique.values())
        try:
            stored, refused = self._retrying(partial(self._write_checked, items))
        except DBAPIError:
            # Something in the batch broke a database rule: the id of a deleted resource
            # (the batch check sees live ones only), an id a concurrent writer just took, a
            # value a column refuses. Find it resource by resource.
            stored, refused = 0, []
            for item in items:
                count, problems = self._retrying(partial(self._write_one, item))
                stored += count
                refused += problems
        self.wal.between_batches()
        self._stored += stored
        if self._analyze_at is not None and self._stored >= self._analyze_at:
            # psycopg prepares a statement run five times, and PostgreSQL may then keep a
            # generic plan made while the table was nearly empty: the existence check became
            # a scan of the whole table (a 300,000-resource load ran at a fifth of its
            # starting speed by the end). Fresh statistics invalidate such plans; doubling
            # the interval keeps it to a few dozen ANALYZEs of a sample.
            with self._engine.connect() as conn:
                conn.exec_driver_sql(f"ANALYZE {resource_table.name}")
                conn.commit()
            self._analyze_at *= 2
        return stored, failures + refused

    def _note(self, items: Sequence[Prepared]) -> None:
        for item in items:
            ids = self.stored.get(item[1])
            if ids is not None:
                ids.append(item[2])

    def _owners(self, items: Sequence[Prepared]) -> list[tuple[str, str, str | None, bool]]:
        """Owner rows as the REST write path keeps them (app/services/rules/access.py)."""
        return [
            (item[1], item[2], self._agency, item[4])
            for item in items
            if owned(item[1], agency=self._agency, sensitive=item[4])
        ]

    def _retrying(
        self, action: Callable[[], tuple[int, list[LineFailure]]]
    ) -> tuple[int, list[LineFailure]]:
        for attempt in range(_TRANSIENT_RETRIES):
            try:
                return action()
            except Transient:
                if attempt == _TRANSIENT_RETRIES - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _write_checked(self, items: list[Prepared]) -> tuple[int, list[LineFailure]]:
        with transaction(self._engine, write=True) as repo:
            by_type: dict[str, list[str]] = {}
            for item in items:
                by_type.setdefault(item[1], []).append(item[2])
            existing: set[tuple[str, str]] = set()
            for resource_type in sorted(by_type):
                # The same lock order as every other writer: shared type locks.
                repo.lock_type(resource_type, exclusive=False)
            for resource_type, ids in by_type.items():
                # Repository.live, a plain IN lookup: find_ids' ORDER BY id LIMIT n made the
                # check grow with the table on PostgreSQL (214 s of a 275 s load of 300,000).
                found = repo.live(resource_type, ids)
                existing.update((resource_type, version.id) for version in found)
            fresh = [item for item in items if (item[1], item[2]) not in existing]
            repo.insert_new_rows(_concatenated(fresh))
            repo.insert_rows(resource_owner_table, self._owners(fresh))
        self._note(fresh)
        if self._skip_existing:
            self.skipped += len(items) - len(fresh)
            return len(fresh), []
        refused = [
            _duplicate(item, "it already exists")
            for item in items
            if (item[1], item[2]) in existing
        ]
        return len(fresh), refused

    def _write_one(self, item: Prepared) -> tuple[int, list[LineFailure]]:
        try:
            with transaction(self._engine, write=True) as repo:
                repo.lock_type(item[1], exclusive=False)
                repo.lock(f"{item[1]}/{item[2]}")
                if repo.current(item[1], item[2]) is not None:
                    if self._skip_existing:
                        self.skipped += 1
                        return 0, []
                    return 0, [_duplicate(item, "it already exists (or was deleted)")]
                repo.insert_new_rows(item[3])
                repo.insert_rows(resource_owner_table, self._owners([item]))
            self._note([item])
        except DBAPIError as exc:
            # The driver's text may quote the record's values: name the error only.
            message = f"The database refused the resource ({type(exc.orig or exc).__name__})"
            return 0, [LineFailure(item[0], (Issue("exception", message),))]
        return 1, []


def _concatenated(items: Sequence[Prepared]) -> NewRows:
    """The rows of many resources, one list per table."""
    return tuple([row for item in items for row in item[3][n]] for n in range(len(NEW_TABLES)))


def _duplicate(item: Prepared, why: str) -> LineFailure:
    message = (
        f"{item[1]}/{item[2]} was not loaded: {why}; a bulk load only creates resources "
        "(use PUT to update one)"
    )
    return LineFailure(item[0], (Issue("duplicate", message, "error", (f"{item[1]}.id",)),))


# What a load writes: the resources, their history, index and owner rows, referral shares.
_LOADED_TABLES: Final = frozenset(
    {
        "resource",
        "resource_version",
        "search_token",
        "search_of_type",
        "search_string",
        "search_reference",
        "search_date",
        "search_quantity",
        "search_number",
        "search_uri",
        "resource_owner",
        "access_grant",
    }
)


def analyze(engine: Engine) -> None:
    """Refresh the query planner's statistics, as after any large load: SQLite keeps none
    until told, and PostgreSQL's autovacuum would only catch up later.

    On PostgreSQL the loaded tables are vacuumed too: until a VACUUM marks their pages
    all-visible, every index-only scan of a search still reads each row from the heap."""
    gate = write_gate(engine)
    with engine.connect() as conn, gate.held() if gate is not None else nullcontext():
        if conn.dialect.name == "sqlite":
            # ANALYZE writes its statistics: a writer's transaction (read ones are read-only).
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            # Sampled: a full ANALYZE reads every index of a multi-gigabyte file.
            conn.exec_driver_sql("PRAGMA analysis_limit=2000")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            return
        tables = ", ".join(
            table.name for table in metadata.sorted_tables if table.name in _LOADED_TABLES
        )
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f"VACUUM (ANALYZE) {tables}"
        )


class WalKeeper:
    """Keeps a SQLite WAL from growing while a long job writes; does nothing on PostgreSQL.

    The engine turns SQLite's automatic checkpoints off and the server checkpoints
    passively, which never lets the WAL start over while a writer appends without pause: a
    million-resource load grew it past 10 GB. Every few seconds, between two batches and
    holding the write gate (so no writer of any process is active), a RESTART checkpoint
    copies the WAL into the database and lets the next transaction write from its start.
    """

    def __init__(self, engine: Engine, every_s: float = 2.0) -> None:
        self._engine = engine
        self._every = every_s
        self._enabled = engine.dialect.name == "sqlite"
        self._last = time.monotonic()

    def between_batches(self, *, final: bool = False) -> None:
        """Checkpoint if it is time (always when final, which also truncates the file)."""
        if not self._enabled or (not final and time.monotonic() - self._last < self._every):
            return
        gate = write_gate(self._engine)
        try:
            with self._engine.connect() as conn, gate.held() if gate else nullcontext():
                # Outside a transaction: SQLite refuses to checkpoint inside one.
                conn = conn.execution_options(sqlite_begin=None)
                mode = "TRUNCATE" if final else "RESTART"
                conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
        except (TimeoutError, DBAPIError):  # busy readers or writers: try again next time
            log.warning("WAL checkpoint skipped", exc_info=True)
        self._last = time.monotonic()


def load_ndjson(
    source: Path | IO[bytes],
    *,
    engine: Engine,
    settings: Settings,
    workers: int | None = None,
    batch_size: int | None = None,
    clock: Clock | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
    skip_existing: bool = False,
    agency: str | None = None,
) -> LoadSummary:
    """Load NDJSON resources as new resources; bad lines are reported, never stored.

    skip_existing: a type/id that already exists is left as it is and counted as skipped
    (an import run again stores nothing twice) instead of being reported as failed.

    agency: the agency ("Organization/{id}") the records belong to, as if it had written
    them over the API (its AOD labels included); None: the local operator's, which no
    agency sees unless a referral and a consent share them. Referral shares and consent
    grants of the loaded Tasks and Consents are derived after the load.

    workers: processes preparing lines (default: one per CPU); 0 prepares them in this
    process (the clock need not then be picklable). Raises LoadAborted when the database
    stays unavailable.
    """
    if isinstance(source, Path):
        with source.open("rb") as stream:
            return load_ndjson(
                stream, engine=engine, settings=settings, workers=workers,
                batch_size=batch_size, clock=clock, on_progress=on_progress,
                skip_existing=skip_existing, agency=agency,
            )  # fmt: skip
    workers = (os.cpu_count() or 1) if workers is None else workers
    batch_size = max(1, default_batch(engine) if batch_size is None else batch_size)
    preparer = _Preparer(
        settings.base_url,
        settings.max_json_depth,
        clock or Clock(),
        aod=is_aod_agency_in(engine, agency),
        labels=REGIMES[settings.privacy_regime].labels,
    )
    summary = LoadSummary()
    failures: list[LineFailure] = []
    counters = [0, 0]  # lines read, bytes read
    started = time.perf_counter()
    chunks = _read_lines(source, settings.max_body_bytes, failures, counters)
    writer = _Writer(engine, skip_existing=skip_existing, agency=agency)
    thresholds = gc.get_threshold()
    # The parent churns through millions of short-lived rows; collecting every 700
    # allocations rescans the long-lived heap each time for nothing.
    gc.set_threshold(50_000, 20, 20)
    try:
        with ThreadPoolExecutor(1, "bulk-writer") as write_pool:
            pending: Future[tuple[int, list[LineFailure]]] | None = None
            batch: list[Prepared] = []

            def flush() -> None:
                nonlocal pending, batch
                if pending is not None:
                    stored, refused = pending.result()
                    summary.loaded += stored
                    failures.extend(refused)
                pending = write_pool.submit(writer.write, batch) if batch else None
                batch = []

            for results in _prepared(chunks, preparer, workers):
                for result in results:
                    if isinstance(result, LineFailure):
                        failures.append(result)
                    else:
                        batch.append(result)
                if len(batch) >= batch_size:
                    flush()
                if on_progress is not None:
                    on_progress(
                        LoadProgress(counters[0], counters[1], summary.loaded, len(failures))
                    )
            flush()
            flush()
        writer.wal.between_batches(final=True)
    except Transient as exc:
        summary.failed = len(failures)
        summary.failures = sorted(failures, key=attrgetter("line"))[:MAX_KEPT_FAILURES]
        summary.seconds = time.perf_counter() - started
        raise LoadAborted(f"the database stayed unavailable: {exc.diagnostics}", summary) from exc
    finally:
        gc.set_threshold(*thresholds)
    if any(writer.stored.values()):
        rebuild_shares(engine, own_base=settings.base_url, stored=writer.stored)
    summary.seconds = time.perf_counter() - started
    summary.skipped = writer.skipped
    summary.failed = len(failures)
    summary.failures = sorted(failures, key=attrgetter("line"))[:MAX_KEPT_FAILURES]
    if on_progress is not None:
        on_progress(LoadProgress(counters[0], counters[1], summary.loaded, summary.failed))
    return summary


def _prepared(
    chunks: Iterable[list[tuple[int, bytes]]], preparer: _Preparer, workers: int
) -> Iterator[list[Prepared | LineFailure]]:
    """Prepared chunks in file order, from a process pool (or inline when workers is 0)."""
    if workers <= 0:
        for chunk in chunks:
            yield preparer.chunk(chunk)
        return
    # Enough chunks in flight that the workers keep going while the parent writes.
    window = max(4, 3 * workers)
    with ProcessPoolExecutor(
        workers, mp_context=_pool_context(), initializer=_init_worker, initargs=(preparer,)
    ) as pool:
        in_flight: deque[Future[list[Prepared | LineFailure]]] = deque()
        for chunk in chunks:
            in_flight.append(pool.submit(_prepare_chunk, chunk))
            if len(in_flight) >= window:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


__all__ = [
    "DEFAULT_BATCH",
    "LineFailure",
    "LoadAborted",
    "LoadProgress",
    "LoadSummary",
    "WalKeeper",
    "analyze",
    "bulk_engine",
    "load_ndjson",
]
