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
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from app.services.uow import transaction
from app.storage.audit import AuditStore

BATCH = 5000


@dataclass(slots=True)
class ArchiveSummary:
    """What one run moved."""

    archived: int = 0
    deleted: int = 0
    files: set[Path] = field(default_factory=set)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
                _sync(path)
                summary.files.add(path)
                summary.archived += len(bodies)
            _sync(directory)
        with transaction(engine, write=True) as repo:
            summary.deleted += AuditStore(repo.connection).delete([row[0] for row in rows])


__all__ = ["ArchiveSummary", "archive_audit"]
