"""Agency access on the write side (issue 16): no agency reaches another's records by what
it writes, and every answer about a record it may not see is the answer about one that does
not exist.

A is an AOD service (its records labelled sensitive) that referred its client to C
under the client's consent (purpose TREAT); B is the attacker; C also keeps a client of its
own. The records are written through the session's server; the attacks go to a server
with the production default (agencies do not choose ids), on the same database. Requests
run with auth off and the X-Casebridge-Agency header naming the acting agency.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from app.security.targets import TargetRefused, check_resolved, check_written
from tests import factories
from tests.conftest import Backend, server_with
from tests.support.server import LiveServer

A, B, C = "Organization/aoda", "Organization/attacker", "Organization/third"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
AGENCY_TYPE = "https://casebridge.org/fhir/CodeSystem/agency-type"
MRN = "urn:aoda:mrn"
# Headers whose values a client can read (date and server are the transport's).
COMPARED_HEADERS = (
    "etag",
    "location",
    "content-location",
    "last-modified",
    "www-authenticate",
    "x-casebridge-redisclosure",
    "content-type",
)


def as_(agency: str | None, **extra: str) -> dict[str, str]:
    headers = {**factories.FHIR_JSON, **extra}
    if agency is not None:
        headers["X-Casebridge-Agency"] = agency
    return headers


def put(http: httpx.Client, agency: str | None, resource: dict[str, Any]) -> dict[str, Any]:
    response = http.put(
        f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=as_(agency)
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def post(http: httpx.Client, agency: str, resource: dict[str, Any], **extra: str) -> httpx.Response:
    return http.post(f"/{resource['resourceType']}", json=resource, headers=as_(agency, **extra))


def referral_task(
    focus: str, patient: str, requester: str, owner: str, **more: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": focus},
        "for": {"reference": patient},
        "requester": {"reference": requester},
        "owner": {"reference": owner},
        **more,
    }


def service_request(patient: str, *carried: str, **more: Any) -> dict[str, Any]:
    """A ServiceRequest about patient, carrying the records named as supportingInfo."""
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": patient},
        **more,
    }
    if carried:
        body["supportingInfo"] = [{"reference": key} for key in carried]
    return body


def consent(
    patient: str, actor: str, purpose: str = "TREAT", status: str = "active"
) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {"text": "treatment"},
        "category": [{"text": "AOD disclosure"}],
        "patient": {"reference": patient},
        "provision": {
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "actor": [{"role": {"text": "recipient"}, "reference": {"reference": actor}}],
            "purpose": [{"system": V3_ACT_REASON, "code": purpose}],
        },
    }


def observation(oid: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75624-7"}]},
        "subject": {"reference": patient},
        "valueInteger": 21,
    }


@dataclass
class World:
    setup: httpx.Client
    attack: httpx.Client

    def status(self, agency: str, path: str) -> int:
        return self.attack.get(path, headers=as_(agency)).status_code


@pytest.fixture(scope="module")
def guarded(backend: Backend) -> Iterator[LiveServer]:
    # The production defaults: agencies do not choose ids; no private webhook endpoints.
    server = server_with(backend, agency_update_create=False, notify_allow_private_endpoints=False)
    yield server
    server.stop()


@pytest.fixture
def world(client: httpx.Client, guarded: LiveServer) -> Iterator[World]:
    for org in ("attacker", "third"):
        put(client, None, {"resourceType": "Organization", "id": org, "name": org})
    aod_type = [{"coding": [{"system": AGENCY_TYPE, "code": "aod"}]}]
    put(
        client,
        None,
        {"resourceType": "Organization", "id": "aoda", "name": "AOD", "type": aod_type},
    )
    # A's client and record, and a referral of it to C under the client's consent.
    put(
        client,
        A,
        factories.patient(
            id="pa",
            identifier=[{"system": MRN, "value": "A-789"}],
            managingOrganization={"reference": A},
        ),
    )
    put(client, A, observation("oa", "Patient/pa"))
    put(
        client,
        A,
        {
            "resourceType": "Condition",
            "id": "ca",
            "subject": {"reference": "Patient/pa"},
            "code": {"text": "Alcohol use disorder"},
        },
    )
    put(
        client, A, {**factories.minimal("Goal"), "id": "ga", "subject": {"reference": "Patient/pa"}}
    )
    put(client, A, service_request("Patient/pa", "Goal/ga", id="sra"))
    put(client, A, {**referral_task("ServiceRequest/sra", "Patient/pa", A, C), "id": "ta"})
    put(client, A, {**consent("Patient/pa", C), "id": "consa"})
    # C's own client.
    put(client, C, factories.patient(id="pc", name=[{"family": "Okafor"}]))
    put(client, C, observation("oc", "Patient/pc"))
    with httpx.Client(base_url=guarded.fhir, timeout=30) as attack:
        yield World(client, attack)


def test_the_world_is_what_the_attacks_assume(world: World) -> None:
    assert world.status(C, "/Goal/ga") == 200  # the consented referral releases it
    assert world.status(A, "/Observation/oc") == 404
    for path in ("/Patient/pa", "/Observation/oa", "/Condition/ca", "/Goal/ga", "/Task/ta"):
        assert world.status(B, path) == 404, path
    labels = world.setup.get("/Goal/ga", headers=as_(A)).json()["meta"]["security"]
    assert {label["code"] for label in labels} >= {"R", "ETH"}


# -- hole 1: a self-made referral and consent --------------------------------------------
def test_a_self_made_referral_and_consent_release_nothing_of_another_agencys_client(
    world: World,
) -> None:
    http = world.attack
    request = post(http, B, service_request("Patient/pa", "Observation/oa", "Condition/ca"))
    assert request.status_code == 201, request.text
    task = post(
        http,
        B,
        referral_task(f"ServiceRequest/{request.json()['id']}", "Patient/pa", B, B),
        Prefer="return=OperationOutcome",
    )
    assert task.status_code == 201, task.text
    # The write says what it does not share, worded alike for hidden and missing records.
    warnings = [i for i in task.json()["issue"] if i["severity"] == "warning"]
    assert len(warnings) == 1
    for key in ("Patient/pa", "Observation/oa", "Condition/ca"):
        assert key in warnings[0]["diagnostics"]
    assert post(http, B, consent("Patient/pa", B)).status_code == 201
    for path in ("/Observation/oa", "/Patient/pa", "/Condition/ca"):
        assert world.status(B, path) == 404, path
    found = http.get("/Observation?subject=Patient/pa", headers=as_(B)).json()
    assert found.get("entry") is None
    everything = http.get("/Patient/pa/$everything", headers=as_(B))
    assert everything.status_code == 404


def test_a_consent_releases_only_the_records_of_the_agency_that_recorded_it(
    world: World,
) -> None:
    # C receives A's referral. C records a consent of A's client naming itself for
    # treatment: it grants nothing of A's records; A's own consent still does.
    http = world.attack
    assert world.status(C, "/Goal/ga") == 200
    world.setup.put(
        "/Consent/consa",
        json={**consent("Patient/pa", C, status="inactive"), "id": "consa"},
        headers=as_(A),
    ).raise_for_status()
    assert world.status(C, "/Goal/ga") == 404
    assert post(http, C, consent("Patient/pa", C)).status_code == 201
    assert world.status(C, "/Goal/ga") == 404


def test_a_referral_through_a_transaction_shares_nothing_it_does_not_own(world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:sr",
                "resource": service_request("Patient/pa", "Observation/oa"),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": referral_task("urn:uuid:sr", "Patient/pa", B, C),
                "request": {"method": "POST", "url": "Task"},
            },
            {
                "resource": consent("Patient/pa", C),
                "request": {"method": "POST", "url": "Consent"},
            },
        ],
    }
    assert world.attack.post("", json=bundle, headers=as_(B)).status_code == 200
    # C already has A's client through A's own referral, never A's Observation.
    for agency, path in ((B, "/Observation/oa"), (B, "/Patient/pa"), (C, "/Observation/oa")):
        assert world.status(agency, path) == 404, (agency, path)


def test_records_a_transaction_creates_after_its_referral_are_shared_with_it(
    world: World,
) -> None:
    # The Task comes first and names records entries after it create: the shares are made
    # again before the transaction commits, so the receiving agency gets them.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": referral_task("urn:uuid:sr", "urn:uuid:p", B, C),
                "request": {"method": "POST", "url": "Task"},
            },
            {
                "fullUrl": "urn:uuid:p",
                "resource": factories.patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:g",
                "resource": {**factories.minimal("Goal"), "subject": {"reference": "urn:uuid:p"}},
                "request": {"method": "POST", "url": "Goal"},
            },
            {
                "fullUrl": "urn:uuid:sr",
                "resource": service_request("urn:uuid:p", "urn:uuid:g"),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": consent("urn:uuid:p", C),
                "request": {"method": "POST", "url": "Consent"},
            },
        ],
    }
    response = world.attack.post("", json=bundle, headers=as_(B))
    assert response.status_code == 200, response.text
    made = [e["response"]["location"].split("/_history")[0] for e in response.json()["entry"]]
    for path in made[1:3]:
        assert world.status(C, f"/{path}") == 200, path


# -- hole 2: Task.output --------------------------------------------------------------------
def test_task_output_shares_only_what_the_receiving_agency_owns(world: World) -> None:
    http = world.attack
    request = post(http, B, service_request("Patient/pc")).json()
    output = [
        {"type": {"text": "result"}, "valueReference": {"reference": "Observation/oc"}},
        {"type": {"text": "client"}, "valueReference": {"reference": "Patient/pc"}},
    ]
    task = referral_task(f"ServiceRequest/{request['id']}", "Patient/pc", B, B, output=output)
    assert post(http, B, task).status_code == 201
    assert world.status(B, "/Observation/oc") == 404
    assert world.status(B, "/Patient/pc") == 404
    # Naming another agency as the receiver does not let the requester report for it.
    task = referral_task(f"ServiceRequest/{request['id']}", "Patient/pc", B, C, output=output)
    refused = post(http, B, task)
    assert refused.status_code == 409, refused.text
    assert "Task.output" in refused.json()["issue"][0]["expression"]
    assert world.status(B, "/Observation/oc") == 404


def test_the_receiver_reports_its_own_records_in_output_and_the_referrer_sees_them(
    world: World,
) -> None:
    put(world.setup, C, observation("oc-result", "Patient/pa"))
    put(world.setup, B, observation("ob", "Patient/pa"))
    task = world.setup.get("/Task/ta", headers=as_(C))
    assert task.status_code == 200
    body = task.json()
    body["status"] = "accepted"
    body["output"] = [
        {"type": {"text": "result"}, "valueReference": {"reference": "Observation/oc-result"}},
        # Not C's: named, but not shared by the referral.
        {"type": {"text": "other"}, "valueReference": {"reference": "Observation/ob"}},
    ]
    response = world.setup.put(
        "/Task/ta", json=body, headers=as_(C, **{"If-Match": task.headers["etag"]})
    )
    assert response.status_code == 200, response.text
    assert world.status(A, "/Observation/oc-result") == 200
    assert world.status(A, "/Observation/ob") == 404


# -- hole 3: PATCH ------------------------------------------------------------------------
PATCHES = [
    pytest.param([{"op": "copy", "from": "/name/0/family", "path": "/gender"}], id="copy"),
    pytest.param([{"op": "test", "path": "/name/0/family", "value": "Rivera"}], id="test-true"),
    pytest.param([{"op": "test", "path": "/name/0/family", "value": "Nobody"}], id="test-false"),
    pytest.param([{"op": "remove", "path": "/identifier"}], id="remove"),
]


def assert_same_answer(
    hidden: httpx.Response, missing: httpx.Response, hidden_id: str, missing_id: str
) -> None:
    """Byte-identical answers once the id asked for is swapped."""
    assert_same_answers(hidden, missing, {hidden_id: missing_id})


def assert_same_answers(
    hidden: httpx.Response, missing: httpx.Response, swaps: dict[str, str]
) -> None:
    """Byte-identical answers once the ids asked for are swapped (longest first)."""
    assert hidden.status_code == missing.status_code, (hidden.text, missing.text)

    def swapped(text: str) -> str:
        for old in sorted(swaps, key=len, reverse=True):
            text = text.replace(old, swaps[old])
        return text

    assert swapped(hidden.text) == missing.text
    for name in COMPARED_HEADERS:
        value = hidden.headers.get(name)
        assert (swapped(value) if value is not None else None) == missing.headers.get(name), name


def _patch(http: httpx.Client, agency: str, path: str, ops: list[Any]) -> httpx.Response:
    headers = {**as_(agency), "Content-Type": "application/json-patch+json"}
    return http.patch(path, content=orjson.dumps(ops), headers=headers)


@pytest.mark.parametrize("ops", PATCHES)
def test_patch_of_a_hidden_record_answers_as_for_a_missing_one(
    world: World, ops: list[Any]
) -> None:
    http = world.attack
    hidden = _patch(http, B, "/Patient/pa", ops)
    missing = _patch(http, B, "/Patient/px", ops)
    assert hidden.status_code == 404
    assert_same_answer(hidden, missing, "pa", "px")
    assert "Rivera" not in hidden.text
    assert world.setup.get("/Patient/pa", headers=as_(A)).json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize("ops", PATCHES)
def test_patch_entries_of_a_hidden_record_answer_as_for_a_missing_one(
    world: World, ops: list[Any], kind: str
) -> None:
    def bundle(rid: str) -> dict[str, Any]:
        data = base64.b64encode(orjson.dumps(ops)).decode()
        return {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                {
                    "resource": {
                        "resourceType": "Binary",
                        "contentType": "application/json-patch+json",
                        "data": data,
                    },
                    "request": {"method": "PATCH", "url": f"Patient/{rid}"},
                }
            ],
        }

    hidden = world.attack.post("", json=bundle("pa"), headers=as_(B))
    missing = world.attack.post("", json=bundle("px"), headers=as_(B))
    assert_same_answer(hidden, missing, "pa", "px")
    assert "Rivera" not in hidden.text


def test_patch_of_a_deleted_hidden_record_answers_as_for_a_missing_one(world: World) -> None:
    assert world.setup.delete("/Observation/oa", headers=as_(A)).status_code == 204
    ops = [{"op": "replace", "path": "/status", "value": "amended"}]
    hidden = _patch(world.attack, B, "/Observation/oa", ops)
    missing = _patch(world.attack, B, "/Observation/ox", ops)
    assert hidden.status_code == 404
    assert_same_answer(hidden, missing, "oa", "ox")
    # The owner still sees it as deleted.
    assert _patch(world.setup, A, "/Observation/oa", ops).status_code == 410


# -- hole 4: conditional criteria evaluate in the caller's scope -----------------------------
def test_conditional_delete_criteria_do_not_reach_through_hidden_records(world: World) -> None:
    has = "_has:Patient:organization:identifier"
    known = world.attack.delete(f"/Organization?_id=aoda&{has}={MRN}|A-789", headers=as_(B))
    unknown = world.attack.delete(f"/Organization?_id=aoda&{has}={MRN}|A-000", headers=as_(B))
    assert known.status_code == unknown.status_code == 204
    assert known.headers.get("etag") is None and unknown.headers.get("etag") is None
    assert world.setup.get("/Organization/aoda").status_code == 200
    # The same criteria reach A's own client when A asks.
    search = f"/Organization?_id=aoda&{has}={MRN}|A-789"
    assert len(world.attack.get(search, headers=as_(A)).json().get("entry", [])) == 1
    assert world.attack.get(search, headers=as_(B)).json().get("entry") is None


def test_conditional_create_criteria_do_not_reach_through_hidden_records(world: World) -> None:
    statuses = []
    for name in ("Rivera", "Nobody"):
        response = post(
            world.attack,
            B,
            {**observation("x", "Patient/pa"), "subject": {"reference": "Patient/pb"}},
            **{"If-None-Exist": f"_id=oa&subject:Patient.name={name}"},
        )
        statuses.append(response.status_code)
    assert statuses == [201, 201]


def test_conditional_references_do_not_resolve_to_hidden_records(world: World) -> None:
    def bundle(value: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": observation("x", f"Patient?identifier={MRN}|{value}"),
                    "request": {"method": "POST", "url": "Observation"},
                }
            ],
        }

    known = world.attack.post("", json=bundle("A-789"), headers=as_(B))
    unknown = world.attack.post("", json=bundle("A-000"), headers=as_(B))
    assert known.status_code == 412
    assert_same_answer(known, unknown, "A-789", "A-000")


def test_conditional_update_with_a_hidden_body_id_answers_as_with_a_missing_one(
    world: World,
) -> None:
    def attempt(rid: str) -> httpx.Response:
        body = factories.patient(id=rid, identifier=[{"system": MRN, "value": "B-1"}])
        return world.attack.put(f"/Patient?identifier={MRN}|B-1", json=body, headers=as_(B))

    hidden, missing = attempt("pa"), attempt("px")
    assert hidden.status_code == 400
    assert_same_answer(hidden, missing, "pa", "px")


# -- hole 5: every write answers a hidden record as a missing one ----------------------------
def _writes(rid: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, request) of every write an agency can aim at one id."""
    body = factories.patient(id=rid)
    patch = orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])
    return [
        ("put", {"method": "PUT", "url": f"/Patient/{rid}", "json": body}),
        (
            "put-if-match",
            {"method": "PUT", "url": f"/Patient/{rid}", "json": body, "if_match": 'W/"99"'},
        ),
        (
            "put-if-match-1",
            {"method": "PUT", "url": f"/Patient/{rid}", "json": body, "if_match": 'W/"1"'},
        ),
        ("delete", {"method": "DELETE", "url": f"/Patient/{rid}"}),
        ("delete-if-match", {"method": "DELETE", "url": f"/Patient/{rid}", "if_match": 'W/"1"'}),
        ("patch", {"method": "PATCH", "url": f"/Patient/{rid}", "patch": patch}),
        (
            "patch-if-match",
            {"method": "PATCH", "url": f"/Patient/{rid}", "patch": patch, "if_match": 'W/"1"'},
        ),
        ("cond-update", {"method": "PUT", "url": f"/Patient?_id={rid}", "json": body}),
        ("cond-delete", {"method": "DELETE", "url": f"/Patient?_id={rid}"}),
        ("read", {"method": "GET", "url": f"/Patient/{rid}"}),
        ("vread", {"method": "GET", "url": f"/Patient/{rid}/_history/1"}),
        ("history", {"method": "GET", "url": f"/Patient/{rid}/_history"}),
        ("everything", {"method": "GET", "url": f"/Patient/{rid}/$everything"}),
        ("disclosures", {"method": "GET", "url": f"/Patient/{rid}/$disclosures"}),
    ]


