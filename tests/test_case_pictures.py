"""Outcomes over time, the ecomap and the genogram over HTTP on both databases: the SVG
parses, and contains the people, their symbols and the links between them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mappings import casework as m
from schemas import casework as plain
from tests.conftest import Backend
from tests.support.server import LiveServer

FHIR = {"Content-Type": "application/fhir+json"}
SVG = "{http://www.w3.org/2000/svg}"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


@pytest.fixture
def root(live: LiveServer, backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=live.root, timeout=30) as http:
        yield http


def open_case(http: httpx.Client, **client: Any) -> dict[str, Any]:
    body = {
        "client": {"given_names": ["Ari"], "family_name": "Ng", "gender": "male", **client},
        "care_team": [
            {"member": "Practitioner/cm-1", "name": "Sam Lee", "role": "case manager"},
            {"member": "Practitioner/gp-1", "name": "Dr Omar", "role": "GP"},
        ],
    }
    created = http.post("/cases", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def svg(http: httpx.Client, path: str) -> ET.Element:
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    element = ET.fromstring(response.text)
    assert element.tag == f"{SVG}svg"
    return element


def people(picture: ET.Element) -> dict[str, ET.Element]:
    return {
        g.attrib["data-ref"]: g
        for g in picture.iter(f"{SVG}g")
        if "person" in g.attrib.get("class", "").split()
    }


def links(picture: ET.Element) -> set[tuple[str, str, str]]:
    return {
        (e.attrib["data-kind"], e.attrib["data-from"], e.attrib["data-to"])
        for e in picture.iter()
        if e.attrib.get("class") == "link"
    }


def test_outcomes_over_time(root: httpx.Client) -> None:
    case = open_case(root)
    for day, answers in [("2026-01-10", [3] * 9), ("2026-03-10", [1] * 9), ("2026-02-10", [2] * 9)]:
        body = {"instrument": "phq9", "date": day, "answers": dict(enumerate(answers, start=1))}
        assert root.post(f"/cases/{case['id']}/assessments", json=body).status_code == 201
    audit = {"instrument": "audit", "date": "2026-01-10", "answers": dict.fromkeys(range(1, 11), 0)}
    assert root.post(f"/cases/{case['id']}/assessments", json=audit).status_code == 201
    series = root.get(f"/cases/{case['id']}/outcomes").json()
    assert [(p["date"], p["total"], p["zone"]) for p in series["phq9"]] == [
        ("2026-01-10", 27, "phq9-severe"),
        ("2026-02-10", 18, "phq9-moderately-severe"),
        ("2026-03-10", 9, "phq9-mild"),
    ]
    assert [p["total"] for p in series["audit"]] == [0]
    chart = svg(root, f"/cases/{case['id']}/outcomes.svg")
    groups = {
        g.attrib["data-instrument"]: g
        for g in chart.iter(f"{SVG}g")
        if "data-instrument" in g.attrib
    }
    assert set(groups) == {"phq9", "audit"}
    points = [g for g in groups["phq9"].iter(f"{SVG}g") if g.attrib.get("class") == "point"]
    assert [p.attrib["data-total"] for p in points] == ["27", "18", "9"]
    assert [p.attrib["data-date"] for p in points] == ["2026-01-10", "2026-02-10", "2026-03-10"]
    marker = [next(p.iter(f"{SVG}use"), None) for p in points]  # matplotlib: a <use>
    ys = [float(m.attrib["y"]) for m in marker if m is not None]
    assert len(ys) == 3 and ys[0] < ys[1] < ys[2]  # falling scores draw lower
    empty = open_case(root)
    assert root.get(f"/cases/{empty['id']}/outcomes").json() == {}
    svg(root, f"/cases/{empty['id']}/outcomes.svg")


def test_ecomap(root: httpx.Client) -> None:
    case = open_case(root)
    for name, relation, connection in [
        ("Jo", "SIS", "strong"),
        ("Max", "FRND", "stressful"),
        ("Lee", "NBOR", "weak"),
    ]:
        body = {"name": name, "relationship": relation, "connection": connection}
        assert root.post(f"/cases/{case['id']}/supports", json=body).status_code == 201
    referral = plain.Referral(
        client_id=case["client_id"],
        from_agency="Organization/northside",
        to_agency="Organization/aod-clinic",
        service_type="counselling",
        reason="alcohol",
        requested="2026-01-05",
    )
    result = root.post("/fhir", json=m.referral_bundle(referral), headers=FHIR)
    assert result.status_code == 200, result.text
    task_id = result.json()["entry"][1]["response"]["location"].split("/")[1]
    # The referral is worked through its state machine (the local operator acts for both).
    for status in ("accepted", "in-progress"):
        response = root.get(f"/fhir/Task/{task_id}")
        task = {**response.json(), "status": status}
        headers = {**FHIR, "If-Match": response.headers["ETag"]}
        response = root.put(f"/fhir/Task/{task_id}", json=task, headers=headers)
        assert response.status_code == 200, response.text
    picture = svg(root, f"/cases/{case['id']}/ecomap.svg")
    found = people(picture)
    client_ref = f"Patient/{case['client_id']}"
    assert client_ref in found and "Organization/aod-clinic" in found
    assert {"Practitioner/cm-1", "Practitioner/gp-1"} <= set(found)
    names = {g.find(f"{SVG}title").text for g in found.values()}  # type: ignore[union-attr]
    assert {"Jo (SIS)", "Max (FRND)", "Lee (NBOR)"} <= names
    strengths = {
        e.attrib["data-to"]: e.attrib["data-strength"]
        for e in picture.iter()
        if e.attrib.get("class") == "link"
    }
    by_name = {g.find(f"{SVG}title").text.split(" (")[0]: ref for ref, g in found.items()}  # type: ignore[union-attr]
    assert strengths[by_name["Jo"]] == "strong"
    assert strengths[by_name["Max"]] == "stressful"
    assert strengths[by_name["Lee"]] == "weak"
    assert strengths["Organization/aod-clinic"] == "strong"  # the referral is in progress
    assert all(frm == client_ref for _, frm, _ in links(picture))
    assert len(links(picture)) == 6


def test_genogram_three_generations(root: httpx.Client) -> None:
    case = open_case(root, gender="female")
    client_ref = f"Patient/{case['client_id']}"
    supports = {}
    for name, relation, gender in [
        ("Ana", "MTH", "female"),
        ("Ben", "FTH", "male"),
        ("Cy", "BRO", "male"),
        ("Dee", "DAU", "female"),
        ("Eli", "SPS", "male"),
    ]:
        body = {"name": name, "relationship": relation, "gender": gender}
        supports[name] = root.post(f"/cases/{case['id']}/supports", json=body).json()["id"]
    history = {
        "resourceType": "FamilyMemberHistory",
        "status": "completed",
        "patient": {"reference": client_ref},
        "name": "Grandma Flo",
        "relationship": {"coding": [{"system": ROLE, "code": "MGRMTH"}]},
        "sex": {
            "coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": "female"}]
        },
        "deceasedBoolean": True,
    }
    created = root.post("/fhir/FamilyMemberHistory", json=history, headers=FHIR)
    assert created.status_code == 201, created.text
    flo = f"FamilyMemberHistory/{created.json()['id']}"
    picture = svg(root, f"/cases/{case['id']}/genogram.svg")
    found = people(picture)
    refs = {name: f"RelatedPerson/{rid}" for name, rid in supports.items()}
    assert set(found) == {client_ref, flo, *refs.values()}
    # Standard symbols: square male, circle female, a cross for the deceased.
    assert found[refs["Ben"]].find(f"{SVG}rect") is not None
    assert found[refs["Ana"]].find(f"{SVG}circle") is not None
    assert len(found[client_ref].findall(f"{SVG}circle")) == 2  # the client's double outline
    assert found[flo].attrib["data-deceased"] == "true"
    assert len(found[flo].findall(f"{SVG}line")) == 2
    assert found[refs["Cy"]].attrib["data-deceased"] == "false"
    # Three generations (four with the daughter): rows from the top.
    y = {ref: float(next(iter(g.iter(f"{SVG}text"))).attrib["y"]) for ref, g in found.items()}
    assert y[flo] < y[refs["Ana"]] < y[client_ref] < y[refs["Dee"]]
    assert y[refs["Ana"]] == y[refs["Ben"]] and y[refs["Cy"]] == y[client_ref]
    drawn = links(picture)
    assert ("partners", refs["Ben"], refs["Ana"]) in drawn
    assert ("partners", client_ref, refs["Eli"]) in drawn
    assert ("parent-child", refs["Ana"], client_ref) in drawn
    assert ("parent-child", refs["Ben"], refs["Cy"]) in drawn
    assert ("parent-child", client_ref, refs["Dee"]) in drawn
    assert ("parent-child", flo, refs["Ana"]) in drawn  # maternal grandmother -> mother
    assert root.get("/cases/none/genogram.svg").status_code == 404
