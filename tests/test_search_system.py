"""Whole-system search: GET [base]?_type=... and POST [base]/_search (spec http.html#search)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import care_plan, patient


def _post(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _matches(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "match"
    ]


def _all_pages(client: httpx.Client, query: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    response = client.get(query)
    assert response.status_code == 200, response.text
    bundle = response.json()
    while True:
        found += _matches(bundle)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return found
        bundle = client.get(following[0]).json()


@pytest.fixture
def people(client: httpx.Client) -> dict[str, str]:
    made = {
        "zoe": _post(client, patient(name=[{"family": "Zoë", "given": ["Ana"]}])),
        "sam": _post(client, patient(name=[{"family": "Samuels"}])),
        "dr": _post(client, {"resourceType": "Practitioner", "name": [{"family": "Zoller"}]}),
    }
    made["plan"] = _post(client, care_plan(subject={"reference": f"Patient/{made['zoe']}"}))
    gone = _post(client, patient(name=[{"family": "Zoe-deleted"}]))
    assert client.delete(f"/Patient/{gone}").status_code in (200, 204)
    return made


def test_types_are_searched_together_and_paged_once_each(
    client: httpx.Client, people: dict[str, str]
) -> None:
    found = _all_pages(client, "?_type=Patient,CarePlan,Practitioner&_count=1")
    expected = {
        ("Patient", people["zoe"]),
        ("Patient", people["sam"]),
        ("Practitioner", people["dr"]),
        ("CarePlan", people["plan"]),
    }
    assert sorted(found) == sorted(expected)
    assert len(found) == len(set(found))


def test_a_parameter_applies_per_type(client: httpx.Client, people: dict[str, str]) -> None:
    bundle = client.get("", params={"_type": "Patient,Practitioner", "name": "zo"}).json()
    assert sorted(_matches(bundle)) == sorted(
        [("Patient", people["zoe"]), ("Practitioner", people["dr"])]
    )
    assert bundle["total"] == 2


def test_without_type_only_id_and_last_updated(
    client: httpx.Client, people: dict[str, str]
) -> None:
    bundle = client.get("", params={"_id": f"{people['dr']},{people['plan']}"}).json()
    assert sorted(_matches(bundle)) == sorted(
        [("Practitioner", people["dr"]), ("CarePlan", people["plan"])]
    )
    refused = client.get("", params={"name": "zo"})
    assert refused.status_code == 400
    assert "_type" in refused.json()["issue"][0]["diagnostics"]


def test_a_parameter_some_types_lack_is_refused_not_half_applied(
    client: httpx.Client, people: dict[str, str]
) -> None:
    response = client.get("", params={"_type": "Patient,CarePlan", "subject:missing": "false"})
    assert response.status_code == 400
    assert "every type" in response.json()["issue"][0]["diagnostics"]
    # Unknown to every type: ignored and reported, as on a type-level search.
    bundle = client.get("", params={"_type": "Patient,CarePlan", "nickname": "x"}).json()
    assert len(_matches(bundle)) == 3
    assert bundle["entry"][-1]["search"]["mode"] == "outcome"


def test_sort_by_last_updated_and_post_form(client: httpx.Client, people: dict[str, str]) -> None:
    bundle = client.get("", params={"_type": "Patient,CarePlan", "_sort": "-_lastUpdated"}).json()
    assert _matches(bundle) == [
        ("CarePlan", people["plan"]),
        ("Patient", people["sam"]),
        ("Patient", people["zoe"]),
    ]
    posted = client.post(
        "/_search",
        content=b"_type=Patient&name=sam",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()
    assert _matches(posted) == [("Patient", people["sam"])]
    assert client.get("", params={"_type": "Nope"}).status_code == 400
    assert client.get("", params={"_sort": "name"}).status_code == 400
