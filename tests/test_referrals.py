"""Referrals over HTTP on SQLite and PostgreSQL: the Task state machine on every write path
(the /referrals actions, the Task operations, PUT, PATCH, transaction and batch entries),
who may do what, the ServiceRequest following its Task, the boxes, the packet, the history,
and accept racing cancel.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from app.clock import Clock
from app.main import create_app
from tests.conftest import Backend
from tests.support.referrals import (
    AGENCY,
    FHIR_JSON,
    OTHER,
    OWNER,
    REQUESTER,
    Referrals,
    as_agency,
    binary_patch,
    package,
)
from tests.support.server import LiveServer, free_port, start_server


@pytest.fixture
def ref(client: httpx.Client, live: LiveServer) -> Referrals:
    return Referrals(client, live.root)


def count(ref: Referrals, resource_type: str) -> int:
    response = ref.http.get(f"{ref.root}/fhir/{resource_type}", params={"_total": "accurate"})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def outcome_text(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


# -- submitting ------------------------------------------------------------------------
def test_submit_stores_the_package_and_answers_the_referral(ref: Referrals) -> None:
    response = ref.http.post(
        f"{ref.root}/referrals",
        content=orjson.dumps(package()),
        headers={**FHIR_JSON, **as_agency(REQUESTER)},
    )
    assert response.status_code == 201, response.text
    view = response.json()
    assert response.headers["ETag"] == view["etag"] == 'W/"1"'
    assert response.headers["Location"] == f"{ref.root}/referrals/{view['id']}"
    assert (view["status"], view["requester"], view["owner"]) == ("requested", REQUESTER, OWNER)
    assert view["links"]["actions"] == {"cancel": f"{ref.root}/referrals/{view['id']}/cancel"}
    assert view["links"]["self"] == f"{ref.root}/fhir/Task/{view['id']}"
    task = ref.task(view["id"]).json()
    assert task["authoredOn"] == task["lastModified"]
    assert task["focus"]["reference"] == view["serviceRequest"]
    for kind in ("Patient", "Goal", "CarePlan", "Consent", "Observation", "ServiceRequest"):
        assert count(ref, kind) == 1


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"extra_tasks": 1}, 422, "exactly one referral Task"),
        ({"requester": OTHER}, 409, "an agency submits its own referrals"),
        ({"owner": None}, 422, "names its owner"),
        ({"task_status": "draft"}, 422, "has status requested"),
    ],
)
def test_a_bad_package_is_refused_and_stores_nothing(
    ref: Referrals, change: dict[str, Any], status: int, text: str
) -> None:
    response = ref.http.post(
        f"{ref.root}/referrals",
        content=orjson.dumps(package(**change)),
        headers={**FHIR_JSON, **as_agency(REQUESTER)},
    )
    assert response.status_code == status, response.text
    assert text in outcome_text(response)
    assert count(ref, "Patient") == 0
    assert count(ref, "Task") == 0


def test_package_shape_errors(ref: Referrals) -> None:
    headers = {**FHIR_JSON, **as_agency(REQUESTER)}
    bundle = package()
    bundle["entry"][-1]["resource"]["focus"] = {"reference": "urn:uuid:plan"}
    response = ref.http.post(f"{ref.root}/referrals", content=orjson.dumps(bundle), headers=headers)
    assert response.status_code == 422
    assert "focus must name the ServiceRequest" in outcome_text(response)
    batch = {**package(), "type": "batch"}
    response = ref.http.post(f"{ref.root}/referrals", content=orjson.dumps(batch), headers=headers)
    assert response.status_code == 400
    # Plain case-management JSON (schemas/casework.py Referral): checked field by field.
    plain = {"client": {"name": "Alex"}, "service": "counselling"}
    response = ref.http.post(f"{ref.root}/referrals", content=orjson.dumps(plain), headers=headers)
    assert response.status_code == 400
    assert "client_id" in outcome_text(response)
    response = ref.http.post(f"{ref.root}/referrals", content=b"{bad", headers=headers)
    assert response.status_code == 400
    assert count(ref, "Task") == 0


def test_submit_plain_referral(ref: Referrals) -> None:
    """An agency without a FHIR system refers with the plain case-management JSON."""
    headers = {**as_agency(REQUESTER), "Content-Type": "application/json"}
    plain = {
        "client_id": "client-9",
        "from_agency": REQUESTER,
        "to_agency": OWNER,
        "service_type": "counselling",
        "reason": "Alcohol use affecting housing",
        "requested": "2026-01-05",
    }
    response = ref.http.post(f"{ref.root}/referrals", content=orjson.dumps(plain), headers=headers)
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["status"], view["requester"], view["owner"]) == ("requested", REQUESTER, OWNER)
    inbox = ref.http.get(f"{ref.root}/referrals", params={"box": "inbox"}, headers=as_agency(OWNER))
    assert [r["id"] for r in inbox.json()["referrals"]] == [view["id"]]
    request = ref.read("ServiceRequest", view["serviceRequest"].split("/")[1])
    assert request["subject"]["reference"] == "Patient/client-9"
    # Another agency cannot be named as the sender.
    forged = {**plain, "from_agency": OTHER}
    response = ref.http.post(f"{ref.root}/referrals", content=orjson.dumps(forged), headers=headers)
    assert response.status_code == 409
    assert count(ref, "Task") == 1


# -- the actions (endpoints) -----------------------------------------------------------
ALLOWED = {
    # action: (from status, sides that may take it)
    "accept": ("requested", {"owner"}),
    "decline": ("requested", {"owner"}),
    "cancel": ("requested", {"owner", "requester"}),
    "start": ("accepted", {"owner"}),
    "hold": ("accepted", {"owner"}),
    "resume": ("on-hold", {"owner"}),
    "complete": ("in-progress", {"owner"}),
    "fail": ("in-progress", {"owner"}),
}
TARGET = {
    "accept": "accepted",
    "decline": "rejected",
    "cancel": "cancelled",
    "start": "in-progress",
    "hold": "on-hold",
    "resume": "in-progress",
    "complete": "completed",
    "fail": "failed",
}
SR_STATUS = {
    "accepted": "active",
    "rejected": "revoked",
    "cancelled": "revoked",
    "in-progress": "active",
    "on-hold": "active",
    "completed": "completed",
    "failed": "revoked",
}
ENDPOINT_CASES = [
    pytest.param(action, start, side, id=f"{action}-from-{start}-by-{side}")
    for action, (start, _) in ALLOWED.items()
    for side in ("owner", "requester", "other")
]


@pytest.mark.parametrize(("action", "start", "side"), ENDPOINT_CASES)
def test_endpoint_action_by_each_side(ref: Referrals, action: str, start: str, side: str) -> None:
    view = ref.drive(start)
    response = ref.act(view["id"], action, AGENCY[side], etag=view["etag"])
    task = ref.task(view["id"]).json()
    if side in ALLOWED[action][1]:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == task["status"] == TARGET[action]
        assert response.headers["ETag"] == f'W/"{task["meta"]["versionId"]}"'
        sr_id = task["focus"]["reference"].split("/")[1]
        assert ref.read("ServiceRequest", sr_id)["status"] == SR_STATUS[TARGET[action]]
        return
    # A third agency cannot see the referral at all: 404, as for a record that does not
    # exist (the agency access rules: docs/threat-model.md).
    expected = 404 if side == "other" else 409
    assert response.status_code == expected, response.text
    assert task["status"] == start
    assert task["meta"]["versionId"] == view["etag"][3:-1]


FORBIDDEN_FROM = [
    ("accept", "in-progress", "Task.status in-progress -> accepted is not allowed"),
    ("decline", "accepted", "Task.status accepted -> rejected is not allowed"),
    ("start", "requested", "start applies to a referral that is accepted"),
    ("resume", "accepted", "resume applies to a referral that is on-hold"),
    ("complete", "requested", "Task.status requested -> completed is not allowed"),
    ("fail", "requested", "Task.status requested -> failed is not allowed"),
    ("hold", "completed", "Task.status completed -> on-hold is not allowed"),
    ("cancel", "rejected", "Task.status rejected -> cancelled is not allowed"),
]


@pytest.mark.parametrize(("action", "start", "text"), FORBIDDEN_FROM)
def test_endpoint_action_from_a_wrong_status(
    ref: Referrals, action: str, start: str, text: str
) -> None:
    view = ref.drive(start)
    response = ref.act(view["id"], action, OWNER, etag=view["etag"])
    assert response.status_code == 409, response.text
    assert text in outcome_text(response)
    assert ref.task(view["id"]).json()["status"] == start


def test_reason_required_and_if_match_checked_when_given(ref: Referrals) -> None:
    view = ref.drive("requested")
    response = ref.act(view["id"], "decline", OWNER, etag=view["etag"], body={})
    assert response.status_code == 422
    assert "requires statusReason.text" in outcome_text(response)
    response = ref.act(view["id"], "accept", OWNER, etag='W/"7"')
    assert response.status_code == 412
    response = ref.act(view["id"], "dance", OWNER, etag=view["etag"])
    assert response.status_code == 404
    response = ref.act(view["id"], "accept", OWNER, etag=view["etag"], body={"reason": 5})
    assert response.status_code == 400
    assert ref.task(view["id"]).json()["meta"]["versionId"] == "1"
    # Without If-Match the state machine is the guard: the action applies from its
    # statuses only, so a second accept (a stale screen) is refused, not repeated.
    response = ref.act(view["id"], "accept", OWNER, etag=None)
    assert response.status_code == 200, response.text
    response = ref.act(view["id"], "accept", OWNER, etag=None)
    assert response.status_code == 409
    assert ref.task(view["id"]).json()["meta"]["versionId"] == "2"


def test_operator_acts_for_both_sides(ref: Referrals) -> None:
    view = ref.drive("requested")
    response = ref.act(view["id"], "accept", None, etag=view["etag"])
    assert response.status_code == 200, response.text
    response = ref.act(view["id"], "cancel", None, etag=response.json()["etag"])
    assert response.status_code == 200, response.text
    history = ref.http.get(f"{ref.root}/referrals/{view['id']}/history").json()["history"]
    assert [(h["status"], h["agency"]) for h in history] == [
        ("requested", REQUESTER),
        ("accepted", "local operator"),
        ("cancelled", "local operator"),
    ]


# -- the same rules through PUT --------------------------------------------------------
def put_task(
    ref: Referrals, task: dict[str, Any], agency: str | None, etag: str | None
) -> httpx.Response:
    headers = {**FHIR_JSON, **as_agency(agency)}
    if etag is not None:
        headers["If-Match"] = etag
    return ref.http.put(
        f"{ref.root}/fhir/Task/{task['id']}", content=orjson.dumps(task), headers=headers
    )


PUT_CASES = [
    # (from, to, side, expected status)
    ("requested", "accepted", "owner", 200),
    ("requested", "accepted", "requester", 409),
    ("requested", "rejected", "owner", 200),
    ("requested", "rejected", "requester", 409),
    ("requested", "cancelled", "requester", 200),
    ("requested", "cancelled", "owner", 200),
    ("requested", "completed", "owner", 409),
    ("requested", "received", "owner", 422),
    # Hidden answers as missing: If-Match on a record that does not exist is 412.
    ("requested", "accepted", "other", 412),
    ("accepted", "in-progress", "owner", 200),
    ("accepted", "in-progress", "requester", 409),
    ("accepted", "on-hold", "owner", 200),
    ("accepted", "requested", "requester", 409),
    ("on-hold", "in-progress", "owner", 200),
    ("on-hold", "cancelled", "requester", 200),
    ("in-progress", "completed", "owner", 200),
    ("in-progress", "completed", "requester", 409),
    ("in-progress", "failed", "owner", 200),
    ("in-progress", "accepted", "owner", 409),
    ("completed", "entered-in-error", "requester", 200),
    ("completed", "entered-in-error", "owner", 409),
    ("completed", "in-progress", "owner", 409),
    ("cancelled", "cancelled", "requester", 409),
]


@pytest.mark.parametrize(
    ("start", "to", "side", "status"),
    [pytest.param(*c, id=f"{c[0]}->{c[1]}-by-{c[2]}") for c in PUT_CASES],
)
def test_put_transition(ref: Referrals, start: str, to: str, side: str, status: int) -> None:
    view = ref.drive(start)
    task = ref.task(view["id"]).json()
    task["status"] = to
    task["statusReason"] = {"text": "reason given"}
    response = put_task(ref, task, AGENCY[side], view["etag"])
    assert response.status_code == status, response.text
    stored = ref.task(view["id"]).json()
    assert stored["status"] == (to if status == 200 else start)
    if status == 200 and to != start:
        sr_id = stored["focus"]["reference"].split("/")[1]
        sr = ref.read("ServiceRequest", sr_id)["status"]
        assert sr == {**SR_STATUS, "entered-in-error": "entered-in-error"}[to]


@pytest.mark.parametrize(
    ("side", "change", "status", "text"),
    [
        ("owner", {"priority": "urgent"}, 409, "this change touches priority"),
        ("owner", {"note": [{"text": "seen"}]}, 409, "touches note"),
        ("owner", {"businessStatus": {"text": "Booked for Tuesday"}}, 200, ""),
        ("requester", {"businessStatus": {"text": "x"}}, 409, "touches businessStatus"),
        ("requester", {"note": [{"text": "Client prefers afternoons"}]}, 200, ""),
        ("requester", {"owner": {"reference": OTHER}}, 409, "touches owner"),
        ("owner", {"requester": {"reference": OWNER}}, 409, "touches requester"),
        (
            "owner",
            {"status": "on-hold", "statusReason": {"coding": [{"code": "x"}]}},
            422,
            "requires statusReason.text",
        ),
    ],
)
def test_put_element_ownership(
    ref: Referrals, side: str, change: dict[str, Any], status: int, text: str
) -> None:
    view = ref.drive("accepted")
    task = {**ref.task(view["id"]).json(), **change}
    response = put_task(ref, task, AGENCY[side], view["etag"])
    assert response.status_code == status, response.text
    if status != 200:
        assert text in outcome_text(response)
        assert ref.task(view["id"]).json()["meta"]["versionId"] == view["etag"][3:-1]


def test_put_without_if_match_and_server_owned_elements(ref: Referrals) -> None:
    view = ref.drive("requested")
    task = ref.task(view["id"]).json()
    task["status"] = "accepted"
    response = put_task(ref, {**task, "priority": "asap"}, OWNER, None)
    assert response.status_code == 428
    assert "priority" in outcome_text(response)
    task["authoredOn"] = "2001-01-01T00:00:00Z"
    response = put_task(ref, task, OWNER, None)
    assert response.status_code == 200, response.text
    stored = response.json()
    # authoredOn is the server's: the time the referral was requested.
    assert stored["authoredOn"] == view["authoredOn"]
    assert stored["executionPeriod"]["start"] == stored["lastModified"]


def test_delete_and_plain_tasks(ref: Referrals) -> None:
    view = ref.drive("requested")
    url = f"{ref.root}/fhir/Task/{view['id']}"
    response = ref.http.delete(url, headers=as_agency(REQUESTER))
    assert response.status_code == 428
    response = ref.http.delete(url, headers={**as_agency(REQUESTER), "If-Match": view["etag"]})
    assert response.status_code == 409
    assert "entered-in-error" in outcome_text(response)
    # A Task that is not a referral is not constrained.
    plain = {"resourceType": "Task", "status": "requested", "intent": "order"}
    created = ref.http.post(
        f"{ref.root}/fhir/Task",
        content=orjson.dumps(plain),
        headers={**FHIR_JSON, **as_agency(OTHER)},
    )
    assert created.status_code == 201
    plain = {**created.json(), "status": "completed"}
    response = put_task(ref, plain, OTHER, None)
    assert response.status_code == 200, response.text


def test_practitioner_role_requester_belongs_to_its_organization(ref: Referrals) -> None:
    role = {
        "resourceType": "PractitionerRole",
        "id": "cm-7",
        "organization": {"reference": REQUESTER},
    }
    response = ref.http.put(
        f"{ref.root}/fhir/PractitionerRole/cm-7", content=orjson.dumps(role), headers=FHIR_JSON
    )
    assert response.status_code == 201
    view = ref.submit(REQUESTER, requester="PractitionerRole/cm-7")
    outbox = ref.http.get(
        f"{ref.root}/referrals", params={"box": "outbox"}, headers=as_agency(REQUESTER)
    ).json()
    assert [r["id"] for r in outbox["referrals"]] == [view["id"]]
    assert ref.act(view["id"], "accept", REQUESTER, etag=view["etag"]).status_code == 409
    response = ref.act(view["id"], "cancel", REQUESTER, etag=view["etag"])
    assert response.status_code == 200, response.text
    # Another agency's staff cannot act through the role.
    other = ref.submit(None, requester="PractitionerRole/cm-7")
    assert ref.act(other["id"], "cancel", OTHER, etag=other["etag"]).status_code == 404


# -- PATCH -----------------------------------------------------------------------------
def patch_task(
    ref: Referrals, tid: str, ops: list[dict[str, Any]], agency: str, etag: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json-patch+json", **as_agency(agency)}
    if etag is not None:
        headers["If-Match"] = etag
    return ref.http.patch(f"{ref.root}/fhir/Task/{tid}", content=orjson.dumps(ops), headers=headers)


@pytest.mark.parametrize(
    ("ops", "side", "etag", "status"),
    [
        ([{"op": "replace", "path": "/status", "value": "accepted"}], "owner", True, 200),
        ([{"op": "replace", "path": "/status", "value": "accepted"}], "requester", True, 409),
        ([{"op": "replace", "path": "/status", "value": "accepted"}], "other", True, 404),
        ([{"op": "replace", "path": "/status", "value": "accepted"}], "owner", False, 200),
        ([{"op": "replace", "path": "/priority", "value": "urgent"}], "requester", False, 428),
        ([{"op": "replace", "path": "/status", "value": "in-progress"}], "owner", True, 409),
        (
            [
                {"op": "replace", "path": "/status", "value": "rejected"},
                {"op": "add", "path": "/statusReason", "value": {"coding": [{"code": "x"}]}},
            ],
            "owner",
            True,
            422,
        ),
        (
            [
                {"op": "replace", "path": "/status", "value": "rejected"},
                {"op": "add", "path": "/statusReason", "value": {"text": "No capacity"}},
            ],
            "owner",
            True,
            200,
        ),
        ([{"op": "replace", "path": "/priority", "value": "urgent"}], "requester", True, 200),
        ([{"op": "replace", "path": "/priority", "value": "urgent"}], "owner", True, 409),
    ],
)
def test_patch(
    ref: Referrals, ops: list[dict[str, Any]], side: str, etag: bool, status: int
) -> None:
    view = ref.drive("requested")
    response = patch_task(ref, view["id"], ops, AGENCY[side], view["etag"] if etag else None)
    assert response.status_code == status, response.text
    stored = ref.task(view["id"]).json()
    assert stored["meta"]["versionId"] == ("2" if status == 200 else "1")


# -- transaction and batch -------------------------------------------------------------
def bundle(kind: str, entries: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


def note_entry() -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Intake call"},
        },
        "request": {"method": "POST", "url": "Observation"},
    }


@pytest.mark.parametrize(
    ("to", "side", "if_match", "status"),
    [
        ("accepted", "owner", True, 200),
        ("accepted", "requester", True, 409),
        ("completed", "owner", True, 409),
        ("accepted", "owner", False, 200),
        ("in-progress", "owner", False, 409),
        ("accepted", "other", True, 412),
    ],
)
def test_transaction_put(ref: Referrals, to: str, side: str, if_match: bool, status: int) -> None:
    view = ref.drive("requested")
    task = {**ref.task(view["id"]).json(), "status": to}
    request: dict[str, Any] = {"method": "PUT", "url": f"Task/{view['id']}"}
    if if_match:
        request["ifMatch"] = view["etag"]
    body = bundle("transaction", [{"resource": task, "request": request}, note_entry()])
    response = ref.http.post(
        f"{ref.root}/fhir", content=body, headers={**FHIR_JSON, **as_agency(AGENCY[side])}
    )
    assert response.status_code == status, response.text
    assert ref.task(view["id"]).json()["status"] == (to if status == 200 else "requested")
    # All or nothing: the Observation of the same transaction stands or falls with it.
    assert count(ref, "Observation") == (2 if status == 200 else 1)
    if status != 200:
        assert "Bundle.entry[0]" in outcome_text(response)


def test_transaction_patch_and_batch(ref: Referrals) -> None:
    view = ref.drive("requested")
    patch = {
        "resource": binary_patch([{"op": "replace", "path": "/status", "value": "accepted"}]),
        "request": {"method": "PATCH", "url": f"Task/{view['id']}", "ifMatch": view["etag"]},
    }
    response = ref.http.post(
        f"{ref.root}/fhir",
        content=bundle("transaction", [patch]),
        headers={**FHIR_JSON, **as_agency(REQUESTER)},
    )
    assert response.status_code == 409, response.text
    response = ref.http.post(
        f"{ref.root}/fhir",
        content=bundle("batch", [patch, note_entry()]),
        headers={**FHIR_JSON, **as_agency(REQUESTER)},
    )
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["409", "201 Created"]
    response = ref.http.post(
        f"{ref.root}/fhir",
        content=bundle("batch", [patch]),
        headers={**FHIR_JSON, **as_agency(OWNER)},
    )
    assert response.json()["entry"][0]["response"]["status"] == "200 OK"
    assert ref.task(view["id"]).json()["status"] == "accepted"


# -- FHIR operations -------------------------------------------------------------------
def operation(
    ref: Referrals, tid: str, name: str, agency: str, etag: str | None, params: list[Any]
) -> httpx.Response:
    headers = {**FHIR_JSON, **as_agency(agency)}
    if etag is not None:
        headers["If-Match"] = etag
    body = {"resourceType": "Parameters", "parameter": params}
    return ref.http.post(
        f"{ref.root}/fhir/Task/{tid}/${name}", content=orjson.dumps(body), headers=headers
    )


def test_task_operations(ref: Referrals) -> None:
    view = ref.drive("requested")
    tid = view["id"]
    response = operation(ref, tid, "accept", REQUESTER, view["etag"], [])
    assert response.status_code == 409
    response = operation(ref, tid, "accept", OWNER, view["etag"], [])
    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "Task"
    assert response.json()["status"] == "accepted"
    etag = response.headers["ETag"]
    response = operation(ref, tid, "hold", OWNER, etag, [])
    assert response.status_code == 422
    reason = [{"name": "reason", "valueString": "Client in hospital"}]
    response = operation(ref, tid, "hold", OWNER, etag, reason)
    assert response.status_code == 200, response.text
    assert response.json()["statusReason"]["text"] == "Client in hospital"
    response = operation(ref, tid, "resume", OWNER, response.headers["ETag"], [])
    assert response.status_code == 200
    # A reason given for the hold does not explain the resumption.
    assert "statusReason" not in response.json()
    goal_id = ref.read("ServiceRequest", view["serviceRequest"].split("/")[1])["supportingInfo"][0]
    procedure = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": {"text": "AOD counselling session"},
        "subject": {"reference": view["patient"]},
    }
    params = [
        {"name": "summary", "valueString": "Four sessions attended"},
        {"name": "resource", "resource": procedure},
        {
            "name": "goal",
            "part": [
                {"name": "goal", "valueReference": goal_id},
                {"name": "achievementStatus", "valueCode": "improving"},
            ],
        },
    ]
    response = operation(ref, tid, "complete", OWNER, response.headers["ETag"], params)
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "completed"
    made = [o["valueReference"]["reference"] for o in task["output"] if "valueReference" in o]
    assert len(made) == 1 and made[0].startswith("Procedure/")
    assert ref.read("Procedure", made[0].split("/")[1])["code"]["text"] == "AOD counselling session"
    goal = ref.read("Goal", goal_id["reference"].split("/")[1])
    assert goal["achievementStatus"]["coding"][0]["code"] == "improving"
    cancel = [{"name": "reason", "valueString": "Client moved away"}]
    response = operation(ref, tid, "cancel", REQUESTER, 'W/"99"', cancel)
    assert response.status_code == 412
    response = ref.http.post(
        f"{ref.root}/fhir/Task/{tid}/$accept",
        content=orjson.dumps({"resourceType": "Bundle"}),
        headers={**FHIR_JSON, **as_agency(OWNER), "If-Match": 'W/"1"'},
    )
    assert response.status_code == 400


def test_complete_refuses_goals_of_other_referrals_and_changes_nothing(ref: Referrals) -> None:
    first = ref.drive("in-progress")
    second = ref.drive("in-progress")
    foreign = ref.read("ServiceRequest", second["serviceRequest"].split("/")[1])
    goal = foreign["supportingInfo"][0]["reference"]
    body = {
        "outcome": {
            "summary": "done",
            "resources": [
                {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
            ],
            "goals": [{"goal": goal, "achievementStatus": "achieved"}],
        }
    }
    before = count(ref, "Observation")
    response = ref.act(first["id"], "complete", OWNER, etag=first["etag"], body=body)
    assert response.status_code == 422
    assert "is not a goal of this referral" in outcome_text(response)
    assert count(ref, "Observation") == before
    assert ref.task(first["id"]).json()["status"] == "in-progress"
    bad = {"outcome": {"summary": "x", "resources": [{"resourceType": "Procedure"}]}}
    response = ref.act(first["id"], "complete", OWNER, etag=first["etag"], body=bad)
    assert response.status_code in (400, 422), response.text
    assert "outcome.resources[0]" in outcome_text(response)


# -- boxes, packet, history ------------------------------------------------------------
def boxes(ref: Referrals, agency: str | None, **params: str) -> dict[str, Any]:
    response = ref.http.get(f"{ref.root}/referrals", params=params, headers=as_agency(agency))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_boxes(ref: Referrals) -> None:
    sent = [ref.drive("requested")["id"] for _ in range(3)]
    accepted = ref.drive("accepted")["id"]
    received = ref.submit(OWNER, requester=OWNER, owner=REQUESTER)["id"]

    def ids(body: dict[str, Any]) -> set[str]:
        return {r["id"] for r in body["referrals"]}

    assert ids(boxes(ref, OWNER, box="inbox")) == {*sent, accepted}
    assert ids(boxes(ref, OWNER, box="outbox")) == {received}
    assert ids(boxes(ref, OWNER)) == {*sent, accepted, received}
    assert ids(boxes(ref, REQUESTER, box="outbox", status="accepted")) == {accepted}
    assert ids(boxes(ref, OTHER)) == set()
    assert len(ids(boxes(ref, None))) == 5
    # Paging: every referral once, newest change first.
    seen: list[str] = []
    page = boxes(ref, OWNER, box="inbox", _count="2")
    while True:
        seen += [r["id"] for r in page["referrals"]]
        if "next" not in page["links"]:
            break
        response = ref.http.get(page["links"]["next"], headers=as_agency(OWNER))
        assert response.status_code == 200, response.text
        page = response.json()
    assert sorted(seen) == sorted({*sent, accepted}) and seen[0] == accepted
    for bad in ({"box": "spam"}, {"status": "ready"}, {"overdue": "yes"}, {"colour": "red"}):
        response = ref.http.get(f"{ref.root}/referrals", params=bad, headers=as_agency(OWNER))
        assert response.status_code == 400, bad
    response = ref.http.get(f"{ref.root}/referrals", params={"box": "inbox"})
    assert response.status_code == 400


def test_packet(ref: Referrals) -> None:
    view = ref.drive("accepted")
    response = ref.http.get(f"{ref.root}/referrals/{view['id']}", headers=as_agency(OWNER))
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == view["etag"]
    packet = response.json()
    assert packet["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in packet["entry"]]
    assert kinds[0] == "Task"
    assert sorted(kinds[1:]) == [
        "CarePlan",
        "Consent",
        "Goal",
        "Observation",
        "Patient",
        "ServiceRequest",
    ]
    response = ref.http.get(f"{ref.root}/referrals/{view['id']}", headers=as_agency(OTHER))
    assert response.status_code == 404
    response = ref.http.get(f"{ref.root}/referrals/nope", headers=as_agency(OWNER))
    assert response.status_code == 404


def test_history(ref: Referrals) -> None:
    view = ref.drive("on-hold")
    changed = put_task(
        ref,
        {**ref.task(view["id"]).json(), "businessStatus": {"text": "Waiting for a bed"}},
        OWNER,
        view["etag"],
    )
    assert changed.status_code == 200
    response = ref.act(view["id"], "cancel", REQUESTER, etag=changed.headers["ETag"])
    assert response.status_code == 200
    history = ref.http.get(
        f"{ref.root}/referrals/{view['id']}/history", headers=as_agency(REQUESTER)
    ).json()["history"]
    assert [(h["from"], h["status"], h["agency"], h["reason"]) for h in history] == [
        (None, "requested", REQUESTER, None),
        ("requested", "accepted", OWNER, None),
        ("accepted", "on-hold", OWNER, "hold: reason given"),
        ("on-hold", "cancelled", REQUESTER, "cancel: reason given"),
    ]
    assert [h["version"] for h in history] == [1, 2, 3, 5]
    assert history[-1]["at"] > history[0]["at"]
    response = ref.http.get(f"{ref.root}/referrals/{view['id']}/history", headers=as_agency(OTHER))
    assert response.status_code == 404


# -- accept racing cancel --------------------------------------------------------------
@pytest.fixture
def racers(live: LiveServer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=live.root, timeout=30) as one,
        httpx.Client(base_url=live.root, timeout=30) as two,
    ):
        yield one, two


def _race_one(
    client: httpx.Client,
    barrier: threading.Barrier,
    results: dict[str, int],
    view: dict[str, Any],
    action: str,
    agency: str,
) -> None:
    body = b'{"reason": "client moved away"}' if action == "cancel" else b""
    barrier.wait()
    response = client.post(
        f"/referrals/{view['id']}/{action}",
        content=body,
        headers={"Content-Type": "application/json", "If-Match": view["etag"], **as_agency(agency)},
    )
    results[action] = response.status_code


def test_accept_and_cancel_race(
    ref: Referrals, racers: tuple[httpx.Client, httpx.Client], backend: Backend
) -> None:
    for _ in range(5):
        view = ref.drive("requested")
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}
        threads = [
            threading.Thread(
                target=_race_one, args=(racers[0], barrier, results, view, "accept", OWNER)
            ),
            threading.Thread(
                target=_race_one, args=(racers[1], barrier, results, view, "cancel", REQUESTER)
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [200, 412], (backend.name, results)
        winner = next(a for a, code in results.items() if code == 200)
        task = ref.task(view["id"]).json()
        assert task["status"] == {"accept": "accepted", "cancel": "cancelled"}[winner]
        assert task["meta"]["versionId"] == "2"


# -- overdue ---------------------------------------------------------------------------
class ManualClock:
    """A clock the test moves: readings advance 1 ms from the time last set."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._moment = start
        self._ids = itertools.count(1)

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._moment = moment

    def now(self) -> datetime:
        with self._lock:
            self._moment += timedelta(milliseconds=1)
            return self._moment

    def new_id(self) -> str:
        with self._lock:
            return f"o{next(self._ids):06d}"

    def clock(self) -> Clock:
        return Clock(now=self.now, new_id=self.new_id)


