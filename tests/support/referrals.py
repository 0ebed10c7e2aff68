"""Referral test data and helpers: a two-agency referral package and the calls both
sides make (tests/test_referrals.py, tests/test_referral_e2e.py)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson

REQUESTER = "Organization/clinic-east"
OWNER = "Organization/aod-north"
OTHER = "Organization/shelter-south"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
FHIR_JSON = {"Content-Type": "application/fhir+json"}

# The path from requested to each status, with the side that takes each step.
PATHS: dict[str, list[tuple[str, str]]] = {
    "requested": [],
    "accepted": [("accept", "owner")],
    "rejected": [("decline", "owner")],
    "cancelled": [("cancel", "requester")],
    "in-progress": [("accept", "owner"), ("start", "owner")],
    "on-hold": [("accept", "owner"), ("hold", "owner")],
    "completed": [("accept", "owner"), ("complete", "owner")],
    "failed": [("accept", "owner"), ("fail", "owner")],
}
AGENCY = {"requester": REQUESTER, "owner": OWNER, "other": OTHER}


def as_agency(agency: str | None) -> dict[str, str]:
    """Headers acting for an agency (auth off)."""
    return {} if agency is None else {"X-Casebridge-Agency": agency}


def package(
    *,
    requester: str = REQUESTER,
    owner: str | None = OWNER,
    task_status: str = "requested",
    extra_tasks: int = 0,
) -> dict[str, Any]:
    """A referral package: client, goal, care plan whose activity is the referral, consent,
    an assessment, the ServiceRequest and the Task, as one transaction Bundle."""
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Rivera", "given": ["Alex"]}],
        "birthDate": "1988-04-02",
    }
    goal = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Reduce drinking days to two a week"},
        "subject": {"reference": "urn:uuid:patient"},
    }
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "urn:uuid:patient"},
        "goal": [{"reference": "urn:uuid:goal"}],
        "activity": [{"reference": {"reference": "urn:uuid:sr"}}],
    }
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "urn:uuid:patient"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
    }
    if owner is not None:
        # The client agrees that the receiving agency sees what the referral carries, for
        # treatment (the agency access rules release the packet only under it).
        consent["provision"] = {
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": owner},
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
        }
    audit = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75624-7"}], "text": "AUDIT"},
        "subject": {"reference": "urn:uuid:patient"},
        "valueInteger": 19,
    }
    request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"text": "AOD counselling, outpatient"},
        "subject": {"reference": "urn:uuid:patient"},
        "requester": {"reference": requester},
        "basedOn": [{"reference": "urn:uuid:plan"}],
        "supportingInfo": [
            {"reference": "urn:uuid:goal"},
            {"reference": "urn:uuid:consent"},
            {"reference": "urn:uuid:audit"},
        ],
    }
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": task_status,
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODES, "code": "fulfill"}]},
        "focus": {"reference": "urn:uuid:sr"},
        "for": {"reference": "urn:uuid:patient"},
        "requester": {"reference": requester},
        "priority": "routine",
    }
    if owner is not None:
        task["owner"] = {"reference": owner}
    entries: list[tuple[str, dict[str, Any]]] = [
        ("patient", patient),
        ("goal", goal),
        ("plan", plan),
        ("consent", consent),
        ("audit", audit),
        ("sr", request),
        ("task", task),
    ]
    entries += [(f"task{i}", dict(task)) for i in range(extra_tasks)]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{name}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for name, resource in entries
        ],
    }


class Referrals:
    """The /referrals calls of one test, against one live server root."""

    def __init__(self, http: httpx.Client, root: str) -> None:
        self.http = http
        self.root = root

    def submit(self, agency: str | None = REQUESTER, **kwargs: Any) -> dict[str, Any]:
        response = self.http.post(
            f"{self.root}/referrals",
            content=orjson.dumps(package(**kwargs)),
            headers={**FHIR_JSON, **as_agency(agency)},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def act(
        self,
        tid: str,
        action: str,
        agency: str | None,
        *,
        etag: str | None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = as_agency(agency)
        if etag is not None:
            headers["If-Match"] = etag
        if body is None and action in ("decline", "cancel", "hold", "fail"):
            body = {"reason": f"{action}: reason given"}
        if body is None and action == "complete":
            body = {"outcome": {"summary": "Attended four sessions"}}
        return self.http.post(
            f"{self.root}/referrals/{tid}/{action}",
            content=orjson.dumps(body) if body is not None else b"",
            headers={"Content-Type": "application/json", **headers},
        )

    def drive(self, status: str, agency: str | None = REQUESTER) -> dict[str, Any]:
        """A new referral brought to a status through the endpoints, each step by its side."""
        view = self.submit(agency)
        for action, side in PATHS[status]:
            response = self.act(view["id"], action, AGENCY[side], etag=view["etag"])
            assert response.status_code == 200, response.text
            view = response.json()
        assert view["status"] == status
        return view

    def task(self, tid: str) -> httpx.Response:
        return self.http.get(f"{self.root}/fhir/Task/{tid}")

    def read(self, resource_type: str, rid: str) -> dict[str, Any]:
        response = self.http.get(f"{self.root}/fhir/{resource_type}/{rid}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def binary_patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A PATCH entry's Binary holding a JSON Patch."""
    return {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(operations)).decode(),
    }
