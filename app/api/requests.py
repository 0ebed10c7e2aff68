"""Every HTTP request's id and its one log line (issue 21).

The id is the client's `X-Request-ID` when it sends a usable one (a proxy or an EHR
correlating its own logs), else a new one; it is echoed in the response, put on the
request's AuditEvents (app/fhir/audit.py, BALP XrequestId) and on its log line. The line is
JSON: time, request id, method, route template, status, duration, agency and client id;
never a path, a query value or anything else a client sent, so no personal data reaches
the logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import REQUESTS
from app.security.caller import Caller

log = logging.getLogger("casebridge.request")

HEADER: Final = "X-Request-ID"
# What a client's id may look like to be kept (UUIDs, W3C trace ids, proxy ids).
_USABLE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RAW_HEADER: Final = HEADER.lower().encode("latin-1")
# Methods named in the metrics' labels; any other is "other" (a label per method sent would
# let a client grow the metrics without bound).
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(scope: Scope) -> str | None:
    """The id the RequestContext middleware gave this request (None outside it)."""
    state = scope.get("state") or {}
    found = state.get("request_id")
    return found if isinstance(found, str) else None


def _given(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _RAW_HEADER:
            text = value.decode("latin-1")
            return text if _USABLE.fullmatch(text) else None
    return None


class RequestContext:
    """ASGI middleware: the request id (kept or made, echoed) and, when asked for, the
    request's log line and its duration in the metrics (by method, route template and
    status)."""

    def __init__(self, app: ASGIApp, *, log_requests: bool, metrics: bool = False) -> None:
        self.app = app
        self._log = log_requests
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _RAW_HEADER
                ]
                headers.append((_RAW_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            if self._metrics:
                method = scope["method"] if scope["method"] in _METHODS else "other"
                REQUESTS.labels(method, _route(scope), str(status)).observe(seconds)
            if self._log and log.isEnabledFor(logging.INFO):
                log.info(_line(scope, request_id, status, seconds))


def _route(scope: Scope) -> str:
    # The router sets scope["route"]; a path no route matched has no template.
    return getattr(scope.get("route"), "path", None) or "unmatched"


def _line(scope: Scope, request_id: str, status: int, seconds: float) -> str:
    caller = (scope.get("state") or {}).get("caller")
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": request_id,
        "method": scope["method"],
        # The route template: ids and query values are not logged.
        "route": _route(scope),
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "agency": caller.agency if isinstance(caller, Caller) else None,
        "client_id": caller.client_id if isinstance(caller, Caller) else None,
    }
    return orjson.dumps(entry).decode()


__all__ = ["HEADER", "RequestContext", "request_id_of"]