FRIDAY = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)


@pytest.fixture
def timed(backend: Backend) -> Iterator[tuple[Referrals, ManualClock, Backend]]:
    backend.truncate()
    manual = ManualClock(FRIDAY)
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir")
    server = start_server(create_app(settings, clock=manual.clock()), port)
    try:
        with httpx.Client(timeout=30) as http:
            yield Referrals(http, server.root), manual, backend
    finally:
        server.stop()


def test_overdue_referrals(timed: tuple[Referrals, ManualClock, Backend]) -> None:
    ref, manual, backend = timed
    waiting = ref.drive("requested")["id"]
    idle = ref.drive("accepted")["id"]
    started = ref.drive("in-progress")["id"]

    def overdue(agency: str, **params: str) -> dict[str, str | None]:
        body = boxes(ref, agency, overdue="true", **params)
        return {r["id"]: r["overdueReason"] for r in body["referrals"]}

    # Three business days after Friday 10:00 is Wednesday 10:00 (the weekend does not count).
    manual.set(datetime(2026, 1, 14, 9, 59, tzinfo=UTC))
    assert overdue(OWNER) == {}
    manual.set(datetime(2026, 1, 14, 10, 1, tzinfo=UTC))
    expected = {waiting: "not accepted in time", idle: "not started in time"}
    assert overdue(OWNER, box="inbox") == expected
    assert overdue(REQUESTER, box="outbox") == expected
    assert overdue(OTHER) == {}
    assert overdue(OWNER, status="requested") == {waiting: "not accepted in time"}
    not_overdue = boxes(ref, OWNER, overdue="false")["referrals"]
    assert [r["id"] for r in not_overdue] == [started]
    # Shown with a tag, never stored: the ETag both sides hold stays valid.
    shown = ref.http.get(f"{ref.root}/referrals/{waiting}", headers=as_agency(OWNER)).json()
    tags = shown["entry"][0]["resource"]["meta"]["tag"]
    assert [t["code"] for t in tags] == ["overdue"]
    stored = ref.task(waiting).json()
    assert "tag" not in stored["meta"] and stored["meta"]["versionId"] == "1"
    # Acting on an overdue referral clears it.
    response = ref.act(idle, "start", OWNER, etag='W/"2"')
    assert response.status_code == 200, response.text
    assert response.json()["overdue"] is False
    assert overdue(OWNER) == {waiting: "not accepted in time"}

    # The wait is a setting.
    port = free_port()
    settings = backend.settings(base_url=f"http://127.0.0.1:{port}/fhir", referral_accept_days=10)
    patient = start_server(create_app(settings, clock=manual.clock()), port)
    try:
        body = ref.http.get(
            f"{patient.root}/referrals", params={"overdue": "true"}, headers=as_agency(OWNER)
        ).json()
        assert body["referrals"] == []
    finally:
        patient.stop()


