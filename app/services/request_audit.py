"""The audit's view of the request being served, and what every AuditEvent is built from.

The API marks each HTTP request (auditing_request); services say what it turned out to be
(note_interaction); the write pipeline's record (rules/audit.py) and the background
recorder (jobs/audit.py) both find the patients an access concerns and build the audit
row here.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from app.fhir.audit import (
    AuditFacts,
    action_of,
    audit_event,
    outcome_code,
)
from app.fhir.compartments import compartment
from app.fhir.registry import is_valid_id
from app.search.registry import compiled, param
from app.storage.audit import AuditRow

# --- the request being served ------------------------------------------------------------


@dataclass(slots=True)
class RequestAudit:
    """What the services tell the audit about the HTTP request they serve (a context
    variable: the write hook and the Bundle service run on a handler thread, whose copied
    context still points at this one object)."""

    address: str | None = None
    # The request's X-Request-ID (app/api/requests.py).
    request_id: str | None = None
    # Set by services that know better than the route: "transaction" or "batch".
    interaction: str | None = None
    # How many writes the write hook audited (0: the route must audit the request itself).
    writes: int = 0


_CURRENT: contextvars.ContextVar[RequestAudit | None] = contextvars.ContextVar(
    "casebridge_request_audit", default=None
)


@contextmanager
def auditing_request(address: str | None, request_id: str | None = None) -> Iterator[RequestAudit]:
    """Mark the current context as serving one HTTP request."""
    state = RequestAudit(address=address, request_id=request_id)
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def current_request() -> RequestAudit | None:
    """The request being served in this context, if any."""
    return _CURRENT.get()


def note_interaction(interaction: str) -> None:
    """Tell the audit which interaction the current request turned out to be."""
    state = current_request()
    if state is not None:
        state.interaction = interaction


# --- the patient an access concerns ------------------------------------------------------


@cache
def _patient_paths(resource_type: str) -> tuple[Any, ...]:
    """The compiled extractors of the parameters that put resource_type in the Patient
    compartment (spec compartmentdefinition-patient.html)."""
    paths = []
    for code in compartment("Patient").get(resource_type, ()):
        search_param = param(resource_type, code)
        extractor = compiled(search_param) if search_param is not None else None
        if extractor is not None:
            paths.append(extractor)
    return tuple(paths)


def patients_of(resource_type: str, resource_id: str | None, body: Any, own_base: str) -> list[str]:
    """ "Patient/{id}" of every patient whose compartment holds this resource (the patient
    itself for a Patient), in order of appearance, at most 10."""
    if resource_type == "Patient":
        return [f"Patient/{resource_id}"] if resource_id else []
    if not isinstance(body, dict):
        return []
    found: dict[str, None] = {}
    prefix = own_base.rstrip("/") + "/"
    for extractor in _patient_paths(resource_type):
        for _tag, value in extractor(body):
            literal = value.get("reference") if isinstance(value, dict) else None
            if not isinstance(literal, str):
                continue
            if literal.startswith(prefix):
                literal = literal[len(prefix) :]
            parts = literal.split("/")
            if len(parts) in (2, 4) and parts[0] == "Patient" and is_valid_id(parts[1]):
                found[f"Patient/{parts[1]}"] = None
    return list(found)[:10]


def patients_in_query(resource_type: str | None, params: Sequence[tuple[str, str]]) -> list[str]:
    """The patients a search names: patient= and subject= references to a Patient, and
    _id of a Patient search."""
    found: dict[str, None] = {}
    for key, raw in params:
        name, _, modifier = key.partition(":")
        for value in raw.split(","):
            value = value.strip()
            if name == "patient" or (name == "subject" and modifier == "Patient"):
                reference = value if "/" in value else f"Patient/{value}"
            elif name == "subject" or (name == "_id" and resource_type == "Patient"):
                reference = value if name == "subject" else f"Patient/{value}"
            else:
                continue
            parts = reference.rsplit("/", 2)
            if len(parts) >= 2 and parts[-2] == "Patient" and is_valid_id(parts[-1]):
                found[f"Patient/{parts[-1]}"] = None
    return list(found)[:10]


# How many versions' patients the flush thread remembers (a few MB at most).


def record_id() -> str:
    """A random id for an AuditEvent or a server Provenance: unique across every process
    and server writing to the database, whatever clock each was given (tests fix clocks,
    and several test servers with their own clocks share one database)."""
    return str(uuid.uuid4())


def audit_row(
    facts: AuditFacts, event_id: str, server: str, entity: tuple[str, str] | None
) -> AuditRow:
    event = audit_event(facts, event_id=event_id, server=server)
    entity_type, entity_id = entity if entity is not None else (facts.entity_type, None)
    return AuditRow(
        id=event_id,
        recorded=facts.recorded,
        agency=facts.agency,
        client_id=facts.client_id[:255] if facts.client_id else None,
        patient=facts.patients[0] if facts.patients else None,
        subtype=facts.interaction,
        action=action_of(facts.interaction),
        outcome=outcome_code(facts.status),
        entity_type=entity_type,
        entity_id=entity_id,
        body=orjson.dumps(event),
    )
