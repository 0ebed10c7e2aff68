"""Type-level search over _id, _lastUpdated and identifier (spec search.html)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.factories import patient
from tests.support.search_cases import QueryPairs

SYS = "https://agency.example.org/clients"


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _client(value: str, **changes: object) -> dict[str, object]:
    return patient(identifier=[{"system": SYS, "value": value}], **changes)


@pytest.fixture
def clients(client: httpx.Client) -> dict[str, str]:
    made = {}
    for value in ("A-1", "A-2", "B-1"):
        made[value] = client.post("/Patient", json=_client(value)).json()["id"]
    return made


def test_search_by_identifier_returns_a_searchset(
    client: httpx.Client, clients: dict[str, str]
) -> None:
    response = client.get("/Patient", params={"identifier": f"{SYS}|A-2"})
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert _ids(bundle) == [clients["A-2"]]
    entry = bundle["entry"][0]
    assert entry["fullUrl"].endswith(f"/Patient/{clients['A-2']}")
    assert entry["resource"]["identifier"][0]["value"] == "A-2"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"identifier": "A-1,B-1"}, ["A-1", "B-1"], id="or"),
        pytest.param({"identifier:not": f"{SYS}|A-1"}, ["A-2", "B-1"], id="not"),
        pytest.param({"identifier": "|A-1"}, [], id="explicitly-no-system"),
        pytest.param({"_lastUpdated": "gt2000-01-01"}, ["A-1", "A-2", "B-1"], id="last-updated"),
        pytest.param({"_lastUpdated": "lt2000-01-01"}, [], id="last-updated-none"),
        pytest.param({}, ["A-1", "A-2", "B-1"], id="everything"),
    ],
)
def test_search_semantics(
    client: httpx.Client, clients: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    bundle = client.get("/Patient", params=params).json()
    assert sorted(_ids(bundle)) == sorted(clients[v] for v in expected)
    assert bundle["total"] == len(expected)


def test_and_of_repeated_parameters(client: httpx.Client, clients: dict[str, str]) -> None:
    response = client.get(
        "/Patient",
        params=[("identifier", "A-1,A-2"), ("_id", f"{clients['A-2']},{clients['B-1']}")],
    )
    assert _ids(response.json()) == [clients["A-2"]]


def test_deleted_and_superseded_versions_do_not_match(
    client: httpx.Client, clients: dict[str, str]
) -> None:
    client.delete(f"/Patient/{clients['A-1']}")
    moved = client.get(f"/Patient/{clients['A-2']}").json()
    moved["identifier"] = [{"system": SYS, "value": "Z-9"}]
    client.put(f"/Patient/{clients['A-2']}", json=moved)
    assert _ids(client.get("/Patient", params={"identifier": "A-1,A-2"}).json()) == []
    assert _ids(client.get("/Patient", params={"identifier": "Z-9"}).json()) == [clients["A-2"]]


def test_paging_is_stable_while_resources_arrive(client: httpx.Client) -> None:
    first_ids = {client.post("/Patient", json=_client(f"P-{i}")).json()["id"] for i in range(7)}
    page = client.get("/Patient", params={"_count": 3}).json()
    seen = _ids(page)
    for i in range(3):
        client.post("/Patient", json=_client(f"late-{i}"))
    url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    while url:
        page = client.get(url).json()
        seen += _ids(page)
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), "")
    assert len(seen) == len(set(seen))
    assert first_ids <= set(seen)


def test_unknown_parameters_are_reported_or_refused(
    client: httpx.Client, clients: dict[str, str]
) -> None:
    lenient = client.get("/Patient", params={"nickname": "Rivera", "identifier": "A-1"}).json()
    assert _ids(lenient) == [clients["A-1"]]
    outcome = lenient["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert outcome["resource"]["issue"][0]["expression"] == ["nickname"]
    strict = client.get(
        "/Patient", params={"nickname": "Rivera"}, headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"


def test_post_search_with_a_form_body(client: httpx.Client, clients: dict[str, str]) -> None:
    response = client.post("/Patient/_search", data={"identifier": "B-1"})
    assert response.status_code == 200
    assert _ids(response.json()) == [clients["B-1"]]
    wrong = client.post("/Patient/_search", json={"identifier": "B-1"})
    assert wrong.status_code == 415


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"_count": "many"}, id="bad-count"),
        pytest.param({"_total": "some"}, id="bad-total"),
        pytest.param({"_cursor": "%%%"}, id="bad-cursor"),
        pytest.param({"_lastUpdated": "yesterday"}, id="bad-date"),
        pytest.param({"identifier": "a|b|c"}, id="bad-token"),
        pytest.param({"_id": "x'; DROP TABLE resource; --"}, id="injection-attempt"),
    ],
)
def test_malformed_search_values(
    client: httpx.Client, clients: dict[str, str], params: dict[str, str]
) -> None:
    response = client.get("/Patient", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/Patient").json()["total"] == 3


def test_total_none_and_count_zero(client: httpx.Client, clients: dict[str, str]) -> None:
    none = client.get("/Patient", params={"_total": "none"}).json()
    assert "total" not in none
    zero = client.get("/Patient", params={"_count": 0}).json()
    assert zero["total"] == 3
    assert "entry" not in zero


def test_unknown_type_is_404(client: httpx.Client) -> None:
    assert client.get("/CasePlan").status_code == 404


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param(
            {"identifier": ",".join(f"v{i}" for i in range(100))}, 200, id="100-alternatives"
        ),
        pytest.param(
            {"identifier": ",".join(f"v{i}" for i in range(101))}, 400, id="101-alternatives"
        ),
        pytest.param({"_id": ",".join(f"id{i}" for i in range(1000))}, 200, id="1000-ids"),
        pytest.param({"_id": ",".join(f"id{i}" for i in range(1001))}, 400, id="1001-ids"),
        pytest.param([("identifier", f"v{i}") for i in range(51)], 400, id="51-parameters"),
    ],
)
def test_query_size_is_bounded(client: httpx.Client, params: object, status: int) -> None:
    form = urlencode(params)  # type: ignore[arg-type]
    response = client.post(
        "/Patient/_search",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == status, response.text[:300]
    if status == 400:
        assert response.json()["issue"][0]["code"] == "too-costly"


@pytest.mark.parametrize(
    "name", ["_id:not", "_id:missing", "identifier:in", "identifier:below", "_lastUpdated:not"]
)
def test_unsupported_modifiers_are_refused_not_ignored(client: httpx.Client, name: str) -> None:
    response = client.get("/Patient", params={name: "x"})
    assert response.status_code == 400, response.text
    assert name in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "prefer",
    [
        pytest.param(['handling="strict"'], id="quoted"),
        pytest.param(["return=minimal, handling=strict; x=y"], id="with-others"),
        pytest.param(["return=minimal", "handling=strict"], id="two-headers"),
        pytest.param(["handling = strict"], id="spaces"),
    ],
)
def test_prefer_handling_strict_forms(client: httpx.Client, prefer: list[str]) -> None:
    headers = httpx.Headers([("Prefer", value) for value in prefer])
    response = client.get("/Patient", params={"nickname": "x"}, headers=headers)
    assert response.status_code == 400


def test_self_link_shows_only_applied_parameters(
    client: httpx.Client, clients: dict[str, str]
) -> None:
    bundle = client.get("/Patient", params={"identifier": "A-1", "nickname": "Rivera"}).json()
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "identifier=A-1" in self_link
    assert "nickname" not in self_link


def test_ignored_parameters_are_reported_up_to_a_limit(client: httpx.Client) -> None:
    params: QueryPairs = [(f"p{i}", "x") for i in range(30)]
    outcome = client.get("/Patient", params=params).json()["entry"][-1]["resource"]
    assert len(outcome["issue"]) == 21
    assert "10 more" in outcome["issue"][-1]["diagnostics"]
    too_many = client.get("/Patient", params=[(f"p{i}", "x") for i in range(101)])
    assert too_many.status_code == 400
    assert too_many.json()["issue"][0]["code"] == "too-costly"


def test_total_values_across_parameters_are_bounded(client: httpx.Client) -> None:
    params = [("identifier", ",".join(f"v{i}" for i in range(100))) for _ in range(11)]
    response = client.post(
        "/Patient/_search",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_empty_alternatives_and_trailing_ampersands(
    client: httpx.Client, clients: dict[str, str]
) -> None:
    assert client.get("/Patient", params={"identifier": "A-1,"}).status_code == 400
    form = client.post(
        "/Patient/_search",
        content=f"_id={clients['A-1']}&",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200
    assert _ids(form.json()) == [clients["A-1"]]


@pytest.mark.parametrize(
    ("form", "status"),
    [
        pytest.param(b"\xef\xbb\xbf_id=x", 400, id="bom"),
        pytest.param(b"_format=xml&identifier=A-1", 406, id="format-xml-in-form"),
        pytest.param(b"_total=", 400, id="empty-total"),
    ],
)
def test_form_body_edge_cases(client: httpx.Client, form: bytes, status: int) -> None:
    response = client.post(
        "/Patient/_search",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == status, response.text


def test_total_is_given_when_free_and_estimated_when_cheap(client: httpx.Client) -> None:
    """Bundle.total (search.html#total): without _total, only when the first page holds
    every match (or _count=0 asks for the total alone); _total=estimate counts when the
    criterion that drives the query has at most 1,000 candidates; accurate always counts."""
    entries = [
        {"resource": patient(gender="female"), "request": {"method": "POST", "url": "Patient"}}
        for _ in range(1001)
    ]
    stored = client.post(
        "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert stored.status_code == 200, stored.text[:300]
    ids = [e["response"]["location"].split("/")[1] for e in stored.json()["entry"]]
    for _ in range(3):
        client.post("/Patient", json=patient(gender="male")).raise_for_status()
    # The first page holds every match: its length is the total.
    assert client.get("/Patient", params={"gender": "male"}).json()["total"] == 3
    # A page of several: no total unless asked.
    males = {"gender": "male", "_count": "1"}
    assert "total" not in client.get("/Patient", params=males).json()
    # Estimate: the 3 candidates of gender=male are counted.
    assert client.get("/Patient", params={**males, "_total": "estimate"}).json()["total"] == 3
    # Two of the women updated later: 2 matches among 1,001 candidates of gender=female.
    changed = [client.get(f"/Patient/{i}").json() for i in ids[:2]]
    since = client.put(f"/Patient/{ids[0]}", json=changed[0]).json()["meta"]["lastUpdated"]
    client.put(f"/Patient/{ids[1]}", json=changed[1]).raise_for_status()
    few = {"gender": "female", "_lastUpdated": f"ge{since}", "_count": "1"}
    estimated = client.get("/Patient", params={**few, "_total": "estimate"}).json()
    assert len(estimated["entry"]) == 1 and "total" not in estimated
    assert client.get("/Patient", params={**few, "_total": "accurate"}).json()["total"] == 2
    # No driving criterion (the resource table drives): estimate counts up to 1,000 matches.
    assert "total" not in client.get("/Patient", params={"_total": "estimate"}).json()
    accurate = client.get("/Patient", params={"gender": "female", "_total": "accurate"}).json()
    assert accurate["total"] == 1001
    assert (
        client.get("/Patient", params={"gender": "female", "_count": "0"}).json()["total"] == 1001
    )
