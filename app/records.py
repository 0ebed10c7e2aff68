"""The shape every layer passes around: one version of a resource as stored.

Its own module, below every package of the app, so the API and the FHIR rules can speak of
stored versions without importing the storage layer (docs/architecture.md, the layers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored (body None for a deletion)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    body: bytes | None
    method: str = ""
    # The owner row read with the version, when the read joined it (a search page for an
    # agency): (agency, sensitive), or None for a record with no owner row. The
    # disclosure log then needs no lookup of its own.
    owner: tuple[str | None, bool] | None = field(default=None, compare=False)
    owner_read: bool = field(default=False, compare=False)


__all__ = ["StoredVersion"]
