"""Stamping server-owned elements onto a validated resource (spec resource.html#Meta)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.clock import format_instant
from app.fhir.jsonio import dumps
from app.fhir.numbers import ascii_int


def stamp(
    resource: dict[str, Any], *, resource_id: str, version_id: int, last_updated: datetime
) -> bytes:
    """The stored JSON: id, meta.versionId and meta.lastUpdated set by the server.

    resourceType, id and meta lead the object so that stored bodies read naturally.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(last_updated)
    out: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": resource_id,
        "meta": meta,
    }
    for key, value in resource.items():
        if key not in out:
            out[key] = value
    return dumps(out)


def parse_etag(value: str) -> int:
    """The version id of an ETag / If-Match value: W/"3" or "3" (spec http.html#versioning)."""
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    if len(raw) < 3 or not (raw.startswith('"') and raw.endswith('"')):
        raise ValueError(f'{value!r} is not a version ETag such as W/"1"')
    try:
        return ascii_int(raw[1:-1], minimum=1)
    except ValueError as exc:
        raise ValueError(f'{value!r} is not a version ETag such as W/"1"') from exc


def none_match(header: str, version_id: int) -> bool:
    """True when an If-None-Match list (``*`` or ETags, comma-separated) names the version."""
    for tag in header.split(","):
        try:
            if tag.strip() == "*" or parse_etag(tag) == version_id:
                return True
        except ValueError:
            continue
    return False


def etag(version_id: int) -> str:
    """The weak ETag for a version id."""
    return f'W/"{version_id}"'
