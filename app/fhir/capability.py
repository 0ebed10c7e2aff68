"""The CapabilityStatement (spec capabilitystatement.html), generated, never hand-kept.

It is built from the same registry the router checks types against, and from the
interaction and search-parameter lists declared here beside the code that serves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app import __version__
from app.clock import format_instant
from app.fhir.registry import resource_types, types_with_identifier

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("history-system",)
COMMON_SEARCH_PARAMS = (
    ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
    ("_lastUpdated", "date", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
)


def capability_statement(*, base_url: str, started: datetime) -> dict[str, Any]:
    """What this server does, for GET [base]/metadata (spec http.html#capabilities)."""
    resources = []
    with_identifier = types_with_identifier()
    for name in sorted(resource_types()):
        params = [{"name": n, "type": t, "definition": d} for n, t, d in COMMON_SEARCH_PARAMS]
        if name in with_identifier:
            params.append(
                {
                    "name": "identifier",
                    "type": "token",
                    "documentation": "Used by conditional create, update and delete",
                }
            )
        resources.append(
            {
                "type": name,
                "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalRead": "full-support",
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                "searchParam": params,
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(started),
        "publisher": "casebridge",
        "kind": "instance",
        "software": {"name": "casebridge", "version": __version__},
        "implementation": {"description": "casebridge FHIR server", "url": base_url},
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            }
        ],
    }
