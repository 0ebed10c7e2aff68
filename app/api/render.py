"""Turning service results into HTTP responses: headers, Prefer, bodies as stored bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request, Response

from app.fhir.errors import InvalidRequest, Issue, operation_outcome
from app.fhir.resource import etag, none_match, parse_etag
from app.records import StoredVersion
from app.services.disclosure import Release

FHIR_JSON = "application/fhir+json; charset=utf-8"
_PREFER_RETURN = {
    "minimal": "minimal",
    "representation": "representation",
    "operationoutcome": "OperationOutcome",
}


def fhir_response(
    content: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = FHIR_JSON,
) -> Response:
    """A response carrying FHIR JSON bytes as they are."""
    return Response(content=content, status_code=status, headers=headers, media_type=media_type)


def json_response(
    value: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = FHIR_JSON,
) -> Response:
    """A response for a FHIR JSON value built in memory."""
    return fhir_response(orjson.dumps(value), status, headers, media_type)


def versioned(version: str) -> str:
    """The FHIR JSON media type naming a FHIR version (spec http.html#version-parameter)."""
    return f"application/fhir+json; fhirVersion={version}; charset=utf-8"


def version_headers(version: StoredVersion, base_url: str) -> dict[str, str]:
    """ETag, Last-Modified and Content-Location of a version (spec http.html#read)."""
    return {
        "ETag": etag(version.version_id),
        "Last-Modified": format_datetime(version.last_updated, usegmt=True),
        "Content-Location": (
            f"{base_url}/{version.resource_type}/{version.id}/_history/{version.version_id}"
        ),
    }


def _preferences(request: Request) -> dict[str, str]:
    """Every Prefer header's name=value pairs, lower-cased names, unquoted values (RFC 7240)."""
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.replace(";", ",").split(","):
            name, _, value = part.partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = value.strip().strip('"').strip()
    return found


def prefer_return(request: Request) -> str:
    """Prefer: return= (spec http.html#ops): minimal, representation or OperationOutcome."""
    return _PREFER_RETURN.get(_preferences(request).get("return", "").lower(), "representation")


def write_response(
    request: Request,
    version: StoredVersion,
    *,
    status: int,
    base_url: str,
    message: str,
    issues: Sequence[Issue] = (),
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """The answer to a write, honouring Prefer: return= (warnings go in the
    OperationOutcome of return=OperationOutcome)."""
    headers = version_headers(version, base_url)
    # Location tells where the written version lives (spec http.html#create, #update).
    headers["Location"] = headers["Content-Location"]
    headers.update(extra_headers or {})
    choice = prefer_return(request)
    if choice == "minimal" or version.body is None:
        return Response(status_code=status, headers=headers)
    if choice == "OperationOutcome":
        outcome = operation_outcome([Issue("informational", message, "information"), *issues])
        return json_response(outcome, status, headers)
    return fhir_response(version.body, status, headers)


def if_match(request: Request) -> int | None:
    """The version an If-Match header names, if any (spec http.html#concurrency)."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    try:
        return parse_etag(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc), expression=("If-Match",)) from exc


def query_pairs(
    request: Request, *, drop: tuple[str, ...] = ("_format", "_pretty")
) -> list[tuple[str, str]]:
    """The query string as ordered pairs, without the format parameters."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in drop]
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest("The query string holds a NUL character", expression=(key,))
    return pairs


def not_modified(request: Request, version: StoredVersion) -> bool:
    """Conditional read (spec http.html#cread): If-None-Match, else If-Modified-Since."""
    header = request.headers.get("if-none-match")
    if header is not None:
        return none_match(header, version.version_id)
    since = request.headers.get("if-modified-since")
    if since is not None:
        try:
            moment = parsedate_to_datetime(since)
        except (TypeError, ValueError, OverflowError):
            return False
        if moment.tzinfo is None:  # "-0000" and zone-less dates mean UTC (RFC 5322 3.3)
            moment = moment.replace(tzinfo=UTC)
        # HTTP dates have whole seconds; compare at that precision.
        return version.last_updated.replace(microsecond=0) <= moment
    return False


def prefer_strict(request: Request) -> bool:
    """Prefer: handling=strict asks for unknown search parameters to be errors."""
    return _preferences(request).get("handling", "").lower() == "strict"


def page_links(
    url: str,
    applied: list[tuple[str, str]],
    next_cursor: str | None,
    previous_cursor: str | None = None,
) -> dict[str, str]:
    """self (the parameters applied), next and previous (the same with a cursor), URL-encoded."""
    links = {"self": f"{url}?{urlencode(applied)}" if applied else url}
    others = [(k, v) for k, v in applied if k != "_cursor"]
    if next_cursor:
        links["next"] = f"{url}?{urlencode([*others, ('_cursor', next_cursor)])}"
    if previous_cursor:
        links["previous"] = f"{url}?{urlencode([*others, ('_cursor', previous_cursor)])}"
    return links


REDISCLOSURE_HEADER = "X-Casebridge-Redisclosure"


def notice_headers(release: Release) -> dict[str, str]:
    """The redisclosure notice of the privacy regime (APP 6; 42 CFR 2.32) on every
    response releasing labelled records to an agency that does not own them."""
    return {REDISCLOSURE_HEADER: release.regime.notice} if release.sensitive else {}


def release_labels(release: Release) -> tuple[dict[str, Any], ...]:
    """Bundle.meta.security for a Bundle releasing labelled records (else none)."""
    return release.regime.release_labels if release.sensitive else ()


def notice_issues(release: Release) -> list[Issue]:
    """The redisclosure notice as an OperationOutcome issue, for Bundles."""
    if not release.sensitive:
        return []
    return [Issue("informational", release.regime.notice, "information")]