def _send(http: httpx.Client, agency: str, request: dict[str, Any]) -> httpx.Response:
    headers = as_(agency)
    if "if_match" in request:
        headers["If-Match"] = request["if_match"]
    if "patch" in request:
        headers["Content-Type"] = "application/json-patch+json"
        return http.request(
            request["method"], request["url"], content=request["patch"], headers=headers
        )
    return http.request(
        request["method"], request["url"], json=request.get("json"), headers=headers
    )


def test_every_interaction_answers_a_hidden_record_as_a_missing_one(world: World) -> None:
    http = world.attack
    for (name, hidden_request), (_, missing_request) in zip(
        _writes("pa"), _writes("px"), strict=True
    ):
        hidden = _send(http, B, hidden_request)
        missing = _send(http, B, missing_request)
        assert hidden.status_code not in (200, 201), name
        assert_same_answer(hidden, missing, "pa", "px")
    pa = world.setup.get("/Patient/pa", headers=as_(A)).json()
    assert pa["meta"]["versionId"] == "1" and pa["gender"] == "other"


def _audit_of(http: httpx.Client, agency: str, count: int) -> list[dict[str, Any]]:
    """The agency's own AuditEvents once count of them are written (the flush is batched)."""
    deadline = time.monotonic() + 10
    while True:
        bundle = http.get("/AuditEvent?_count=500", headers=as_(agency)).json()
        events = [e["resource"] for e in bundle.get("entry", [])]
        mine = [e for e in events if e.get("subtype", [{}])[0].get("code") != "search-type"]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


