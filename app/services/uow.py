"""The services' one way into a database transaction, with storage failures made FHIR errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from app.fhir.errors import Transient
from app.storage.access import AccessScope
from app.storage.errors import StorageUnavailable
from app.storage.repository import Repository, unit_of_work

log = logging.getLogger(__name__)


@contextmanager
def transaction(
    engine: Engine,
    *,
    write: bool,
    snapshot: bool = False,
    single_read: bool = False,
    scope: AccessScope | None = None,
) -> Iterator[Repository]:
    """A Repository in one transaction, its listings confined to scope (an agency's
    access rule; None: unconfined); an unreachable or busy database becomes 503."""
    try:
        with unit_of_work(
            engine, write=write, snapshot=snapshot, single_read=single_read, scope=scope
        ) as repo:
            yield repo
    except StorageUnavailable as exc:
        # The driver's text may name hosts and users: it goes to the log, not the client.
        log.warning("database unavailable: %s", exc)
        raise Transient("The database is unavailable or busy; retry later") from exc
