"""Engines for both databases, Alembic migration state, and the SQLite checkpointer."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import QueuePool

from app.metrics import WRITE_GATE_WAIT

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x63617365627269  # an arbitrary constant key: "casebri"


# How often the checkpointer looks at the WAL's size.
_WAL_LOOK_S = 0.05
# The size a WAL file is cut back to when it starts over (SQLite's journal_size_limit).
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# Execution option (and connection info key): a SQLite transaction that may not write.
READ_ONLY = "casebridge_read_only"

# What SQLite syncs to disk at each commit (Settings.sqlite_synchronous).
SqliteSynchronous = Literal["FULL", "NORMAL"]


def _identity(value: Any) -> Any:
    return value


def create_db_engine(
    url: str,
    *,
    pool_size: int = 8,
    busy_timeout_ms: int = 5000,
    sqlite_mmap_mb: int = 2048,
    sqlite_synchronous: SqliteSynchronous = "FULL",
    sqlite_read_only_guard: bool = False,
) -> Engine:
    """Build the engine: SQLite in WAL mode with BEGIN IMMEDIATE for writers, or PostgreSQL.

    sqlite_synchronous FULL syncs the WAL at every commit, so a write acknowledged is kept
    through a power cut or an OS crash; NORMAL syncs only at checkpoints and may lose the
    last writes acknowledged before one (sqlite.org/pragma.html#pragma_synchronous).
    sqlite_read_only_guard: the services' read transactions refuse to write (the tests)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )
        _configure_sqlite(
            engine, busy_timeout_ms, sqlite_mmap_mb, sqlite_synchronous, sqlite_read_only_guard
        )
        if database and database != ":memory:":
            gate = SqliteWriteGate(Path(database), busy_timeout_ms / 1000)
            _GATES[engine] = gate
            weakref.finalize(engine, gate.close)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=busy_timeout_ms / 1000,
        pool_pre_ping=True,
        # Bodies are JSON text the service already validated: hand them over untouched.
        json_serializer=_identity,
        json_deserializer=_identity,
    )

    @event.listens_for(engine, "connect")
    def _on_pg_connect(dbapi_connection: Any, _record: Any) -> None:
        # A writer waiting on a lock gives up like a SQLite writer does (503, retry later)
        # instead of holding a pooled connection indefinitely.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        dbapi_connection.commit()

    return engine