def _comparable(event: dict[str, Any]) -> bytes:
    """An AuditEvent without what differs between any two events (its id, time and request
    id), its queries decoded (they hold the path asked for)."""
    event = {k: v for k, v in event.items() if k not in ("id", "recorded", "period", "meta")}
    event["entity"] = [
        e for e in event.get("entity", []) if e.get("type", {}).get("code") != "XrequestId"
    ]
    for entity in event.get("entity", []):
        if "query" in entity:
            entity["query"] = base64.b64decode(entity["query"]).decode()
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def test_the_attackers_audit_trail_names_no_hidden_version(world: World) -> None:
    # B's own AuditEvents of its attempts on A's record are those of attempts on a missing
    # one: they name what B asked for, never a version or value of the hidden record.
    # An agency of its own: events of earlier tests' requests may still be flushing.
    prober = "Organization/prober"
    http = world.attack
    for _, request in _writes("pa"):
        _send(http, prober, request)
    hidden = _audit_of(http, prober, len(_writes("pa")))
    for _, request in _writes("px"):
        _send(http, prober, request)
    both = _audit_of(http, prober, 2 * len(_writes("pa")))
    missing = [e for e in both if orjson.dumps(e) not in {orjson.dumps(h) for h in hidden}]
    assert len(hidden) == len(missing) == len(_writes("pa"))
    swapped = sorted(_comparable(e).replace(b"/pa", b"/px").replace(b"=pa", b"=px") for e in hidden)
    assert swapped == sorted(_comparable(e) for e in missing)
    assert b"Rivera" not in b"".join(swapped)


