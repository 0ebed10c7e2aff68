"""The case pictures over HTTP on both databases: the outcomes chart, the ecomap and the
genogram. Each SVG parses and says what it draws (data attributes), its geometry keeps the
conventions (no crossing lines, one sibship line per set of children, every member drawn
once), and each is rendered to PNG (resvg), checked, and written to tests/artifacts/ to be
looked at."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import matplotlib
import pytest
import resvg_py
from PIL import Image

from mappings import casework as m
from schemas import casework as plain
from schemas.conformance import system
from tests.conftest import Backend
from tests.support.server import LiveServer

FHIR = {"Content-Type": "application/fhir+json"}
SVG = "{http://www.w3.org/2000/svg}"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The fonts matplotlib ships, so text renders on a machine without system fonts.
FONTS = str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf")


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


def fetch(http: httpx.Client, path: str) -> str:
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    return response.text


def svg(http: httpx.Client, path: str) -> ET.Element:
    element = ET.fromstring(fetch(http, path))
    assert element.tag == f"{SVG}svg"
    return element


def png(picture: str, name: str, backend: Backend) -> Image.Image:
    """The SVG rendered to PNG (resvg), written to tests/artifacts/{name}-{backend}.png."""
    data = bytes(resvg_py.svg_to_bytes(svg_string=picture, font_dirs=[FONTS]))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}-{backend.name}.png").write_bytes(data)
    (ARTIFACTS / f"{name}-{backend.name}.svg").write_text(picture, encoding="utf-8")
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.width >= 600 and image.height >= 300
    return image


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    found = image.getcolors(maxcolors=1 << 20) or []
    return {(c[0], c[1], c[2]) for _count, c in found if isinstance(c, tuple)}


def hex_rgb(value: str) -> tuple[int, int, int]:
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


def people(picture: ET.Element) -> dict[str, ET.Element]:
    found: dict[str, ET.Element] = {}
    for g in picture.iter(f"{SVG}g"):
        if "person" in g.attrib.get("class", "").split():
            assert g.attrib["data-ref"] not in found, "drawn twice: " + g.attrib["data-ref"]
            found[g.attrib["data-ref"]] = g
    return found


def links(picture: ET.Element) -> set[tuple[str, str, str]]:
    return {
        (e.attrib["data-kind"], e.attrib["data-from"], e.attrib["data-to"])
        for e in picture.iter()
        if e.attrib.get("class") == "link"
    }


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None and found.text is not None
    return found.text


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
    # Each instrument its own panel, with its risk zones as bands.
    bands = {
        g.attrib["data-zone"] for g in chart.iter(f"{SVG}g") if g.attrib.get("class") == "band"
    }
    assert {"phq9-minimal", "phq9-severe", "audit-low", "audit-dependence"} <= bands
    empty = open_case(root)
    assert root.get(f"/cases/{empty['id']}/outcomes").json() == {}
    svg(root, f"/cases/{empty['id']}/outcomes.svg")


def test_outcomes_chart_small_multiples(root: httpx.Client, backend: Backend) -> None:
    """AUDIT, K10 and PHQ-9 over several months: a panel each on its own scale, a real time
    axis shared by all (the same day lines up in every panel; distance is time), the zones
    of each instrument shaded and named, values and axis labels written."""
    case = open_case(root)
    schedule = {
        "audit": [("2025-08-04", 3), ("2025-09-15", 2), ("2025-11-24", 1), ("2026-01-05", 1)],
        "k10": [("2025-08-04", 4), ("2025-10-06", 3), ("2026-01-05", 2)],
        "phq9": [("2025-08-04", 3), ("2025-08-25", 2), ("2025-10-06", 2), ("2026-01-05", 1)],
    }
    for instrument, visits in schedule.items():
        for day, score in visits:
            answers = {
                # AUDIT items 9 and 10 score 0, 2 or 4; K10 items 1 to 5; PHQ-9 items 0 to 3.
                "audit": {**dict.fromkeys(range(1, 9), score), 9: 2, 10: 2},
                "k10": dict.fromkeys(range(1, 11), score),
                "phq9": dict.fromkeys(range(1, 10), score),
            }[instrument]
            body = {"instrument": instrument, "date": day, "answers": answers}
            response = root.post(f"/cases/{case['id']}/assessments", json=body)
            assert response.status_code == 201, response.text
    text = fetch(root, f"/cases/{case['id']}/outcomes.svg")
    chart = ET.fromstring(text)
    panels = {
        g.attrib["data-instrument"]: g
        for g in chart.iter(f"{SVG}g")
        if g.attrib.get("class") == "series"
    }
    assert list(panels) == ["audit", "k10", "phq9"]
    expected_bands = {"audit": 4, "k10": 4, "phq9": 5}
    first_x: dict[str, float] = {}
    for instrument, panel in panels.items():
        bands = [g for g in panel.iter(f"{SVG}g") if g.attrib.get("class") == "band"]
        assert len(bands) == expected_bands[instrument]
        lows = sorted(int(b.attrib["data-low"]) for b in bands)
        assert lows[0] == {"audit": 0, "k10": 10, "phq9": 0}[instrument]
        words = " ".join(t.text or "" for t in panel.iter(f"{SVG}text"))
        assert "Total score" in words
        for band in bands:  # each zone is named beside the panel with its bounds
            low, high = band.attrib["data-low"], band.attrib["data-high"]
            assert f"{low}\u2013{high}" in words, (instrument, low, high)
        points = [g for g in panel.iter(f"{SVG}g") if g.attrib.get("class") == "point"]
        days = [p.attrib["data-date"] for p in points]
        assert days == [d for d, _ in schedule[instrument]]
        xs = [float(next(p.iter(f"{SVG}use")).attrib["x"]) for p in points]
        for point in points:  # every value is written
            assert point.attrib["data-total"] in words
        # A real time axis: horizontal distance is proportional to days between visits.
        ordinals = [dt.date.fromisoformat(d).toordinal() for d in days]
        scale = (xs[-1] - xs[0]) / (ordinals[-1] - ordinals[0])
        for x, ordinal in zip(xs, ordinals, strict=True):
            assert abs(xs[0] + scale * (ordinal - ordinals[0]) - x) < 0.5
        first_x[instrument] = xs[0]
    assert len({round(x, 1) for x in first_x.values()}) == 1  # 2025-08-04 lines up
    words = " ".join(t.text or "" for t in chart.iter(f"{SVG}text"))
    assert "Date of assessment" in words and "2025" in words and "2026" in words
    image = png(text, "outcomes", backend)
    found = colours(image)
    shades = set()
    for band in chart.iter(f"{SVG}g"):
        if band.attrib.get("class") == "band":
            path = next(band.iter(f"{SVG}path"))
            shades.add(re.search(r"fill: (#[0-9a-f]{6})", path.attrib["style"]).group(1))  # type: ignore[union-attr]
    assert len(shades) == 5
    for shade in shades:  # the bands are painted
        assert hex_rgb(shade) in found, shade


def refer(http: httpx.Client, client_id: str, agency: str, day: str, statuses: list[str]) -> None:
    """A referral to the agency, its Task then moved through the statuses."""
    referral = plain.Referral(
        client_id=client_id,
        from_agency="Organization/northside",
        to_agency=agency,
        service_type="counselling",
        reason="alcohol",
        requested=day,
    )
    result = http.post("/fhir", json=m.referral_bundle(referral), headers=FHIR)
    assert result.status_code == 200, result.text
    task_id = result.json()["entry"][1]["response"]["location"].split("/")[1]
    # The referral is worked through its state machine (the local operator acts for both).
    for status in statuses:
        response = http.get(f"/fhir/Task/{task_id}")
        task = {**response.json(), "status": status}
        headers = {**FHIR, "If-Match": response.headers["ETag"]}
        response = http.put(f"/fhir/Task/{task_id}", json=task, headers=headers)
        assert response.status_code == 200, response.text


def test_ecomap(root: httpx.Client) -> None:
    case = open_case(root)
    for name, relation, connection in [
        ("Jo", "SIS", "strong"),
        ("Max", "FRND", "stressful"),
        ("Lee", "NBOR", "weak"),
    ]:
        body = {"name": name, "relationship": relation, "connection": connection}
        assert root.post(f"/cases/{case['id']}/supports", json=body).status_code == 201
    refer(
        root,
        case["client_id"],
        "Organization/aod-clinic",
        "2026-01-05",
        ["accepted", "in-progress"],
    )
    picture = svg(root, f"/cases/{case['id']}/ecomap.svg")
    found = people(picture)
    client_ref = f"Patient/{case['client_id']}"
    assert client_ref in found and "Organization/aod-clinic" in found
    assert {"Practitioner/cm-1", "Practitioner/gp-1"} <= set(found)
    names = {title(g) for g in found.values()}
    assert {"Jo (sister)", "Max (friend)", "Lee (neighbour)"} <= names
    assert {"Sam Lee (case manager)", "Dr Omar (GP)"} <= names  # names, not ids
    strengths = {
        e.attrib["data-to"]: e.attrib["data-strength"]
        for e in picture.iter()
        if e.attrib.get("class") == "link"
    }
    by_name = {title(g).split(" (")[0]: ref for ref, g in found.items()}
    assert strengths[by_name["Jo"]] == "strong"
    assert strengths[by_name["Max"]] == "stressful"
    assert strengths[by_name["Lee"]] == "weak"
    assert strengths["Organization/aod-clinic"] == "strong"  # the referral is in progress
    assert all(frm == client_ref for _, frm, _ in links(picture))
    assert len(links(picture)) == 6


def test_ecomap_agencies_systems_and_ties(root: httpx.Client, backend: Backend) -> None:
    """Several agencies, three referrals to one of them, informal systems (written through
    the plain API and through /fhir), and every kind of tie and flow: one circle per agency,
    everyone by name, each tie drawn in its style with its arrows."""
    case = open_case(root)
    client_ref = f"Patient/{case['client_id']}"
    agencies = {}
    for name in ("Northside AOD Clinic", "City Housing Service", "Legal Aid Office"):
        body = {"resourceType": "Organization", "name": name}
        created = root.post("/fhir/Organization", json=body, headers=FHIR)
        assert created.status_code == 201, created.text
        agencies[name] = f"Organization/{created.json()['id']}"
    aod = agencies["Northside AOD Clinic"]
    refer(root, case["client_id"], aod, "2025-03-01", ["rejected"])
    refer(root, case["client_id"], aod, "2025-06-01", ["accepted", "in-progress", "completed"])
    refer(root, case["client_id"], aod, "2025-10-01", ["accepted", "in-progress"])
    refer(root, case["client_id"], agencies["City Housing Service"], "2025-11-01", ["rejected"])
    refer(root, case["client_id"], agencies["Legal Aid Office"], "2025-12-01", [])
    ties = [
        {"name": "Jo Ng", "relationship": "SIS", "connection": "strong", "flow": "both"},
        {"name": "Max", "relationship": "FRND", "connection": "stressful", "flow": "from-client"},
        {"name": "Lee Park", "relationship": "NBOR", "connection": "weak"},
        {
            "kind": "self-help",
            "name": "Tuesday AA group",
            "connection": "strong",
            "flow": "to-client",
        },
        {
            "kind": "work",
            "name": "Harbour Freight",
            "connection": "stressful",
            "flow": "from-client",
        },
    ]
    refs = {}
    for body in ties:
        response = root.post(f"/cases/{case['id']}/supports", json=body)
        assert response.status_code == 201, response.text
        refs[body["name"]] = response.json()["id"]
    church = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "name": "St Mark's Church",
        "code": {"coding": [{"system": system("informal-system"), "code": "faith"}]},
        "member": [{"entity": {"reference": client_ref}}],
        "extension": [
            {
                "url": m.EXT["connection"],
                "valueCoding": {"system": system("connection-strength"), "code": "moderate"},
            },
            {
                "url": m.EXT["flow"],
                "valueCoding": {"system": system("energy-flow"), "code": "both"},
            },
        ],
    }
    created = root.post("/fhir/Group", json=church, headers=FHIR)
    assert created.status_code == 201, created.text
    refs["St Mark's Church"] = created.json()["id"]
    text = fetch(root, f"/cases/{case['id']}/ecomap.svg")
    picture = ET.fromstring(text)
    found = people(picture)  # (each drawn once)
    assert len(found) == 1 + 3 + 3 + 2 + 3  # client, supports, systems, care team, agencies
    kinds = {ref: g.attrib["class"].split()[1] for ref, g in found.items()}
    assert kinds[aod] == "agency" and kinds[f"Group/{refs['Harbour Freight']}"] == "system"
    # One circle and one tie per agency, however many referrals; named, not numbered.
    ties_drawn = [e for e in picture.iter(f"{SVG}g") if e.attrib.get("class") == "link"]
    assert [e.attrib["data-to"] for e in ties_drawn].count(aod) == 1
    assert title(found[aod]) == "Northside AOD Clinic (3 referrals, latest in progress)"
    assert title(found[agencies["Legal Aid Office"]]).startswith("Legal Aid Office (1 referral")
    words = " ".join(t.text or "" for t in picture.iter(f"{SVG}text"))
    assert "Organization/" not in words and "Practitioner/" not in words
    assert "Group/" not in words and "RelatedPerson/" not in words
    for name in ("St Mark's Church", "Tuesday AA", "Harbour Freight", "Dr Omar", "Legal Aid"):
        assert name in words
    by_target = {e.attrib["data-to"]: e for e in ties_drawn}

    def tie(name: str) -> ET.Element:
        key = refs.get(name)
        for prefix in ("RelatedPerson/", "Group/"):
            if key and f"{prefix}{key}" in by_target:
                return by_target[f"{prefix}{key}"]
        return by_target[agencies[name]]

    assert {e.attrib["data-strength"] for e in ties_drawn} == {
        "strong",
        "moderate",
        "weak",
        "stressful",
    }
    # Line styles: strong thick, tenuous dashed, stressful hatched, moderate plain.
    main = {name: next(tie(name).iter(f"{SVG}line")) for name in refs}
    assert main["Jo Ng"].attrib["stroke-width"] == "6"
    assert "stroke-dasharray" in main["Lee Park"].attrib
    assert len([e for e in tie("Max").iter(f"{SVG}line") if e.attrib["class"] == "hatch"]) >= 3
    assert main["St Mark's Church"].attrib["stroke-width"] == "2"
    assert "stroke-dasharray" not in main["St Mark's Church"].attrib
    assert tie("City Housing Service").attrib["data-strength"] == "stressful"  # rejected
    assert tie("Legal Aid Office").attrib["data-strength"] == "weak"  # not yet answered

    # Arrows point where energy flows.
    def arrows(name: str) -> list[str]:
        return sorted(a.attrib["data-towards"] for a in tie(name).iter(f"{SVG}polygon"))

    assert arrows("Jo Ng") == ["client", "system"]
    assert arrows("Max") == ["system"]
    assert arrows("Tuesday AA group") == ["client"]
    assert arrows("St Mark's Church") == ["client", "system"]
    assert arrows("Lee Park") == []
    assert arrows("Northside AOD Clinic") == ["client"]  # services reach the client
    assert arrows("Legal Aid Office") == []
    # Circles do not overlap one another.
    circles = [
        (float(c.attrib["cx"]), float(c.attrib["cy"]), float(c.attrib["r"]))
        for g in found.values()
        for c in itertools.islice(g.iter(f"{SVG}circle"), 1)
    ]
    for (x1, y1, r1), (x2, y2, r2) in itertools.combinations(circles, 2):
        assert (x1 - x2) ** 2 + (y1 - y2) ** 2 > (r1 + r2) ** 2
    image = png(text, "ecomap", backend)
    found_colours = colours(image)
    for g in found.values():  # each kind's fill is painted
        fill = next(g.iter(f"{SVG}circle")).attrib["fill"]
        if fill.startswith("#"):
            assert hex_rgb(fill) in found_colours, fill


def name_of(person: ET.Element) -> ET.Element:
    return next(t for t in person.iter(f"{SVG}text") if t.attrib.get("class") == "name")


def test_genogram_three_generations(root: httpx.Client) -> None:
    case = open_case(root, gender="female", birth_date="1990-02-14")
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
    assert found[client_ref].attrib["data-age"] == "35"  # on the server's day, 2026-01-05
    assert found[flo].attrib["data-deceased"] == "true"
    assert len(found[flo].findall(f"{SVG}line")) == 2
    assert found[refs["Cy"]].attrib["data-deceased"] == "false"
    # Three generations (four with the daughter): rows from the top.
    y = {ref: float(name_of(g).attrib["y"]) for ref, g in found.items()}
    assert y[flo] < y[refs["Ana"]] < y[client_ref] < y[refs["Dee"]]
    assert y[refs["Ana"]] == y[refs["Ben"]] and y[refs["Cy"]] == y[client_ref]
    drawn = links(picture)
    assert ("partners", refs["Ben"], refs["Ana"]) in drawn
    assert ("partners", client_ref, refs["Eli"]) in drawn
    # Children hang from their parents' one sibship line, not from each parent.
    sibships = {
        frozenset(g.attrib["data-parents"].split()): {
            e.attrib["data-to"] for e in g if e.attrib.get("data-kind") == "child"
        }
        for g in picture.iter(f"{SVG}g")
        if g.attrib.get("class") == "sibship"
    }
    assert sibships[frozenset({refs["Ben"], refs["Ana"]})] == {client_ref, refs["Cy"]}
    assert sibships[frozenset({client_ref, refs["Eli"]})] == {refs["Dee"]}
    # The maternal grandfather was not recorded: a placeholder stands beside Flo.
    assert sibships[frozenset({flo})] == {refs["Ana"]}
    placeholders = [g for g in picture.iter(f"{SVG}g") if g.attrib.get("class") == "placeholder"]
    assert [g.attrib["data-relation"] for g in placeholders] == ["GRFTH"]
    assert not [kind for kind, _, _ in drawn if kind == "parent-child"]
    assert root.get("/cases/none/genogram.svg").status_code == 404


def segments(picture: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Every line of the genogram's partnerships and sibships, with its union."""
    return [
        (
            e.attrib["data-unit"],
            tuple(float(e.attrib[k]) for k in ("x1", "y1", "x2", "y2")),  # type: ignore[misc]
        )
        for e in picture.iter(f"{SVG}line")
        if "data-unit" in e.attrib
    ]


