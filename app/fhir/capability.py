"""The CapabilityStatement (spec capabilitystatement.html), generated, never hand-kept.

It is built from the same registry the router checks types against, and from the
interaction and search-parameter lists declared here beside the code that serves them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app import __version__
from app.clock import format_instant
from app.fhir.registry import resource_types

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
# transaction and batch: POST [base] (app/api/fhir.py); search-system: GET [base]?_type=...
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
# Bulk Data Access IG v2.0.0 export (served by app/api/bulk.py): system level here, Patient
# level in TYPE_OPERATIONS.
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
SYSTEM_OPERATIONS = (
    {"name": "export", "definition": f"{_BULK}/export"},
    {
        "name": "versions",
        "definition": "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
    },
)
# The project's own operations: OperationDefinitions under schemas/fhir/operations/,
# installed with the other conformance resources (readable at OperationDefinition/{id}).
_OWN = "https://casebridge.org/fhir/OperationDefinition"
_TASK_ACTIONS = ("accept", "decline", "start", "hold", "resume", "complete", "fail", "cancel")
# Operations by type (rest.resource.operation): app/api/operations.py, app/api/cases.py
# ($check), app/api/referrals.py (Task), app/api/subscriptions.py ($status).
TYPE_OPERATIONS: dict[str, tuple[dict[str, str], ...]] = {
    "Patient": (
        {
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
        },
        {"name": "export", "definition": f"{_BULK}/patient-export"},
        {"name": "disclosures", "definition": f"{_OWN}/Patient-disclosures"},
    ),
    "CarePlan": (
        {"name": "everything", "definition": f"{_OWN}/CarePlan-everything"},
        {"name": "check", "definition": f"{_OWN}/CarePlan-check"},
    ),
    "Task": tuple(
        {"name": action, "definition": f"{_OWN}/Task-{action}"} for action in _TASK_ACTIONS
    ),
    "Subscription": (
        {
            "name": "status",
            "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
            "backport-subscription-status",
        },
    ),
}


# AuditEvents live in their own append-only table (app/api/audit.py): read and search only,
# on the parameters that table answers.
READ_ONLY: dict[str, dict[str, Any]] = {
    "AuditEvent": {
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": name,
                "definition": f"http://hl7.org/fhir/SearchParameter/AuditEvent-{name}",
                "type": kind,
            }
            for name, kind in (
                ("action", "token"),
                ("agent", "reference"),
                ("date", "date"),
                ("entity", "reference"),
                ("outcome", "token"),
                ("patient", "reference"),
                ("subtype", "token"),
            )
        ],
    }
}

# What a client of these types needs to know beyond the interactions (rest.resource
# .documentation): the referral rules of app/fhir/referral.py.
DOCUMENTATION: dict[str, str] = {
    "Task": (
        "A referral Task (code fulfill, focus a ServiceRequest; SDOHCC "
        "TaskForReferralManagement) follows the referral state machine: each side sets only "
        "its statuses and elements (409 otherwise). An update without If-Match is accepted "
        "when it changes the status to one the writer may set from the current status and "
        "touches nothing but status and statusReason (requester) or status, statusReason, "
        "businessStatus and output (owner); any other update or delete of a referral needs "
        "If-Match (428 without it, 412 when stale). rejected, cancelled, on-hold and failed "
        "should give statusReason.text (a warning without one); a statusReason given needs "
        "text."
    ),
    "ServiceRequest": (
        "A referral's ServiceRequest follows its Task's status. Its requester revoking it "
        "cancels its open referral Tasks in the same transaction; the receiving agency ends "
        "a referral through the Task (409 on the request)."
    ),
}


def capability_statement(
    *,
    base_url: str,
    started: datetime,
    search: Callable[[str], Mapping[str, Any]],
    security: Mapping[str, Any] | None = None,
    update_create: bool = True,
    fhir_version: str = "4.3.0",
    types: frozenset[str] | None = None,
) -> dict[str, Any]:
    """What this server does, for GET [base]/metadata (spec http.html#capabilities).

    ``search(type)`` gives the searchParam, searchInclude and searchRevInclude lists of a
    type (the search engine's registry). ``security`` is rest.security (smart_security()).
    ``update_create``: whether clients (agencies) may create with ids they choose.
    ``fhir_version`` and ``types``: the release stated and, for R4, the types it has (the
    server's others are left out of an R4 statement).
    """
    resources = []
    for name in sorted(resource_types() if types is None else resource_types() & types):
        described = search(name)
        resources.append(
            {
                "type": name,
                "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": update_create,
                "conditionalCreate": True,
                "conditionalRead": "full-support",
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                **{key: value for key, value in described.items() if value},
            }
        )
        if name in READ_ONLY:
            resources[-1] = {"type": name, **READ_ONLY[name]}
        if name in DOCUMENTATION:
            resources[-1]["documentation"] = DOCUMENTATION[name]
        if name in TYPE_OPERATIONS:
            resources[-1]["operation"] = [dict(o) for o in TYPE_OPERATIONS[name]]
    rest: dict[str, Any] = {"mode": "server"}
    if security is not None:
        rest["security"] = dict(security)
    rest["resource"] = resources
    rest["interaction"] = [{"code": code} for code in SYSTEM_INTERACTIONS]
    rest["operation"] = [dict(o) for o in SYSTEM_OPERATIONS]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(started),
        "publisher": "casebridge",
        "kind": "instance",
        "software": {"name": "casebridge", "version": __version__},
        "implementation": {"description": "casebridge FHIR server", "url": base_url},
        "fhirVersion": fhir_version,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }


_SMART_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def smart_security(*, token: str, introspect: str) -> dict[str, Any]:
    """rest.security for SMART Backend Services (SMART App Launch conformance.html: the
    SMART-on-FHIR service code and the oauth-uris extension naming the endpoints)."""
    return {
        "extension": [
            {
                "url": _SMART_URIS,
                "extension": [
                    {"url": "token", "valueUri": token},
                    {"url": "introspect", "valueUri": introspect},
                ],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": _SECURITY_SERVICE,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 client credentials with SMART Backend Services "
                "(private_key_jwt, RS384 or ES384); system/ scopes",
            }
        ],
        "description": "Every request needs a bearer access token from the token endpoint; "
        "see /.well-known/smart-configuration.",
    }
