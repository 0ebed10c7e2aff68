"""The audit log over HTTP: AuditEvent read and search (read-only), and the middleware that
hands every FHIR request to the audit (app/services/request_audit.py).

    GET  /fhir/AuditEvent/{id}            read (spec http.html#read)
    GET  /fhir/AuditEvent?...             search-type (auditevent.html#search), keyset-paged
    POST /fhir/AuditEvent/_search         the same with a form body
    POST, PUT, PATCH, DELETE              405: the log is written by the server alone

This router is included before the FHIR router, whose /{type} routes would take these paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import anyio
from fastapi import APIRouter, Depends, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import (
    CallerDep,
    SearchForm,
    ServicesDep,
    check_format,
    get_caller,
    negotiate,
)
from app.api.render import fhir_response, page_links, query_pairs
from app.api.requests import request_id_of
from app.fhir.bundles import searchset_bundle
from app.fhir.errors import MethodNotAllowed
from app.fhir.resource import parse_etag
from app.security.caller import Caller
from app.services.container import Services
from app.services.jobs.audit import Access
from app.services.request_audit import auditing_request
from app.services.usecases.audit import AuditPage

router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)])


@router.get("/AuditEvent")
def search_audit_events(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """search-type on AuditEvent (spec http.html#search, auditevent.html#search)."""
    page = services.audit.search(caller=caller, params=query_pairs(request))
    return _searchset(services, page)


@router.post("/AuditEvent/_search")
def search_audit_events_post(
    request: Request, form: SearchForm, services: ServicesDep, caller: CallerDep
) -> Response:
    """search-type on AuditEvent by POST with a form body (spec http.html#search)."""
    for key, value in form:
        if key == "_format":
            check_format(value)
    pairs = query_pairs(request) + [(k, v) for k, v in form if k not in ("_format", "_pretty")]
    return _searchset(services, services.audit.search(caller=caller, params=pairs))


@router.get("/AuditEvent/{event_id}")
def read_audit_event(event_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """read of one AuditEvent (spec http.html#read)."""
    version = services.audit.read(caller=caller, event_id=event_id)
    assert version.body is not None
    return fhir_response(version.body)


_CALLER = [Depends(get_caller)]


@router.post("/AuditEvent", dependencies=_CALLER)
@router.put("/AuditEvent", dependencies=_CALLER)
@router.delete("/AuditEvent", dependencies=_CALLER)
@router.put("/AuditEvent/{event_id}", dependencies=_CALLER)
@router.patch("/AuditEvent/{event_id}", dependencies=_CALLER)
@router.delete("/AuditEvent/{event_id}", dependencies=_CALLER)
def write_audit_event(request: Request) -> Response:
    """The audit log cannot be written through the API (IHE BALP: tamper-evident log)."""
    raise MethodNotAllowed(
        f"{request.method} is not allowed on AuditEvent: AuditEvents are recorded by the "
        "server and cannot be created, updated or deleted",
        headers={"Allow": "GET"},
    )


def _searchset(services: Services, page: AuditPage) -> Response:
    base = services.settings.base_url
    links = page_links(f"{base}/AuditEvent", page.applied, page.next_cursor)
    return fhir_response(
        searchset_bundle(page.events, base_url=base, links=links, total=None, outcome=None)
    )


# --- which request is which interaction ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    interaction: str
    # Writes that succeed are audited by the write hook, in their transaction.
    write: bool = False
    # Keep the query string (searches, history, operations) as the BALP query entity.
    query: bool = False
    # Keep the response body, to find the patient off the request path (read, vread).
    body: bool = False
    description: str | None = None
    resource_type: str | None = None


_F = "/fhir"
_KINDS: Final[dict[tuple[str, str], _Kind]] = {
    ("GET", f"{_F}"): _Kind("search-system", query=True),
    ("GET", f"{_F}/"): _Kind("search-system", query=True),
    ("POST", f"{_F}/_search"): _Kind("search-system", query=True),
    ("GET", f"{_F}/_history"): _Kind("history-system", query=True),
    ("POST", f"{_F}"): _Kind("transaction"),
    ("POST", f"{_F}/"): _Kind("transaction"),
    ("GET", f"{_F}/{{resource_type}}"): _Kind("search-type", query=True),
    ("POST", f"{_F}/{{resource_type}}/_search"): _Kind("search-type", query=True),
    ("POST", f"{_F}/{{resource_type}}"): _Kind("create", write=True),
    ("PUT", f"{_F}/{{resource_type}}"): _Kind("update", write=True, query=True),
    ("DELETE", f"{_F}/{{resource_type}}"): _Kind("delete", write=True, query=True),
    ("GET", f"{_F}/{{resource_type}}/_history"): _Kind("history-type", query=True),
    ("GET", f"{_F}/{{resource_type}}/{{resource_id}}"): _Kind("read", body=True),
    ("PUT", f"{_F}/{{resource_type}}/{{resource_id}}"): _Kind("update", write=True),
    ("PATCH", f"{_F}/{{resource_type}}/{{resource_id}}"): _Kind("patch", write=True),
    ("DELETE", f"{_F}/{{resource_type}}/{{resource_id}}"): _Kind("delete", write=True),
    ("GET", f"{_F}/{{resource_type}}/{{resource_id}}/_history"): _Kind(
        "history-instance", query=True
    ),
    ("GET", f"{_F}/{{resource_type}}/{{resource_id}}/_history/{{version_id}}"): _Kind(
        "vread", body=True
    ),
    ("GET", f"{_F}/Patient/{{patient_id}}/$everything"): _Kind(
        "operation", query=True, description="$everything", resource_type="Patient"
    ),
    ("GET", f"{_F}/CarePlan/{{care_plan_id}}/$everything"): _Kind(
        "operation", query=True, description="$everything", resource_type="CarePlan"
    ),
    ("GET", f"{_F}/$export"): _Kind("operation", query=True, description="$export"),
    ("GET", f"{_F}/Patient/$export"): _Kind(
        "operation", query=True, description="$export", resource_type="Patient"
    ),
    ("DELETE", f"{_F}/$export-status/{{job_id}}"): _Kind(
        "operation", query=True, description="$export cancel"
    ),
    ("GET", f"{_F}/$export-file/{{job_id}}/{{name}}"): _Kind(
        "operation", query=True, description="$export download"
    ),
    ("GET", f"{_F}/AuditEvent"): _Kind("search-type", query=True, resource_type="AuditEvent"),
    ("POST", f"{_F}/AuditEvent/_search"): _Kind(
        "search-type", query=True, resource_type="AuditEvent"
    ),
    ("GET", f"{_F}/AuditEvent/{{event_id}}"): _Kind("read", resource_type="AuditEvent"),
    ("POST", f"{_F}/AuditEvent"): _Kind("create", resource_type="AuditEvent"),
    ("PUT", f"{_F}/AuditEvent"): _Kind("update", resource_type="AuditEvent"),
    ("DELETE", f"{_F}/AuditEvent"): _Kind("delete", resource_type="AuditEvent"),
    ("PUT", f"{_F}/AuditEvent/{{event_id}}"): _Kind("update", resource_type="AuditEvent"),
    ("PATCH", f"{_F}/AuditEvent/{{event_id}}"): _Kind("patch", resource_type="AuditEvent"),
    ("DELETE", f"{_F}/AuditEvent/{{event_id}}"): _Kind("delete", resource_type="AuditEvent"),
}
# Not accesses to records: the CapabilityStatement, and bulk export status polls.
_SKIPPED: Final = frozenset(
    {
        ("GET", f"{_F}/metadata"),
        ("GET", f"{_F}/$versions"),
        ("GET", f"{_F}/$export-status/{{job_id}}"),
    }
)
_ID_PARAMS: Final = ("resource_id", "patient_id", "care_plan_id", "event_id")
# Outside /fhir: the plain case-management API, the referral endpoints, the reports and the
# web app's pages are accesses too, audited as operations on the record their path names.
_PLAIN_PREFIXES: Final = ("/cases", "/referrals", "/reports", "/app/")
_NOT_ACCESSES: Final = ("/app/static/",)
_PLAIN_IDS: Final = {"case_id": "EpisodeOfCare", "task_id": "Task", "plan_id": "CarePlan"}


def _audited(path: str) -> bool:
    if path.startswith(_F):
        return True
    return path.startswith(_PLAIN_PREFIXES) and not path.startswith(_NOT_ACCESSES)


_MAX_FORM: Final = 16 * 1024
_MAX_ERROR_BODY: Final = 16 * 1024


class AuditMiddleware:
    """Pure ASGI middleware: hands every request under /fhir to the audit once it has been
    answered (interaction, type, id, version, status, the caller the API resolved, the
    client address, the query, and for reads the body the patient is found in).

    It only queues: the AuditEvents are built and written on the audit's own thread. Writes
    that succeed are left to the write hook, which records them in their transaction.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        audit = services.audit
        limit = services.settings.audit_max_backlog
        if audit.recorder.backlog() > limit:
            # Slow requests down rather than let the queue (what a crash loses) grow.
            with anyio.move_on_after(services.settings.db_busy_timeout_ms / 1000):
                while audit.recorder.backlog() > limit:
                    await anyio.sleep(0.005)
        client = scope.get("client")
        response: dict[str, Any] = {"status": 500, "etag": None, "body": []}
        form: list[bytes] = []
        capture_form = scope["method"] == "POST" and scope["path"].endswith("/_search")

        async def receive_wrapper() -> Message:
            message = await receive()
            if (
                capture_form
                and message["type"] == "http.request"
                and sum(map(len, form)) < _MAX_FORM
            ):
                form.append(message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = response["status"] = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"etag":
                        response["etag"] = value.decode("latin-1")
                # Keep a body only where the audit reads it: a read's resource (its patient)
                # and an error's OperationOutcome; never, say, an export file download.
                kind = _KINDS.get((scope["method"], getattr(scope.get("route"), "path", "")))
                response["keep"] = status >= 400 or (
                    status == 200 and kind is not None and kind.body
                )
            elif message["type"] == "http.response.body" and response.get("keep"):
                response["body"].append(message.get("body", b""))
            await send(message)

        with auditing_request(client[0] if client else None, request_id_of(scope)) as state:
            try:
                await self.app(scope, receive_wrapper if capture_form else receive, send_wrapper)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or scope["path"]
                key = (scope["method"], path)
                kind = _KINDS.get(key) or _plain_kind(scope, path)
                # A write that succeeded was audited by the write hook, in its transaction.
                done = kind.write and state.writes > 0 and response["status"] < 400
                if audit.reads_audited and key not in _SKIPPED and not done:
                    access = _access(
                        scope, kind, response, b"&".join(form), state.interaction, audit.now()
                    )
                    audit.recorder.record(access)


def _plain_kind(scope: Scope, path: str) -> _Kind:
    """A request with no FHIR interaction of its own: an operation, on the record its path
    names (a case, a referral, a plan) when it names one."""
    params: dict[str, Any] = scope.get("path_params") or {}
    named = next((kind for name, kind in _PLAIN_IDS.items() if name in params), None)
    if path.startswith(_F):
        return _Kind("operation", query=True, description=path)
    return _Kind("operation", description=f"{scope['method']} {path}", resource_type=named)


def _access(
    scope: Scope,
    kind: _Kind,
    response: dict[str, Any],
    form: bytes,
    noted: str | None,
    recorded: datetime,
) -> Access:
    status: int = response["status"]
    params: dict[str, Any] = scope.get("path_params") or {}
    resource_type = kind.resource_type or params.get("resource_type")
    resource_id = next((params[name] for name in _ID_PARAMS if name in params), None)
    if resource_id is None and kind.resource_type is not None:
        resource_id = next(
            (
                params[name]
                for name, named in _PLAIN_IDS.items()
                if named == kind.resource_type and name in params
            ),
            None,
        )
    version_id = params.get("version_id")
    if version_id is None and response["etag"] and resource_id is not None and status < 300:
        try:
            version_id = str(parse_etag(response["etag"]))
        except ValueError:
            version_id = None
    query = None
    if kind.query:
        relative = scope["path"][len(_F) :].lstrip("/")
        raw = scope.get("query_string", b"").decode("latin-1")
        if form:
            raw = f"{raw}&{form.decode('latin-1')}" if raw else form.decode("latin-1")
        query = f"{relative}?{raw}" if raw else relative
    body = b"".join(response["body"]) if response.get("keep") else None
    error = None
    if status >= 400:
        error, body = (body if body and len(body) <= _MAX_ERROR_BODY else None), None
    patients: tuple[str, ...] = ()
    if resource_type == "Patient" and resource_id is not None:
        patients, body = (f"Patient/{resource_id}",), None
    caller = (scope.get("state") or {}).get("caller")
    return Access(
        interaction=noted or kind.interaction,
        status=status,
        recorded=recorded,
        caller=caller if isinstance(caller, Caller) else None,
        address=(scope.get("client") or (None,))[0],
        resource_type=resource_type,
        resource_id=resource_id,
        version_id=version_id,
        query=query,
        description=kind.description,
        patients=patients,
        body=body,
        error=error,
        path=scope["path"].removeprefix(_F).lstrip("/")[:2000],
        request_id=request_id_of(scope),
    )
