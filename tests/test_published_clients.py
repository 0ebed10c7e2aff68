"""The published SDOHCC reference apps, replayed as they write (issue 18, section 1).

The Gravity referral source app and the community organisation's inbox app update a referral
Task with a whole-Task PUT that never carries If-Match: they read the Task (the inbox app
from a cache of its last poll), set the status (with statusReason for reject and cancel,
Task.output for completion) and PUT it back; on cancel the source app then revokes the
ServiceRequest the same way. casebridge accepts such a write when the state machine allows
it: a status change this side may make from the current status that touches nothing else
of the Task, so a body read before another change cannot overwrite that change.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.support.referrals import FHIR_JSON, OWNER, REQUESTER, Referrals, as_agency
from tests.support.server import LiveServer

TEMPORARY_CODES = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)


@pytest.fixture
def ref(client: httpx.Client, live: LiveServer) -> Referrals:
    return Referrals(client, live.root)


def _put(ref: Referrals, resource: dict[str, Any], agency: str, **headers: str) -> httpx.Response:
    """The apps' update: PUT of the whole resource, no If-Match (Ruby fhir_client)."""
    return ref.http.put(
        f"{ref.root}/fhir/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**FHIR_JSON, "Accept": "application/fhir+json", **as_agency(agency), **headers},
    )


def _post(ref: Referrals, resource: dict[str, Any], agency: str) -> dict[str, Any]:
    response = ref.http.post(
        f"{ref.root}/fhir/{resource['resourceType']}",
        json=resource,
        headers={**FHIR_JSON, **as_agency(agency)},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _request_of(ref: Referrals, task: dict[str, Any]) -> dict[str, Any]:
    return ref.read("ServiceRequest", task["focus"]["reference"].split("/")[1])


def _diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


def test_the_inbox_app_accepts_starts_and_completes_without_if_match(ref: Referrals) -> None:
    view = ref.submit()
    task = ref.task(view["id"]).json()
    for status in ("accepted", "in-progress"):
        task["status"] = status
        response = _put(ref, task, OWNER)
        assert response.status_code == 200, response.text
        task = response.json()
        assert task["status"] == status
    assert _request_of(ref, task)["status"] == "active"
    # Completion: the Procedure (and an enrollment Observation) created first, then appended
    # to Task.output, then the Task PUT as completed.
    procedure = _post(
        ref,
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "Alcohol and other drug counselling"},
            "subject": task["for"],
            "basedOn": [task["focus"]],
            "performedDateTime": "2026-03-02",
        },
        OWNER,
    )
    observation = _post(
        ref,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Program enrollment status"},
            "subject": task["for"],
            "valueCodeableConcept": {"coding": [{"system": TEMPORARY_CODES, "code": "enrolled"}]},
        },
        OWNER,
    )
    task["status"] = "completed"
    task["output"] = [
        {
            "type": {"coding": [{"system": TEMPORARY_CODES, "code": "resulting-activity"}]},
            "valueReference": {"reference": f"Procedure/{procedure['id']}"},
        },
        {
            "type": {"coding": [{"system": TEMPORARY_CODES, "code": "additional-content"}]},
            "valueReference": {"reference": f"Observation/{observation['id']}"},
        },
    ]
    response = _put(ref, task, OWNER)
    assert response.status_code == 200, response.text
    stored = ref.task(view["id"]).json()
    assert (stored["status"], stored["meta"]["versionId"]) == ("completed", "4")
    assert [o["valueReference"]["reference"] for o in stored["output"]] == [
        f"Procedure/{procedure['id']}",
        f"Observation/{observation['id']}",
    ]
    assert _request_of(ref, stored)["status"] == "completed"


def test_the_inbox_app_rejects_with_a_reason(ref: Referrals) -> None:
    view = ref.submit()
    task = ref.task(view["id"]).json()
    task["status"] = "rejected"
    task["statusReason"] = {"text": "At capacity"}
    response = _put(ref, task, OWNER)
    assert response.status_code == 200, response.text
    assert _request_of(ref, task)["status"] == "revoked"


def test_the_source_app_cancels_without_a_reason_then_revokes_the_request(
    ref: Referrals,
) -> None:
    view = ref.drive("accepted")
    task = ref.task(view["id"]).json()
    task["status"] = "cancelled"
    response = _put(ref, task, REQUESTER, Prefer="return=OperationOutcome")
    # statusReason is a SHOULD in SDOHCC: accepted, with a warning that says so.
    assert response.status_code == 200, response.text
    issues = response.json()["issue"]
    assert any(
        i["severity"] == "warning" and "statusReason" in i.get("diagnostics", "") for i in issues
    ), issues
    stored = ref.task(view["id"]).json()
    assert stored["status"] == "cancelled"
    # Then the app reads the ServiceRequest and PUTs it revoked (already so: it followed).
    request = _request_of(ref, stored)
    assert request["status"] == "revoked"
    request["status"] = "revoked"
    response = _put(ref, request, REQUESTER)
    assert response.status_code == 200, response.text
    assert _request_of(ref, stored)["status"] == "revoked"


