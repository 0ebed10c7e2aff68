"""The benchmark's resource: the ~2 KB CarePlan of tests/factories.py, and request bodies."""

from __future__ import annotations

import copy
from typing import Any

import orjson

FHIR_JSON = "application/fhir+json"
ID_SLOT = "__BENCH_ID__"
SEQ_SLOT = "__BENCH_SEQ__"

# A copy of tests/factories.py `_CARE_PLAN` (kept here so the benchmark does not depend on the
# test package's layout): two activities, references, codings, a period and a timing.
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


def care_plan() -> dict[str, Any]:
    """A fresh copy of the benchmark CarePlan (no id)."""
    return copy.deepcopy(_CARE_PLAN)


def care_plan_bytes(identifier_value: str, resource_id: str | None = None) -> bytes:
    """The CarePlan as JSON bytes, with an identifier value and optionally an id."""
    plan = care_plan()
    plan["identifier"][0]["value"] = identifier_value
    if resource_id is not None:
        plan = {"resourceType": "CarePlan", "id": resource_id, **plan}
    return orjson.dumps(plan)


def body_template(*, with_id: bool) -> tuple[list[str], list[str]]:
    """The JSON body split around its variable slots: (parts, slot names).

    The body is parts[0] + value(slots[0]) + parts[1] + ... ; slots are "id" (the URL id of an
    update) and "seq" (a per-request identifier value). Load generators fill them per request.
    """
    text = care_plan_bytes(SEQ_SLOT, ID_SLOT if with_id else None).decode()
    parts: list[str] = []
    slots: list[str] = []
    rest = text
    while True:
        positions = [(rest.find(s), s) for s in (ID_SLOT, SEQ_SLOT) if s in rest]
        if not positions:
            parts.append(rest)
            return parts, slots
        index, slot = min(positions)
        parts.append(rest[:index])
        slots.append("id" if slot == ID_SLOT else "seq")
        rest = rest[index + len(slot) :]


def fill(parts: list[str], slots: list[str], *, resource_id: str, seq: str) -> str:
    """A body from a template (what the Lua script and the Python generator both do)."""
    out = [parts[0]]
    for slot, part in zip(slots, parts[1:], strict=True):
        out.append(resource_id if slot == "id" else seq)
        out.append(part)
    return "".join(out)