def meet(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two horizontal or vertical segments share a point (touching counts)."""

    def box(s: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return min(s[0], s[2]), max(s[0], s[2]), min(s[1], s[3]), max(s[1], s[3])

    ax1, ax2, ay1, ay2 = box(a)
    bx1, bx2, by1, by2 = box(b)
    eps = 0.5
    return ax1 <= bx2 + eps and bx1 <= ax2 + eps and ay1 <= by2 + eps and by1 <= ay2 + eps


FAMILY_OF_TWELVE = [
    # name, relationship, gender, birth date, extra
    ("George Ng", "PGRFTH", "male", "1938-02-01", {"death_date": "2019-05-04"}),
    ("Mei Ng", "PGRMTH", "female", "1941-07-12", {}),
    ("Tom Walsh", "MGRFTH", "male", "1944-03-03", {}),
    ("Rose Walsh", "MGRMTH", "female", "1946-09-20", {}),
    ("David Ng", "FTH", "male", "1962-04-15", {"separation": "divorced"}),
    ("Anne Walsh", "MTH", "female", "1965-11-30", {}),
    ("Sam Ng", "BRO", "male", "1988-01-10", {}),
    ("Lily Ng", "SIS", "female", "1993-06-05", {}),
    ("Jordan Lee", "SPS", "male", "1987-08-08", {}),
    ("Max Lee", "SON", "male", "2015-03-01", {}),
    ("Ella Lee", "DAU", "female", "2018-10-10", {}),
]


def test_genogram_family_of_twelve(root: httpx.Client, backend: Backend) -> None:
    """Three generations, twelve people, the parents divorced and a grandfather deceased,
    all written through the plain API: every member drawn once, one partnership line per
    couple, one sibship line per set of children, the divorce marked, ages, the client
    marked, and no line crossing another."""
    case = open_case(
        root, given_names=["Ari"], family_name="Ng", gender="female", birth_date="1990-02-14"
    )
    client_ref = f"Patient/{case['client_id']}"
    refs = {}
    for name, relation, gender, born, extra in FAMILY_OF_TWELVE:
        body = {"name": name, "relationship": relation, "gender": gender, "birth_date": born}
        response = root.post(f"/cases/{case['id']}/supports", json={**body, **extra})
        assert response.status_code == 201, response.text
        refs[name] = f"RelatedPerson/{response.json()['id']}"
    text = fetch(root, f"/cases/{case['id']}/genogram.svg")
    picture = ET.fromstring(text)
    found = people(picture)  # (each drawn once)
    assert set(found) == {client_ref, *refs.values()} and len(found) == 12
    assert not [g for g in picture.iter(f"{SVG}g") if g.attrib.get("class") == "placeholder"]
    assert "client" in found[client_ref].attrib["class"].split()
    ages = {title(g).split(" (")[0]: g.attrib.get("data-age") for g in found.values()}
    assert ages["Ari Ng"] == "35" and ages["Mei Ng"] == "84" and ages["Max Lee"] == "10"
    assert ages["George Ng"] == "81"  # his age at death
    george = found[refs["George Ng"]]
    assert george.attrib["data-deceased"] == "true"
    assert len([e for e in george.iter(f"{SVG}line") if e.attrib["class"] == "deceased"]) == 2
    assert "1938\u20132019 (81)" in [t.text for t in george.iter(f"{SVG}text")]
    unions = {
        g.attrib["data-unit"]: g
        for g in picture.iter(f"{SVG}g")
        if g.attrib.get("class") == "union"
    }
    assert len(unions) == 4  # both sets of grandparents, the parents, the client and spouse
    partners = [e for e in picture.iter(f"{SVG}line") if e.attrib.get("data-kind") == "partners"]
    assert len(partners) == 4
    couples = {frozenset((e.attrib["data-from"], e.attrib["data-to"])) for e in partners}
    assert frozenset((refs["David Ng"], refs["Anne Walsh"])) in couples
    divorced = [e for e in partners if e.attrib["data-status"] == "divorced"]
    assert [(e.attrib["data-from"], e.attrib["data-to"]) for e in divorced] == [
        (refs["David Ng"], refs["Anne Walsh"])
    ]
    assert len([e for e in picture.iter(f"{SVG}line") if e.attrib.get("class") == "divorced"]) == 2
    # One sibship line per set of children; every child hangs from exactly one.
    sibships = [g for g in picture.iter(f"{SVG}g") if g.attrib.get("class") == "sibship"]
    assert len(sibships) == 4
    hung: list[str] = []
    for sibship in sibships:
        bars = [e for e in sibship if e.attrib.get("class") == "sibship-line"]
        assert len(bars) == 1 and bars[0].attrib["y1"] == bars[0].attrib["y2"]
        hung += [e.attrib["data-to"] for e in sibship if e.attrib.get("data-kind") == "child"]
    assert sorted(hung) == sorted(
        [refs[n] for n in ("David Ng", "Anne Walsh", "Sam Ng", "Lily Ng", "Max Lee", "Ella Lee")]
        + [client_ref]
    )
    # Nothing crosses: lines of different couples never meet.
    lines = segments(picture)
    for (unit_a, a), (unit_b, b) in itertools.combinations(lines, 2):
        if unit_a != unit_b:
            assert not meet(a, b), (unit_a, a, unit_b, b)
    # Siblings stand oldest first, the spouse beside the client.
    x = {ref: float(name_of(g).attrib["x"]) for ref, g in found.items()}
    order = sorted(
        [refs["Sam Ng"], client_ref, refs["Jordan Lee"], refs["Lily Ng"]], key=lambda ref: x[ref]
    )
    assert order == [refs["Sam Ng"], client_ref, refs["Jordan Lee"], refs["Lily Ng"]]
    image = png(text, "genogram", backend)
    assert len(colours(image)) > 2


def test_genogram_blended_family(root: httpx.Client, backend: Backend) -> None:
    """A stepmother and a half-brother on the father's side, a former spouse with a child,
    an aunt and an uncle: each child hangs from the right couple, still without crossings."""
    case = open_case(root, gender="female", birth_date="1990-02-14")
    refs: dict[str, str] = {}

    def add(name: str, relation: str, gender: str, born: str, **extra: str) -> None:
        body = {"name": name, "relationship": relation, "gender": gender, "birth_date": born}
        response = root.post(f"/cases/{case['id']}/supports", json={**body, **extra})
        assert response.status_code == 201, response.text
        refs[name] = f"RelatedPerson/{response.json()['id']}"

    for name, relation, gender, born, extra in FAMILY_OF_TWELVE:
        add(name, relation, gender, born, **extra)
    add("Carol Ng", "STPMTH", "female", "1970-01-01")
    add("Ben Ng", "HBRO", "male", "2001-05-05", parent=refs["David Ng"])
    add("Chris Park", "FMRSPS", "male", "1985-01-01")
    add("Kim Park", "CHILD", "female", "2010-01-01", parent=refs["Chris Park"])
    add("June Ng", "PAUNT", "female", "1960-01-01")
    add("Pat Walsh", "MUNCLE", "male", "1968-01-01")
    text = fetch(root, f"/cases/{case['id']}/genogram.svg")
    picture = ET.fromstring(text)
    assert len(people(picture)) == 18
    sibships = {
        frozenset(g.attrib["data-parents"].split()): {
            e.attrib["data-to"] for e in g if e.attrib.get("data-kind") == "child"
        }
        for g in picture.iter(f"{SVG}g")
        if g.attrib.get("class") == "sibship"
    }
    client_ref = f"Patient/{case['client_id']}"
    assert sibships[frozenset({refs["Carol Ng"], refs["David Ng"]})] == {refs["Ben Ng"]}
    assert sibships[frozenset({refs["Chris Park"], client_ref})] == {refs["Kim Park"]}
    assert sibships[frozenset({client_ref, refs["Jordan Lee"]})] == {
        refs["Max Lee"],
        refs["Ella Lee"],
    }
    assert refs["June Ng"] in sibships[frozenset({refs["George Ng"], refs["Mei Ng"]})]
    assert refs["Pat Walsh"] in sibships[frozenset({refs["Tom Walsh"], refs["Rose Walsh"]})]
    statuses = {
        frozenset((e.attrib["data-from"], e.attrib["data-to"])): e.attrib["data-status"]
        for e in picture.iter(f"{SVG}line")
        if e.attrib.get("data-kind") == "partners"
    }
    assert statuses[frozenset((refs["Chris Park"], client_ref))] == "divorced"  # FMRSPS
    assert statuses[frozenset((refs["Carol Ng"], refs["David Ng"]))] == "married"
    lines = segments(picture)
    for (unit_a, a), (unit_b, b) in itertools.combinations(lines, 2):
        if unit_a != unit_b:
            assert not meet(a, b), (unit_a, a, unit_b, b)
    png(text, "genogram-blended", backend)
