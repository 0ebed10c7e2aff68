"""FHIR RESTful API routes (spec http.html): parse, call one service, render."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import (
    BundleBody,
    CallerDep,
    PatchBody,
    ResourceBody,
    SearchForm,
    ServicesDep,
    check_format,
    negotiate,
    require_named,
)
from app.api.render import (
    fhir_response,
    if_match,
    json_response,
    not_modified,
    notice_headers,
    notice_issues,
    page_links,
    prefer_return,
    prefer_strict,
    query_pairs,
    release_labels,
    version_headers,
    versioned,
    write_response,
)
from app.fhir.bundles import history_bundle, searchset_bundle
from app.fhir.capability import capability_statement, smart_security
from app.fhir.errors import InvalidRequest, Issue, operation_outcome
from app.fhir.resource import etag
from app.fhir.versions import DEFAULT as DEFAULT_VERSION
from app.fhir.versions import RELEASES, r4_resource_types, versions_parameters
from app.security.caller import Caller
from app.security.scopes import allows, named_types, require
from app.services.usecases.bundle import response_entry
from app.services.usecases.history import HistoryPage
from app.services.usecases.search import SearchPage

router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)])
_MAX_REPORTED = 20


def _history_response(
    request: Request, services: ServicesDep, page: HistoryPage, path: str
) -> Response:
    base = services.settings.base_url
    links = page_links(f"{base}{path}", query_pairs(request), page.next_cursor)
    return fhir_response(
        history_bundle(page.versions, base_url=base, links=links, total=page.total),
        headers=notice_headers(page.release),
    )


@router.get("/metadata")
def metadata(request: Request, services: ServicesDep) -> Response:
    """capabilities (spec http.html#capabilities), for the FHIR version asked for in the
    Accept header's fhirVersion parameter, else the default (app/fhir/versions.py)."""
    version = getattr(request.state, "fhir_version", None) or DEFAULT_VERSION
    return json_response(_capabilities(services, version), media_type=versioned(version))


@router.get("/$versions")
def versions() -> Response:
    """$versions (spec capabilities.html#versions): the versions served and the default."""
    return json_response(versions_parameters())


def _capabilities(services: ServicesDep, version: str) -> dict[str, Any]:
    key = (services.settings.base_url, services.started, version)
    statement = _CAPABILITIES.get(key)
    if statement is None:
        # Built once per process start: it lists every parameter of every type.
        auth = services.auth
        security = None
        if services.settings.auth == "smart":
            security = smart_security(
                token=auth.token_endpoint, introspect=auth.introspection_endpoint
            )
        statement = capability_statement(
            base_url=key[0],
            started=key[1],
            search=services.search.capabilities,
            security=security,
            # What an agency's client may do; the local operator always may.
            update_create=services.settings.agency_update_create,
            fhir_version=RELEASES[version],
            types=r4_resource_types() if version == "4.0" else None,
        )
        if len(_CAPABILITIES) > 8:  # another process start or base URL: forget the old
            _CAPABILITIES.clear()
        _CAPABILITIES[key] = statement
    return statement


_CAPABILITIES: dict[tuple[str, datetime, str], dict[str, Any]] = {}


@router.get("/_history")
def system_history(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """history-system (spec http.html#history)."""
    page = services.history.history(
        caller=caller, resource_type=None, resource_id=None, params=query_pairs(request)
    )
    return _history_response(request, services, page, "/_history")


def _search_response(
    services: ServicesDep,
    caller: CallerDep,
    resource_type: str,
    pairs: list[tuple[str, str]],
    strict: bool,
) -> Response:
    page = services.search.search(
        caller=caller, resource_type=resource_type, params=pairs, strict=strict
    )
    return fhir_response(
        _searchset(services, caller, resource_type, page), headers=notice_headers(page.release)
    )


@router.get("")
@router.get("/", include_in_schema=False)
def search_system(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    """search-system (spec http.html#search): GET [base]?_type=...&..."""
    pairs = query_pairs(request)
    require_named(caller, request, named_types(pairs))
    page = services.search.search_system(caller=caller, params=pairs, strict=prefer_strict(request))
    return fhir_response(
        _searchset(services, caller, None, page), headers=notice_headers(page.release)
    )


@router.post("/_search")
def search_system_post(
    request: Request, form: SearchForm, services: ServicesDep, caller: CallerDep
) -> Response:
    """search-system by POST with a form body (spec http.html#search)."""
    pairs = _form_pairs(request, form)
    require_named(caller, request, named_types(pairs))
    page = services.search.search_system(caller=caller, params=pairs, strict=prefer_strict(request))
    return fhir_response(
        _searchset(services, caller, None, page), headers=notice_headers(page.release)
    )


def _searchset(
    services: ServicesDep, caller: Caller, resource_type: str | None, page: SearchPage
) -> bytes:
    base = services.settings.base_url
    url = f"{base}/{resource_type}" if resource_type else base
    links = page_links(url, page.applied, page.next_cursor, page.previous_cursor)
    issues: list[Issue] = []
    if page.ignored:
        shown = page.ignored[:_MAX_REPORTED]
        issues = [
            Issue(
                "not-supported",
                f"Search parameter {n!r} is not supported; ignored",
                "warning",
                (n,),
            )
            for n in shown
        ]
        if len(page.ignored) > len(shown):
            rest = len(page.ignored) - len(shown)
            issues.append(
                Issue("not-supported", f"{rest} more unsupported parameters ignored", "warning")
            )
    issues += notice_issues(page.release)
    outcome = operation_outcome(issues) if issues else None
    return searchset_bundle(
        page.matches,
        base_url=base,
        links=links,
        total=page.total,
        outcome=outcome,
        # An _include or _revinclude brings in only what the token may read.
        included=[v for v in page.included if allows(caller, v.resource_type, "r")],
        security=release_labels(page.release),
    )


@router.post("")
@router.post("/", include_in_schema=False)
def batch_or_transaction(
    request: Request, body: BundleBody, services: ServicesDep, caller: CallerDep
) -> Response:
    """batch and transaction (spec http.html#transaction): one Bundle of requests."""
    kind, outcomes = services.bundles.process(body, caller=caller)
    base = services.settings.base_url
    minimal = prefer_return(request) == "minimal"
    entries = []
    for outcome in outcomes:
        entry = response_entry(outcome, base)
        version = outcome.version
        if outcome.page is not None and outcome.resource_type is not None:
            entry["resource"] = orjson.Fragment(
                _searchset(services, caller, outcome.resource_type, outcome.page)
            )
        elif version is not None and version.body and not minimal and outcome.status != 304:
            entry["resource"] = orjson.Fragment(version.body)
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if entries:
        bundle["entry"] = entries
    return fhir_response(orjson.dumps(bundle))


@router.get("/{resource_type}")
def search(
    request: Request, resource_type: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """search-type (spec http.html#search)."""
    return _search_response(
        services, caller, resource_type, query_pairs(request), prefer_strict(request)
    )


@router.post("/{resource_type}/_search")
def search_post(
    request: Request, resource_type: str, form: SearchForm, services: ServicesDep, caller: CallerDep
) -> Response:
    """search-type by POST with a form body (spec http.html#search)."""
    pairs = _form_pairs(request, form)
    return _search_response(services, caller, resource_type, pairs, prefer_strict(request))


def _form_pairs(request: Request, form: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query string and the form body together; _format in the body is honoured."""
    for key, value in form:
        if key == "_format":
            check_format(value)
    return query_pairs(request) + [(k, v) for k, v in form if k not in ("_format", "_pretty")]


@router.post("/{resource_type}")
def create(
    request: Request,
    resource_type: str,
    body: ResourceBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """create and conditional create (spec http.html#create, #ccreate)."""
    stray = query_pairs(request)
    if stray:
        # fhirpy and others put a conditional create's criteria in the URL; ignoring them
        # would create the duplicate the client meant to prevent.
        query = "&".join(f"{key}={value}" for key, value in stray)[:100]
        raise InvalidRequest(
            f"A create takes no search parameters in its URL ({query}); a conditional create "
            f"names them in the If-None-Exist header (If-None-Exist: {query})",
            expression=("If-None-Exist",),
        )
    criteria = request.headers.get("if-none-exist")
    if criteria is not None:
        require(caller, resource_type, "s")  # a conditional create searches too
    result = services.resources.create(
        caller=caller,
        resource_type=resource_type,
        body=body,
        if_none_exist=(
            _criteria_from_header(criteria, resource_type) if criteria is not None else None
        ),
    )
    status = 201 if result.created else 200
    message = "Created" if result.created else "A matching resource exists; nothing was created"
    return write_response(
        request,
        result.version,
        status=status,
        base_url=services.settings.base_url,
        message=message,
        issues=result.issues,
        extra_headers=notice_headers(result.release),
    )


@router.put("/{resource_type}")
def conditional_update(
    request: Request,
    resource_type: str,
    body: ResourceBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """Conditional update (spec http.html#cond-update)."""
    result = services.resources.conditional_update(
        caller=caller,
        resource_type=resource_type,
        criteria=query_pairs(request),
        body=body,
        if_match=if_match(request),
    )
    return write_response(
        request,
        result.version,
        status=201 if result.created else 200,
        base_url=services.settings.base_url,
        message="Created" if result.created else "Updated",
        issues=result.issues,
    )


@router.delete("/{resource_type}")
def conditional_delete(
    request: Request, resource_type: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """Conditional delete (spec http.html#cdelete)."""
    deleted = services.resources.conditional_delete(
        caller=caller, resource_type=resource_type, criteria=query_pairs(request)
    )
    headers = {"ETag": etag(deleted.version_id)} if deleted else None
    return Response(status_code=204, headers=headers)


@router.get("/{resource_type}/_history")
def type_history(
    request: Request, resource_type: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """history-type (spec http.html#history)."""
    page = services.history.history(
        caller=caller, resource_type=resource_type, resource_id=None, params=query_pairs(request)
    )
    return _history_response(request, services, page, f"/{resource_type}/_history")


# read and vread run on the event loop: one indexed lookup costs less than the hand-off to
# the thread pool that every other route pays.
@router.get("/{resource_type}/{resource_id}")
async def read(
    request: Request, resource_type: str, resource_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """read and conditional read (spec http.html#read, #cread)."""
    released = services.resources.read(
        caller=caller, resource_type=resource_type, resource_id=resource_id
    )
    version = released.version
    assert version.body is not None
    headers = version_headers(version, services.settings.base_url)
    headers.update(notice_headers(released.release))
    if not_modified(request, version):
        return Response(status_code=304, headers=headers)
    return fhir_response(version.body, headers=headers)


@router.put("/{resource_type}/{resource_id}")
def update(
    request: Request,
    resource_type: str,
    resource_id: str,
    body: ResourceBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """update and update-as-create (spec http.html#update)."""
    result = services.resources.update(
        caller=caller,
        resource_type=resource_type,
        resource_id=resource_id,
        body=body,
        if_match=if_match(request),
    )
    return write_response(
        request,
        result.version,
        status=201 if result.created else 200,
        base_url=services.settings.base_url,
        message="Created" if result.created else "Updated",
        issues=result.issues,
    )


@router.patch("/{resource_type}/{resource_id}")
def patch(
    request: Request,
    resource_type: str,
    resource_id: str,
    body: PatchBody,
    services: ServicesDep,
    caller: CallerDep,
) -> Response:
    """patch with JSON Patch (spec http.html#patch)."""
    result = services.resources.patch(
        caller=caller,
        resource_type=resource_type,
        resource_id=resource_id,
        body=body,
        if_match=if_match(request),
    )
    return write_response(
        request,
        result.version,
        status=200,
        base_url=services.settings.base_url,
        message="Patched",
        issues=result.issues,
    )


@router.delete("/{resource_type}/{resource_id}")
def delete(
    request: Request, resource_type: str, resource_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """delete (spec http.html#delete)."""
    deleted = services.resources.delete(
        caller=caller,
        resource_type=resource_type,
        resource_id=resource_id,
        if_match=if_match(request),
    )
    headers = {"ETag": etag(deleted.version_id)} if deleted else None
    return Response(status_code=204, headers=headers)


@router.get("/{resource_type}/{resource_id}/_history")
def instance_history(
    request: Request, resource_type: str, resource_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """history-instance (spec http.html#history)."""
    page = services.history.history(
        caller=caller,
        resource_type=resource_type,
        resource_id=resource_id,
        params=query_pairs(request),
    )
    return _history_response(request, services, page, f"/{resource_type}/{resource_id}/_history")


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
async def vread(
    resource_type: str, resource_id: str, version_id: str, services: ServicesDep, caller: CallerDep
) -> Response:
    """vread (spec http.html#vread)."""
    released = services.resources.vread(
        caller=caller, resource_type=resource_type, resource_id=resource_id, version_id=version_id
    )
    version = released.version
    assert version.body is not None
    headers = version_headers(version, services.settings.base_url)
    headers.update(notice_headers(released.release))
    return fhir_response(version.body, headers=headers)


def _criteria_from_header(value: str, resource_type: str) -> list[tuple[str, str]]:
    """If-None-Exist holds a query string: "identifier=sys|val" (spec http.html#ccreate)."""
    prefix, _, query = value.rpartition("?")
    if prefix and prefix.rstrip("/").rsplit("/", 1)[-1] != resource_type:
        raise InvalidRequest(
            f"If-None-Exist {value!r} names another resource type", expression=("If-None-Exist",)
        )
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise InvalidRequest(
            f"If-None-Exist {value!r} is not a search query", expression=("If-None-Exist",)
        ) from exc
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise InvalidRequest("If-None-Exist holds a NUL character", expression=("If-None-Exist",))
    return pairs