def test_a_referral_focused_on_a_hidden_request_works_as_one_focused_on_a_missing_one(
    world: World,
) -> None:
    answers = []
    for focus in ("ServiceRequest/sra", "ServiceRequest/srx"):
        task = post(world.attack, B, referral_task(focus, "Patient/pb", B, B)).json()
        # Cancelling revokes the request the Task focuses (SERVICE_REQUEST_STATUS).
        task["status"] = "cancelled"
        task["statusReason"] = {"text": "client moved away"}
        response = world.attack.put(
            f"/Task/{task['id']}",
            json=task,
            headers=as_(B, **{"If-Match": 'W/"1"'}),
        )
        answers.append(response.status_code)
    assert answers == [200, 200]
    # A's request did not follow B's Task.
    request = world.setup.get("/ServiceRequest/sra", headers=as_(A)).json()
    assert (request["status"], request["meta"]["versionId"]) == ("active", "1")


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_bundle_entries_answer_a_hidden_record_as_a_missing_one(world: World, kind: str) -> None:
    def bundle(rid: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [
                {
                    "resource": factories.patient(id=rid),
                    "request": {"method": "PUT", "url": f"Patient/{rid}", "ifMatch": 'W/"1"'},
                },
                {"request": {"method": "DELETE", "url": f"Patient/{rid}"}},
                {"request": {"method": "GET", "url": f"Patient/{rid}"}},
                {"request": {"method": "GET", "url": f"Patient/{rid}/_history/1"}},
            ][: 1 if kind == "transaction" else None],
        }

    hidden = world.attack.post("", json=bundle("pa"), headers=as_(B))
    missing = world.attack.post("", json=bundle("px"), headers=as_(B))
    assert_same_answer(hidden, missing, "pa", "px")
    assert world.setup.get("/Patient/pa", headers=as_(A)).json()["meta"]["versionId"] == "1"


