"""batch and transaction Bundles over HTTP on both databases (spec http.html#transaction).

Every test posts real Bundles to the live server and checks exact outcomes: the status,
location and etag of each response entry, that references were rewritten to the ids the
server assigned, and, for a failed transaction, that nothing of it was stored (counted
through history, which records every version ever written, and through search).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, server_with
from tests.factories import FHIR_JSON, patient

SYS = "https://agency.example.org/clients"
EXT = "https://casebridge.example.org/fhir/StructureDefinition"


# --- building Bundles -------------------------------------------------------------------


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _client(identifier: str, **changes: Any) -> dict[str, Any]:
    return patient(identifier=[{"system": SYS, "value": identifier}], **changes)


def _post_entry(
    resource: dict[str, Any], full_url: str | None = None, if_none_exist: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    entry: dict[str, Any] = {"resource": resource, "request": request}
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


def _put_entry(
    url: str,
    resource: dict[str, Any],
    full_url: str | None = None,
    if_match: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "PUT", "url": url}
    if if_match is not None:
        request["ifMatch"] = if_match
    entry: dict[str, Any] = {"resource": resource, "request": request}
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


def _patch_entry(url: str, operations: list[Any], if_match: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "PATCH", "url": url}
    if if_match is not None:
        request["ifMatch"] = if_match
    return {"resource": _binary(_b64(operations)), "request": request}


def _binary(data: str, content_type: str = "application/json-patch+json") -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": content_type, "data": data}


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _delete_entry(url: str, if_match: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "DELETE", "url": url}
    if if_match is not None:
        request["ifMatch"] = if_match
    return {"request": request}


def _get_entry(url: str, if_none_match: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "GET", "url": url}
    if if_none_match is not None:
        request["ifNoneMatch"] = if_none_match
    return {"request": request}


def _observation(subject: str, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75626-2"}]},
        "subject": {"reference": subject},
        "valueInteger": 4,
    }
    value.update(changes)
    return value


def _goal(subject: str, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Secure stable housing"},
        "subject": {"reference": subject},
    }
    value.update(changes)
    return value


def _care_plan(subject: str, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": subject},
    }
    value.update(changes)
    return value


# --- posting and reading back -----------------------------------------------------------


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def _post(
    client: httpx.Client,
    kind: str,
    entries: list[Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post(_base(client), json=bundle, headers={**FHIR_JSON, **(headers or {})})


def _entries(response: httpx.Response, kind: str, count: int) -> list[dict[str, Any]]:
    """The response entries of a successful batch or transaction."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == f"{kind}-response"
    assert len(body["entry"]) == count
    return list(body["entry"])


def _written(client: httpx.Client, entry: dict[str, Any], resource_type: str, status: str) -> str:
    """Check a written entry's status, location, etag and fullUrl; return the resource id."""
    response = entry["response"]
    assert response["status"] == status
    match = re.fullmatch(
        rf"{resource_type}/([A-Za-z0-9\-.]{{1,64}})/_history/(\d+)", response["location"]
    )
    assert match is not None, response["location"]
    resource_id, version = match.groups()
    assert response["etag"] == f'W/"{version}"'
    assert entry["fullUrl"] == f"{_base(client)}/{resource_type}/{resource_id}"
    return resource_id


def _failed(response: httpx.Response, status: int, index: int, code: str) -> str:
    """A failed transaction: one OperationOutcome naming the entry; returns the diagnostics."""
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    assert issue["expression"][0] == f"Bundle.entry[{index}]"
    assert issue["diagnostics"].startswith(f"Bundle.entry[{index}]: ")
    return str(issue["diagnostics"])


def _versions(client: httpx.Client) -> int:
    """How many versions of records were ever stored (system history), leaving out the
    Provenance the server writes with each of them, which must number one per version."""
    everything = int(client.get("/_history", params={"_count": "1"}).json()["total"])
    provenances = int(client.get("/Provenance/_history", params={"_count": "1"}).json()["total"])
    assert provenances == everything - provenances, "one Provenance per version written"
    return everything - provenances


