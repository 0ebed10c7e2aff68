"""Bulk data export routes (HL7 Bulk Data Access IG v2.0.0, export.html).

    GET    /fhir/$export, /fhir/Patient/$export     kick-off (Prefer: respond-async) -> 202
    GET    /fhir/$export-status/{job}               202 + X-Progress, 200 manifest, or error
    DELETE /fhir/$export-status/{job}               cancel and delete -> 202, then 404
    GET    /fhir/$export-file/{job}/{file}          application/fhir+ndjson, streamed

This router is included before the FHIR router, whose /{type} and /{type}/{id} would
otherwise take these paths.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from email.utils import format_datetime
from typing import BinaryIO

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import CallerDep, ServicesDep, get_caller, negotiate, require_named
from app.api.render import json_response, notice_headers, query_pairs
from app.fhir.errors import FHIRError, InvalidRequest, Issue, MethodNotAllowed, operation_outcome
from app.security.scopes import named_types
from app.services.disclosure import Release
from app.services.jobs.export import Level, parse_request

router = APIRouter(prefix="/fhir")
# Status polls and file downloads need a token too (requiresAccessToken in the manifest).
_negotiated = [Depends(negotiate), Depends(get_caller)]
NDJSON = "application/fhir+ndjson"
_CHUNK = 256 * 1024
# Seconds a client should wait between status polls (export.html#response---in-progress-status).
_RETRY_AFTER = "2"


class ExportFailed(FHIRError):
    """500: the export job failed on the server (export.html#response---error-status-1)."""

    status = 500
    code = "exception"


def _preferences(request: Request) -> set[str]:
    """Prefer header tokens, lower-cased: "respond-async", "handling=lenient" (RFC 7240)."""
    found: set[str] = set()
    for header in request.headers.getlist("prefer"):
        for part in header.replace(";", ",").split(","):
            name, _, value = part.partition("=")
            token = name.strip().lower()
            value = value.strip().strip('"').strip().lower()
            if token:
                found.add(f"{token}={value}" if value else token)
    return found


def _kick_off(
    request: Request, services: ServicesDep, caller: CallerDep, level: Level, path: str
) -> Response:
    preferences = _preferences(request)
    if "respond-async" not in preferences:
        raise InvalidRequest(
            "$export runs asynchronously: send the header Prefer: respond-async",
            expression=("Prefer",),
        )
    params = query_pairs(request)
    export = parse_request(level, params, lenient="handling=lenient" in preferences)
    # Bulk Data Access IG: exporting a type needs system/[type].read, i.e. r and s.
    require_named(caller, request, export.types if named_types(params) else None)
    base = services.settings.base_url
    query = request.url.query
    accepted = services.exports.kick_off(
        export, caller=caller, request_url=f"{base}{path}" + (f"?{query}" if query else "")
    )
    status_url = f"{base}/$export-status/{accepted.job_id}"
    issues = [Issue("informational", f"Export accepted; poll {status_url}", "information")]
    issues += [
        Issue("not-supported", f"Parameter {name!r} is not supported; ignored", "warning", (name,))
        for name in accepted.ignored
    ]
    return json_response(operation_outcome(issues), 202, {"Content-Location": status_url})


@router.get("/$export", dependencies=_negotiated)
def system_export(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """System-level export kick-off (export.html#endpoint---system-level-export)."""
    return _kick_off(request, services, caller, "system", "/$export")


@router.get("/Patient/$export", dependencies=_negotiated)
def patient_export(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """Patient-level export kick-off: every patient's compartment."""
    return _kick_off(request, services, caller, "patient", "/Patient/$export")


@router.post("/$export", dependencies=[Depends(get_caller)])
@router.post("/Patient/$export", dependencies=[Depends(get_caller)])
def export_by_post(request: Request) -> Response:
    """Kick-off by POST with a Parameters resource is optional in the IG and not offered."""
    raise MethodNotAllowed(
        f"POST {request.url.path} is not supported; start an export with GET",
        headers={"Allow": "GET"},
    )


@router.get("/$export-status/{job_id}", dependencies=_negotiated)
def export_status(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Status poll (export.html#bulk-data-status-request)."""
    status = services.exports.status(job_id, caller=caller)
    if status.state == "completed":
        headers = {}
        if status.expires_at is not None:
            headers["Expires"] = format_datetime(status.expires_at, usegmt=True)
        return Response(
            content=orjson.dumps(status.manifest),
            status_code=200,
            headers=headers,
            media_type="application/json",
        )
    if status.state == "failed":
        raise ExportFailed(status.error or "The export failed")
    return Response(
        status_code=202,
        headers={"X-Progress": status.progress or status.state, "Retry-After": _RETRY_AFTER},
    )


@router.delete("/$export-status/{job_id}", dependencies=_negotiated)
def export_cancel(job_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """Cancel and delete (export.html#bulk-data-delete-request): 202, then polls answer 404."""
    services.exports.cancel(job_id, caller=caller)
    outcome = operation_outcome(
        [Issue("informational", f"Export {job_id} cancelled and its files deleted", "information")]
    )
    return json_response(outcome, 202)


async def _stream(handle: BinaryIO) -> AsyncIterator[bytes]:
    # Reads run on the event loop, as read and vread do: a chunk from the page cache costs
    # less than a hand-off to the handler pool, which writers share.
    try:
        while chunk := handle.read(_CHUNK):
            yield chunk
    finally:
        handle.close()


@router.get("/$export-file/{job_id}/{name}")
def export_file(job_id: str, name: str, services: ServicesDep, caller: CallerDep) -> Response:
    """An output file (export.html#file-request): NDJSON, one resource a line."""
    handle, labelled = services.exports.open_file(job_id, name, caller=caller)
    size = os.fstat(handle.fileno()).st_size
    headers = {"Content-Length": str(size)}
    regime = services.disclosures.regime
    headers.update(notice_headers(Release(sensitive=labelled, regime=regime)))
    return StreamingResponse(_stream(handle), media_type=NDJSON, headers=headers)