# -- hostile input: a clear 4xx, never a 500, nothing stored ----------------------------
HOSTILE_ACTIONS = [
    ("complete", b'{"outcome": []}'),
    ("complete", b'{"outcome": {"summary": "x", "resources": "Procedure"}}'),
    (
        "complete",
        b'{"outcome": {"summary": "x", "resources": [{"resourceType": "Procedure", "status": 7}]}}',
    ),
    ("complete", b'{"outcome": {"summary": "x", "references": [{"reference": "Procedure/1"}]}}'),
    ("complete", b'{"outcome": {"summary": "x", "references": ["Procedure/nope"]}}'),
    ("complete", b'{"outcome": {"summary": "x", "goals": ["Goal/1"]}}'),
    ("complete", b'{"outcome": {"summary": "x", "goals": [{"goal": 3, "achievementStatus": 1}]}}'),
    ("decline", b'{"reason": ""}'),
    ("decline", b'"no"'),
    ("decline", b"[1, 2"),
]


@pytest.mark.parametrize(("action", "body"), HOSTILE_ACTIONS)
def test_hostile_action_bodies(ref: Referrals, action: str, body: bytes) -> None:
    view = ref.drive("in-progress" if action == "complete" else "requested")
    response = ref.http.post(
        f"{ref.root}/referrals/{view['id']}/{action}",
        content=body,
        headers={"Content-Type": "application/json", "If-Match": view["etag"], **as_agency(OWNER)},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert ref.task(view["id"]).json()["meta"]["versionId"] == view["etag"][3:-1]
    params = [
        {"name": "goal", "part": "x"},
        {"name": "reference", "valueReference": "Procedure/1"},
        {"name": "resource", "resource": [1]},
        7,
    ]
    for param in params:
        response = operation(ref, view["id"], action, OWNER, view["etag"], [param])
        assert 400 <= response.status_code < 500, (param, response.text)


@pytest.mark.parametrize(
    "bundle_body",
    [
        b'{"resourceType": "Bundle", "type": "transaction", "entry": [7, {"resource": 1}]}',
        b'{"resourceType": "Bundle", "type": "transaction", "entry": {}}',
        b'{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {'
        b'"resourceType": "Task", "code": {"coding": [{"system": '
        b'"http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}, "focus": 5}}]}',
        b"[]",
        b"",
    ],
)
def test_hostile_packages(ref: Referrals, bundle_body: bytes) -> None:
    response = ref.http.post(
        f"{ref.root}/referrals",
        content=bundle_body,
        headers={**FHIR_JSON, **as_agency(REQUESTER)},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert count(ref, "Task") == 0


# -- drafts and conditional update -----------------------------------------------------
def test_draft_then_requested_and_draft_deletion(ref: Referrals) -> None:
    headers = {**FHIR_JSON, **as_agency(REQUESTER)}
    request = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }
    sr = ref.http.post(
        f"{ref.root}/fhir/ServiceRequest", content=orjson.dumps(request), headers=headers
    )
    assert sr.status_code == 201
    task = package()["entry"][-1]["resource"]
    task = {**task, "status": "draft", "focus": {"reference": f"ServiceRequest/{sr.json()['id']}"}}
    task["for"] = {"reference": "Patient/p1"}
    # Only the requester creates a referral.
    response = ref.http.post(
        f"{ref.root}/fhir/Task",
        content=orjson.dumps(task),
        headers={**FHIR_JSON, **as_agency(OWNER)},
    )
    assert response.status_code == 409, response.text
    response = ref.http.post(f"{ref.root}/fhir/Task", content=orjson.dumps(task), headers=headers)
    assert response.status_code == 201, response.text
    draft = response.json()
    # A draft is the requester's own: it may still change what is asked.
    edited = {**draft, "description": "Weekly counselling", "priority": "urgent"}
    response = put_task(ref, edited, REQUESTER, 'W/"1"')
    assert response.status_code == 200, response.text
    response = put_task(ref, {**response.json(), "status": "requested"}, OWNER, 'W/"2"')
    assert response.status_code == 409
    response = put_task(ref, {**edited, "status": "requested"}, REQUESTER, 'W/"2"')
    assert response.status_code == 200, response.text
    sent = response.json()
    assert sent["authoredOn"] == sent["lastModified"] != draft["authoredOn"]
    assert ref.read("ServiceRequest", sr.json()["id"])["status"] == "active"
    # A second draft is deleted by its requester; the sent one is not.
    second = ref.http.post(f"{ref.root}/fhir/Task", content=orjson.dumps(task), headers=headers)
    url = f"{ref.root}/fhir/Task/{second.json()['id']}"
    # Only the agency that wrote a record deletes it (the agency access rules).
    response = ref.http.delete(url, headers={**as_agency(OWNER), "If-Match": 'W/"1"'})
    assert response.status_code == 403
    response = ref.http.delete(url, headers={**as_agency(REQUESTER), "If-Match": 'W/"1"'})
    assert response.status_code == 204
    assert ref.http.get(url).status_code == 410


def test_conditional_update(ref: Referrals) -> None:
    view = ref.drive("requested")
    task = {**ref.task(view["id"]).json(), "status": "accepted"}
    url = f"{ref.root}/fhir/Task?_id={view['id']}"
    # A third agency's criteria match nothing it may see; the id is taken: 409.
    for agency, status in ((REQUESTER, 409), (OTHER, 409), (OWNER, 200)):
        response = ref.http.put(
            url,
            content=orjson.dumps(task),
            headers={**FHIR_JSON, **as_agency(agency), "If-Match": view["etag"]},
        )
        assert response.status_code == status, response.text
    assert ref.task(view["id"]).json()["status"] == "accepted"
