"""create, read, vread, update, delete and history over HTTP (spec http.html)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.factories import FHIR_JSON, care_plan, patient


def _create(client: httpx.Client, resource: dict[str, object]) -> httpx.Response:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return response


def test_create_assigns_id_version_and_headers(client: httpx.Client) -> None:
    response = _create(client, care_plan(id="client-chosen", meta={"versionId": "99"}))
    body = response.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert (
        response.headers["location"]
        == f"{str(client.base_url).rstrip('/')}/CarePlan/{body['id']}/_history/1"
    )
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_read_returns_what_create_stored(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    read = client.get(f"/CarePlan/{created['id']}")
    assert read.status_code == 200
    assert read.json() == created
    assert read.headers["etag"] == 'W/"1"'


def test_server_meta_is_never_taken_from_client_but_profile_kept(client: httpx.Client) -> None:
    meta = {
        "versionId": "7",
        "lastUpdated": "1999-01-01T00:00:00Z",
        "profile": ["http://example.org/StructureDefinition/cm-careplan"],
        "tag": [{"system": "http://example.org/tags", "code": "aod"}],
    }
    body = _create(client, care_plan(meta=meta)).json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "1999-01-01T00:00:00Z"
    assert body["meta"]["profile"] == meta["profile"]
    assert body["meta"]["tag"] == meta["tag"]


def test_unicode_comes_back_byte_for_byte(client: httpx.Client) -> None:
    text = "Kia ora 👋🏽 — שלום עולם — مرحبا — 漢字 — e\u0301 — \u200f"
    raw = json.dumps(care_plan(description=text), ensure_ascii=False).encode()
    created = client.post("/CarePlan", content=raw, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    read = client.get(f"/CarePlan/{created.json()['id']}")
    expected = json.dumps(text, ensure_ascii=False).encode()
    assert expected in read.content
    assert read.json()["description"] == text


def test_decimals_keep_their_precision(client: httpx.Client) -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"BAC"},'
        b'"valueQuantity":{"value":0.050,"unit":"g/100mL"},'
        b'"component":[{"code":{"text":"x"},"valueQuantity":{"value":1.000000000000000000E-245}}]}'
    )
    created = client.post("/Observation", content=raw, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    read = client.get(f"/Observation/{created.json()['id']}")
    body = json.loads(read.content, parse_float=Decimal)
    assert str(body["valueQuantity"]["value"]) == "0.050"
    tiny = body["component"][0]["valueQuantity"]["value"]
    # PostgreSQL's JSONB may spell it without the exponent: same value, same 19 digits.
    assert tiny == Decimal("1.000000000000000000E-245")
    assert len(tiny.as_tuple().digits) == 19


def test_update_increments_version_and_vread_keeps_old(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    updated = client.put(f"/CarePlan/{rid}", json={**created, "status": "on-hold"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["etag"] == 'W/"2"'
    old = client.get(f"/CarePlan/{rid}/_history/1")
    assert old.status_code == 200
    assert old.json()["status"] == "active"
    assert client.get(f"/CarePlan/{rid}").json()["status"] == "on-hold"
    assert client.get(f"/CarePlan/{rid}/_history/3").status_code == 404
    assert client.get(f"/CarePlan/{rid}/_history/abc").status_code == 404


def test_update_as_create_with_client_id(client: httpx.Client) -> None:
    response = client.put("/Patient/client-77", json=patient(id="client-77"))
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "client-77"
    assert response.headers["location"].endswith("/Patient/client-77/_history/1")
    again = client.put("/Patient/client-77", json=patient(id="client-77", gender="female"))
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "2"


def test_if_match_guards_update(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    ok = client.put(f"/CarePlan/{rid}", json=created, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = client.put(f"/CarePlan/{rid}", json=created, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    bad = client.put(f"/CarePlan/{rid}", json=created, headers={"If-Match": "yesterday"})
    assert bad.status_code == 400
    assert client.get(f"/CarePlan/{rid}").json()["meta"]["versionId"] == "2"


def test_delete_then_read_is_gone_and_history_keeps_it(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    deleted = client.delete(f"/CarePlan/{rid}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = client.get(f"/CarePlan/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.delete(f"/CarePlan/{rid}").status_code == 204  # idempotent
    history = client.get(f"/CarePlan/{rid}/_history").json()
    assert history["type"] == "history"
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    assert client.get(f"/CarePlan/{rid}/_history/2").status_code == 410
    assert client.get(f"/CarePlan/{rid}/_history/1").status_code == 200
    revived = client.put(f"/CarePlan/{rid}", json={**created, "status": "active"})
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"


def test_read_unknown_is_404(client: httpx.Client) -> None:
    response = client.get("/CarePlan/does-not-exist")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_history_newest_first_with_count_paging_and_since(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    stamps = [created["meta"]["lastUpdated"]]
    for status in ("on-hold", "active", "completed"):
        body = client.put(f"/CarePlan/{rid}", json={**created, "status": status}).json()
        stamps.append(body["meta"]["lastUpdated"])
    _create(client, patient())
    page = client.get(f"/CarePlan/{rid}/_history", params={"_count": 3}).json()
    assert page["total"] == 4
    assert [e["resource"]["meta"]["versionId"] for e in page["entry"]] == ["4", "3", "2"]
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = client.get(next_url).json()
    assert [e["resource"]["meta"]["versionId"] for e in rest["entry"]] == ["1"]
    assert not [link for link in rest["link"] if link["relation"] == "next"]
    since = client.get(f"/CarePlan/{rid}/_history", params={"_since": stamps[2]}).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["4", "3"]
    type_history = client.get("/CarePlan/_history").json()
    assert type_history["total"] == 4
    system = client.get("/_history").json()
    # Five versions, each with the Provenance the server stored in the same transaction.
    assert system["total"] == 10
    records = [e["resource"] for e in system["entry"]]
    assert [r["resourceType"] for r in records].count("Provenance") == 5
    newest = next(r for r in records if r["resourceType"] != "Provenance")
    assert newest["resourceType"] == "Patient"
    assert records[0]["target"] == [
        {"reference": f"Patient/{newest['id']}/_history/1"}
    ]  # same instant as the write; "Provenance" sorts after "Patient"


def test_history_paging_is_stable_when_new_versions_arrive(client: httpx.Client) -> None:
    ids = [_create(client, patient()).json()["id"] for _ in range(5)]
    first = client.get("/Patient/_history", params={"_count": 2}).json()
    for _ in range(3):
        _create(client, patient())
    seen = [e["resource"]["id"] for e in first["entry"]]
    url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while url:
        page = client.get(url).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), "")
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    ("prefer", "expect_body"),
    [
        pytest.param("return=minimal", None, id="minimal"),
        pytest.param("return=representation", "CarePlan", id="representation"),
        pytest.param("return=OperationOutcome", "OperationOutcome", id="outcome"),
        pytest.param("", "CarePlan", id="default"),
    ],
)
def test_prefer_return(client: httpx.Client, prefer: str, expect_body: str | None) -> None:
    headers = {"Prefer": prefer} if prefer else {}
    response = client.post("/CarePlan", json=care_plan(), headers=headers)
    assert response.status_code == 201
    assert response.headers["location"]
    if expect_body is None:
        assert response.content == b""
    else:
        assert response.json()["resourceType"] == expect_body


def test_json_patch(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    ops = [
        {"op": "replace", "path": "/status", "value": "completed"},
        {"op": "add", "path": "/note/-", "value": {"text": "Closed after review."}},
    ]
    patched = client.patch(
        f"/CarePlan/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "completed"
    assert patched.json()["note"][-1]["text"] == "Closed after review."
    assert patched.json()["meta"]["versionId"] == "2"
    history = client.get(f"/CarePlan/{rid}/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


@pytest.mark.parametrize(
    ("ops", "status"),
    [
        pytest.param(
            [{"op": "replace", "path": "/status", "value": "bogus"}], 400, id="invalid-code"
        ),
        pytest.param([{"op": "replace", "path": "/nope/x", "value": 1}], 422, id="bad-path"),
        pytest.param([{"op": "test", "path": "/status", "value": "draft"}], 422, id="test-fails"),
        pytest.param([{"op": "replace", "path": "/id", "value": "other"}], 400, id="change-id"),
        pytest.param({"op": "replace"}, 400, id="not-an-array"),
        pytest.param([{"op": "jump", "path": "/status"}], 400, id="unknown-op"),
    ],
)
def test_json_patch_refusals_store_nothing(client: httpx.Client, ops: object, status: int) -> None:
    created = _create(client, care_plan()).json()
    rid = created["id"]
    response = client.patch(
        f"/CarePlan/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/CarePlan/{rid}").json() == created


def test_patch_needs_json_patch_media_type(client: httpx.Client) -> None:
    created = _create(client, care_plan()).json()
    response = client.patch(f"/CarePlan/{created['id']}", json=[])
    assert response.status_code == 415


def test_conditional_read(client: httpx.Client) -> None:
    created = _create(client, care_plan())
    rid = created.json()["id"]
    same = client.get(f"/CarePlan/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == 'W/"1"'
    client.put(f"/CarePlan/{rid}", json={**created.json(), "status": "on-hold"})
    changed = client.get(f"/CarePlan/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert changed.status_code == 200
    assert changed.json()["status"] == "on-hold"
    modified = changed.headers["last-modified"]
    assert (
        client.get(f"/CarePlan/{rid}", headers={"If-Modified-Since": modified}).status_code == 304
    )
    early = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/CarePlan/{rid}", headers={"If-Modified-Since": early}).status_code == 200
