"""Request dependencies, each declared once as an Annotated alias."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from app.fhir.errors import (
    Forbidden,
    InvalidRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from app.fhir.versions import accepted, check_body_version
from app.security.caller import OPERATOR, Caller, parse_agency
from app.security.routes import NAMED, PATH_TYPE, route_needs
from app.security.scopes import require, require_types
from app.services.auth.tokens import bearer_token
from app.services.container import Services

_JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
_JSON_FORMATS = _JSON_TYPES | {"json"}
_XML_HINTS = ("xml",)
_PATCH_TYPES = {"application/json-patch+json"}


# Dependencies that never block are async: FastAPI runs sync ones on its thread pool,
# a hand-off that costs more than their work.
async def get_services(request: Request) -> Services:
    """The app's services (built in create_app)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

AGENCY_HEADER = "x-casebridge-agency"


async def get_caller(request: Request) -> Caller:
    """The party this request acts for (see app/security/caller.py), once its token's
    scopes cover what the route touches (app/security/routes.py); also kept on
    request.state.caller for the audit of the request."""
    caller = await _resolve_caller(request)
    request.state.caller = caller
    check_route(caller, request)
    return caller


def check_route(caller: Caller, request: Request) -> None:
    """Forbidden unless the caller's scopes cover its route's entry in the route table; a
    route without an entry is refused (it was never declared, so never reviewed)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    entry = route_needs(request.method, path) if isinstance(path, str) else None
    if entry is None or entry.public:
        if entry is None:
            raise Forbidden(f"{request.method} {path} declares no access rule")
        return
    for resource_type, letters in entry.touches:
        if resource_type == NAMED:
            continue  # the handler checks the types once it has read them
        if resource_type == PATH_TYPE:
            resource_type = str(request.path_params.get("resource_type", ""))
        require(caller, resource_type, letters)


def require_named(caller: Caller, request: Request, types: Sequence[str] | None) -> None:
    """The route table's NAMED entry for the types a request names (None: every type)."""
    route = request.scope.get("route")
    entry = route_needs(request.method, getattr(route, "path", ""))
    for resource_type, letters in entry.touches if entry is not None else ():
        if resource_type == NAMED:
            require_types(caller, types, letters)


async def _resolve_caller(request: Request) -> Caller:
    services: Services = request.app.state.services
    settings = services.settings
    authorization = request.headers.get("authorization")
    # With auth off a bearer token is still honoured, so scopes can be tried locally.
    if settings.auth == "off" and bearer_token(authorization) is None:
        named = request.headers.get(AGENCY_HEADER)
        if named is not None:
            return Caller(agency=parse_agency(named))
        if settings.default_agency:
            return Caller(agency=parse_agency(settings.default_agency, what="default_agency"))
        return OPERATOR
    return services.auth.caller(authorization)


CallerDep = Annotated[Caller, Depends(get_caller)]


def check_format(fmt: str) -> None:
    """Refuse a _format other than JSON: 406 (spec http.html#mime-type)."""
    # An unencoded "+" in a query string arrives as a space.
    if fmt.split(";")[0].strip().replace(" ", "+").lower() not in _JSON_FORMATS:
        raise NotAcceptable(
            f"_format={fmt!r} is not supported; this server speaks application/fhir+json",
            expression=("_format",),
        )


async def negotiate(request: Request) -> None:
    """Refuse representations other than JSON (spec http.html#mime-type) and FHIR versions
    other than those served (http.html#version-parameter): 406. The version asked for, if
    any, is kept on request.state.fhir_version."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        check_format(fmt)
        request.state.fhir_version = accepted(fmt)
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    request.state.fhir_version = accepted(accept)
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in _JSON_TYPES or media in ("*/*", "application/*") or media.endswith("+json"):
            return
    raise NotAcceptable(
        f"Accept: {accept!r} names no representation this server produces; "
        "use application/fhir+json (XML is not supported)"
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


async def resource_body(request: Request) -> bytes:
    """The body of a create or update: FHIR JSON within the size limit, unparsed."""
    check_body_version(request.headers.get("content-type"))
    media = _media_type(request)
    if media and media not in _JSON_TYPES:
        hint = " (XML is not supported)" if any(h in media for h in _XML_HINTS) else ""
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not accepted; send application/fhir+json{hint}"
        )
    services: Services = request.app.state.services
    return await _read_limited(request, services.settings.max_body_bytes)


async def bundle_body(request: Request) -> bytes:
    """The body of a batch or transaction: FHIR JSON within the Bundle size limit."""
    check_body_version(request.headers.get("content-type"))
    media = _media_type(request)
    if media and media not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not accepted; send application/fhir+json"
        )
    services: Services = request.app.state.services
    return await _read_limited(request, services.settings.max_bundle_bytes)


async def patch_body(request: Request) -> bytes:
    """The body of a patch: a JSON Patch document within the size limit."""
    media = _media_type(request)
    if media not in _PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media or 'none'!r} is not accepted for PATCH; "
            "send application/json-patch+json (FHIRPath Patch is not supported)"
        )
    services: Services = request.app.state.services
    return await _read_limited(request, services.settings.max_body_bytes)


ResourceBody = Annotated[bytes, Depends(resource_body)]
PatchBody = Annotated[bytes, Depends(patch_body)]
BundleBody = Annotated[bytes, Depends(bundle_body)]


async def search_form(request: Request) -> list[tuple[str, str]]:
    """The parameters of POST [type]/_search: the form body (spec http.html#search)."""
    media = _media_type(request)
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            f"Content-Type {media or 'none'!r} is not accepted for _search; "
            "send application/x-www-form-urlencoded"
        )
    services: Services = request.app.state.services
    raw = await _read_limited(request, services.settings.max_body_bytes)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InvalidRequest("The _search form body starts with a byte order mark")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"The _search form body cannot be read: {exc}") from exc
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequest("The _search form body holds a NUL character")
    return pairs


SearchForm = Annotated[list[tuple[str, str]], Depends(search_form)]