def test_a_reason_without_text_is_still_refused(ref: Referrals) -> None:
    """Where SDOHCC does require it: a statusReason given carries text (statusReason.text 1..)."""
    view = ref.submit()
    task = ref.task(view["id"]).json()
    task["status"] = "rejected"
    task["statusReason"] = {"coding": [{"code": "capacity"}]}
    response = _put(ref, task, OWNER)
    assert response.status_code == 422, response.text
    assert "statusReason.text" in _diagnostics(response)
    assert ref.task(view["id"]).json()["status"] == "requested"


def test_a_stale_body_without_if_match_cannot_overwrite_the_other_sides_change(
    ref: Referrals,
) -> None:
    view = ref.submit()
    cached = ref.task(view["id"]).json()  # the inbox app's last poll
    # Meanwhile the requester adds a note (with If-Match, as a careful client does).
    newer = copy.deepcopy(cached)
    newer["note"] = [{"text": "Client prefers afternoon appointments"}]
    response = _put(ref, newer, REQUESTER, **{"If-Match": view["etag"]})
    assert response.status_code == 200, response.text
    # The inbox app accepts from its cache: its body would drop the note.
    cached["status"] = "accepted"
    response = _put(ref, cached, OWNER)
    assert response.status_code == 428, response.text
    assert "note" in _diagnostics(response)
    assert "If-Match" in _diagnostics(response)
    stored = ref.task(view["id"]).json()
    assert (stored["status"], stored["meta"]["versionId"]) == ("requested", "2")
    assert stored["note"] == newer["note"]
    # Read again, the same accept goes through.
    fresh = ref.task(view["id"]).json()
    fresh["status"] = "accepted"
    assert _put(ref, fresh, OWNER).status_code == 200


def test_a_status_overtaken_by_the_other_side_is_refused(ref: Referrals) -> None:
    view = ref.submit()
    cached = ref.task(view["id"]).json()
    cancel = copy.deepcopy(cached)
    cancel["status"] = "cancelled"
    cancel["statusReason"] = {"text": "Client moved interstate"}
    assert _put(ref, cancel, REQUESTER).status_code == 200
    cached["status"] = "accepted"
    response = _put(ref, cached, OWNER)
    assert response.status_code == 409, response.text
    stored = ref.task(view["id"]).json()
    assert (stored["status"], stored["statusReason"]["text"]) == (
        "cancelled",
        "Client moved interstate",
    )


def test_without_if_match_only_a_status_change_is_accepted(ref: Referrals) -> None:
    view = ref.submit()
    task = ref.task(view["id"]).json()
    task["note"] = [{"text": "Please call first"}]
    response = _put(ref, task, REQUESTER)
    assert response.status_code == 428, response.text
    assert "If-Match" in _diagnostics(response)
    response = ref.http.delete(f"{ref.root}/fhir/Task/{view['id']}", headers=as_agency(REQUESTER))
    assert response.status_code == 428
    assert ref.task(view["id"]).json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("start", ["requested", "accepted"])
def test_revoking_the_request_cancels_its_open_referral(ref: Referrals, start: str) -> None:
    view = ref.drive(start)
    task = ref.task(view["id"]).json()
    request = _request_of(ref, task)
    request["status"] = "revoked"
    response = _put(ref, request, REQUESTER)
    assert response.status_code == 200, response.text
    stored = ref.task(view["id"]).json()
    assert stored["status"] == "cancelled"
    assert "revoked" in stored["statusReason"]["text"]
    assert _request_of(ref, stored)["status"] == "revoked"
    # One new version of each: the cancelled Task's change did not write the request again.
    assert stored["meta"]["versionId"] == str(int(task["meta"]["versionId"]) + 1)
    assert _request_of(ref, stored)["meta"]["versionId"] == str(
        int(request["meta"]["versionId"]) + 1
    )


def test_the_receiver_cannot_revoke_the_request(ref: Referrals) -> None:
    view = ref.drive("accepted")
    request = _request_of(ref, ref.task(view["id"]).json())
    request["status"] = "revoked"
    response = _put(ref, request, OWNER)
    assert response.status_code == 409, response.text
    assert "decline, fail or cancel" in _diagnostics(response)
    assert ref.task(view["id"]).json()["status"] == "accepted"
    assert _request_of(ref, ref.task(view["id"]).json())["status"] == "active"


def test_the_capability_statement_says_when_if_match_may_be_left_out(ref: Referrals) -> None:
    statement = ref.http.get(f"{ref.root}/fhir/metadata").json()
    described = {r["type"]: r.get("documentation", "") for r in statement["rest"][0]["resource"]}
    assert "without If-Match" in described["Task"]
    assert "428" in described["Task"]
    assert "cancels its open referral Tasks" in described["ServiceRequest"]
