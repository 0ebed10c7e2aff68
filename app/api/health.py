"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ServicesDep
from app.api.render import json_response
from app.fhir.errors import Issue, operation_outcome
from app.storage.db import is_migrated

router = APIRouter()


@router.get("/healthz")
def healthz() -> Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


@router.get("/readyz")
def readyz(services: ServicesDep) -> Response:
    """The database answers and its schema is at the migration this code expects."""
    try:
        migrated = is_migrated(services.engine)
    except Exception as exc:  # any failure to reach the database means not ready
        issue = Issue("transient", f"The database is unreachable: {type(exc).__name__}")
        return json_response(operation_outcome([issue]), 503)
    if not migrated:
        issue = Issue("exception", "The database is not migrated; run `casebridge db upgrade`")
        return json_response(operation_outcome([issue]), 503)
    return json_response({"status": "ready"})
