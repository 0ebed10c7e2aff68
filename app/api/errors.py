"""The one place errors become HTTP responses: every error body is an OperationOutcome,
except under the web app (/app), where the same error is a page a person can read (the
renderer main.py hands over from app/web)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.render import json_response
from app.fhir.errors import (
    FHIRError,
    InternalError,
    InvalidRequest,
    Issue,
    MethodNotAllowed,
    NotFound,
    OAuthError,
    operation_outcome,
)

log = logging.getLogger(__name__)

# An error as a web page (app/web), for requests under /app; None: the path is not a page.
PageRenderer = Callable[[Request, FHIRError], Response | None]


def _render(error: FHIRError, request: Request | None = None) -> Response:
    renderer: PageRenderer | None = (
        getattr(request.app.state, "error_pages", None) if request is not None else None
    )
    if request is not None and renderer is not None:
        shown = renderer(request, error)
        if shown is not None:
            return shown
    return json_response(error.outcome(), error.status, error.headers or None)


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FHIRError)
    return _render(exc, request)


async def _oauth_error(_request: Request, exc: Exception) -> Response:
    """The OAuth endpoints' errors: RFC 6749 section 5.2 JSON, never cached."""
    assert isinstance(exc, OAuthError)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **exc.headers}
    return Response(
        orjson.dumps(exc.oauth_body()), exc.status, headers, media_type="application/json"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _render(NotFound(f"No endpoint at {request.url.path}"), request)
    if exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        error.headers["Allow"] = _allowed(request)
        return _render(error, request)
    issue = Issue("processing" if exc.status_code < 500 else "exception", str(exc.detail))
    return json_response(operation_outcome([issue]), exc.status_code, dict(exc.headers or {}))


def _allowed(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 section 15.5.6: a 405 names
    them all). Starlette names only the first route whose path matched, and one path here
    is served by several routes (GET, PUT, PATCH and DELETE of a resource). Each method is
    tried against the routes (FastAPI nests included routers, so the routes' own method
    lists are not all at hand)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [
        Issue("invalid", f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}") for e in exc.errors()
    ]
    return _render(
        InvalidRequest(issues[0].diagnostics if issues else "Invalid request", issues=issues),
        request,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(InternalError("An internal error occurred; it has been logged"), request)


def install(app: FastAPI, pages: PageRenderer | None = None) -> None:
    """Register the handlers on the app (pages: the web app's error pages)."""
    app.state.error_pages = pages
    app.add_exception_handler(FHIRError, _fhir_error)
    app.add_exception_handler(OAuthError, _oauth_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
