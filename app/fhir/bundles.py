"""Bundles the server returns (spec bundle.html; history: http.html#history).

Stored bodies are embedded as orjson.Fragment: the bytes are copied, never re-parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from app.clock import format_instant
from app.fhir.resource import etag
from app.records import StoredVersion

_STATUS_BY_METHOD = {
    "POST": "201 Created",
    "PUT": "200 OK",
    "PATCH": "200 OK",
    "DELETE": "204 No Content",
}


def history_bundle(
    versions: Sequence[StoredVersion],
    *,
    base_url: str,
    links: dict[str, str],
    total: int | None,
) -> bytes:
    """A Bundle of type history, newest first, with paging links."""
    entries: list[dict[str, Any]] = []
    for v in versions:
        full_url = f"{base_url}/{v.resource_type}/{v.id}"
        entry: dict[str, Any] = {"fullUrl": full_url}
        if v.body is not None:
            entry["resource"] = orjson.Fragment(v.body)
        method = v.method or ("DELETE" if v.deleted else "PUT")
        url = v.resource_type if method == "POST" else f"{v.resource_type}/{v.id}"
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {
            "status": "201 Created"
            if v.version_id == 1
            else _STATUS_BY_METHOD.get(method, "200 OK"),
            "etag": etag(v.version_id),
            "lastModified": format_instant(v.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links.items()]
    if entries:  # FHIR JSON has no empty arrays (spec json.html)
        bundle["entry"] = entries
    return orjson.dumps(bundle)


def searchset_bundle(
    matches: Sequence[StoredVersion],
    *,
    base_url: str,
    links: dict[str, str],
    total: int | None,
    outcome: dict[str, Any] | None,
    included: Sequence[StoredVersion] = (),
    security: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A Bundle of type searchset (spec search.html#return): matches, included resources
    (search.mode include), then any outcome. security: Bundle-level labels (a release of
    labelled records carries them, security-labels.html#bundles)."""
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base_url}/{v.resource_type}/{v.id}",
            "resource": orjson.Fragment(v.body),
            "search": {"mode": mode},
        }
        for mode, versions in (("match", matches), ("include", included))
        for v in versions
        if v.body is not None
    ]
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if security:
        bundle["meta"] = {"security": list(security)}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links.items()]
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)
