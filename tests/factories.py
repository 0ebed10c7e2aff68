"""Test data: realistic case-management resources, built fresh for each use."""

from __future__ import annotations

import copy
from typing import Any

FHIR_JSON = {"Content-Type": "application/fhir+json"}

_CARE_PLAN: dict[str, Any] = {
    "resourceType": "CarePlan",
    "identifier": [{"system": "https://agency.example.org/careplans", "value": "CP-1001"}],
    "status": "active",
    "intent": "plan",
    "category": [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "734163000", "display": "Care plan"}
            ],
            "text": "Strengths-based case management",
        }
    ],
    "title": "Housing stability and alcohol reduction",
    "description": "Plan agreed with the client at the second session.",
    "subject": {"reference": "Patient/client-1", "display": "Alex Rivera"},
    "period": {"start": "2026-01-05", "end": "2026-07-05"},
    "created": "2026-01-05T10:00:00+10:00",
    "author": {"reference": "PractitionerRole/cm-7"},
    "careTeam": [{"reference": "CareTeam/team-3"}],
    "addresses": [{"reference": "Condition/aud-1"}],
    "goal": [{"reference": "Goal/goal-housing"}, {"reference": "Goal/goal-audit"}],
    "activity": [
        {
            "detail": {
                "kind": "ServiceRequest",
                "code": {"text": "Referral to AOD counselling"},
                "status": "scheduled",
                "scheduledPeriod": {"start": "2026-01-12", "end": "2026-03-12"},
                "location": {"display": "Northside community health centre"},
                "performer": [{"reference": "Organization/aod-north"}],
                "description": "Weekly counselling; the client attends, the counsellor reports "
                "progress monthly to the case manager.",
            }
        },
        {
            "detail": {
                "kind": "Task",
                "code": {"text": "Apply for social housing"},
                "status": "in-progress",
                "scheduledTiming": {"repeat": {"frequency": 1, "period": 2, "periodUnit": "wk"}},
                "performer": [{"reference": "Patient/client-1"}],
                "description": "Client completes the form; case manager checks and lodges it.",
            }
        },
    ],
    "note": [{"text": "Client prefers afternoon appointments. Interpreter: none needed."}],
}


def care_plan(**changes: Any) -> dict[str, Any]:
    """A ~2 KB CarePlan with two activities; keyword arguments replace top-level elements."""
    plan = copy.deepcopy(_CARE_PLAN)
    plan.update(changes)
    return plan


def patient(**changes: Any) -> dict[str, Any]:
    """A client."""
    value: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://agency.example.org/clients", "value": "C-77"}],
        "name": [{"family": "Rivera", "given": ["Alex"]}],
        "gender": "other",
        "birthDate": "1988-04-02",
    }
    value.update(changes)
    return value


def minimal(resource_type: str) -> dict[str, Any]:
    """The smallest valid resource of the mission's types."""
    subject = {"reference": "Patient/client-1"}
    table: dict[str, dict[str, Any]] = {
        "CarePlan": {"status": "active", "intent": "plan", "subject": subject},
        "Goal": {
            "lifecycleStatus": "active",
            "description": {"text": "Stable housing"},
            "subject": subject,
        },
        "ServiceRequest": {"status": "active", "intent": "order", "subject": subject},
        "Observation": {"status": "final", "code": {"text": "AUDIT score"}},
        "Task": {"status": "requested", "intent": "order"},
        "Consent": {
            "status": "active",
            "scope": {"text": "treatment"},
            "category": [{"text": "AOD disclosure"}],
        },
        "EpisodeOfCare": {"status": "active", "patient": subject},
        "Patient": {},
        "Organization": {"name": "Northside AOD service"},
    }
    return {"resourceType": resource_type, **copy.deepcopy(table[resource_type])}
