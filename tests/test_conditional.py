"""Conditional create, update and delete (spec http.html#ccreate, #cond-update, #cdelete)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import patient

SYS = "https://agency.example.org/clients"


def _client_with(identifier: str, **changes: object) -> dict[str, object]:
    return patient(identifier=[{"system": SYS, "value": identifier}], **changes)


def _count(client: httpx.Client, resource_type: str = "Patient") -> int:
    return int(client.get(f"/{resource_type}/_history").json()["total"])


def test_conditional_create_no_match_creates(client: httpx.Client) -> None:
    response = client.post(
        "/Patient", json=_client_with("C-1"), headers={"If-None-Exist": f"identifier={SYS}|C-1"}
    )
    assert response.status_code == 201


def test_conditional_create_one_match_returns_it(client: httpx.Client) -> None:
    first = client.post("/Patient", json=_client_with("C-1")).json()
    again = client.post(
        "/Patient",
        json=_client_with("C-1", gender="female"),
        headers={"If-None-Exist": f"identifier={SYS}|C-1"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["gender"] == "other"
    assert _count(client) == 1


def test_conditional_create_several_matches_is_412(client: httpx.Client) -> None:
    client.post("/Patient", json=_client_with("dup"))
    client.post("/Patient", json=_client_with("dup"))
    response = client.post(
        "/Patient", json=_client_with("dup"), headers={"If-None-Exist": "identifier=dup"}
    )
    assert response.status_code == 412
    assert _count(client) == 2


@pytest.mark.parametrize(
    ("criteria", "matches"),
    [
        pytest.param(f"identifier={SYS}|C-1", True, id="system-and-value"),
        pytest.param("identifier=C-1", True, id="value-only"),
        pytest.param("identifier=|C-1", False, id="no-system"),
        pytest.param(f"identifier={SYS}|", True, id="system-only"),
        pytest.param("identifier=other|C-1", False, id="other-system"),
        pytest.param("identifier=zzz,C-1", True, id="or-values"),
        pytest.param("identifier=C-1&_lastUpdated=gt2000-01-01", True, id="and-last-updated"),
        pytest.param("identifier=C-1&_lastUpdated=lt2000", False, id="last-updated-excludes"),
        pytest.param("_lastUpdated=ge2026-01-05T09:00:00Z", True, id="instant-ge"),
        pytest.param("_lastUpdated=2026-01-05", True, id="day-precision-eq"),
    ],
)
def test_conditional_create_criteria(client: httpx.Client, criteria: str, matches: bool) -> None:
    client.post("/Patient", json=_client_with("C-1"))
    response = client.post(
        "/Patient", json=_client_with("C-1"), headers={"If-None-Exist": criteria}
    )
    assert response.status_code == (200 if matches else 201), response.text


def test_conditional_create_by_id(client: httpx.Client) -> None:
    first = client.post("/Patient", json=_client_with("C-1")).json()
    response = client.post(
        "/Patient", json=_client_with("C-9"), headers={"If-None-Exist": f"_id={first['id']}"}
    )
    assert response.status_code == 200


def test_conditional_create_unknown_parameter_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/Patient", json=_client_with("C-1"), headers={"If-None-Exist": "nickname=Rivera"}
    )
    assert response.status_code == 400
    assert "nickname" in response.json()["issue"][0]["diagnostics"]
    assert _count(client) == 0


def test_conditional_update_creates_updates_or_refuses(client: httpx.Client) -> None:
    created = client.put("/Patient", params={"identifier": f"{SYS}|C-5"}, json=_client_with("C-5"))
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    updated = client.put(
        "/Patient", params={"identifier": f"{SYS}|C-5"}, json=_client_with("C-5", gender="male")
    )
    assert updated.status_code == 200
    assert updated.json()["id"] == rid
    assert updated.json()["meta"]["versionId"] == "2"
    wrong_id = client.put(
        "/Patient", params={"identifier": f"{SYS}|C-5"}, json=_client_with("C-5", id="someone-else")
    )
    assert wrong_id.status_code == 400
    client.post("/Patient", json=_client_with("C-5"))
    several = client.put("/Patient", params={"identifier": "C-5"}, json=_client_with("C-5"))
    assert several.status_code == 412
    assert _count(client) == 3


def test_conditional_update_no_match_with_id_creates_that_id(client: httpx.Client) -> None:
    response = client.put(
        "/Patient", params={"identifier": "C-8"}, json=_client_with("C-8", id="chosen-8")
    )
    assert response.status_code == 201
    assert response.json()["id"] == "chosen-8"


def test_conditional_delete(client: httpx.Client) -> None:
    rid = client.post("/Patient", json=_client_with("D-1")).json()["id"]
    client.post("/Patient", json=_client_with("D-2"))
    client.post("/Patient", json=_client_with("D-2"))
    assert client.delete("/Patient", params={"identifier": "nobody"}).status_code == 204
    assert client.delete("/Patient", params={"identifier": "D-2"}).status_code == 412
    assert client.delete("/Patient", params={"identifier": "D-1"}).status_code == 204
    assert client.get(f"/Patient/{rid}").status_code == 410
    assert client.get("/Patient/_history").json()["total"] == 4
