"""The audit log's retention: AuditEvents older than a cut-off move from the database to
compressed NDJSON archives (`casebridge audit archive`, README "Retention").

Each batch is appended to the archive of its month (`audit-YYYY-MM.ndjson.gz`, one gzip
member per batch, so a file is appended to without rewriting it) and synced before the
rows are deleted: a crash between the two leaves the batch in both places, and the next run
appends it again (ids tell the copies apart); it never leaves an event in neither. With no
archive directory the events are deleted only (where the operator's policy allows it).

Only the audit_event table is touched: the accounting of disclosures ($disclosures) and the
records themselves, with their versions and Provenance, are kept.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from app.clock import Clock
from app.services.uow import transaction
from app.storage.audit import AuditStore
from app.storage.backup import fsync_path

log = logging.getLogger(__name__)

BATCH = 5000


@dataclass(slots=True)
class ArchiveSummary:
    """What one run moved."""

    archived: int = 0
    deleted: int = 0
    files: set[Path] = field(default_factory=set)


def archive_audit(
    engine: Engine, *, before: datetime, directory: Path | None, batch: int = BATCH
) -> ArchiveSummary:
    """Move every AuditEvent recorded before `before` into directory (None: delete only)."""
    summary = ArchiveSummary()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    while True:
        with transaction(engine, write=False) as repo:
            rows = AuditStore(repo.connection).recorded_before(before, batch)
        if not rows:
            return summary
        if directory is not None:
            by_month: dict[str, list[bytes]] = defaultdict(list)
            for _, recorded, body in rows:
                data = body.encode() if isinstance(body, str) else bytes(body)
                by_month[f"{recorded:%Y-%m}"].append(data)
            for month, bodies in sorted(by_month.items()):
                path = directory / f"audit-{month}.ndjson.gz"
                with gzip.open(path, "ab") as archive:
                    archive.write(b"\n".join(bodies) + b"\n")
                fsync_path(path)
                summary.files.add(path)
                summary.archived += len(bodies)
            fsync_path(directory)
        with transaction(engine, write=True) as repo:
            summary.deleted += AuditStore(repo.connection).delete([row[0] for row in rows])


class ArchiveSchedule:
    """Runs archive_audit on a background thread every interval (first at start), for the
    events older than `days` days: CASEBRIDGE_AUDIT_ARCHIVE_DAYS in `casebridge worker`."""

    def __init__(
        self,
        engine: Engine,
        *,
        days: int,
        directory: Path | None,
        interval_s: float,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._days = days
        self._directory = directory
        self._interval = interval_s
        self._clock = clock or Clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-archive", daemon=True)

    def start(self) -> None:
        """Start the schedule."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the run in progress, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            before = self._clock.now() - timedelta(days=self._days)
            try:
                done = archive_audit(self._engine, before=before, directory=self._directory)
                if done.deleted:
                    log.info("archived %d AuditEvents recorded before %s", done.deleted, before)
            except Exception:  # the database may be away: the next run catches up
                log.warning("audit archive run failed", exc_info=True)
            self._stop.wait(self._interval)


__all__ = ["ArchiveSchedule", "ArchiveSummary", "archive_audit"]
