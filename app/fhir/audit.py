"""AuditEvent and Provenance resources, built as FHIR JSON (pure: no database, no web).

AuditEvent follows the IHE Basic Audit Log Patterns (BALP, profiles.ihe.net/ITI/BALP):
type ``rest`` (audit-event-type), subtype the FHIR restful interaction (restful-interaction),
action C/R/U/D/E, the client as Source Role ID (DICOM 110153) with its network address, the
server as Destination Role ID (DICOM 110152), the agency the client acts for as the requesting
agent, the server as the observing source, the resource touched (entity role 4, Domain
Resource) or the query (role 24, base64 in entity.query), and the patient (entity type 1
Person, role 1 Patient) when one is identifiable (the BALP Patient* profiles).

Provenance (spec provenance.html) records each write: the version written as target,
activity from v3-DataOperation, the agency as author and the client as performer.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from app.clock import format_instant

AUDIT_TYPE: Final = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
BALP: Final = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
BALP_ENTITY_TYPE: Final = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
# The identifier system of API clients (SMART client_id) in agents.
CLIENT_ID_SYSTEM: Final = "urn:ietf:params:oauth:client-id"
# meta.tag on the Provenance the server writes itself: those cannot be changed by clients.
SERVER_PROVENANCE_TAG: Final = {
    "system": "https://casebridge.org/fhir/CodeSystem/provenance-source",
    "code": "server",
    "display": "Recorded by the server",
}

# Interaction -> AuditEvent.action (audit-event-action).
ACTIONS: Final = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "search-type": "E",
    "search-system": "E",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
}
# BALP: a search (and a history listing, which is a query over versions) is a Query.
_QUERIES: Final = frozenset({"search-type", "search-system", "history-type", "history-system"})
_PROFILES: Final = {"C": "Create", "R": "Read", "U": "Update", "D": "Delete", "E": "Query"}
_OPERATIONS: Final = {"create": "CREATE", "update": "UPDATE", "patch": "UPDATE", "delete": "DELETE"}


def outcome_code(status: int) -> str:
    """AuditEvent.outcome (audit-event-outcome) for an HTTP status: 0 success; 4 minor
    failure for a client's request refused or not found (4xx: 401, 403, 404, 410, 412 ...);
    8 serious failure for a server fault (500); 12 major failure when the service was
    unavailable (503)."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    if status == 503:
        return "12"
    return "8"


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What one access was: who, what, when, how it ended."""

    interaction: str
    recorded: datetime
    status: int
    agency: str | None = None
    client_id: str | None = None
    # The person (Practitioner) signed in to the web app, when a person acted.
    person: str | None = None
    address: str | None = None
    # The resource touched: "Type/id" or "Type/id/_history/v", or None.
    entity: str | None = None
    # The type searched or listed, when there is no single resource.
    entity_type: str | None = None
    # The query as sent (searches, history, operations): "Patient?name=x".
    query: str | None = None
    # Operation name ("$everything"), a Bundle kind, or other short description.
    description: str | None = None
    patients: Sequence[str] = field(default_factory=tuple)
    outcome_text: str | None = None
    # The HTTP request's X-Request-ID (app/api/requests.py).
    request_id: str | None = None


def action_of(interaction: str) -> str:
    """AuditEvent.action for a restful interaction code."""
    return ACTIONS.get(interaction, "E")


def audit_event(facts: AuditFacts, *, event_id: str, server: str) -> dict[str, Any]:
    """An AuditEvent in the BALP shape for one RESTful access; ``server`` is the base URL."""
    action = action_of(facts.interaction)
    profile = "Query" if facts.interaction in _QUERIES else _PROFILES[action]
    if facts.patients:
        profile = f"Patient{profile}"
    client: dict[str, Any] = {
        "type": _concept(DCM, "110153", "Source Role ID"),
        "who": _client_reference(facts.client_id, facts.agency),
        "requestor": False,
    }
    if facts.address:
        client["network"] = {"address": facts.address, "type": "2"}
    agents: list[dict[str, Any]] = [client]
    if facts.agency:
        # The agency receives what it reads and authors what it writes.
        role = (
            ("AUT", "author (originator)") if action in "CUD" else ("IRCP", "information recipient")
        )
        agents.append(
            {
                "type": _concept(PARTICIPATION, *role),
                "who": {"reference": facts.agency},
                "requestor": True,
            }
        )
    else:
        client["requestor"] = True
    if facts.person:
        # BALP: the human user who initiated the request, a requestor for their agency.
        agents.append(
            {
                "type": _concept(PARTICIPATION, "PART", "Participation"),
                "who": {"reference": facts.person},
                "requestor": True,
            }
        )
    agents.append(
        {
            "type": _concept(DCM, "110152", "Destination Role ID"),
            "who": {"display": server},
            "requestor": False,
            "network": {"address": server, "type": "5"},
        }
    )
    entities: list[dict[str, Any]] = []
    if facts.entity is not None:
        entities.append(
            {
                "what": {"reference": facts.entity},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    if facts.query is not None:
        query: dict[str, Any] = {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "24", "Query"),
            "query": base64.b64encode(facts.query.encode()).decode(),
        }
        if facts.description:
            query["description"] = facts.description
        entities.append(query)
    if facts.request_id:
        # BALP: the transport's request id, to find the request in the server's logs.
        entities.append(
            {
                "what": {"identifier": {"value": facts.request_id}},
                "type": _coding(
                    BALP_ENTITY_TYPE,
                    "XrequestId",
                    "transport specific unique identifier where http X-Request-Id is used",
                ),
            }
        )
    for patient in facts.patients:
        entities.append(
            {
                "what": {"reference": patient},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "meta": {"profile": [BALP + profile]},
        "type": AUDIT_TYPE,
        "subtype": [{"system": RESTFUL_INTERACTION, "code": facts.interaction}],
        "action": action,
        "recorded": format_instant(facts.recorded),
        "outcome": outcome_code(facts.status),
        "agent": agents,
        "source": {
            "observer": {"display": server},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if facts.status >= 400:
        text = f"HTTP {facts.status}"
        if facts.outcome_text:
            text += f": {facts.outcome_text}"
        event["outcomeDesc"] = text[:1000]
    if entities:
        event["entity"] = entities
    return event


def provenance(
    *,
    target: str,
    interaction: str,
    recorded: datetime,
    agency: str | None,
    client_id: str | None,
    person: str | None = None,
) -> dict[str, Any]:
    """The Provenance of one write (spec provenance.html): target the version written
    ("Task/1/_history/3"), activity CREATE/UPDATE/DELETE (v3-DataOperation), the agency as
    author and as performer on its behalf the person signed in (web app), else the API
    client. Tagged as written by the server."""
    operation = _OPERATIONS[interaction]
    agents: list[dict[str, Any]] = []
    if agency:
        agents.append(
            {
                "type": _concept(PROVENANCE_PARTICIPANT, "author", "Author"),
                "who": {"reference": agency},
            }
        )
    performer: dict[str, Any] = {
        "type": _concept(PROVENANCE_PARTICIPANT, "performer", "Performer"),
        "who": {"reference": person} if person else _client_reference(client_id, agency),
    }
    if agency:
        performer["onBehalfOf"] = {"reference": agency}
    agents.append(performer)
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "meta": {"tag": [SERVER_PROVENANCE_TAG]},
        "target": [{"reference": target}],
        "recorded": format_instant(recorded),
        "activity": _concept(DATA_OPERATION, operation, operation.lower()),
        "agent": agents,
    }
    return resource


def is_server_provenance(resource: Any) -> bool:
    """True when a Provenance body carries the server's tag."""
    if not isinstance(resource, dict):
        return False
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    if not isinstance(tags, list):
        return False
    system, code = SERVER_PROVENANCE_TAG["system"], SERVER_PROVENANCE_TAG["code"]
    return any(
        isinstance(tag, dict) and tag.get("system") == system and tag.get("code") == code
        for tag in tags
    )


def _client_reference(client_id: str | None, agency: str | None) -> dict[str, Any]:
    if client_id:
        return {"identifier": {"system": CLIENT_ID_SYSTEM, "value": client_id}}
    # Development mode without a token: no client id to name.
    return {"display": "local development client" if agency else "local operator"}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


__all__ = [
    "AuditFacts",
    "action_of",
    "audit_event",
    "is_server_provenance",
    "outcome_code",
    "provenance",
]
