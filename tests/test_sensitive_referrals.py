"""Sensitive referrals made through the plain API arrive (issue 19, defect 1).

An AOD service refers a client through /cases and /referrals as a worker without a FHIR
system would: the plain consent says what it is for (care coordination by default), so
the receiving agency sees the labelled referral; a plain referral that no consent lets the
receiver see is refused with the reason and nothing is stored; $check says so of a
referral already stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mappings.casework import consent_to_fhir
from schemas.casework import Consent
from tests.conftest import Backend
from tests.support.server import LiveServer
from tests.test_access import _organizations
from tests.test_cases_api import new_case, plan_body

AOD, HOUSING = "Organization/aod", "Organization/housing"


def _as(agency: str | None) -> dict[str, str]:
    return {"X-Casebridge-Agency": agency} if agency else {}


@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=live.fhir, timeout=30) as fhir:
        _organizations(fhir)
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def _referral(client_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "from_agency": AOD,
        "to_agency": HOUSING,
        "service_type": "counselling",
        "reason": "Alcohol use affecting tenancy",
        "requested": "2026-01-05",
        **changes,
    }


def _count(http: httpx.Client, resource_type: str, agency: str) -> int:
    response = http.get(
        f"/fhir/{resource_type}", params={"_total": "accurate"}, headers=_as(agency)
    )
    return int(response.json()["total"])


def test_a_plain_consent_lets_the_receiver_see_an_aod_services_referral(
    root: httpx.Client,
) -> None:
    case = root.post("/cases", json=new_case(managing_agency=AOD), headers=_as(AOD))
    assert case.status_code == 201, case.text
    client_id = case.json()["client_id"]
    # Without a consent: refused with the reason, nothing stored.
    refused = root.post("/referrals", json=_referral(client_id), headers=_as(AOD))
    assert refused.status_code == 422, refused.text
    text = refused.json()["issue"][0]["diagnostics"]
    assert "AOD service's record" in text and HOUSING in text and "Nothing was stored" in text
    assert _count(root, "Task", AOD) == 0 and _count(root, "ServiceRequest", AOD) == 0
    # A plain consent, as a worker writes it: no purpose given, care coordination meant.
    consent = root.post(
        f"/cases/{case.json()['id']}/consents",
        json={
            "client_id": client_id,
            "recipient": HOUSING,
            "purpose": "Referral for tenancy support",
            "covers_sensitive": True,
        },
        headers=_as(AOD),
    )
    assert consent.status_code == 201, consent.text
    assert consent.json()["use"] == "care-coordination"
    stored = root.get(f"/fhir/Consent/{consent.json()['id']}", headers=_as(AOD)).json()
    assert stored["provision"]["purpose"][0]["code"] == "COC"
    sent = root.post("/referrals", json=_referral(client_id), headers=_as(AOD))
    assert sent.status_code == 201, sent.text
    # The receiver's inbox has it, and its packet opens.
    inbox = root.get("/referrals", params={"box": "inbox"}, headers=_as(HOUSING)).json()
    assert [r["id"] for r in inbox["referrals"]] == [sent.json()["id"]]
    packet = root.get(f"/referrals/{sent.json()['id']}", headers=_as(HOUSING))
    assert packet.status_code == 200, packet.text


def test_a_consent_without_a_purpose_of_care_is_reported_by_check(root: httpx.Client) -> None:
    case = root.post("/cases", json=new_case(managing_agency=AOD), headers=_as(AOD)).json()
    client_id = case["client_id"]
    # A FHIR Consent naming the receiver but for no purpose of care (written directly).
    consent = consent_to_fhir(
        Consent(client_id=client_id, recipient=HOUSING, purpose="research", use=None)
    )
    consent["provision"]["purpose"] = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}
    ]
    written = root.post("/fhir/Consent", json=consent, headers=_as(AOD))
    assert written.status_code == 201, written.text
    # The plain referral is refused: the consent does not release labelled records.
    refused = root.post("/referrals", json=_referral(client_id), headers=_as(AOD))
    assert refused.status_code == 422
    # A request written through /fhir is stored as FHIR allows; $check tells the worker
    # that the receiver cannot see it.
    plan = root.post(f"/cases/{case['id']}/careplans", json=plan_body(), headers=_as(AOD))
    assert plan.status_code == 201, plan.text
    request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{client_id}"},
        "performer": [{"reference": HOUSING}],
    }
    assert root.post("/fhir/ServiceRequest", json=request, headers=_as(AOD)).status_code == 201
    found = root.get(f"/cases/{case['id']}/check", headers=_as(AOD)).json()
    texts = " | ".join(i["diagnostics"] for i in found["issue"])
    assert "the agency cannot see it" in texts, texts


def test_a_plain_update_of_a_plan_keeps_what_it_does_not_model(root: httpx.Client) -> None:
    # Issue 19, defect 2: a plain PUT dropped the plan's activity that is a referral
    # (activity.reference), so completing the referral no longer found the plan's goals.
    case = root.post("/cases", json=new_case(), headers=_as(AOD)).json()
    plan = root.post(f"/cases/{case['id']}/careplans", json=plan_body(), headers=_as(AOD))
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["id"]
    fhir = root.get(f"/fhir/CarePlan/{plan_id}", headers=_as(AOD))
    body = fhir.json()
    body["activity"].append({"reference": {"reference": "ServiceRequest/sr-1"}})
    body["note"] = [{"text": "Agreed at the family meeting"}]
    body["basedOn"] = [{"reference": "CarePlan/earlier"}]
    written = root.put(
        f"/fhir/CarePlan/{plan_id}",
        json=body,
        headers={**_as(AOD), "If-Match": fhir.headers["ETag"]},
    )
    assert written.status_code == 200, written.text
    path = f"/cases/{case['id']}/careplans/{plan_id}"
    current = root.get(path, headers=_as(AOD))
    changed = {**current.json(), "title": "Housing, alcohol and work"}
    updated = root.put(
        path, json=changed, headers={**_as(AOD), "If-Match": current.headers["ETag"]}
    )
    assert updated.status_code == 200, updated.text
    kept = root.get(f"/fhir/CarePlan/{plan_id}", headers=_as(AOD)).json()
    assert kept["title"] == "Housing, alcohol and work"
    assert {"reference": {"reference": "ServiceRequest/sr-1"}} in kept["activity"]
    assert kept["note"] == [{"text": "Agreed at the family meeting"}]
    assert kept["basedOn"] == [{"reference": "CarePlan/earlier"}]
    # What the plain model speaks of is still the plain update's to change.
    assert len([a for a in kept["activity"] if "detail" in a]) == len(changed["actions"])


def test_completing_a_plain_referral_records_the_goals_of_the_plan_it_serves(
    root: httpx.Client,
) -> None:
    # Issue 19, defect 2: the referral names the care plan it serves; the receiving agency
    # completes it with the plan's goals, which answered 422 "not a goal of this referral".
    clinic = "Organization/clinic"
    case = root.post("/cases", json=new_case(managing_agency=clinic), headers=_as(clinic)).json()
    plan = root.post(f"/cases/{case['id']}/careplans", json=plan_body(), headers=_as(clinic))
    assert plan.status_code == 201, plan.text
    plan_id, goal_id = plan.json()["id"], plan.json()["goals"][0]["id"]
    consent = {
        "client_id": case["client_id"],
        "recipient": HOUSING,
        "purpose": "Tenancy support referral",
    }
    made = root.post(f"/cases/{case['id']}/consents", json=consent, headers=_as(clinic))
    assert made.status_code == 201, made.text
    sent = root.post(
        "/referrals",
        json={**_referral(case["client_id"], from_agency=clinic), "care_plan_id": plan_id},
        headers=_as(clinic),
    )
    assert sent.status_code == 201, sent.text
    tid, request_ref = sent.json()["id"], sent.json()["serviceRequest"]
    stored_plan = root.get(f"/fhir/CarePlan/{plan_id}", headers=_as(clinic)).json()
    assert {"reference": {"reference": request_ref}} in stored_plan["activity"]
    etag = sent.json()["etag"]
    for action in ("accept", "start"):
        done = root.post(f"/referrals/{tid}/{action}", headers={**_as(HOUSING), "If-Match": etag})
        assert done.status_code == 200, done.text
        etag = done.json()["etag"]
    outcome = {
        "outcome": {
            "summary": "Tenancy sustained for three months",
            "goals": [{"goal": f"Goal/{goal_id}", "achievementStatus": "achieved"}],
        }
    }
    completed = root.post(
        f"/referrals/{tid}/complete", json=outcome, headers={**_as(HOUSING), "If-Match": etag}
    )
    assert completed.status_code == 200, completed.text
    goal = root.get(f"/fhir/Goal/{goal_id}", headers=_as(clinic)).json()
    assert goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    activity = next(
        a
        for a in root.get(f"/fhir/CarePlan/{plan_id}", headers=_as(clinic)).json()["activity"]
        if a.get("reference", {}).get("reference") == request_ref
    )
    assert activity["outcomeCodeableConcept"][0]["text"] == "Tenancy sustained for three months"
    # A plan the caller cannot see (or that does not exist) is refused, nothing stored.
    hidden = root.post(
        "/referrals",
        json={**_referral(case["client_id"], from_agency=clinic), "care_plan_id": "nope"},
        headers=_as(clinic),
    )
    assert hidden.status_code == 422 and "care_plan_id" in hidden.text
