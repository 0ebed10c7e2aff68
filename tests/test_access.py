"""Agency access rules (issue 6): own records, referral shares, consent, AOD labels, no leaks.

Three agencies: a clinic (A) refers its client to a housing service (B); C is unrelated;
D is an AOD service, whose records are labelled sensitive (restricted, ETH; 42 CFR Part 2 too
under the US privacy regime). The test clock reads
2026-01-05, so a consent for 2026 is in force and one that ended on 2026-01-04 is not.
Requests run with auth off and the X-Casebridge-Agency header naming the acting agency.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.render import REDISCLOSURE_HEADER
from tests import factories
from tests.conftest import Backend, server_with
from tests.support.cli import run_cli
from tests.support.server import LiveServer
from tests.test_cases_api import new_case

A, B, C, D = (f"Organization/{x}" for x in ("clinic", "housing", "other", "aod"))
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _as(agency: str | None) -> dict[str, str]:
    headers = dict(factories.FHIR_JSON)
    if agency is not None:
        headers["X-Casebridge-Agency"] = agency
    return headers


def _put(http: httpx.Client, agency: str | None, resource: dict[str, Any]) -> httpx.Response:
    response = http.put(
        f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=_as(agency)
    )
    assert response.status_code in (200, 201), response.text
    return response


def _get(http: httpx.Client, agency: str | None, path: str) -> httpx.Response:
    return http.get(path, headers=_as(agency))


def _ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def _organizations(http: httpx.Client) -> None:
    for org_id in ("clinic", "housing", "other"):
        _put(http, None, {"resourceType": "Organization", "id": org_id, "name": org_id})
    _put(
        http,
        None,
        {
            "resourceType": "Organization",
            "id": "aod",
            "name": "Northside AOD service",
            "type": [
                {
                    "coding": [
                        {
                            "system": "https://casebridge.org/fhir/CodeSystem/agency-type",
                            "code": "aod",
                        }
                    ]
                }
            ],
        },
    )


def test_a_referral_loaded_before_its_request_shares_the_request_once_that_is_loaded(
    http: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    # Shares are derived after each load for what it stored: here the Task comes first and
    # its ServiceRequest in a later load, which must still update the earlier Task's shares.
    task = {
        "resourceType": "Task",
        "id": "late-task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": "ServiceRequest/late-sr"},
        "for": {"reference": "Patient/late-p"},
        "requester": {"reference": A},
        "owner": {"reference": B},
    }
    request = {
        "resourceType": "ServiceRequest",
        "id": "late-sr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/late-p"},
        "supportingInfo": [{"reference": "Goal/late-goal"}],
    }
    patient = {"resourceType": "Patient", "id": "late-p", "name": [{"family": "Later"}]}
    goal = {
        "resourceType": "Goal",
        "id": "late-goal",
        "lifecycleStatus": "active",
        "description": {"text": "Stable housing"},
        "subject": {"reference": "Patient/late-p"},
    }
    env = {"CASEBRIDGE_DATABASE_URL": backend.url, "COLUMNS": "200"}
    loads: list[tuple[str, list[dict[str, Any]]]] = [
        ("first", [patient, goal, task]),
        ("second", [request]),
    ]
    for name, resources in loads:
        _ndjson(tmp_path / f"{name}.ndjson", resources)
        done = run_cli(
            ["import", str(tmp_path / f"{name}.ndjson"), "--workers", "0", "--agency", A], env
        )
        assert done.returncode == 0, done.stderr
    assert _get(http, B, "/Task/late-task").status_code == 200
    assert _get(http, B, "/ServiceRequest/late-sr").status_code == 200
    assert _get(http, C, "/ServiceRequest/late-sr").status_code == 404
    # The client's data the request carries: only under the client's consent, and only
    # because the request, loaded second, names it.
    assert _get(http, B, "/Goal/late-goal").status_code == 404
    _consent(http, A, "late-consent", "late-p", B)
    assert _get(http, B, "/Goal/late-goal").status_code == 200
    assert _get(http, B, "/Patient/late-p").status_code == 200
    assert _get(http, C, "/Goal/late-goal").status_code == 404


def _record(http: httpx.Client, agency: str, suffix: str, owner: str) -> None:
    """A client record of agency with a referral to owner: Patient, Observation (not in
    the packet), CarePlan and Goal (in it), ServiceRequest and Task."""
    patient = f"p-{suffix}"
    _put(http, agency, {**factories.patient(), "id": patient})
    subject = {"reference": f"Patient/{patient}"}
    _put(
        http,
        agency,
        {
            "resourceType": "Observation",
            "id": f"obs-{suffix}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "75624-7"}]},
            "subject": subject,
            "valueInteger": 19,
        },
    )
    _put(
        http,
        agency,
        factories.care_plan(
            id=f"cp-{suffix}", subject=subject, goal=[{"reference": f"Goal/goal-{suffix}"}]
        ),
    )
    _put(
        http,
        agency,
        {
            "resourceType": "Goal",
            "id": f"goal-{suffix}",
            "lifecycleStatus": "active",
            "description": {"text": "Stable housing within three months"},
            "subject": subject,
        },
    )
    _put(
        http,
        agency,
        {
            "resourceType": "ServiceRequest",
            "id": f"sr-{suffix}",
            "status": "active",
            "intent": "order",
            "code": {"text": "Housing support"},
            "subject": subject,
            "supportingInfo": [
                {"reference": f"CarePlan/cp-{suffix}"},
                {"reference": f"Goal/goal-{suffix}"},
            ],
        },
    )
    _put(
        http,
        agency,
        {
            "resourceType": "Task",
            "id": f"task-{suffix}",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
            "focus": {"reference": f"ServiceRequest/sr-{suffix}"},
            "for": subject,
            "requester": {"reference": agency},
            "owner": {"reference": owner},
            "authoredOn": "2026-01-05",
        },
    )


def _consent(
    http: httpx.Client,
    agency: str,
    consent_id: str,
    patient: str,
    actor: str,
    *,
    status: str = "active",
    end: str = "2026-12-31",
    purpose: str | None = None,
) -> None:
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": "2026-01-01", "end": end},
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
                "reference": {"reference": actor},
            }
        ],
    }
    if purpose is not None:
        provision["purpose"] = [{"system": V3_ACT_REASON, "code": purpose}]
    _put(
        http,
        agency,
        {
            "resourceType": "Consent",
            "id": consent_id,
            "status": status,
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                ]
            },
            "provision": provision,
        },
    )


@pytest.fixture
def http(client: httpx.Client) -> httpx.Client:
    _organizations(client)
    _record(client, A, "a", owner=B)
    return client


def test_an_agency_sees_its_own_records_and_no_other_agencys(http: httpx.Client) -> None:
    assert _get(http, A, "/Observation/obs-a").status_code == 200
    for agency in (B, C):
        response = _get(http, agency, "/Observation/obs-a")
        assert response.status_code == 404
        assert response.json()["issue"][0]["code"] == "not-found"
        # No existence leak: the same answer as for a record that never existed.
        assert _get(http, agency, "/Observation/nothing-here").status_code == 404
        found = _get(http, agency, "/Observation?_total=accurate").json()
        assert found["total"] == 0 and _ids(found) == set()
    assert _ids(_get(http, A, "/Observation").json()) == {"Observation/obs-a"}
    # The local operator (auth off, no agency) is not confined.
    assert _get(http, None, "/Observation/obs-a").status_code == 200


def test_shared_reference_data_is_visible_to_every_agency(http: httpx.Client) -> None:
    for agency in (A, B, C):
        assert _get(http, agency, "/Organization/clinic").status_code == 200


def test_a_referral_shares_the_task_and_request_but_client_data_needs_consent(
    http: httpx.Client,
) -> None:
    for path in ("/Task/task-a", "/ServiceRequest/sr-a"):
        assert _get(http, B, path).status_code == 200, path
        assert _get(http, C, path).status_code == 404, path
    for path in ("/Patient/p-a", "/CarePlan/cp-a", "/Goal/goal-a", "/Observation/obs-a"):
        assert _get(http, B, path).status_code == 404, path
    inbox = _get(http, B, f"/Task?owner={B}&_include=Task:patient&_include=Task:focus").json()
    assert _ids(inbox, "match") == {"Task/task-a"}
    assert _ids(inbox, "include") == {"ServiceRequest/sr-a"}


def test_consent_releases_the_referral_packet_and_nothing_more(http: httpx.Client) -> None:
    _consent(http, A, "consent-a", "p-a", B)
    for path in ("/Patient/p-a", "/CarePlan/cp-a", "/Goal/goal-a"):
        assert _get(http, B, path).status_code == 200, path
    # Minimum necessary: the Observation was not sent with the referral.
    assert _get(http, B, "/Observation/obs-a").status_code == 404
    assert _get(http, C, "/Patient/p-a").status_code == 404
    everything = _get(http, B, "/Patient/p-a/$everything").json()
    assert "Observation/obs-a" not in _ids(everything)
    assert {"Patient/p-a", "CarePlan/cp-a", "Goal/goal-a", "Task/task-a"} <= _ids(everything)
    assert _ids(_get(http, A, "/Patient/p-a/$everything").json()) >= {"Observation/obs-a"}


def test_an_expired_or_revoked_consent_stops_release_at_once(http: httpx.Client) -> None:
    _consent(http, A, "consent-a", "p-a", B, end="2026-01-04")
    assert _get(http, B, "/Patient/p-a").status_code == 404
    _consent(http, A, "consent-a", "p-a", B)
    assert _get(http, B, "/Patient/p-a").status_code == 200
    _consent(http, A, "consent-a", "p-a", B, status="inactive")
    assert _get(http, B, "/Patient/p-a").status_code == 404
    assert _get(http, B, "/CarePlan?subject=Patient/p-a").json().get("entry") is None
    _consent(http, A, "consent-a", "p-a", B)
    assert http.delete("/Consent/consent-a", headers=_as(A)).status_code == 204
    assert _get(http, B, "/Goal/goal-a").status_code == 404


def test_chains_has_and_includes_never_pass_through_what_a_read_denies(
    http: httpx.Client,
) -> None:
    # B may see the Task but not the Patient (no consent): a chain through the Patient, a
    # reverse chain from the hidden Observation and an _include of the Patient find nothing.
    assert _get(http, B, "/Task?patient.family=Rivera").json().get("entry") is None
    assert _ids(_get(http, A, "/Task?patient.family=Rivera").json()) == {"Task/task-a"}
    has = "/ServiceRequest?_has:Task:focus:owner=" + B
    assert _ids(_get(http, B, has).json()) == {"ServiceRequest/sr-a"}
    hidden = "/Patient?_has:Observation:subject:code=75624-7"
    assert _get(http, B, hidden).json().get("entry") is None
    assert _ids(_get(http, A, hidden).json()) == {"Patient/p-a"}
    included = _get(http, B, "/Task?_id=task-a&_include=Task:patient").json()
    assert _ids(included, "include") == set()


def test_history_is_confined_like_read(http: httpx.Client) -> None:
    assert _get(http, B, "/Observation/obs-a/_history").status_code == 404
    assert _get(http, B, "/Observation/obs-a/_history/1").status_code == 404
    assert _get(http, A, "/Observation/obs-a/_history/1").status_code == 200
    seen = _ids(_get(http, B, "/_history?_count=100").json())
    assert "Observation/obs-a" not in seen and "Task/task-a" in seen
    assert len(_get(http, A, "/_history?_count=100").json()["entry"]) > len(seen)


def test_another_agency_may_not_change_or_delete_records_it_does_not_own(
    http: httpx.Client,
) -> None:
    observation = _get(http, A, "/Observation/obs-a").json()
    # Not visible: the same 404 a read gives.
    response = http.put("/Observation/obs-a", json=observation, headers=_as(B))
    assert response.status_code == 404
    # Deleting a hidden record answers as deleting a missing one (204) and deletes nothing.
    assert http.delete("/Observation/obs-a", headers=_as(B)).status_code == 204
    assert http.delete("/Observation/never-was", headers=_as(B)).status_code == 204
    assert _get(http, A, "/Observation/obs-a").json()["meta"]["versionId"] == "1"
    _consent(http, A, "consent-a", "p-a", B)
    patient = _get(http, B, "/Patient/p-a").json()
    response = http.put("/Patient/p-a", json=patient, headers=_as(B))
    assert response.status_code == 403
    assert "another agency" in response.json()["issue"][0]["diagnostics"]
    assert http.delete("/Task/task-a", headers=_as(B)).status_code == 403
    # In a transaction the refusal fails the whole Bundle.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**factories.patient(), "id": "new-b"},
                "request": {"method": "PUT", "url": "Patient/new-b"},
            },
            {"resource": patient, "request": {"method": "PUT", "url": "Patient/p-a"}},
        ],
    }
    assert http.post("", json=bundle, headers=_as(B)).status_code == 403
    assert _get(http, B, "/Patient/new-b").status_code == 404
    assert _get(http, A, "/Patient/p-a").json()["meta"]["versionId"] == "1"


def test_a_conditional_create_does_not_reveal_another_agencys_match(
    http: httpx.Client,
) -> None:
    headers = {**_as(C), "If-None-Exist": "identifier=https://agency.example.org/clients|C-77"}
    created = http.post("/Patient", json=factories.patient(), headers=headers)
    assert created.status_code == 201  # A's match stays invisible: C gets its own record
    assert created.json()["id"] != "p-a"


def _labels(resource: dict[str, Any]) -> set[str]:
    return {label["code"] for label in resource.get("meta", {}).get("security", [])}


def test_aod_records_are_labelled_and_released_only_under_a_consent_for_that_purpose(
    http: httpx.Client,
) -> None:
    _record(http, D, "d", owner=B)
    task = _get(http, D, "/Task/task-d").json()
    # The default privacy regime is Australia's: restricted and sensitive, no US policy.
    assert _labels(task) >= {"R", "ETH"} and "42CFRPart2" not in _labels(task)
    assert {"R", "ETH"} <= _labels(_get(http, D, "/Patient/p-d").json())
    assert _labels(_get(http, None, "/Organization/aod").json()) == set()
    # Labelled: the referral alone does not release even the Task, read or searched (the
    # label is each candidate's own, whatever the clinic's unlabelled referral to B is).
    assert _get(http, B, "/Task/task-d").status_code == 404
    assert _ids(_get(http, B, f"/Task?owner={B}").json()) == {"Task/task-a"}
    for query in ("/Task?_id=task-d", "/ServiceRequest?_id=sr-d"):
        assert _ids(_get(http, B, query).json()) == set(), query
    # A consent naming B without a purpose that covers labelled data is not enough.
    _consent(http, D, "consent-d", "p-d", B)
    assert _get(http, B, "/Task/task-d").status_code == 404
    _consent(http, D, "consent-d", "p-d", B, purpose="TREAT")
    released = _get(http, B, "/Task/task-d")
    assert released.status_code == 200
    assert "(Privacy Act 1988 (Cth), APP 6)" in released.headers[REDISCLOSURE_HEADER]
    bundle_response = _get(http, B, "/Goal?subject=Patient/p-d")
    bundle = bundle_response.json()
    assert _ids(bundle) == {"Goal/goal-d"}
    assert _labels(bundle) == {"NORDSCLCD"}
    notices = [
        issue["diagnostics"]
        for entry in bundle["entry"]
        if entry["search"]["mode"] == "outcome"
        for issue in entry["resource"]["issue"]
    ]
    assert any("APP 6" in n for n in notices)
    assert REDISCLOSURE_HEADER in bundle_response.headers
    # The owner reading its own records gets no notice.
    assert REDISCLOSURE_HEADER not in _get(http, D, "/Task/task-d").headers
    # Still minimum necessary, labelled or not.
    assert _get(http, B, "/Observation/obs-d").status_code == 404


def test_the_referral_endpoints_carry_the_notice_of_what_they_release(
    http: httpx.Client, live: LiveServer
) -> None:
    # Issue 19, defect 5: /fhir/Task carried the redisclosure notice, the plain referral
    # endpoints (packet, boxes, history, actions) did not.
    _record(http, D, "d", owner=B)
    _consent(http, D, "consent-d", "p-d", B, purpose="TREAT")
    with httpx.Client(base_url=live.root, timeout=30) as plain:
        packet = plain.get("/referrals/task-d", headers=_as(B))
        assert packet.status_code == 200, packet.text
        assert "APP 6" in packet.headers[REDISCLOSURE_HEADER]
        assert _labels(packet.json()) == {"NORDSCLCD"}
        inbox = plain.get("/referrals?box=inbox", headers=_as(B))
        assert "task-d" in {r["id"] for r in inbox.json()["referrals"]}
        assert REDISCLOSURE_HEADER in inbox.headers
        assert REDISCLOSURE_HEADER in plain.get("/referrals/task-d/history", headers=_as(B)).headers
        accepted = plain.post(
            "/referrals/task-d/accept", headers={**_as(B), "If-Match": packet.headers["ETag"]}
        )
        assert accepted.status_code == 200, accepted.text
        assert REDISCLOSURE_HEADER in accepted.headers
        # The referrer reading its own referral is told nothing.
        own = plain.get("/referrals/task-d", headers=_as(D))
        assert REDISCLOSURE_HEADER not in own.headers
        assert "meta" not in own.json()
        # Nor is the receiver of an unlabelled referral.
        assert REDISCLOSURE_HEADER not in plain.get("/referrals/task-a", headers=_as(B)).headers


def test_a_writer_may_ask_for_labels_with_a_tag(http: httpx.Client) -> None:
    tagged = {
        **factories.patient(),
        "id": "tagged",
        "meta": {"tag": [{"system": V3_ACT_CODE, "code": "ETH"}]},
    }
    _put(http, A, tagged)
    assert {"R", "ETH"} <= _labels(_get(http, A, "/Patient/tagged").json())


def test_disclosures_list_every_release_with_the_consent_that_allowed_it(
    http: httpx.Client,
) -> None:
    _consent(http, A, "consent-a", "p-a", B)
    assert _get(http, B, "/Patient/p-a").status_code == 200
    assert _get(http, B, "/CarePlan?subject=Patient/p-a").status_code == 200
    assert _get(http, A, "/Patient/p-a").status_code == 200  # own read: not a disclosure
    report = _get(http, A, "/Patient/p-a/$disclosures").json()
    assert report["resourceType"] == "Bundle"
    rows = [e["resource"] for e in report["entry"]]
    released = {
        (row["entity"][0]["what"]["reference"], row["agent"][0]["who"]["reference"]) for row in rows
    }
    assert ("Patient/p-a", B) in released and ("CarePlan/cp-a", B) in released
    assert all(row["agent"][0]["who"]["reference"] == B for row in rows)
    consents = {ref for row in rows for ref in _consent_refs(row)}
    assert consents == {"Consent/consent-a"}
    # Revoked: no further release, and the report still shows what went before.
    _consent(http, A, "consent-a", "p-a", B, status="inactive")
    assert _get(http, B, "/Patient/p-a").status_code == 404
    again = _get(http, A, "/Patient/p-a/$disclosures").json()
    assert len(again["entry"]) == len(report["entry"])
    assert _get(http, C, "/Patient/p-a/$disclosures").status_code == 404


def _consent_refs(row: dict[str, Any]) -> set[str]:
    return {
        entity["what"]["reference"]
        for entity in row.get("entity", [])
        if entity.get("type", {}).get("code") == "Consent"
    }


def test_exports_contain_only_what_the_agency_may_see(http: httpx.Client) -> None:
    headers = {**_as(B), "Prefer": "respond-async"}
    kicked = http.get("/$export?_type=Task,Observation,Patient", headers=headers)
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["Content-Location"]
    # Another agency cannot poll or fetch B's export.
    assert http.get(status_url, headers=_as(C)).status_code == 404
    deadline = time.monotonic() + 20
    while (status := http.get(status_url, headers=_as(B))).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status.status_code == 200, status.text
    exported: set[str] = set()
    for item in status.json()["output"]:
        lines = http.get(item["url"], headers=_as(B)).text.splitlines()
        exported |= {f"{item['type']}/{json.loads(line)['id']}" for line in lines}
    assert exported == {"Task/task-a"}


def _ndjson(path: Path, resources: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))


def test_imported_records_belong_to_the_agency_named_and_referrals_share_them(
    http: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    export: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "imp-p", "name": [{"family": "Loaded"}]},
        {
            "resourceType": "ServiceRequest",
            "id": "imp-sr",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/imp-p"},
        },
        {
            "resourceType": "Task",
            "id": "imp-task",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
            "focus": {"reference": "ServiceRequest/imp-sr"},
            "for": {"reference": "Patient/imp-p"},
            "requester": {"reference": D},
            "owner": {"reference": B},
        },
    ]
    _ndjson(tmp_path / "aod.ndjson", export)
    env = {"CASEBRIDGE_DATABASE_URL": backend.url, "COLUMNS": "200"}
    done = run_cli(["import", str(tmp_path / "aod.ndjson"), "--workers", "0", "--agency", D], env)
    assert done.returncode == 0, done.stderr
    # As if the AOD service had written them: labelled, its own, shared by the referral
    # only under a consent for treatment.
    assert {"R", "ETH"} <= _labels(_get(http, D, "/Task/imp-task").json())
    assert _get(http, C, "/Patient/imp-p").status_code == 404
    assert _get(http, B, "/Task/imp-task").status_code == 404
    _consent(http, D, "imp-consent", "imp-p", B, purpose="TREAT")
    assert _get(http, B, "/Task/imp-task").status_code == 200
    assert _get(http, B, "/Patient/imp-p").status_code == 200
    # Without --agency the client records are the operator's: no agency sees them, while
    # directory data stays readable by all.
    _ndjson(
        tmp_path / "operator.ndjson",
        [
            {"resourceType": "Patient", "id": "op-p", "name": [{"family": "Operator"}]},
            {"resourceType": "Organization", "id": "op-org", "name": "Directory entry"},
        ],
    )
    done = run_cli(["import", str(tmp_path / "operator.ndjson"), "--workers", "0"], env)
    assert done.returncode == 0, done.stderr
    assert _get(http, A, "/Patient/op-p").status_code == 404
    assert _get(http, None, "/Patient/op-p").status_code == 200
    assert _get(http, A, "/Organization/op-org").status_code == 200
    bad = run_cli(["import", str(tmp_path / "operator.ndjson"), "--agency", "clinic"], env)
    assert bad.returncode == 2 and "Organization/{id}" in bad.stderr


def test_provenance_and_audit_of_a_record_are_its_owners(http: httpx.Client) -> None:
    query = "/Provenance?target=Observation/obs-a"
    mine = _get(http, A, query).json()
    assert len(mine["entry"]) == 1
    assert _get(http, B, query).json().get("entry") is None
    provenance_id = mine["entry"][0]["resource"]["id"]
    assert _get(http, B, f"/Provenance/{provenance_id}").status_code == 404
    assert _get(http, C, "/Provenance?_total=accurate").json()["total"] == 0


def test_plain_cases_are_confined_like_fhir_reads(http: httpx.Client, live: LiveServer) -> None:
    headers = {"X-Casebridge-Agency": A}
    created = http.post(f"{live.root}/cases", json=new_case(managing_agency=A), headers=headers)
    assert created.status_code == 201, created.text
    case_id = created.json()["id"]
    assert http.get(f"{live.root}/cases/{case_id}", headers=headers).status_code == 200
    for agency in (B, C):
        other = {"X-Casebridge-Agency": agency}
        assert http.get(f"{live.root}/cases/{case_id}", headers=other).status_code == 404
        assert http.get(f"{live.root}/cases/{case_id}/check", headers=other).status_code == 404
        svg = http.get(f"{live.root}/cases/{case_id}/ecomap.svg", headers=other)
        assert svg.status_code == 404


def test_the_receiver_works_a_labelled_referral_only_under_consent(
    http: httpx.Client, live: LiveServer
) -> None:
    _record(http, D, "d", owner=B)
    etag = _get(http, D, "/Task/task-d").headers["ETag"]
    accept = f"{live.root}/referrals/task-d/accept"
    headers = {"X-Casebridge-Agency": B, "If-Match": etag}
    assert http.post(accept, headers=headers).status_code == 404
    _consent(http, D, "consent-d", "p-d", B, purpose="TREAT")
    accepted = http.post(accept, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert _get(http, D, "/Task/task-d").json()["status"] == "accepted"
    assert _get(http, D, "/ServiceRequest/sr-d").json()["status"] == "active"


def test_the_us_privacy_regime_labels_and_notices_42_cfr_part_2(
    backend: Backend, client: httpx.Client
) -> None:
    server = server_with(backend, privacy_regime="us-42cfr2")
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as us:
            _organizations(us)
            _record(us, D, "d", owner=B)
            assert {"R", "ETH", "42CFRPart2"} <= _labels(_get(us, D, "/Task/task-d").json())
            _consent(us, D, "consent-d", "p-d", B, purpose="TREAT")
            released = _get(us, B, "/Task/task-d")
            assert released.status_code == 200
            assert released.headers[REDISCLOSURE_HEADER] == (
                "42 CFR part 2 prohibits unauthorized disclosure of these records."
            )
            bundle = _get(us, B, "/Goal?subject=Patient/p-d").json()
            assert _labels(bundle) == {"42CFRPart2", "NORDSCLCD"}
        # The same records under the default regime: still labelled sensitive (42CFRPart2
        # is read as sensitive everywhere), released with the Australian notice.
        released = _get(client, B, "/Task/task-d")
        assert "APP 6" in released.headers[REDISCLOSURE_HEADER]
        assert "42CFRPart2" in _labels(released.json())
    finally:
        server.stop()
