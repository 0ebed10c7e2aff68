"""Search result parameters over HTTP (spec search.html#sort, #count, #include, #summary,
#elements, #total, #errors), on both databases.

Project decisions: ``_sort`` works on any parameter, several keys, ``-`` descending, and
resources without a value for a key come last in both directions; paging links never repeat
or skip a resource even when resources are created between pages; ``_total=none`` leaves
``total`` out; ``_summary``/``_elements`` mark subsetted resources with the SUBSETTED tag;
included resources have search.mode=include and appear once; unknown parameters are reported
in an OperationOutcome entry (400 under Prefer: handling=strict); malformed values are 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.search_cases import (
    Case,
    check,
    check_refused,
    create,
    delete,
    put,
    run,
    search,
    split_query,
    update,
)

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">Alex Rivera</div>'


def bundle(client: httpx.Client, query: str, **headers: str) -> dict[str, Any]:
    path, params = split_query(query)
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 200, f"{query}: {response.status_code} {response.text}"
    return dict(response.json())


def link(page: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in page.get("link", []) if lk["relation"] == relation), None)


def matches(page: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in page.get("entry", []) if e["search"]["mode"] == "match"]


def included(page: dict[str, Any]) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in page.get("entry", [])
        if e["search"]["mode"] == "include"
    ]


def has_subsetted_tag(resource: dict[str, Any]) -> bool:
    return any(
        tag.get("system") == SUBSETTED["system"] and tag.get("code") == SUBSETTED["code"]
        for tag in resource.get("meta", {}).get("tag", [])
    )


# --- _sort ------------------------------------------------------------------------------


@pytest.fixture
def sortable(client: httpx.Client) -> dict[str, str]:
    def patient(family: str | None, gender: str | None, birth: str) -> str:
        body: dict[str, Any] = {"resourceType": "Patient", "birthDate": birth}
        if family:
            body["name"] = [{"family": family}]
        if gender:
            body["gender"] = gender
        return create(client, body)

    made = {
        "s1": patient("Adams", "female", "1990-01-01"),
        "s2": patient("Baker", "female", "1985-05-05"),
        "s3": patient("Carter", "male", "2000-01-01"),
        "s4": patient(None, "male", "1970-06-01"),
        "s5": patient("Dunn", None, "1995-01-01"),
    }
    # s2 is now the most recently updated.
    update(client, "Patient", made["s2"], active=True)
    return made


SORTS = [
    # (_sort, expected order of the five patients)
    ("family", "s1 s2 s3 s5 s4"),  # string; no value last
    ("-family", "s5 s3 s2 s1 s4"),  # descending; no value still last
    ("birthdate", "s4 s2 s1 s5 s3"),  # date
    ("-birthdate", "s3 s5 s1 s2 s4"),
    (
        "gender,-birthdate",
        "s1 s2 s3 s4 s5",
    ),  # token, then date descending; no gender last
    ("-gender,birthdate", "s4 s3 s2 s1 s5"),
    ("_id", "s1 s2 s3 s4 s5"),
    ("-_id", "s5 s4 s3 s2 s1"),
    ("_lastUpdated", "s1 s3 s4 s5 s2"),  # s2 was updated last
    ("-_lastUpdated", "s2 s5 s4 s3 s1"),
]


def test_sort(client: httpx.Client, sortable: dict[str, str]) -> None:
    names = {rid: name for name, rid in sortable.items()}
    wrong = []
    for sort, expected in SORTS:
        for count in (100, 2):  # on one page, and across pages of two
            found = run(client, f"Patient?_sort={sort}&_count={count}")
            shown = found if isinstance(found, str) else " ".join(names[i] for i in found)
            if shown != expected:
                wrong.append(f"_sort={sort}&_count={count}: expected {expected}, got {shown}")
    assert not wrong, "\n".join(wrong)


def test_sort_with_a_filter_and_numbers(client: httpx.Client) -> None:
    def risk(*values: float) -> str:
        return create(
            client,
            {
                "resourceType": "RiskAssessment",
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                "prediction": [{"probabilityDecimal": v} for v in values],
            },
        )

    r30, r5, r70 = risk(30), risk(5), risk(70)
    none = create(
        client,
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
        },
    )
    other = create(
        client,
        {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": "Patient/p2"},
            "prediction": [{"probabilityDecimal": 50}],
        },
    )
    assert search(client, "RiskAssessment?_sort=probability") == [
        r5,
        r30,
        other,
        r70,
        none,
    ]
    assert search(client, "RiskAssessment?_sort=-probability") == [
        r70,
        other,
        r30,
        r5,
        none,
    ]
    assert search(client, "RiskAssessment?subject=Patient/p1&_sort=-probability&_count=1") == [
        r70,
        r30,
        r5,
        none,
    ]


def test_sort_on_repeating_values(client: httpx.Client) -> None:
    """A repeating element sorts by its lowest value ascending, its highest descending."""

    def patient(*names: tuple[str, list[str]]) -> str:
        return create(
            client,
            {"resourceType": "Patient", "name": [{"family": f, "given": g} for f, g in names]},
        )

    one = patient(("Smith", ["Zoe", "Ann"]))
    two = patient(("Adams", ["Bob"]), ("Zed", ["Cy"]))
    three = patient(("Moss", ["Kit"]))
    assert search(client, "Patient?_sort=given") == [one, two, three]  # ann, bob, kit
    assert search(client, "Patient?_sort=-given") == [one, three, two]  # zoe, kit, cy
    assert search(client, "Patient?_sort=family") == [two, three, one]  # adams, moss, smith
    assert search(client, "Patient?_sort=-family") == [two, one, three]  # zed, smith, moss


def test_ties_page_without_duplicates(client: httpx.Client, sortable: dict[str, str]) -> None:
    """Ties (two female, two male) split across pages of one: each resource exactly once."""
    s = sortable
    found = search(client, "Patient?_sort=-gender&_count=1")
    assert sorted(found) == sorted(s.values())
    assert set(found[:2]) == {s["s3"], s["s4"]}
    assert set(found[2:4]) == {s["s1"], s["s2"]}
    assert found[4] == s["s5"]


# --- paging -----------------------------------------------------------------------------


def test_next_and_previous_links(client: httpx.Client, sortable: dict[str, str]) -> None:
    s = sortable
    first = bundle(client, "Patient?_sort=_id&_count=2&_total=accurate")
    assert matches(first) == [s["s1"], s["s2"]]
    assert first["total"] == 5
    second = client.get(link(first, "next") or "").json()
    assert matches(second) == [s["s3"], s["s4"]]
    back = client.get(link(second, "previous") or "").json()
    assert matches(back) == [s["s1"], s["s2"]]
    third = client.get(link(second, "next") or "").json()
    assert matches(third) == [s["s5"]]
    assert link(third, "next") is None
    assert matches(client.get(link(third, "previous") or "").json()) == [
        s["s3"],
        s["s4"],
    ]


def test_pages_walked_from_the_driving_criterion(client: httpx.Client) -> None:
    """A page in id order is read from the driving criterion's index rows (the reference
    here) in id order: a resource with several matching rows (the same code under two
    systems) appears once, the other criteria still filter, and
    next, previous and descending pages neither repeat nor skip."""
    subject = create(client, {"resourceType": "Patient", "name": [{"family": "Walker"}]})
    other = create(client, {"resourceType": "Patient", "name": [{"family": "Other"}]})

    def observation(status: str, who: str) -> str:
        return create(
            client,
            {
                "resourceType": "Observation",
                "status": status,
                "code": {
                    "coding": [
                        {"system": "http://loinc.org", "code": "71802-3"},
                        {"system": "https://casebridge.example.org/codes", "code": "71802-3"},
                    ]
                },
                "subject": {"reference": f"Patient/{who}"},
            },
        )

    final = sorted(observation("final", subject) for _ in range(5))
    observation("preliminary", subject)
    observation("final", other)
    query = f"Observation?subject=Patient/{subject}&code=71802-3&status=final&_count=2"
    first = bundle(client, f"{query}&_total=estimate")
    assert matches(first) == final[:2]
    assert first["total"] == 5  # 6 candidates: counted
    second = client.get(link(first, "next") or "").json()
    assert matches(second) == final[2:4]
    assert matches(client.get(link(second, "previous") or "").json()) == final[:2]
    third = client.get(link(second, "next") or "").json()
    assert matches(third) == final[4:] and link(third, "next") is None
    # Driven by the code (6 + 1 candidates, each with two rows), descending.
    newest = bundle(client, "Observation?code=71802-3&status=final&_sort=-_id&_count=3")
    everyone = sorted(final + matches(bundle(client, f"Observation?subject=Patient/{other}")))
    assert matches(newest) == everyone[::-1][:3]
    rest = client.get(link(newest, "next") or "").json()
    assert matches(rest) == everyone[::-1][3:]


def test_paging_while_resources_arrive(client: httpx.Client, sortable: dict[str, str]) -> None:
    """New resources sort before, between and after the pages already read."""
    arrivals = iter(range(100))
    for sort in ["family", "-_lastUpdated", "-birthdate", "_id"]:
        page = bundle(client, f"Patient?_sort={sort}&_count=2")
        seen = matches(page)
        for family, birth in [
            ("Aaron", "1960-01-01"),
            ("Bell", "1992-01-01"),
            ("Zed", "2010"),
        ]:
            create(
                client,
                {
                    "resourceType": "Patient",
                    "name": [{"family": f"{family}{next(arrivals)}"}],
                    "birthDate": birth,
                },
            )
        url = link(page, "next")
        while url:
            page = client.get(url).json()
            seen += matches(page)
            url = link(page, "next")
        assert len(seen) == len(set(seen)), (sort, seen)
        assert set(sortable.values()) <= set(seen), (sort, seen)


def test_paging_when_a_resource_is_deleted_between_pages(
    client: httpx.Client, sortable: dict[str, str]
) -> None:
    page = bundle(client, "Patient?_sort=family&_count=2")
    seen = matches(page)
    delete(client, "Patient", sortable["s1"])
    url = link(page, "next")
    while url:
        page = client.get(url).json()
        seen += matches(page)
        url = link(page, "next")
    assert len(seen) == len(set(seen)), seen
    assert {sortable[k] for k in ("s2", "s3", "s4", "s5")} <= set(seen)


# --- _total -----------------------------------------------------------------------------


def test_total_modes(client: httpx.Client, sortable: dict[str, str]) -> None:
    accurate = bundle(client, "Patient?gender=female&_total=accurate&_count=1")
    assert accurate["total"] == 2
    assert len(matches(accurate)) == 1
    assert "total" not in bundle(client, "Patient?_total=none")
    estimate = bundle(client, "Patient?_total=estimate")
    assert isinstance(estimate.get("total", 0), int)
    assert estimate.get("total", 5) >= 0
    assert bundle(client, "Patient?birthdate=lt1980")["total"] == 1


# --- _summary and _elements -------------------------------------------------------------


@pytest.fixture
def detailed(client: httpx.Client) -> dict[str, str]:
    pid = create(
        client,
        {
            "resourceType": "Patient",
            "text": {"status": "generated", "div": XHTML},
            "identifier": [{"system": "https://agency.example.org/clients", "value": "C-1"}],
            "name": [{"family": "Rivera", "given": ["Alex"]}],
            "gender": "other",
            "birthDate": "1988-04-02",
            "maritalStatus": {"text": "Single"},
            "communication": [{"language": {"text": "Spanish"}}],
            "generalPractitioner": [{"reference": "Practitioner/gp1"}],
        },
    )
    cp = create(
        client,
        {
            "resourceType": "CarePlan",
            "text": {"status": "generated", "div": XHTML},
            "status": "active",
            "intent": "plan",
            "title": "Housing",
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": "2026-01-05"},
            "note": [{"text": "Prefers afternoons"}],
        },
    )
    return {"patient": pid, "plan": cp}


def _only(page: dict[str, Any]) -> dict[str, Any]:
    entries = [e for e in page.get("entry", []) if e["search"]["mode"] == "match"]
    assert len(entries) == 1, page
    return dict(entries[0]["resource"])


def test_summary_true(client: httpx.Client, detailed: dict[str, str]) -> None:
    patient = _only(bundle(client, "Patient?_summary=true"))
    assert {"name", "gender", "birthDate", "identifier", "id", "meta"} <= set(patient)
    assert not {"maritalStatus", "communication", "generalPractitioner"} & set(patient)
    assert has_subsetted_tag(patient)


def test_summary_text(client: httpx.Client, detailed: dict[str, str]) -> None:
    patient = _only(bundle(client, "Patient?_summary=text"))
    assert {"text", "id", "meta"} <= set(patient)
    assert not {"name", "gender", "birthDate", "maritalStatus"} & set(patient)
    assert has_subsetted_tag(patient)
    plan = _only(bundle(client, "CarePlan?_summary=text"))
    assert {"text", "status", "intent", "subject"} <= set(plan)  # mandatory elements stay
    assert not {"title", "period", "note"} & set(plan)


def test_summary_data_and_false(client: httpx.Client, detailed: dict[str, str]) -> None:
    data = _only(bundle(client, "Patient?_summary=data"))
    assert "text" not in data
    assert {"name", "maritalStatus", "communication", "generalPractitioner"} <= set(data)
    assert has_subsetted_tag(data)
    full = _only(bundle(client, "Patient?_summary=false"))
    assert {"text", "name", "maritalStatus"} <= set(full)
    assert not has_subsetted_tag(full)


def test_summary_count(client: httpx.Client, detailed: dict[str, str]) -> None:
    create(client, {"resourceType": "Patient", "gender": "male"})
    page = bundle(client, "Patient?_summary=count")
    assert page["total"] == 2
    assert not [e for e in page.get("entry", []) if e["search"]["mode"] != "outcome"]
    assert bundle(client, "Patient?gender=male&_summary=count")["total"] == 1


def test_elements(client: httpx.Client, detailed: dict[str, str]) -> None:
    patient = _only(bundle(client, "Patient?_elements=name,gender"))
    assert {"name", "gender", "id", "meta"} <= set(patient)
    assert not {"birthDate", "identifier", "maritalStatus", "text"} & set(patient)
    assert patient["resourceType"] == "Patient"
    assert has_subsetted_tag(patient)
    plan = _only(bundle(client, "CarePlan?_elements=title"))
    assert {"title", "status", "intent", "subject", "id"} <= set(plan)
    assert not {"period", "note", "text"} & set(plan)
    # A read is not affected: the stored resource keeps everything and no SUBSETTED tag.
    stored = client.get(f"/Patient/{detailed['patient']}").json()
    assert "birthDate" in stored
    assert not has_subsetted_tag(stored)


# --- _include / _revinclude --------------------------------------------------------------


@pytest.fixture
def graph(client: httpx.Client) -> dict[str, str]:
    put(client, {"resourceType": "Patient", "id": "pa", "name": [{"family": "Rivera"}]})
    put(client, {"resourceType": "Patient", "id": "pb", "name": [{"family": "Nguyen"}]})
    put(client, {"resourceType": "Patient", "id": "pgone"})
    put(client, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
    put(client, {"resourceType": "Practitioner", "id": "pr1"})
    put(client, {"resourceType": "Organization", "id": "o1", "name": "Northside AOD"})

    def plan(subject: str, status: str = "active", **more: Any) -> str:
        return create(
            client,
            {
                "resourceType": "CarePlan",
                "status": status,
                "intent": "plan",
                "subject": {"reference": subject},
                **more,
            },
        )

    def task(focus: str, **more: Any) -> str:
        return create(
            client,
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "focus": {"reference": focus},
                **more,
            },
        )

    made = {"cp1": plan("Patient/pa")}
    made["cp2"] = plan("Patient/pa", partOf=[{"reference": f"CarePlan/{made['cp1']}"}])
    made["cp3"] = plan("Group/g1")
    made["cp4"] = plan("Patient/pgone")
    made["cp5"] = plan("Patient/pb", status="draft")
    base = str(client.base_url).rstrip("/")
    made["cp6"] = plan(f"{base}/Patient/pb")  # an absolute URL on this server's own base
    made["t1"] = task(f"CarePlan/{made['cp1']}", owner={"reference": "Practitioner/pr1"})
    made["t2"] = task(f"CarePlan/{made['cp1']}", owner={"reference": "Organization/o1"})
    made["t3"] = task(f"CarePlan/{made['cp2']}")
    made["t4"] = task(f"CarePlan/{made['cp5']}")
    gone_task = task(f"CarePlan/{made['cp1']}")
    delete(client, "Task", gone_task)
    delete(client, "Patient", "pgone")
    return made


def test_include_subject(client: httpx.Client, graph: dict[str, str]) -> None:
    page = bundle(client, "CarePlan?status=active&_include=CarePlan:subject")
    assert sorted(matches(page)) == sorted(graph[k] for k in ("cp1", "cp2", "cp3", "cp4", "cp6"))
    # Once each; not the deleted patient; pb through cp6's absolute URL.
    assert sorted(included(page)) == ["Group/g1", "Patient/pa", "Patient/pb"]
    assert page["total"] == 5


def test_included_resources_are_current_and_follow_the_page(
    client: httpx.Client, graph: dict[str, str]
) -> None:
    update(client, "Patient", "pa", name=[{"family": "Rivera-Lopez"}])
    update(client, "Patient", "pb", name=[{"family": "Tran"}])
    seen: list[str] = []
    page = bundle(client, "CarePlan?_sort=_id&_count=1&_include=CarePlan:subject:Patient")
    while True:
        entries = page.get("entry", [])
        (match,) = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
        seen.append(match["id"])
        includes = [e["resource"] for e in entries if e["search"]["mode"] == "include"]
        target = match["subject"]["reference"].removeprefix(str(client.base_url))
        expected = {"Patient/pa": "Rivera-Lopez", "Patient/pb": "Tran"}.get(target)
        if expected:  # each page carries the subject of its own match, as now named
            assert [r["name"][0]["family"] for r in includes] == [expected], page
        else:  # Group (not a Patient) or the deleted patient: nothing to include
            assert includes == [], page
        url = link(page, "next")
        if not url:
            break
        page = client.get(url).json()
    assert seen == sorted(graph[k] for k in ("cp1", "cp2", "cp3", "cp4", "cp5", "cp6"))


def test_include_typed(client: httpx.Client, graph: dict[str, str]) -> None:
    page = bundle(client, "CarePlan?status=active&_include=CarePlan:subject:Patient")
    assert sorted(included(page)) == ["Patient/pa", "Patient/pb"]


def test_revinclude(client: httpx.Client, graph: dict[str, str]) -> None:
    page = bundle(client, f"CarePlan?_id={graph['cp1']}&_revinclude=Task:focus")
    assert matches(page) == [graph["cp1"]]
    assert sorted(included(page)) == sorted(f"Task/{graph[k]}" for k in ("t1", "t2"))
    page = bundle(client, "Patient?_id=pa&_revinclude=CarePlan:subject")
    assert sorted(included(page)) == sorted(f"CarePlan/{graph[k]}" for k in ("cp1", "cp2"))


def test_include_iterate(client: httpx.Client, graph: dict[str, str]) -> None:
    page = bundle(
        client,
        f"CarePlan?_id={graph['cp1']}&_revinclude=Task:focus&_include:iterate=Task:owner",
    )
    assert matches(page) == [graph["cp1"]]
    assert sorted(included(page)) == sorted(
        [
            f"Task/{graph['t1']}",
            f"Task/{graph['t2']}",
            "Practitioner/pr1",
            "Organization/o1",
        ]
    )
    page = bundle(
        client,
        f"Task?_id={graph['t3']}&_include=Task:focus&_include:iterate=CarePlan:subject",
    )
    assert sorted(included(page)) == sorted([f"CarePlan/{graph['cp2']}", "Patient/pa"])
    # Without :iterate the second step does not happen.
    page = bundle(client, f"Task?_id={graph['t3']}&_include=Task:focus&_include=CarePlan:subject")
    assert included(page) == [f"CarePlan/{graph['cp2']}"]


def test_a_match_is_not_repeated_as_an_include(client: httpx.Client, graph: dict[str, str]) -> None:
    page = bundle(client, "CarePlan?status=active&_include=CarePlan:part-of")
    keys = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in page["entry"]]
    assert len(keys) == len(set(keys)), keys
    assert included(page) == []
    assert sorted(matches(page)) == sorted(graph[k] for k in ("cp1", "cp2", "cp3", "cp4", "cp6"))


# --- unknown and malformed parameters; POST ---------------------------------------------


def test_unknown_parameters_are_ignored_and_reported(
    client: httpx.Client, sortable: dict[str, str]
) -> None:
    page = bundle(client, "Patient?gender=female&foo=bar&status=active")
    assert sorted(matches(page)) == sorted([sortable["s1"], sortable["s2"]])
    outcomes = [e["resource"] for e in page["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert outcomes[0]["resourceType"] == "OperationOutcome"
    reported = {x for issue in outcomes[0]["issue"] for x in issue.get("expression", [])}
    assert reported == {"foo", "status"}
    strict = client.get(
        "/Patient",
        params={"gender": "female", "foo": "bar"},
        headers={"Prefer": "handling=strict"},
    )
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"
    known = client.get(
        "/Patient", params={"gender": "female"}, headers={"Prefer": "handling=strict"}
    )
    assert known.status_code == 200
    assert sorted(matches(known.json())) == sorted([sortable["s1"], sortable["s2"]])


def test_malformed_parameters(client: httpx.Client) -> None:
    check_refused(
        client,
        [
            "Patient?birthdate=2025-13-01",
            "Patient?birthdate=xx2020",  # bad prefix
            "Patient?family:foo=x",  # unknown modifier
            "Patient?gender:contains=f",  # a modifier of another type
            "Patient?birthdate=2020';--",
            "Patient?birthdate=2020;1",
            "RiskAssessment?probability=5';--",
            "Patient?_id=a;b",
            "CarePlan?status.name=x",  # a chain through a token parameter
            "Patient?_sort=nosuch",
            "Patient?_sort=-",
            "Patient?_sort=family,,gender",
            "Patient?_summary=maybe",
            "Patient?_total=maybe",
            "Patient?_count=-1",
            "Patient?gender=fe\x00male",
            "Patient?family=a\x00",
            "Patient?birthdate=2020\x00",
        ],
    )


def test_hostile_but_valid_values_are_searched_not_refused(
    client: httpx.Client, sortable: dict[str, str]
) -> None:
    """Quotes, semicolons and LIKE wildcards are data: no error, no match, tables intact."""
    cases: list[Case] = [
        ("quote", "family=O'Brien';--", set()),
        ("sql", "gender=female';DROP TABLE resource;--", set()),
        ("token", 'identifier=a"b|c;d', set()),
        ("like-wildcards", "name:contains=%_", set()),
        ("like-wildcard-prefix", "family=_", set()),
        ("still-there", "_sort=_id", {"s1", "s2", "s3", "s4", "s5"}),
    ]
    check(client, sortable, cases, "Patient?")


def test_post_search_is_the_same_as_get(client: httpx.Client, sortable: dict[str, str]) -> None:
    for query in [
        "Patient?_sort=-birthdate&_count=2",
        "Patient?gender=female,male&birthdate=gt1980&birthdate=lt2000&_sort=family",
        "Patient?family:contains=e&_sort=-_id",
    ]:
        path, params = split_query(query)
        via_get = search(client, query)
        response = client.post(f"{path}/_search", content=urlencode(params), headers=FORM)
        assert response.status_code == 200, response.text
        via_post = matches(response.json())
        url = link(response.json(), "next")
        while url:
            page = client.get(url).json()
            via_post += matches(page)
            url = link(page, "next")
        assert via_post == via_get, query
        assert via_get, query  # the queries are chosen to find something


def test_post_search_with_a_chain(client: httpx.Client, graph: dict[str, str]) -> None:
    form = [("subject:Patient.name", "rivera"), ("_include", "CarePlan:subject")]
    response = client.post("/CarePlan/_search", content=urlencode(form), headers=FORM)
    assert response.status_code == 200, response.text
    page = response.json()
    assert sorted(matches(page)) == sorted([graph["cp1"], graph["cp2"]])
    assert included(page) == ["Patient/pa"]