def _configure_sqlite(
    engine: Engine,
    busy_timeout_ms: int,
    mmap_mb: int,
    synchronous: SqliteSynchronous,
    read_only_guard: bool,
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on a background thread (SqliteCheckpointer), not inside a commit.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        # Whenever the WAL starts over, its file is cut back to this size (not left at its
        # high-water mark).
        cursor.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
        cursor.execute(f"PRAGMA mmap_size={int(mmap_mb) * 1024 * 1024}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front; a deferred BEGIN that later upgrades to
        # write can fail with SQLITE_BUSY without waiting for busy_timeout.
        options = conn.get_execution_options()
        mode = options.get("sqlite_begin", "DEFERRED")
        # With the guard (the tests turn it on), the services' read transactions cannot
        # write: one that started writing after another writer committed would fail at
        # once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which no busy wait cures),
        # now and then, under load; refused every time instead, a test finds it. Not in
        # production: PRAGMA query_only expires every prepared statement of the connection
        # each time it changes, and re-preparing the searches' SQL cost reads ~25%.
        if read_only_guard:
            read_only = bool(options.get(READ_ONLY, False))
            info = conn.connection.info
            if info.get(READ_ONLY, False) != read_only:
                conn.connection.dbapi_connection.execute(f"PRAGMA query_only={int(read_only)}")
                info[READ_ONLY] = read_only
        if mode:  # None: a single statement that needs no transaction of its own
            conn.exec_driver_sql(f"BEGIN {mode}")


class SqliteWriteGate:
    """One SQLite writer at a time, queued in the kernel rather than in SQLite's busy loop.

    SQLite's busy handler sleeps with growing back-off (up to 100 ms a try) and wakes in no
    order, so under write load some requests waited over a second. Writers of this process
    queue on a thread lock and writers of other processes on an flock of a file beside the
    database; a writer then finds the database free when it issues BEGIN IMMEDIATE.
    Hand-written because no maintained library offers a timed, cross-process file lock
    that is also fair between threads.
    """

    def __init__(self, database: Path, timeout_s: float) -> None:
        self._thread_lock = threading.Lock()
        self._timeout = timeout_s
        self._fd = os.open(f"{database}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate; TimeoutError when it cannot be had within the busy timeout."""
        started = time.monotonic()
        deadline = started + self._timeout
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise TimeoutError("another writer of this process held the database too long")
        try:
            pause = 0.0002
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError("another process held the database too long") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
            WRITE_GATE_WAIT.observe(time.monotonic() - started)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        os.close(self._fd)


_GATES: weakref.WeakKeyDictionary[Engine, SqliteWriteGate] = weakref.WeakKeyDictionary()


def write_gate(engine: Engine) -> SqliteWriteGate | None:
    """The write gate of a file-backed SQLite engine, or None."""
    return _GATES.get(engine)


class SqliteCheckpointer:
    """Runs WAL checkpoints off the request path, so no request pays for one, and keeps
    the WAL file under a bound.

    A PASSIVE checkpoint each interval copies what it can into the database without waiting
    for anyone. It never lets the WAL start over while writers and readers keep coming
    (each new reader pins the WAL's end), so under sustained writes the file grew without
    bound (7 GB in 150 s, and it stayed that size). The WAL's size is looked at every 50 ms
    (a write adds hundreds of KB of frames); when it passes max_wal_bytes the checkpointer
    runs a PASSIVE checkpoint, then takes the write gate - writers of every process queue
    behind it as behind any writer - and runs a TRUNCATE checkpoint, which waits briefly
    for readers of old WAL frames to finish, then empties the file. Readers are not
    blocked.
    """

    def __init__(
        self,
        engine: Engine,
        interval_s: float,
        max_wal_bytes: int,
        *,
        busy_timeout_ms: int = 5000,
        reader_wait_ms: int = 250,
    ) -> None:
        self._engine = engine
        self._busy_timeout_ms = busy_timeout_ms
        # How long the TRUNCATE checkpoint waits for readers while it holds the write gate:
        # short, so writers never queue long behind it (a busy try is retried next tick).
        self._reader_wait_ms = reader_wait_ms
        self._interval = interval_s
        self._max_wal = max_wal_bytes
        database = engine.url.database or ""
        self._wal = Path(f"{database}-wal") if database and database != ":memory:" else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.truncations = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        # The WAL's size is looked at often (a stat), since under load it grows by tens of
        # megabytes a second; checkpoints run when it is due or the WAL is over its bound.
        last = time.monotonic()
        while not self._stop.wait(min(self._interval, _WAL_LOOK_S)):
            over = self.wal_bytes() > self._max_wal
            if not over and time.monotonic() - last < self._interval:
                continue
            last = time.monotonic()
            try:
                self.checkpoint()
            except Exception:  # a missed checkpoint is retried next tick
                log.warning("WAL checkpoint failed", exc_info=True)

    def wal_bytes(self) -> int:
        """The WAL file's size now (0 when there is none)."""
        try:
            return self._wal.stat().st_size if self._wal is not None else 0
        except FileNotFoundError:
            return 0

    def checkpoint(self) -> None:
        """A PASSIVE checkpoint; then, when the WAL is over its bound, a TRUNCATE one
        between two writers. The PASSIVE one has copied nearly everything already, so the
        writers wait only for the rest and the truncation."""
        with self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            if self.wal_bytes() <= self._max_wal:
                return
            # Again: the first one copied what was there when it began, writers went on
            # meanwhile; what the TRUNCATE below copies while writers wait is smaller.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        gate = write_gate(self._engine)
        with gate.held() if gate is not None else _nothing(), self._engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(self._reader_wait_ms)}")
            try:
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        if busy:
            log.info("WAL over %d bytes: readers kept it busy; retrying", self._max_wal)
        else:
            self.truncations += 1


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this code."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None when it was never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_migrated(engine: Engine) -> bool:
    """True when the database schema is at the head migration."""
    return current_revision(engine) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to revision on the engine's database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        # Several processes may start with --migrate at once: one migrates, the rest wait
        # and then find nothing to do.
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def ping(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