def _count(client: httpx.Client, resource_type: str, **params: str) -> int:
    response = client.get(f"/{resource_type}", params={**params, "_summary": "count"})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _read(client: httpx.Client, reference: str) -> dict[str, Any]:
    response = client.get(f"/{reference}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _create(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --- transaction: references --------------------------------------------------------------


def test_transaction_creates_linked_records_and_rewrites_urn_references_anywhere(
    client: httpx.Client,
) -> None:
    p, g, c = _urn(), _urn(), _urn()
    plan = _care_plan(
        p,
        goal=[{"reference": g}, {"reference": "#local-goal"}],
        contained=[_goal(p, id="local-goal", lifecycleStatus="proposed")],
        extension=[{"url": f"{EXT}/key-worker", "valueReference": {"reference": p}}],
        activity=[
            {
                "detail": {
                    "kind": "Task",
                    "status": "scheduled",
                    "performer": [{"reference": p}],
                    "extension": [{"url": f"{EXT}/for-goal", "valueReference": {"reference": g}}],
                }
            }
        ],
        note=[{"authorReference": {"reference": p}, "text": "Agreed at intake"}],
        supportingInfo=[{"reference": "https://other.example.org/fhir/Patient/9"}],
    )
    observation = _observation(
        p,
        focus=[{"reference": g}],
        component=[
            {
                "code": {"text": "Item 1"},
                "valueInteger": 2,
                "extension": [{"url": f"{EXT}/plan", "valueReference": {"reference": c}}],
            }
        ],
    )
    # Entries refer forward and backward: the order of entries does not matter.
    entries = [
        _post_entry(plan, c),
        _post_entry(observation, _urn()),
        _post_entry(_goal(p), g),
        _post_entry(_client("C-1"), p),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 4)
    plan_id = _written(client, out[0], "CarePlan", "201 Created")
    obs_id = _written(client, out[1], "Observation", "201 Created")
    goal_id = _written(client, out[2], "Goal", "201 Created")
    pid = _written(client, out[3], "Patient", "201 Created")
    assert all(e["response"]["location"].endswith("/_history/1") for e in out)
    assert out[0]["resource"]["id"] == plan_id
    assert len({plan_id, obs_id, goal_id, pid}) == 4

    subject = f"Patient/{pid}"
    stored_plan = _read(client, f"CarePlan/{plan_id}")
    assert stored_plan["subject"] == {"reference": subject}
    assert stored_plan["goal"] == [{"reference": f"Goal/{goal_id}"}, {"reference": "#local-goal"}]
    assert stored_plan["contained"][0]["subject"] == {"reference": subject}
    assert stored_plan["extension"][0]["valueReference"] == {"reference": subject}
    detail = stored_plan["activity"][0]["detail"]
    assert detail["performer"] == [{"reference": subject}]
    assert detail["extension"][0]["valueReference"] == {"reference": f"Goal/{goal_id}"}
    assert stored_plan["note"][0]["authorReference"] == {"reference": subject}
    assert stored_plan["supportingInfo"] == [
        {"reference": "https://other.example.org/fhir/Patient/9"}
    ]
    stored_obs = _read(client, f"Observation/{obs_id}")
    assert stored_obs["subject"] == {"reference": subject}
    assert stored_obs["focus"] == [{"reference": f"Goal/{goal_id}"}]
    assert stored_obs["component"][0]["extension"][0]["valueReference"] == {
        "reference": f"CarePlan/{plan_id}"
    }
    assert _read(client, f"Goal/{goal_id}")["subject"] == {"reference": subject}
    # The response carries what was stored, and nothing stored names a urn:uuid.
    assert out[0]["resource"] == stored_plan
    for reference in (f"CarePlan/{plan_id}", f"Observation/{obs_id}", f"Goal/{goal_id}"):
        assert "urn:uuid" not in client.get(f"/{reference}").text
    # The search index was built from the rewritten references.
    assert _count(client, "CarePlan", subject=subject) == 1
    assert _count(client, "Observation", subject=subject) == 1
    assert _count(client, "CarePlan", goal=f"Goal/{goal_id}") == 1
    assert _versions(client) == 4


def test_reference_to_no_entry_is_400_and_stores_nothing(client: httpx.Client) -> None:
    p, missing = _urn(), _urn()
    plan = _care_plan(
        p,
        activity=[{"detail": {"status": "scheduled", "performer": [{"reference": missing}]}}],
    )
    entries = [_post_entry(_client("C-1"), p), _post_entry(plan)]
    diagnostics = _failed(_post(client, "transaction", entries), 400, 1, "invalid")
    assert missing in diagnostics
    assert _versions(client) == 0


def test_duplicate_full_url_is_400_and_stores_nothing(client: httpx.Client) -> None:
    p = _urn()
    entries = [_post_entry(_client("C-1"), p), _post_entry(_client("C-2"), p)]
    diagnostics = _failed(_post(client, "transaction", entries), 400, 1, "invalid")
    assert p in diagnostics and "entry 0" in diagnostics
    assert _versions(client) == 0


def test_conditional_references_resolve_to_exactly_one_match(client: httpx.Client) -> None:
    pid = _create(client, _client("C-1"))
    _create(client, _client("C-9"))
    _create(client, _client("C-9"))
    one = f"Patient?identifier={SYS}|C-1"
    plan = _care_plan(
        one,
        extension=[{"url": f"{EXT}/key-worker", "valueReference": {"reference": one}}],
        activity=[{"detail": {"status": "scheduled", "performer": [{"reference": one}]}}],
    )
    out = _entries(_post(client, "transaction", [_post_entry(plan)]), "transaction", 1)
    plan_id = _written(client, out[0], "CarePlan", "201 Created")
    stored = _read(client, f"CarePlan/{plan_id}")
    assert stored["subject"] == {"reference": f"Patient/{pid}"}
    assert stored["extension"][0]["valueReference"] == {"reference": f"Patient/{pid}"}
    assert stored["activity"][0]["detail"]["performer"] == [{"reference": f"Patient/{pid}"}]
    assert _count(client, "CarePlan", subject=f"Patient/{pid}") == 1
    before = _versions(client)

    for criteria, found in ((f"identifier={SYS}|C-404", "no resource"), ("identifier=C-9", "more")):
        entries = [
            _post_entry(_goal(f"Patient/{pid}")),
            _post_entry(_observation(f"Patient?{criteria}")),
        ]
        diagnostics = _failed(_post(client, "transaction", entries), 412, 1, "conflict")
        assert found in diagnostics
    unknown = [_post_entry(_observation("Nonsense?identifier=C-1"))]
    _failed(_post(client, "transaction", unknown), 400, 0, "invalid")
    assert _versions(client) == before


# --- transaction: processing order, ACID --------------------------------------------------


@pytest.mark.parametrize("order", ["as-written", "reversed"])
def test_outcome_does_not_depend_on_entry_order(client: httpx.Client, order: str) -> None:
    """DELETE, then POST, then PUT/PATCH, then GET, whatever the order of the entries."""
    pid = _create(client, _client("C-1"))
    old_obs = _create(client, _observation(f"Patient/{pid}"))
    goal_id = _create(client, _goal(f"Patient/{pid}"))
    new_obs = _urn()
    roles = {
        "search": _get_entry(f"Observation?subject=Patient/{pid}"),
        "read": _get_entry(f"Patient/{pid}"),
        "update": _put_entry(
            f"Patient/{pid}", _client("C-1", id=pid, gender="female"), if_match='W/"1"'
        ),
        "patch": _patch_entry(
            f"Goal/{goal_id}", [{"op": "replace", "path": "/lifecycleStatus", "value": "completed"}]
        ),
        "create": _post_entry(_observation(f"Patient/{pid}", valueInteger=9), new_obs),
        "plan": _post_entry(_care_plan(f"Patient/{pid}", supportingInfo=[{"reference": new_obs}])),
        "delete": _delete_entry(f"Observation/{old_obs}"),
    }
    names = list(roles) if order == "as-written" else list(reversed(roles))
    out = dict(
        zip(
            names,
            _entries(
                _post(client, "transaction", [roles[n] for n in names]), "transaction", len(names)
            ),
            strict=True,
        )
    )

    assert _deletion(out["delete"]["response"])
    created = _written(client, out["create"], "Observation", "201 Created")
    plan_id = _written(client, out["plan"], "CarePlan", "201 Created")
    assert _written(client, out["update"], "Patient", "200 OK") == pid
    assert out["update"]["response"]["etag"] == 'W/"2"'
    assert _written(client, out["patch"], "Goal", "200 OK") == goal_id
    assert out["patch"]["resource"]["lifecycleStatus"] == "completed"
    # The GETs saw every write of the transaction.
    assert out["read"]["response"]["status"] == "200 OK"
    assert out["read"]["response"]["etag"] == 'W/"2"'
    assert out["read"]["resource"]["gender"] == "female"
    searchset = out["search"]["resource"]
    assert searchset["type"] == "searchset" and searchset["total"] == 1
    assert [e["resource"]["id"] for e in searchset["entry"]] == [created]
    # And so does everyone afterwards.
    assert client.get(f"/Observation/{old_obs}").status_code == 410
    assert _read(client, f"Observation/{created}")["valueInteger"] == 9
    assert _read(client, f"CarePlan/{plan_id}")["supportingInfo"] == [
        {"reference": f"Observation/{created}"}
    ]
    assert _read(client, f"Goal/{goal_id}")["meta"]["versionId"] == "2"
    assert _versions(client) == 3 + 5
    # History, newest first, shows the writes in the spec's order whatever the entries'.
    history = client.get("/_history", params={"_count": "10"}).json()["entry"]
    records = [e for e in history if e["fullUrl"].split("/")[-2] != "Provenance"]
    written = [e["request"]["method"] for e in reversed(records)]
    assert written[:3] == ["DELETE", "POST", "POST"]
    assert sorted(written[3:]) == ["PATCH", "PUT"]


def test_delete_and_create_of_related_records_in_one_transaction(client: httpx.Client) -> None:
    pid = _create(client, _client("C-1"))
    old_goal = _create(client, _goal(f"Patient/{pid}"))
    old_plan = _create(
        client, _care_plan(f"Patient/{pid}", goal=[{"reference": f"Goal/{old_goal}"}])
    )
    g = _urn()
    entries = [
        _post_entry(
            _care_plan(
                f"Patient/{pid}",
                goal=[{"reference": g}],
                replaces=[{"reference": f"CarePlan/{old_plan}"}],
            )
        ),
        _post_entry(_goal(f"Patient/{pid}", description={"text": "Keep the tenancy"}), g),
        _delete_entry(f"CarePlan/{old_plan}"),
        _delete_entry(f"Goal/{old_goal}"),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 4)
    plan_id = _written(client, out[0], "CarePlan", "201 Created")
    goal_id = _written(client, out[1], "Goal", "201 Created")
    assert all(_deletion(e["response"]) for e in out[2:])
    assert client.get(f"/CarePlan/{old_plan}").status_code == 410
    assert client.get(f"/Goal/{old_goal}").status_code == 410
    stored = _read(client, f"CarePlan/{plan_id}")
    assert stored["goal"] == [{"reference": f"Goal/{goal_id}"}]
    assert stored["replaces"] == [{"reference": f"CarePlan/{old_plan}"}]
    assert _count(client, "CarePlan", subject=f"Patient/{pid}") == 1
    assert _count(client, "Goal", subject=f"Patient/{pid}") == 1
    assert _count(client, "CarePlan", goal=f"Goal/{goal_id}") == 1
    assert _versions(client) == 3 + 4


def test_put_with_a_client_id_creates_then_updates(client: httpx.Client) -> None:
    p = _urn()
    entries = [
        _post_entry(_observation(p)),
        _put_entry("Patient/client-42", _client("C-42", id="client-42"), p),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 2)
    obs_id = _written(client, out[0], "Observation", "201 Created")
    assert _written(client, out[1], "Patient", "201 Created") == "client-42"
    assert out[1]["response"]["location"] == "Patient/client-42/_history/1"
    assert _read(client, f"Observation/{obs_id}")["subject"] == {"reference": "Patient/client-42"}

    again = [_put_entry("Patient/client-42", _client("C-42", id="client-42", gender="male"))]
    out = _entries(_post(client, "transaction", again), "transaction", 1)
    assert _written(client, out[0], "Patient", "200 OK") == "client-42"
    assert out[0]["response"]["location"] == "Patient/client-42/_history/2"
    assert out[0]["resource"]["gender"] == "male"
    assert _read(client, "Patient/client-42")["meta"]["versionId"] == "2"
    # The body's id must be the url's.
    wrong = [_put_entry("Patient/client-42", _client("C-42", id="client-43"))]
    _failed(_post(client, "transaction", wrong), 400, 0, "invalid")
    assert _versions(client) == 3


def _deletion(response: dict[str, Any], *, tagged: bool = True) -> bool:
    """A DELETE entry's response: 204 and, like a single DELETE, the deletion's version tag
    (none when nothing was there to delete)."""
    tag = response.get("etag")
    if response["status"] != "204 No Content":
        return False
    return tag is not None and tag.startswith('W/"') if tagged else tag is None


def test_two_entries_writing_one_resource_is_400(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()

    def entry(kind: str) -> dict[str, Any]:
        return {
            "PUT": _put_entry("Patient/p1", _client("C-1", id="p1", gender="male")),
            "PUT?": _put_entry(f"Patient?identifier={SYS}|C-1", _client("C-1", gender="male")),
            "PATCH": _patch_entry("Patient/p1", [{"op": "remove", "path": "/gender"}]),
            "DELETE": _delete_entry("Patient/p1"),
            "DELETE?": _delete_entry(f"Patient?identifier={SYS}|C-1"),
        }[kind]

    # The entry named is the later one in processing order (DELETE, POST, PUT/PATCH).
    for first, second, named in [
        ("PUT", "PUT", 2),
        ("PUT", "DELETE", 1),
        ("PATCH", "PUT", 2),
        ("DELETE?", "PATCH", 2),
    ]:
        entries = [_post_entry(_observation("Patient/p1")), entry(first), entry(second)]
        diagnostics = _failed(_post(client, "transaction", entries), 400, named, "invalid")
        assert "Patient/p1" in diagnostics and f"entry {3 - named}" in diagnostics, diagnostics
    assert _versions(client) == 1
    assert _read(client, "Patient/p1")["meta"]["versionId"] == "1"


def test_failed_entry_rolls_back_entries_already_written(client: httpx.Client) -> None:
    """The PUT is processed after the POSTs, so they had been written when it failed."""
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    entries: list[dict[str, Any]] = []
    for n in range(40):
        p = _urn()
        entries += [_post_entry(_client(f"N-{n}"), p), _post_entry(_goal(p))]
    entries.append(_delete_entry("Goal/none"))
    entries.append(
        _put_entry("Patient/p1", _client("C-1", id="p1", gender="male"), if_match='W/"7"')
    )
    diagnostics = _failed(_post(client, "transaction", entries), 412, len(entries) - 1, "conflict")
    assert "7" in diagnostics
    assert _versions(client) == 1
    assert _count(client, "Patient") == 1
    assert _count(client, "Goal") == 0
    assert _read(client, "Patient/p1")["meta"]["versionId"] == "1"


def test_invalid_entry_is_400_naming_it_and_stores_nothing(client: httpx.Client) -> None:
    entries = [
        _post_entry(_client("C-1")),
        _post_entry(_client("C-2")),
        _post_entry(_client("C-3", gender="robot")),
    ]
    diagnostics = _failed(_post(client, "transaction", entries), 400, 2, "code-invalid")
    assert "Patient.gender" in diagnostics and "robot" in diagnostics
    assert _versions(client) == 0


# --- transaction: conditional entries ------------------------------------------------------


def test_conditional_create_entry_maps_its_full_url_to_the_match(client: httpx.Client) -> None:
    existing = _create(client, _client("C-1"))
    p1, p2 = _urn(), _urn()
    entries = [
        _post_entry(_observation(p1, performer=[{"reference": p2}])),
        _post_entry(_client("C-1", gender="female"), p1, f"identifier={SYS}|C-1"),
        _post_entry(_client("C-2"), p2, f"Patient?identifier={SYS}|C-2"),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 3)
    obs_id = _written(client, out[0], "Observation", "201 Created")
    assert _written(client, out[1], "Patient", "200 OK") == existing
    assert out[1]["response"]["location"] == f"Patient/{existing}/_history/1"
    assert out[1]["resource"]["gender"] == "other"  # the match, unchanged
    new_id = _written(client, out[2], "Patient", "201 Created")
    stored = _read(client, f"Observation/{obs_id}")
    assert stored["subject"] == {"reference": f"Patient/{existing}"}
    assert stored["performer"] == [{"reference": f"Patient/{new_id}"}]
    assert _count(client, "Patient") == 2
    assert _read(client, f"Patient/{existing}")["meta"]["versionId"] == "1"


def test_conditional_create_entry_refused_as_on_a_single_request(client: httpx.Client) -> None:
    _create(client, _client("C-9"))
    _create(client, _client("C-9"))
    for criteria, status, code in [
        ("identifier=C-9", 412, "conflict"),
        ("nickname=Rivera", 400, "invalid"),
    ]:
        single = client.post("/Patient", json=_client("C-9"), headers={"If-None-Exist": criteria})
        assert single.status_code == status
        entries = [_post_entry(_goal("Patient/x")), _post_entry(_client("C-9"), None, criteria)]
        _failed(_post(client, "transaction", entries), status, 1, code)
    assert _versions(client) == 2


def test_conditional_update_and_delete_entries(client: httpx.Client) -> None:
    updated = _create(client, _client("C-1"))
    deleted = _create(client, _client("C-4"))
    entries = [
        _put_entry(f"Patient?identifier={SYS}|C-1", _client("C-1", gender="male")),
        _put_entry(f"Patient?identifier={SYS}|C-2", _client("C-2")),
        _delete_entry(f"Patient?identifier={SYS}|C-4"),
        _delete_entry(f"Patient?identifier={SYS}|nobody"),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 4)
    assert _written(client, out[0], "Patient", "200 OK") == updated
    assert out[0]["response"]["location"] == f"Patient/{updated}/_history/2"
    created = _written(client, out[1], "Patient", "201 Created")
    assert created not in (updated, deleted)
    assert _deletion(out[2]["response"])
    assert _deletion(out[3]["response"], tagged=False)
    assert _read(client, f"Patient/{updated}")["gender"] == "male"
    assert client.get(f"/Patient/{deleted}").status_code == 410
    assert _count(client, "Patient") == 2
    assert _versions(client) == 2 + 3


def test_conditional_entry_matching_several_is_412(client: httpx.Client) -> None:
    _create(client, _client("C-9"))
    _create(client, _client("C-9"))
    for entry in [
        _put_entry("Patient?identifier=C-9", _client("C-9")),
        _delete_entry("Patient?identifier=C-9"),
    ]:
        entries = [_post_entry(_client("C-1")), entry]
        diagnostics = _failed(_post(client, "transaction", entries), 412, 1, "conflict")
        assert "more than one" in diagnostics
    assert _versions(client) == 2


IF_MATCH = [
    ("PUT", 'W/"2"', 200),
    ("PUT", '"2"', 200),
    ("PUT", 'W/"1"', 412),
    ("PATCH", 'W/"2"', 200),
    ("PATCH", 'W/"1"', 412),
    ("DELETE", 'W/"2"', 204),
    ("DELETE", 'W/"3"', 412),
    ("PUT", "2", 400),
]


def test_if_match_in_entries_as_on_single_requests(client: httpx.Client) -> None:
    """Each case on its own Patient at version 2: the single request, then the entry."""

    operations = [{"op": "replace", "path": "/gender", "value": "female"}]

    def single_request(method: str, pid: str, tag: str) -> httpx.Response:
        headers = {"If-Match": tag}
        if method == "PUT":
            body = _client("C-1", id=pid, gender="female")
            return client.put(f"/Patient/{pid}", json=body, headers=headers)
        if method == "PATCH":
            headers["Content-Type"] = "application/json-patch+json"
            return client.patch(f"/Patient/{pid}", content=json.dumps(operations), headers=headers)
        return client.delete(f"/Patient/{pid}", headers=headers)

    def entry_for(method: str, pid: str, tag: str) -> dict[str, Any]:
        url = f"Patient/{pid}"
        if method == "PUT":
            return _put_entry(url, _client("C-1", id=pid, gender="female"), if_match=tag)
        if method == "PATCH":
            return _patch_entry(url, operations, tag)
        return _delete_entry(url, if_match=tag)

    for n, (method, tag, status) in enumerate(IF_MATCH):
        case = f"{method} If-Match {tag}"
        single_id, entry_id = f"single-{n}", f"entry-{n}"
        for pid in (single_id, entry_id):
            client.put(f"/Patient/{pid}", json=_client("C-1", id=pid)).raise_for_status()
            client.put(f"/Patient/{pid}", json=_client("C-1", id=pid, gender="male"))
        assert single_request(method, single_id, tag).status_code == status, case
        entry = entry_for(method, entry_id, tag)
        before = _versions(client)
        response = _post(client, "transaction", [_post_entry(_goal(f"Patient/{entry_id}")), entry])
        if status >= 400:
            _failed(response, status, 1, "conflict" if status == 412 else "invalid")
            assert _versions(client) == before, case
            assert _read(client, f"Patient/{entry_id}")["meta"]["versionId"] == "2", case
            continue
        out = _entries(response, "transaction", 2)
        _written(client, out[0], "Goal", "201 Created")
        if method == "DELETE":
            assert _deletion(out[1]["response"]), case
            assert client.get(f"/Patient/{entry_id}").status_code == 410, case
        else:
            assert _written(client, out[1], "Patient", "200 OK") == entry_id, case
            assert out[1]["response"]["etag"] == 'W/"3"', case
            assert _read(client, f"Patient/{entry_id}")["gender"] == "female", case
        assert _versions(client) == before + 2, case


def test_patch_entry_applies_a_json_patch_binary(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    operations = [
        {"op": "test", "path": "/gender", "value": "other"},
        {"op": "replace", "path": "/gender", "value": "female"},
        {"op": "add", "path": "/name/0/given/-", "value": "Sam"},
    ]
    out = _entries(
        _post(client, "transaction", [_patch_entry("Patient/p1", operations)]), "transaction", 1
    )
    assert _written(client, out[0], "Patient", "200 OK") == "p1"
    assert out[0]["response"]["location"] == "Patient/p1/_history/2"
    stored = _read(client, "Patient/p1")
    assert stored["gender"] == "female"
    assert stored["name"][0]["given"] == ["Alex", "Sam"]
    assert out[0]["resource"] == stored
    assert _count(client, "Patient", gender="female") == 1


def test_failing_patch_entry_fails_as_a_single_patch_and_stores_nothing(
    client: httpx.Client,
) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    failing: list[tuple[str, Any, int, str]] = [
        ("Patient/p1", [{"op": "test", "path": "/gender", "value": "male"}], 422, "processing"),
        (
            "Patient/p1",
            [{"op": "replace", "path": "/gender", "value": "robot"}],
            400,
            "code-invalid",
        ),
        ("Patient/p1", [{"op": "remove", "path": "/nope"}], 422, "processing"),
        ("Patient/nobody", [{"op": "remove", "path": "/gender"}], 404, "not-found"),
        ("Patient/p1", {"op": "remove"}, 400, "structure"),
    ]
    for url, operations, status, code in failing:
        single = client.patch(
            f"/{url}",
            content=json.dumps(operations),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert single.status_code == status, (url, operations)
        entry: dict[str, Any] = {"request": {"method": "PATCH", "url": url}}
        entry["resource"] = _binary(_b64(operations))
        response = _post(client, "transaction", [_post_entry(_goal("Patient/p1")), entry])
        _failed(response, status, 1, code)
    # Bodies a PATCH entry cannot carry.
    unusable: list[Any] = [
        _binary("%%%not base64"),
        _binary(_b64([]), content_type="text/plain"),
        _client("C-1"),
        None,
    ]
    for resource in unusable:
        entry = {"request": {"method": "PATCH", "url": "Patient/p1"}, "resource": resource}
        response = _post(client, "transaction", [_post_entry(_goal("Patient/p1")), entry])
        _failed(response, 400, 1, "invalid")
    assert _versions(client) == 1
    assert _read(client, "Patient/p1")["meta"]["versionId"] == "1"


# --- GET entries ----------------------------------------------------------------------------


def test_get_entries_in_a_transaction_see_its_writes(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    entries = [
        _get_entry("Patient/p1"),
        _get_entry(f"Patient?identifier={SYS}|C-5"),
        _post_entry(_client("C-5"), _urn()),
        _get_entry("Patient/p1/_history/1"),
        _get_entry("Patient/p1", if_none_match='W/"1"'),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 5)
    assert out[0]["response"]["status"] == "200 OK"
    assert out[0]["response"]["etag"] == 'W/"1"'
    assert out[0]["resource"]["id"] == "p1"
    assert "location" not in out[0]["response"]
    searchset = out[1]["resource"]
    assert out[1]["response"]["status"] == "200 OK"
    assert searchset["type"] == "searchset" and searchset["total"] == 1
    created = _written(client, out[2], "Patient", "201 Created")
    assert searchset["entry"][0]["resource"]["id"] == created
    assert out[3]["response"]["status"] == "200 OK"
    assert out[3]["resource"]["meta"]["versionId"] == "1"
    assert out[4]["response"]["status"] == "304"
    assert "resource" not in out[4]


def test_get_entries_in_a_batch(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    client.delete("/Patient/p1").raise_for_status()
    client.put("/Patient/p2", json=_client("C-2", id="p2")).raise_for_status()
    entries = [
        _get_entry("Patient/p2"),
        _get_entry("Patient?identifier=C-2,C-1"),
        _get_entry("Patient/p1"),
        _get_entry("Patient/nobody"),
        _get_entry("Patient/p1/_history/1"),
        _get_entry("Patient?nickname=x&identifier=C-2"),
    ]
    out = _entries(_post(client, "batch", entries), "batch", 6)
    assert out[0]["response"]["status"] == "200 OK"
    assert out[0]["resource"]["id"] == "p2"
    assert out[1]["resource"]["total"] == 1
    assert out[2]["response"]["status"] == "410"
    assert out[2]["response"]["outcome"]["issue"][0]["code"] == "deleted"
    assert out[3]["response"]["status"] == "404"
    assert out[3]["response"]["outcome"]["issue"][0]["code"] == "not-found"
    assert out[4]["response"]["status"] == "200 OK"
    assert out[4]["resource"]["id"] == "p1"
    # A search entry is lenient, as a search without Prefer: handling=strict.
    assert out[5]["resource"]["total"] == 1


def _if_none_match_parity(client: httpx.Client, tags: list[str]) -> None:
    """For each tag: the entry's status in a batch and a transaction is the single read's."""
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    client.put("/Patient/p1", json=_client("C-1", id="p1", gender="male")).raise_for_status()
    for tag in tags:
        single = client.get("/Patient/p1", headers={"If-None-Match": tag})
        for kind in ("batch", "transaction"):
            entry = _entries(_post(client, kind, [_get_entry("Patient/p1", tag)]), kind, 1)[0]
            status = entry["response"]["status"].split()[0]
            assert status == str(single.status_code), (kind, tag, status, single.status_code)
            assert ("resource" in entry) == (single.status_code == 200), (kind, tag)


def test_if_none_match_in_entries_as_on_a_single_read(client: httpx.Client) -> None:
    _if_none_match_parity(client, ['W/"2"', 'W/"1"', "*", "garbage"])


@pytest.mark.parametrize("tag", ['"2"', 'W/"1", W/"2"'])
def test_if_none_match_strong_form_and_list_as_on_a_single_read(
    client: httpx.Client, tag: str
) -> None:
    _if_none_match_parity(client, [tag])


def test_batch_with_ifnonematch_read_of_current_version_is_304(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    out = _entries(_post(client, "batch", [_get_entry("Patient/p1", 'W/"1"')]), "batch", 1)
    assert out[0]["response"]["status"] == "304"
    assert out[0]["response"]["etag"] == 'W/"1"'


# --- batch --------------------------------------------------------------------------------


def test_batch_entries_succeed_or_fail_independently(client: httpx.Client) -> None:
    client.put("/Patient/p1", json=_client("C-1", id="p1")).raise_for_status()
    entries: list[Any] = [
        _post_entry(_client("C-2")),
        _post_entry(_client("C-3", gender="robot")),
        _put_entry("Patient/p1", _client("C-1", id="p1", gender="male"), if_match='W/"9"'),
        _patch_entry("Patient/p1", [{"op": "replace", "path": "/gender", "value": "female"}]),
        _get_entry("Patient/nobody"),
        _post_entry(_observation(_urn())),
        {"request": {"method": "FETCH", "url": "Patient"}},
        _post_entry(_client("C-2"), None, f"identifier={SYS}|C-2"),
        _delete_entry("Patient?identifier=C-1,C-2"),
        _post_entry(_goal(f"Patient?identifier={SYS}|C-2")),
        "not an object",
        _delete_entry("Patient/p1"),
        _get_entry("Patient/p1"),
    ]
    out = _entries(_post(client, "batch", entries), "batch", len(entries))
    statuses = [e["response"]["status"] for e in out]
    assert statuses == [
        "201 Created",
        "400",
        "412",
        "200 OK",
        "404",
        "400",
        "400",
        "200 OK",
        "412",
        "201 Created",
        "400",
        "204 No Content",
        "410",
    ]
    created = _written(client, out[0], "Patient", "201 Created")
    assert _written(client, out[3], "Patient", "200 OK") == "p1"
    assert out[3]["response"]["etag"] == 'W/"2"'
    # The conditional create found the Patient entry 0 created: entries run in order.
    assert _written(client, out[7], "Patient", "200 OK") == created
    goal_id = _written(client, out[9], "Goal", "201 Created")
    assert _read(client, f"Goal/{goal_id}")["subject"] == {"reference": f"Patient/{created}"}
    for index, code in [(1, "code-invalid"), (2, "conflict"), (4, "not-found"), (5, "invalid")]:
        outcome = out[index]["response"]["outcome"]
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == code
        assert "resource" not in out[index]
    assert "robot" in out[1]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert _count(client, "Patient") == 1  # p1 deleted; entry 0's Patient
    assert _count(client, "Goal") == 1
    assert _count(client, "Observation") == 0
    assert _versions(client) == 1 + 1 + 1 + 1 + 1


# --- response content ---------------------------------------------------------------------


def test_prefer_return(client: httpx.Client) -> None:
    for n, (prefer, with_resource) in enumerate(
        [(None, True), ("return=representation", True), ("return=minimal", False)]
    ):
        for kind in ("batch", "transaction"):
            pid = f"p-{kind}-{n}"
            client.put(f"/Patient/{pid}", json=_client("C-1", id=pid)).raise_for_status()
            entries = [
                _post_entry(_client("C-2")),
                _put_entry(f"Patient/{pid}", _client("C-1", id=pid, gender="male")),
                _delete_entry("Patient/none"),
            ]
            headers = {"Prefer": prefer} if prefer else None
            out = _entries(_post(client, kind, entries, headers), kind, 3)
            _written(client, out[0], "Patient", "201 Created")
            _written(client, out[1], "Patient", "200 OK")
            assert ("resource" in out[0]) == with_resource, (kind, prefer)
            assert ("resource" in out[1]) == with_resource, (kind, prefer)
            if with_resource:
                assert out[1]["resource"]["gender"] == "male"
                assert out[1]["resource"]["meta"]["versionId"] == "2"
            assert _deletion(out[2]["response"], tagged=False)
            assert "resource" not in out[2]


# --- requests that are not a batch or transaction -----------------------------------------


NOT_A_BATCH: list[tuple[Any, str]] = [
    (_client("C-1"), "invalid"),
    ({"resourceType": "Bundle", "type": "collection", "entry": []}, "invalid"),
    ({"resourceType": "Bundle", "type": "searchset"}, "invalid"),
    ({"resourceType": "Bundle", "type": "transaction-response"}, "invalid"),
    ({"resourceType": "Bundle"}, "invalid"),
    ({"resourceType": "Bundle", "type": "transaction", "entry": {"request": {}}}, "structure"),
    (b"{not json", "structure"),
    ([1, 2], "invalid"),
]


def test_post_to_the_base_takes_only_batch_or_transaction(client: httpx.Client) -> None:
    for body, code in NOT_A_BATCH:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.post(_base(client), content=content, headers=FHIR_JSON)
        assert response.status_code == 400, (body, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == code, body
    collection = {"resourceType": "Bundle", "type": "collection", "entry": []}
    response = client.post(_base(client), json=collection, headers=FHIR_JSON)
    assert response.json()["issue"][0]["diagnostics"] == (
        "Bundle.type must be batch or transaction, not 'collection'"
    )
    assert _versions(client) == 0


MALFORMED_ENTRIES: list[tuple[Any, int, str]] = [
    ("not an object", 400, "must be an object"),
    ({"resource": _client("C-1")}, 400, "has no request"),
    ({"request": {"method": "POST", "url": "Patient"}}, 400, "carries a resource"),
    (
        {"resource": _client("C-1"), "request": {"method": "POST", "url": "Patient/x"}},
        400,
        "the resource type alone",
    ),
    (_get_entry("https://elsewhere.example.org/fhir/Patient/1"), 400, "relative to this server"),
    (_get_entry("Nonsense/1"), 404, "names no resource type"),
    ({"request": {"method": "PATCH", "url": "Patient?identifier=x"}}, 400, "Conditional patch"),
    ({"request": {"method": "FETCH", "url": "Patient"}}, 400, "request.method must be"),
    (_post_entry(_client("C-1"), 42), 400, "fullUrl must be a string"),  # type: ignore[arg-type]
]


def test_malformed_entry_fails_the_transaction(client: httpx.Client) -> None:
    for entry, status, message in MALFORMED_ENTRIES:
        response = _post(client, "transaction", [_post_entry(_client("C-0")), entry])
        assert response.status_code == status, (entry, response.text)
        issue = response.json()["issue"][0]
        assert issue["expression"][0] == "Bundle.entry[1]", entry
        assert message in issue["diagnostics"], (entry, issue)
    assert _versions(client) == 0


def test_content_type_other_than_json_is_415(client: httpx.Client) -> None:
    response = client.post(
        _base(client), content=b"<Bundle/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"


def test_empty_transaction_answers_an_empty_response(client: httpx.Client) -> None:
    response = _post(client, "transaction", [])
    assert response.status_code == 200
    assert response.json() == {"resourceType": "Bundle", "type": "transaction-response"}


# --- limits --------------------------------------------------------------------------------


def test_default_entry_limit_is_5000(client: httpx.Client) -> None:
    entries = [_get_entry("Patient/p1")] * 5001
    response = _post(client, "transaction", entries)
    assert response.status_code == 413
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert "5001 entries" in issue["diagnostics"] and "at most 5000" in issue["diagnostics"]


@pytest.fixture
def limited(backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    server = server_with(backend, max_bundle_entries=3, max_bundle_bytes=4096)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            yield http
    finally:
        server.stop()


def test_entry_and_size_limits_are_413(limited: httpx.Client) -> None:
    for kind in ("batch", "transaction"):
        _limits(limited, kind)
    assert _versions(limited) == 6


def _limits(limited: httpx.Client, kind: str) -> None:
    before = _versions(limited)
    three = [_post_entry(_client(f"C-{n}")) for n in range(3)]
    _entries(_post(limited, kind, three), kind, 3)
    assert _versions(limited) == before + 3

    four = [_post_entry(_client(f"C-{n}")) for n in range(4)]
    response = _post(limited, kind, four)
    assert response.status_code == 413, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert issue["diagnostics"] == (
        "The Bundle has 4 entries; at most 3 are accepted in one request "
        "(CASEBRIDGE_MAX_BUNDLE_ENTRIES)"
    )
    big = [
        _post_entry(
            _client(
                "C-9",
                text={
                    "status": "generated",
                    "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{"x" * 5000}</div>',
                },
            )
        )
    ]
    response = _post(limited, kind, big)
    assert response.status_code == 413, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert "4096" in issue["diagnostics"]
    assert _versions(limited) == before + 3


# --- transaction order and reads inside the transaction ---------------------------------


def test_failing_get_entry_fails_the_whole_transaction(client: httpx.Client) -> None:
    entries = [_post_entry(_client("C-1")), _get_entry("Patient/nobody")]
    response = _post(client, "transaction", entries)
    _failed(response, 404, 1, "not-found")
    assert _versions(client) == 0


def test_conditional_create_sees_the_deletes_of_its_transaction(client: httpx.Client) -> None:
    old = _create(client, _client("C-1"))
    entries = [
        _post_entry(_client("C-1", gender="female"), _urn(), f"identifier={SYS}|C-1"),
        _delete_entry(f"Patient?identifier={SYS}|C-1"),
    ]
    out = _entries(_post(client, "transaction", entries), "transaction", 2)
    assert _deletion(out[1]["response"])
    assert client.get(f"/Patient/{old}").status_code == 410
    created = _written(client, out[0], "Patient", "201 Created")
    assert created != old
    assert _count(client, "Patient", identifier=f"{SYS}|C-1") == 1
