"""Readiness: is the database reachable, and at the migration this code expects?"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.fhir.errors import Transient
from app.storage.db import is_migrated

log = logging.getLogger(__name__)


class NotReady(Transient):
    """503: the service cannot serve requests yet."""


class HealthService:
    """Checks behind /readyz."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    def check_ready(self) -> None:
        """Raise NotReady unless the database answers and is migrated."""
        try:
            migrated = is_migrated(self._engine)
        except SQLAlchemyError as exc:
            log.warning("readiness: database unreachable: %s", exc)
            raise NotReady("The database is unreachable") from exc
        if not migrated:
            raise NotReady("The database is not migrated; run `casebridge db upgrade`")