# -- found in review: other ways to make Task.output share --------------------------------
def _output(*keys: str) -> list[dict[str, Any]]:
    return [{"type": {"text": "outcome"}, "valueReference": {"reference": k}} for k in keys]


@pytest.mark.parametrize("spelling", ["history", "absolute"])
def test_a_focus_the_referral_rules_do_not_read_shares_nothing(world: World, spelling: str) -> None:
    # A focus written another way than ServiceRequest/{id} is no referral for the rules
    # (no state machine, no check of who writes output), so it shares nothing either.
    request = post(world.attack, B, service_request("Patient/pc")).json()["id"]
    focus = (
        f"ServiceRequest/{request}/_history/1"
        if spelling == "history"
        else f"{world.attack.base_url}ServiceRequest/{request}".replace("//Service", "/Service")
    )
    task = referral_task(focus, "Patient/pc", B, C, output=_output("Observation/oc"))
    task["status"] = "completed"
    assert post(world.attack, B, task).status_code == 201
    assert world.status(B, "/Observation/oc") == 404


def test_a_draft_with_output_is_not_handed_to_another_receiver(world: World) -> None:
    request = post(world.attack, B, service_request("Patient/pc")).json()["id"]
    draft = referral_task(
        f"ServiceRequest/{request}", "Patient/pc", B, B, output=_output("Observation/oc")
    )
    draft["status"] = "draft"
    made = post(world.attack, B, draft).json()
    made["owner"] = {"reference": C}
    moved = world.attack.put(
        f"/Task/{made['id']}", json=made, headers=as_(B, **{"If-Match": 'W/"1"'})
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["issue"][0]["expression"] == ["Task.owner"]
    assert world.status(B, "/Observation/oc") == 404


def test_a_role_an_agency_writes_naming_another_organization_stands_for_nobody(
    world: World,
) -> None:
    role = post(
        world.attack, B, {"resourceType": "PractitionerRole", "organization": {"reference": B}}
    ).json()
    request = post(world.attack, B, service_request("Patient/pc")).json()["id"]
    task = referral_task(
        f"ServiceRequest/{request}",
        "Patient/pc",
        B,
        f"PractitionerRole/{role['id']}",
        output=_output("Observation/oc", "Patient/pc"),
    )
    assert post(world.attack, B, task).status_code == 201
    role["organization"] = {"reference": C}
    assert (
        world.attack.put(f"/PractitionerRole/{role['id']}", json=role, headers=as_(B)).status_code
        == 200
    )
    # Writing the request again recomputes the shares, with the role now naming C.
    again = world.attack.get(f"/ServiceRequest/{request}", headers=as_(B)).json()
    assert (
        world.attack.put(f"/ServiceRequest/{request}", json=again, headers=as_(B)).status_code
        == 200
    )
    assert world.status(B, "/Observation/oc") == 404
    assert world.status(B, "/Patient/pc") == 404


def test_the_receiver_of_the_operators_referral_shares_only_its_own_output(
    world: World,
) -> None:
    put(world.setup, None, service_request("Patient/pc", id="sr-intake"))
    put(
        world.setup,
        None,
        {**referral_task("ServiceRequest/sr-intake", "Patient/pc", C, B), "id": "t-intake"},
    )
    task = world.attack.get("/Task/t-intake", headers=as_(B)).json()
    task["status"] = "accepted"
    task["output"] = _output("Observation/oc")
    response = world.attack.put(
        "/Task/t-intake", json=task, headers=as_(B, **{"If-Match": 'W/"1"'})
    )
    assert response.status_code == 200, response.text
    assert world.status(B, "/Observation/oc") == 404


def test_a_referral_to_a_hidden_request_says_nothing_of_what_it_holds(world: World) -> None:
    def warning(focus: str) -> str:
        response = post(
            world.attack,
            B,
            referral_task(focus, "Patient/pb", B, B),
            Prefer="return=OperationOutcome",
        )
        return str(response.json()["issue"][1]["diagnostics"])

    hidden, missing = warning("ServiceRequest/sra"), warning("ServiceRequest/srx")
    assert hidden.replace("/sra", "/srx") == missing
    assert "Goal/ga" not in hidden and "Patient/pa" not in hidden


def test_a_receiver_does_not_rewrite_the_referrers_narrative_or_tags(world: World) -> None:
    for path in ("/ServiceRequest/sra", "/Task/ta"):
        current = world.setup.get(path, headers=as_(C))
        body = current.json()
        body["text"] = {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Client declined; discharge.</div>',
        }
        response = world.setup.put(
            path, json=body, headers=as_(C, **{"If-Match": current.headers["etag"]})
        )
        assert response.status_code == 403, response.text
        assert "text" in response.json()["issue"][0]["diagnostics"]
        assert "text" not in world.setup.get(path, headers=as_(A)).json()


def test_everything_follows_references_only_from_what_the_caller_sees(world: World) -> None:
    setup = world.setup
    put(setup, None, {"resourceType": "Location", "id": "loc-detox", "name": "Detox ward"})
    put(setup, None, {"resourceType": "Practitioner", "id": "doc-a", "name": [{"family": "Lee"}]})
    put(
        setup,
        A,
        {
            "resourceType": "Encounter",
            "id": "enc-a",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/pa"},
            "location": [{"location": {"reference": "Location/loc-detox"}}],
        },
    )
    put(
        setup,
        A,
        {
            "resourceType": "CareTeam",
            "id": "ct-a",
            "participant": [{"member": {"reference": "Practitioner/doc-a"}}],
        },
    )
    # C sees A's client through A's referral, not the Encounter: nor what it refers to.
    found = world.attack.get("/Patient/pa/$everything", headers=as_(C)).json()
    ids = {f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in found["entry"]}
    assert "Patient/pa" in ids
    assert "Location/loc-detox" not in ids and "Encounter/enc-a" not in ids
    # B's own plan naming A's hidden care team lists none of its members.
    answers = []
    for team in ("ct-a", "ct-x"):
        plan = post(
            world.attack,
            B,
            {**factories.minimal("CarePlan"), "careTeam": [{"reference": f"CareTeam/{team}"}]},
        ).json()
        bundle = world.attack.get(f"/CarePlan/{plan['id']}/$everything", headers=as_(B)).json()
        answers.append(sorted(e["resource"]["resourceType"] for e in bundle.get("entry", [])))
    assert answers[0] == answers[1] == ["CarePlan"]


def test_a_patient_export_tells_nothing_of_hidden_patients(world: World) -> None:
    for patient in ("Patient/pa", "Patient/px"):
        assert post(world.attack, B, observation("x", patient)).status_code == 201
    kick = world.attack.get(
        "/Patient/$export?_type=Observation",
        headers={**as_(B), "Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]
    for _ in range(100):
        done = world.attack.get(status_url, headers=as_(B))
        if done.status_code == 200:
            break
        time.sleep(0.1)
    assert done.status_code == 200
    assert done.json()["output"] == []


# -- found in the second review -----------------------------------------------------------
def test_a_receiver_may_not_turn_the_referrers_other_task_into_a_referral(world: World) -> None:
    # A's screening Task travels with A's referral to C (supportingInfo), so C reads it.
    screening = {
        "resourceType": "Task",
        "id": "screen-a",
        "status": "completed",
        "intent": "order",
        "for": {"reference": "Patient/pa"},
    }
    put(world.setup, A, screening)
    request = world.setup.get("/ServiceRequest/sra", headers=as_(A)).json()
    request["supportingInfo"].append({"reference": "Task/screen-a"})
    put(world.setup, A, request)
    current = world.setup.get("/Task/screen-a", headers=as_(C))
    assert current.status_code == 200
    turned = {
        **current.json(),
        **referral_task("ServiceRequest/sra", "Patient/pa", C, C),
        "input": [{"type": {"text": "x"}, "valueReference": {"reference": "Observation/oa"}}],
    }
    response = world.setup.put(
        "/Task/screen-a", json=turned, headers=as_(C, **{"If-Match": current.headers["etag"]})
    )
    assert response.status_code == 403, response.text
    assert world.status(C, "/Observation/oa") == 404


def test_a_conditional_create_answered_with_a_shared_record_is_a_disclosure(
    world: World,
) -> None:
    def disclosed() -> int:
        found = world.setup.get("/Patient/pa/$disclosures", headers=as_(A)).json()
        return len(found.get("entry", []))

    before = disclosed()
    response = post(world.attack, C, factories.patient(), **{"If-None-Exist": "_id=pa"})
    assert response.status_code == 200
    assert response.headers.get("x-casebridge-redisclosure")
    assert disclosed() == before + 1


def test_plain_case_views_of_another_agencys_records_are_disclosures(world: World) -> None:
    root = str(world.setup.base_url).rstrip("/").removesuffix("/fhir")
    case = httpx.post(
        f"{root}/cases",
        json={"client_id": "pa", "status": "active"},
        headers={"X-Casebridge-Agency": A},
    )
    assert case.status_code == 201, case.text
    # A shares the case with C on its referral.
    request = world.setup.get("/ServiceRequest/sra", headers=as_(A)).json()
    request["supportingInfo"].append({"reference": f"EpisodeOfCare/{case.json()['id']}"})
    put(world.setup, A, request)
    before = len(
        world.setup.get("/Patient/pa/$disclosures", headers=as_(A)).json().get("entry", [])
    )
    view = httpx.get(
        f"{root}/cases/{case.json()['id']}?format=fhir", headers={"X-Casebridge-Agency": C}
    )
    assert view.status_code == 200, view.text
    assert view.headers.get("x-casebridge-redisclosure")
    after = world.setup.get("/Patient/pa/$disclosures", headers=as_(A)).json().get("entry", [])
    assert len(after) >= before + 2  # the case and the client


def test_an_agency_asking_for_another_agencys_export_job_hears_of_no_job(world: World) -> None:
    kick = world.setup.get(
        "/$export", headers={**as_(A), "Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    assert kick.status_code == 202
    job = kick.headers["content-location"].rsplit("/", 1)[1]
    other = "0" * 32
    for path in ("/$export-status/{}", "/$export-file/{}/Patient.ndjson"):
        hidden = world.attack.get(path.format(job), headers=as_(B))
        missing = world.attack.get(path.format(other), headers=as_(B))
        assert_same_answer(hidden, missing, job, other)


def test_everything_counts_only_tasks_the_caller_sees(world: World) -> None:
    plan = post(world.attack, B, factories.minimal("CarePlan")).json()["id"]
    # A's Task (hidden from B) based on B's plan neither shows nor counts.
    put(
        world.setup,
        A,
        {
            "resourceType": "Task",
            "id": "a-on-b-plan",
            "status": "requested",
            "intent": "order",
            "basedOn": [{"reference": f"CarePlan/{plan}"}],
        },
    )
    found = world.attack.get(f"/CarePlan/{plan}/$everything", headers=as_(B)).json()
    assert found["total"] == 1
    assert [e["resource"]["resourceType"] for e in found["entry"]] == ["CarePlan"]


# -- every route of the table: a hidden record answers as a missing one ---------------------
def _root(http: httpx.Client) -> str:
    """The server's root URL (the client's base is its FHIR endpoint)."""
    return str(http.base_url).rstrip("/").removesuffix("/fhir")


def _hidden_ids(world: World) -> dict[str, str]:
    """Distinctive ids of A's records (or A's own jobs and events), one per path parameter."""
    setup = world.setup
    put(setup, A, factories.patient(id="hidden-patient-1"))
    put(setup, A, factories.care_plan(id="hidden-plan-1", subject={"reference": "Patient/pa"}))
    put(
        setup, A, {**referral_task("ServiceRequest/sra", "Patient/pa", A, C), "id": "hidden-task-1"}
    )
    case = httpx.post(
        _root(setup) + "/cases",
        json={"client": {"given_names": ["Kim"]}},
        headers={"X-Casebridge-Agency": A},
    )
    assert case.status_code == 201, case.text
    subscription = post(
        setup, A, {**_subscription("http://127.0.0.1:9/hook"), "criteria": "Task?status=requested"}
    )
    assert subscription.status_code == 201, subscription.text
    export = setup.get(
        "/$export", headers={**as_(A), "Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    assert export.status_code == 202, export.text
    events = setup.get("/AuditEvent?_count=1", headers=as_(A)).json()
    return {
        "resource_type": "Patient",
        "resource_id": "hidden-patient-1",
        "patient_id": "hidden-patient-1",
        "version_id": "1",
        "case_id": case.json()["id"],
        "task_id": "hidden-task-1",
        "care_plan_id": "hidden-plan-1",
        "plan_id": "hidden-plan-1",
        "subscription_id": subscription.json()["id"],
        "event_id": events["entry"][0]["resource"]["id"],
        "job_id": export.headers["content-location"].rsplit("/", 1)[1],
        "name": "Patient.ndjson",
        "action": "accept",
        "topic_id": "referral-task-status",
    }


# Parameters whose value names something of A's (the others say what is asked).
_NAMING = (
    "resource_id",
    "patient_id",
    "case_id",
    "task_id",
    "care_plan_id",
    "plan_id",
    "subscription_id",
    "event_id",
    "job_id",
)
_PLAIN_BODIES: dict[str, Any] = {
    "/cases/{case_id}": {"status": "active", "stage": "assessment"},
    "/cases/{case_id}/supports": {"name": "Jo", "relationship": "SIS", "connection": "strong"},
    "/cases/{case_id}/consents": {
        "client_id": "pa",
        "recipient": B,
        "purpose": "Referral",
        "start": "2026-01-05",
    },
    "/cases/{case_id}/notes": {"date": "2026-02-01", "author": "Practitioner/cm-7", "text": "Met."},
    "/cases/{case_id}/assessments": {
        "instrument": "k10",
        "date": "2026-01-10",
        "answers": {"1": 2},
    },
    "/cases/{case_id}/careplans": {"title": "Plan", "start": "2026-01-05"},
    "/cases/{case_id}/careplans/{plan_id}": {"title": "Plan", "start": "2026-01-05"},
    "/cases/{case_id}/client": {"given_names": ["Jo"], "language": "en"},
    "/cases/{case_id}/comprehensive-assessments": {"date": "2026-01-10", "family": "Close."},
    "/cases/{case_id}/transfer": {"to": "Practitioner/cm-8", "note": "Handover."},
    "/referrals/{task_id}/{action}": {},
    "/fhir/Task/{task_id}/${action}": {"resourceType": "Parameters"},
}


def _route_request(method: str, path: str, ids: dict[str, str]) -> dict[str, Any]:
    url = path
    for name, value in ids.items():
        url = url.replace("{" + name + "}", value)
    headers = {**as_(B), "If-Match": 'W/"1"', "Prefer": "respond-async"}
    content = b""
    if method == "PATCH":
        headers["Content-Type"] = "application/json-patch+json"
        content = orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])
    elif method in ("PUT", "POST"):
        body = _PLAIN_BODIES.get(path, factories.patient(id=ids["resource_id"]))
        content = orjson.dumps(body)
    if path.startswith("/fhir"):
        url = url.removeprefix("/fhir")
    return {
        "method": method,
        "url": url,
        "headers": headers,
        "content": content,
        "root": not path.startswith("/fhir"),
    }


def test_every_route_answers_a_hidden_record_as_a_missing_one(world: World) -> None:
    from app.security.routes import ROUTES

    hidden_ids = _hidden_ids(world)
    missing_ids = {k: (v + "z" if k in _NAMING else v) for k, v in hidden_ids.items()}
    checked = 0
    for (method, path), entry in sorted(ROUTES.items()):
        named = [n for n in _NAMING if "{" + n + "}" in path]
        if entry.public or not named or path.startswith("/app/"):
            continue  # the web app's pages: a session, not a token (tests/test_web.py)
        answers = []
        for ids in (hidden_ids, missing_ids):
            request = _route_request(method, path, ids)
            if request.pop("root"):
                request["url"] = _root(world.attack) + request["url"]
                answers.append(httpx.request(**request))
            else:
                answers.append(world.attack.request(**request))
        hidden, missing = answers
        # Each request reaches the access check: no refusal of the body or the headers.
        assert hidden.status_code in (404, 405, 412), (method, path, hidden.text)
        assert_same_answers(hidden, missing, {hidden_ids[n]: missing_ids[n] for n in named})
        checked += 1
    assert checked >= 35


# -- hole 6: labels are sticky, and access ends with the consent -----------------------------
def test_a_receivers_write_never_lowers_labels(world: World) -> None:
    goal = world.setup.get("/Goal/ga", headers=as_(C))
    body = {**goal.json(), "meta": {}, "lifecycleStatus": "completed"}
    response = world.setup.put(
        "/Goal/ga", json=body, headers=as_(C, **{"If-Match": goal.headers["etag"]})
    )
    assert response.status_code == 200, response.text
    codes = {label["code"] for label in response.json()["meta"].get("security", [])}
    assert {"R", "ETH"} <= codes


def test_revoking_consent_ends_access_to_every_version(world: World) -> None:
    setup = world.setup
    goal = setup.get("/Goal/ga", headers=as_(C))
    setup.put(
        "/Goal/ga",
        json={**goal.json(), "meta": {}},
        headers=as_(C, **{"If-Match": goal.headers["etag"]}),
    ).raise_for_status()
    task = setup.get("/Task/ta", headers=as_(C))
    body = task.json()
    body["status"] = "accepted"
    body["output"] = [{"type": {"text": "goal"}, "valueReference": {"reference": "Goal/ga"}}]
    setup.put(
        "/Task/ta", json=body, headers=as_(C, **{"If-Match": task.headers["etag"]})
    ).raise_for_status()
    setup.put(
        "/Consent/consa",
        json={**consent("Patient/pa", C, status="inactive"), "id": "consa"},
        headers=as_(A),
    ).raise_for_status()
    for path in ("/Goal/ga", "/Goal/ga/_history/1", "/Goal/ga/_history/2", "/Goal/ga/_history"):
        assert world.status(C, path) == 404, path


def test_a_receiver_changes_only_the_status_of_a_shared_request(world: World) -> None:
    request = world.setup.get("/ServiceRequest/sra", headers=as_(C))
    assert request.status_code == 200
    body = request.json()
    body["supportingInfo"] = [{"reference": "Goal/ga"}, {"reference": "Observation/oa"}]
    response = world.setup.put("/ServiceRequest/sra", json=body, headers=as_(C))
    assert response.status_code == 403
    assert "supportingInfo" in response.json()["issue"][0]["diagnostics"]
    assert world.status(C, "/Observation/oa") == 404


def test_an_agency_may_not_change_the_directory_the_operator_keeps(world: World) -> None:
    org = world.setup.get("/Organization/aoda").json()
    org["type"] = []
    org.pop("type")
    assert world.setup.put("/Organization/aoda", json=org, headers=as_(B)).status_code == 403
    # Its own Organization it keeps up to date.
    own = world.setup.get("/Organization/attacker").json()
    own["name"] = "Attacker services"
    assert world.setup.put("/Organization/attacker", json=own, headers=as_(B)).status_code == 200


# -- the weaker items ------------------------------------------------------------------------
INTERNAL_ENDPOINTS = [
    "http://127.1:9/hook",
    "http://[::ffff:127.0.0.1]:9/hook",
    "http://localhost.:9/hook",
    "http://app.localhost/hook",
    "http://0x7f.1/hook",
    "http://2130706433/hook",
    "http://10.0.0.7/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[fe80::1]/hook",
    "http://0/hook",
]


def _subscription(endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Referrals sent to us",
        "criteria": f"Task?owner={B}",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }


@pytest.mark.parametrize("endpoint", INTERNAL_ENDPOINTS)
def test_subscriptions_may_not_point_into_the_operators_network(
    world: World, endpoint: str
) -> None:
    response = post(world.attack, B, _subscription(endpoint))
    assert response.status_code == 422, response.text
    assert response.json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    found = world.attack.get("/Subscription", headers=as_(B)).json()
    assert found.get("entry") is None


def test_a_public_endpoint_is_accepted(world: World) -> None:
    response = post(world.attack, B, _subscription("https://hooks.example.org/casebridge"))
    assert response.status_code == 201, response.text


def test_delivery_resolves_the_name_and_refuses_internal_addresses() -> None:
    # This host's own name resolves to one of its addresses, none of them public here; a
    # literal public address needs no lookup.
    with pytest.raises(TargetRefused):
        check_resolved(f"http://{socket.gethostname()}:8080/hook")
    with pytest.raises(TargetRefused):
        check_resolved("http://localhost/hook")
    check_resolved("http://93.184.216.34/hook")
    check_written(f"http://{socket.gethostname()}/hook")  # a name: judged when delivered


def _two_pages(world: World) -> str:
    for family in ("Rivera", "Rivers"):
        assert (
            post(world.attack, B, factories.patient(name=[{"family": family}])).status_code == 201
        )
    page = world.attack.get("/Patient?_sort=family&_count=1", headers=as_(B)).json()
    links: dict[str, str] = {link["relation"]: link["url"] for link in page["link"]}
    return links["next"]


def test_paging_tokens_are_opaque(world: World) -> None:
    token = httpx.URL(_two_pages(world)).params["_cursor"]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"Riv" not in raw and b"Patient" not in raw
    follow = world.attack.get(
        "/Patient", params={"_sort": "family", "_count": "1", "_cursor": token}, headers=as_(B)
    )
    assert follow.status_code == 200
    assert follow.json()["entry"][0]["resource"]["name"][0]["family"] == "Rivers"


@pytest.mark.parametrize(
    "forged",
    [
        base64.urlsafe_b64encode(b'[["Riv\\u0000"],["x"]]').decode(),
        base64.urlsafe_b64encode(b"\x00" * 40).decode(),
        "not-a-token",
    ],
)
def test_a_forged_or_altered_paging_token_is_a_clear_400(world: World, forged: str) -> None:
    token = httpx.URL(_two_pages(world)).params["_cursor"]
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for value in (forged, altered):
        response = world.attack.get(
            "/Patient", params={"_sort": "family", "_cursor": value}, headers=as_(B)
        )
        assert response.status_code == 400, response.text
        assert response.json()["issue"][0]["expression"] == ["_cursor"]


def test_one_bundle_runs_a_bounded_number_of_searches(world: World) -> None:
    entries = [{"request": {"method": "GET", "url": "Patient?name=R"}} for _ in range(101)]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    response = world.attack.post("", json=bundle, headers=as_(B))
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "too-costly"
    bundle["entry"] = entries[:100]
    assert world.attack.post("", json=bundle, headers=as_(B)).status_code == 200
