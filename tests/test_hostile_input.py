"""Requests found in review to break naive servers: each gets a 4xx (or the right success)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.factories import FHIR_JSON, minimal, patient


def _cursor(*fields: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode().rstrip("=")


@pytest.fixture
def existing(client: httpx.Client) -> str:
    response = client.put("/Patient/p1", json={**patient(), "id": "p1"})
    assert response.status_code == 201
    return "p1"


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "status"),
    [
        pytest.param(
            "GET",
            "/Patient/p1",
            {"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 -0000"},
            None,
            304,
            id="ims-minus-zero",
        ),
        pytest.param("GET", "/Patient/p1/_history/%C2%B2", {}, None, 404, id="superscript-version"),
        pytest.param(
            "GET", "/Patient/p1/_history/%D9%A1", {}, None, 404, id="arabic-indic-version"
        ),
        pytest.param(
            "GET", "/Patient/p1/_history?_count=%C2%B2", {}, None, 400, id="superscript-count"
        ),
        pytest.param(
            "GET", "/_history?_since=9999-12-31", {}, None, 200, id="since-end-of-calendar"
        ),
        pytest.param(
            "GET",
            "/_history?_since=0001-01-01T00:00:00%2B01:00",
            {},
            None,
            200,
            id="since-start-of-calendar",
        ),
        pytest.param(
            "DELETE",
            "/Patient?_lastUpdated=9999-12-31",
            {},
            None,
            204,
            id="criteria-end-of-calendar",
        ),
        pytest.param(
            "GET",
            "/_history?_cursor="
            + _cursor("2024-01-01T00:00:00+00:00", "Patient", "p1", 4294967296),
            {},
            None,
            400,
            id="cursor-version-overflow",
        ),
        pytest.param(
            "GET",
            "/_history?_cursor=" + _cursor("2024-01-01T00:00:00+00:00", "Pat\u0000ient", "p1", 1),
            {},
            None,
            400,
            id="cursor-nul",
        ),
        pytest.param(
            "GET",
            "/_history?_cursor=" + _cursor("0001-01-01T00:00:00+01:00", "Patient", "p1", 1),
            {},
            None,
            400,
            id="cursor-date-underflow",
        ),
        pytest.param(
            "GET",
            "/_history?_cursor=" + _cursor("2024-01-01T00:00:00", "Patient", "p1", 1),
            {},
            None,
            400,
            id="cursor-naive-date",
        ),
        pytest.param("DELETE", "/Patient?_id=%00", {}, None, 400, id="nul-in-criteria"),
        pytest.param(
            "POST",
            "/Patient",
            {"If-None-Exist": "identifier=%00"},
            minimal("Patient"),
            400,
            id="nul-in-if-none-exist",
        ),
        pytest.param(
            "POST",
            "/Patient",
            {"If-None-Exist": "Observation?identifier=x"},
            minimal("Patient"),
            400,
            id="if-none-exist-other-type",
        ),
        pytest.param(
            "DELETE", "/Binary?identifier=x", {}, None, 400, id="identifier-on-type-without-one"
        ),
        pytest.param(
            "POST",
            "/Observation",
            {},
            {**minimal("Observation"), "valueQuantity": {"value": "1e200000"}},
            400,
            id="number-out-of-range",
        ),
        pytest.param(
            "POST",
            "/Patient",
            {},
            {"resourceType": "Patient", "contained": [{"resourceType": "Nope", "id": "x"}]},
            400,
            id="contained-unknown-type",
        ),
        pytest.param(
            "POST",
            "/Patient",
            {},
            {"resourceType": "Patient", "contained": [{"id": "x"}]},
            400,
            id="contained-without-type",
        ),
        pytest.param(
            "POST",
            "/Bundle",
            {},
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Resource"}}],
            },
            400,
            id="bundle-abstract-resource",
        ),
        pytest.param(
            "PUT", "/Patient/%2E%2E", {}, {**minimal("Patient"), "id": ".."}, 400, id="dot-dot-id"
        ),
        pytest.param(
            "GET",
            "/Patient/p1",
            {"If-Match": 'W/"99999999999999999999"'},
            None,
            200,
            id="if-match-on-read-ignored",
        ),
        pytest.param(
            "PUT",
            "/Patient/p1",
            {"If-Match": 'W/"99999999999999999999"'},
            {**minimal("Patient"), "id": "p1"},
            400,
            id="if-match-overflow",
        ),
        pytest.param(
            "PUT",
            "/Patient/p1",
            {"If-Match": '"4'},
            {**minimal("Patient"), "id": "p1"},
            400,
            id="if-match-unbalanced",
        ),
    ],
)
def test_hostile_requests(
    client: httpx.Client,
    existing: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: object,
    status: int,
) -> None:
    content = None
    if body is not None:
        content = json.dumps(body).replace('"1e200000"', "1e200000").encode()
    response = client.request(method, url, headers={**FHIR_JSON, **headers}, content=content)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_patch_pointer_errors_are_400_and_do_not_echo_the_record(
    client: httpx.Client, existing: str
) -> None:
    headers = {"Content-Type": "application/json-patch+json"}
    bad_pointer = [{"op": "add", "path": "/identifier/~2", "value": {"value": "x"}}]
    assert client.patch("/Patient/p1", json=bad_pointer, headers=headers).status_code == 400
    missing = [{"op": "replace", "path": "/contact/0/name", "value": {"family": "X"}}]
    response = client.patch("/Patient/p1", json=missing, headers=headers)
    assert response.status_code == 422
    assert "Rivera" not in response.text
    assert "/contact/0/name" in response.text


def test_large_integers_in_decimals_are_kept(client: httpx.Client) -> None:
    raw = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        b'"valueQuantity":{"value":123456789012345678901234567890}}'
    )
    created = client.post("/Observation", content=raw, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    read = client.get(f"/Observation/{created.json()['id']}")
    assert b"123456789012345678901234567890" in read.content


def test_a_resource_needing_too_many_index_rows_is_refused(client: httpx.Client) -> None:
    idents = [{"system": "s", "value": str(i)} for i in range(5001)]
    response = client.post("/Patient", json=patient(identifier=idents))
    assert response.status_code == 422
    assert "search-index entries" in response.text
    assert client.get("/Patient/_history").json()["total"] == 0


def test_long_identifier_system_is_not_indexed_as_no_system(client: httpx.Client) -> None:
    system = "https://example.org/" + "s" * 260
    client.post("/Patient", json=patient(identifier=[{"system": system, "value": "LS1"}]))
    no_system = client.post(
        "/Patient", json=patient(), headers={"If-None-Exist": "identifier=|LS1"}
    )
    assert no_system.status_code == 201
    too_long = client.post(
        "/Patient", json=patient(), headers={"If-None-Exist": f"identifier={system}|LS1"}
    )
    assert too_long.status_code == 400


def test_conditional_update_without_match_never_overwrites_an_existing_id(
    client: httpx.Client, existing: str
) -> None:
    before = client.get("/Patient/p1").json()
    response = client.put(
        "/Patient",
        params={"identifier": "s|nomatch"},
        json={"resourceType": "Patient", "id": "p1", "active": False},
    )
    assert response.status_code == 409
    assert client.get("/Patient/p1").json() == before


def test_history_links_are_encoded_and_followable(client: httpx.Client) -> None:
    for _ in range(3):
        client.post("/Patient", json=patient())
    first = client.get(
        "/_history", params={"_since": "2020-01-01T00:00:00+00:00", "_count": 1}
    ).json()
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "%2B00%3A00" in links["self"] or "%2B00:00" in links["self"]
    second = client.get(links["next"])
    assert second.status_code == 200, second.text
    second_links = {link["relation"]: link["url"] for link in second.json()["link"]}
    assert "_cursor=" in second_links["self"]
    assert second.json()["entry"][0]["fullUrl"] != first["entry"][0]["fullUrl"]


def test_instance_history_with_future_since_is_empty_not_404(
    client: httpx.Client, existing: str
) -> None:
    response = client.get("/Patient/p1/_history", params={"_since": "2999-01-01"})
    assert response.status_code == 200
    assert "entry" not in response.json()
    assert client.get("/Patient/nobody/_history").status_code == 404


def test_update_as_create_shows_201_in_history(client: httpx.Client, existing: str) -> None:
    history = client.get("/Patient/p1/_history").json()
    assert history["entry"][0]["response"]["status"] == "201 Created"


def test_if_modified_since_with_absurd_year_is_ignored(client: httpx.Client, existing: str) -> None:
    response = client.get(
        "/Patient/p1", headers={"If-Modified-Since": "Fri, 01 Jan 99999999999999 00:00:00 GMT"}
    )
    assert response.status_code == 200


def test_overlong_or_unclosed_style_urls_are_refused(client: httpx.Client) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p style="' + "url(" * 5000 + '">x</p></div>'
    body = {**minimal("Patient"), "text": {"status": "generated", "div": div}}
    response = client.post("/Patient", json=body)
    assert response.status_code == 400
    assert "style" in response.json()["issue"][0]["diagnostics"]
