"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import ServicesDep
from app.api.render import json_response

router = APIRouter()


@router.get("/healthz")
def healthz() -> Response:
    """The process is up and serving."""
    return json_response({"status": "ok"}, media_type="application/json")


@router.get("/readyz")
def readyz(services: ServicesDep) -> Response:
    """The database answers and its schema is at the migration this code expects."""
    services.health.check_ready()
    return json_response({"status": "ready"}, media_type="application/json")
