"""Online backup and restore of the embedded SQLite database (`casebridge backup|restore`).

The backup is SQLite's online backup API (sqlite.org/backup.html) in one step: it reads
the database inside one read transaction, so the copy is the database as of one instant
(every write committed before it, none after) while the server goes on serving; in WAL
mode writers are not blocked. The copy is written beside its destination, checked
(integrity_check, the migration revision) and synced before it is renamed into place, so a
backup file is whole or absent. PostgreSQL is backed up with its own tools (README,
"Operating casebridge").
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url


class BackupError(Exception):
    """A backup or restore that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup or restore copied."""

    path: Path
    bytes: int
    resources: int
    revision: str
    seconds: float


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL; BackupError for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError(
            f"{parsed.get_backend_name()} is backed up with its own tools (pg_dump or a base "
            "backup: README, Operating casebridge)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("An in-memory database has nothing to back up")
    return Path(parsed.database)


def _check(connection: sqlite3.Connection, path: Path) -> tuple[int, str]:
    """(current resources, migration revision) of a whole, migrated casebridge database."""
    try:
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database ({exc})") from exc
    if problems != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(problems[:3])}")
    try:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        resources = connection.execute("SELECT count(*) FROM resource WHERE deleted = 0").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a casebridge database ({exc})") from exc
    if revision is None:
        raise BackupError(f"{path} is not migrated")
    return int(resources[0]), str(revision[0])


def fsync_path(path: Path) -> None:
    """Sync a file (or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(source: Path, destination: Path) -> BackupSummary:
    """Copy the live database at source to destination (a new file, or one replaced)."""
    started = time.monotonic()
    if not source.is_file():
        raise BackupError(f"No database at {source}")
    if destination.resolve() == source.resolve():
        raise BackupError("The backup would overwrite the database itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(partial)) as copy:
            live.execute("PRAGMA busy_timeout=30000")
            # pages=-1: all of it in one step, inside one read transaction (a stepwise copy
            # starts over whenever another connection writes, which a busy server always does).
            live.backup(copy, pages=-1)
            # A standalone file: no -wal beside it to lose when it is copied elsewhere.
            copy.execute("PRAGMA journal_mode=DELETE")
            resources, revision = _check(copy, partial)
        fsync_path(partial)
        partial.replace(destination)
        fsync_path(destination.parent)
    finally:
        partial.unlink(missing_ok=True)
    return BackupSummary(
        destination, destination.stat().st_size, resources, revision, time.monotonic() - started
    )


def restore(backup_file: Path, target: Path) -> BackupSummary:
    """Replace the database at target with the backup's content (the server is stopped).

    Written through SQLite's backup API into the target, so the target's own WAL and
    journal are kept right; the backup is checked before anything is touched."""
    started = time.monotonic()
    if not backup_file.is_file():
        raise BackupError(f"No backup at {backup_file}")
    with closing(sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)) as source:
        resources, revision = _check(source, backup_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(target)) as database:
            database.execute("PRAGMA busy_timeout=30000")
            source.backup(database, pages=-1)
            database.execute("PRAGMA journal_mode=WAL")
            database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return BackupSummary(
        target, target.stat().st_size, resources, revision, time.monotonic() - started
    )


__all__ = ["BackupError", "BackupSummary", "backup", "fsync_path", "restore", "sqlite_path"]
