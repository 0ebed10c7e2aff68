"""Bad input gets a clear OperationOutcome with the right status, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, server_with
from tests.factories import FHIR_JSON, care_plan, minimal


def _assert_outcome(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] in ("error", "fatal")
    assert issue["diagnostics"]
    if code is not None:
        assert issue["code"] == code, outcome
    return outcome


def _nothing_stored(client: httpx.Client) -> None:
    assert client.get("/_history").json()["total"] == 0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param(b'{"resourceType": "CarePlan", ', "Malformed JSON", id="truncated"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"[1,2]", "JSON object", id="array"),
        pytest.param(
            b'{"resourceType":"CarePlan","resourceType":"Patient"}', "Duplicate", id="duplicate-key"
        ),
        pytest.param(
            b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
            b'"valueQuantity":{"value":NaN}}',
            "NaN",
            id="nan",
        ),
        pytest.param(
            b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
            b'"valueQuantity":{"value":Infinity}}',
            "Infinity",
            id="infinity",
        ),
        pytest.param(b'\xef\xbb\xbf{"resourceType":"Patient"}', "byte order mark", id="bom"),
        pytest.param(
            b'{"resourceType":"Patient","gender":"\\ud800"}', "surrogate", id="lone-surrogate"
        ),
        pytest.param(b'{"resourceType":"Patient","gender":"\\u0000"}', "NUL", id="nul-char"),
        pytest.param(b'{"resourceType":"Patient","gender":"\xff"}', "UTF-8", id="invalid-utf8"),
        pytest.param(
            b'{"resourceType":"Patient","extension":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "nesting",
            id="deep-nesting",
        ),
    ],
)
def test_unparseable_bodies(client: httpx.Client, raw: bytes, fragment: str) -> None:
    response = client.post("/Patient", content=raw, headers=FHIR_JSON)
    outcome = _assert_outcome(response, 400)
    assert fragment.lower() in outcome["issue"][0]["diagnostics"].lower()
    _nothing_stored(client)


def test_duplicate_keys_never_become_the_last_key(client: httpx.Client) -> None:
    raw = b'{"resourceType":"CarePlan","resourceType":"Patient"}'
    _assert_outcome(client.post("/Patient", content=raw, headers=FHIR_JSON), 400, "structure")
    _assert_outcome(client.post("/CarePlan", content=raw, headers=FHIR_JSON), 400, "structure")
    _nothing_stored(client)


def test_resource_type_must_match_url(client: httpx.Client) -> None:
    outcome = _assert_outcome(client.post("/CarePlan", json=minimal("Patient")), 400)
    assert outcome["issue"][0]["expression"] == ["resourceType"]
    _nothing_stored(client)


def test_put_body_id_must_match_url(client: httpx.Client) -> None:
    body = {**minimal("Patient"), "id": "other"}
    outcome = _assert_outcome(client.put("/Patient/p1", json=body), 400)
    assert outcome["issue"][0]["expression"] == ["Patient.id"]
    _assert_outcome(client.put("/Patient/p1", json=minimal("Patient")), 400)
    _nothing_stored(client)


def test_unknown_elements_are_refused_and_named(client: httpx.Client) -> None:
    plan = care_plan()
    plan["activity"][1]["detail"]["colour"] = "blue"
    outcome = _assert_outcome(client.post("/CarePlan", json=plan), 400, "structure")
    assert outcome["issue"][0]["expression"] == ["CarePlan.activity[1].detail.colour"]
    _nothing_stored(client)


def test_wrong_datatype_is_refused_with_expression(client: httpx.Client) -> None:
    outcome = _assert_outcome(
        client.post("/Patient", json={**minimal("Patient"), "birthDate": "yesterday"}), 400
    )
    assert outcome["issue"][0]["expression"] == ["Patient.birthDate"]
    _nothing_stored(client)


REQUIRED_CODES = [
    ("CarePlan", "status"),
    ("CarePlan", "intent"),
    ("Goal", "lifecycleStatus"),
    ("ServiceRequest", "status"),
    ("ServiceRequest", "intent"),
    ("Observation", "status"),
    ("Task", "status"),
    ("Task", "intent"),
    ("Consent", "status"),
    ("EpisodeOfCare", "status"),
    ("Patient", "gender"),
]


@pytest.mark.parametrize(
    ("resource_type", "element"), [pytest.param(t, e, id=f"{t}.{e}") for t, e in REQUIRED_CODES]
)
def test_invalid_required_binding_codes(
    client: httpx.Client, resource_type: str, element: str
) -> None:
    body = {**minimal(resource_type), element: "bogus"}
    outcome = _assert_outcome(client.post(f"/{resource_type}", json=body), 400, "code-invalid")
    assert outcome["issue"][0]["expression"] == [f"{resource_type}.{element}"]
    _nothing_stored(client)


def test_invalid_nested_activity_status(client: httpx.Client) -> None:
    plan = care_plan()
    plan["activity"][0]["detail"]["status"] = "sort-of-done"
    outcome = _assert_outcome(client.post("/CarePlan", json=plan), 400, "code-invalid")
    assert outcome["issue"][0]["expression"] == ["CarePlan.activity[0].detail.status"]


@pytest.mark.parametrize(
    "bad_id",
    [
        pytest.param("a" * 65, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("under_score", id="underscore"),
        pytest.param("ümlaut", id="non-ascii"),
    ],
)
def test_ids_outside_the_id_pattern(client: httpx.Client, bad_id: str) -> None:
    body = {**minimal("Patient"), "id": bad_id}
    _assert_outcome(client.put(f"/Patient/{bad_id}", json=body), 400)
    _assert_outcome(client.get(f"/Patient/{bad_id}"), 400)
    _nothing_stored(client)


def test_unknown_resource_type_is_404(client: httpx.Client) -> None:
    _assert_outcome(client.post("/CasePlan", json={"resourceType": "CasePlan"}), 404, "not-found")
    _assert_outcome(client.get("/CasePlan/1"), 404, "not-found")


def test_wrong_method_is_405(client: httpx.Client) -> None:
    on_instance = client.post("/Patient/123", json=minimal("Patient"))
    _assert_outcome(on_instance, 405, "not-supported")
    # Allow names every method served at the path, not only the first route's.
    assert set(on_instance.headers["allow"].split(", ")) >= {"GET", "PUT", "PATCH", "DELETE"}
    assert "POST" not in on_instance.headers["allow"].split(", ")
    on_type = client.patch("/Patient", json=[])
    _assert_outcome(on_type, 405, "not-supported")
    assert {"GET", "POST", "PUT", "DELETE"} <= set(on_type.headers["allow"].split(", "))
    assert "PATCH" not in on_type.headers["allow"].split(", ")


def test_probes_answer_plain_json(client: httpx.Client) -> None:
    root = str(client.base_url).rstrip("/").removesuffix("/fhir")
    for probe in ("/healthz", "/readyz"):
        answer = httpx.get(root + probe)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        pytest.param({"_format": "xml"}, {}, id="format-xml"),
        pytest.param({"_format": "application/fhir+xml"}, {}, id="format-fhir-xml"),
        pytest.param({}, {"Accept": "application/fhir+xml"}, id="accept-xml"),
        pytest.param({}, {"Accept": "text/html"}, id="accept-html"),
    ],
)
def test_xml_and_other_formats_are_406(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str]
) -> None:
    _assert_outcome(client.get("/metadata", params=params, headers=headers), 406, "not-supported")


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        pytest.param({"_format": "json"}, {}, id="format-json"),
        pytest.param({}, {"Accept": "application/fhir+json"}, id="accept-fhir-json"),
        pytest.param({}, {"Accept": "application/json, */*;q=0.1"}, id="accept-json"),
        pytest.param({}, {"Accept": "application/fhir+xml;q=0.9, */*;q=0.1"}, id="accept-any"),
    ],
)
def test_json_formats_are_served(
    client: httpx.Client, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = client.get("/metadata", params=params, headers=headers)
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


def test_xml_body_is_415(client: httpx.Client) -> None:
    response = client.post(
        "/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    _assert_outcome(response, 415, "not-supported")
    _nothing_stored(client)


@pytest.fixture
def small_limit_server(backend: Backend) -> Iterator[str]:
    backend.truncate()
    server = server_with(backend, max_body_bytes=4096)
    yield server.fhir
    server.stop()


def test_body_over_limit_is_413_before_parsing(small_limit_server: str) -> None:
    big = care_plan(description="x" * 10_000)
    with httpx.Client(base_url=small_limit_server) as client:
        _assert_outcome(client.post("/CarePlan", json=big), 413, "too-costly")

        def chunks() -> Iterator[bytes]:
            data = json.dumps(big).encode()
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        chunked = client.post("/CarePlan", content=chunks(), headers=FHIR_JSON)
        assert "content-length" not in chunked.request.headers
        _assert_outcome(chunked, 413, "too-costly")
        # Not JSON at all, yet 413: the size is checked before any parsing.
        _assert_outcome(
            client.post("/CarePlan", content=b"{" * 5000, headers=FHIR_JSON), 413, "too-costly"
        )
        assert client.get("/_history").json()["total"] == 0
        assert client.post("/CarePlan", json=care_plan()).status_code == 201


def test_errors_are_never_500_for_odd_requests(client: httpx.Client) -> None:
    odd = [
        client.get("/Patient/_history", params={"_count": "lots"}),
        client.get("/Patient/_history", params={"_since": "last week"}),
        client.get("/Patient/_history", params={"_cursor": "!!!"}),
        client.put("/Patient", params={"foo": "bar"}, json=minimal("Patient")),
        client.delete("/Patient", params={"identifier": "a|b|c"}),
        client.post("/Patient", json=minimal("Patient"), headers={"If-None-Exist": "nickname=x"}),
        client.put("/Patient/x", json={**minimal("Patient"), "id": 5}),
        client.post("/Patient", json={"resourceType": "Patient", "active": "yes"}),
        client.post("/Patient", json={"resourceType": 7}),
    ]
    for response in odd:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    _nothing_stored(client)


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        pytest.param(
            {"resourceType": "Patient", "active": "yes"}, "Patient.active", id="bool-as-string"
        ),
        pytest.param(
            {"resourceType": "Patient", "multipleBirthInteger": "2"},
            "Patient.multipleBirthInteger",
            id="int-as-string",
        ),
        pytest.param(
            {**minimal("Observation"), "valueQuantity": {"value": "1.5"}},
            "Observation.valueQuantity.value",
            id="decimal-as-string",
        ),
        pytest.param(
            {"resourceType": "Patient", "gender": ["male"]}, "Patient.gender", id="array-for-single"
        ),
        pytest.param(
            {"resourceType": "Patient", "name": {"family": "X"}},
            "Patient.name",
            id="single-for-array",
        ),
        pytest.param({"resourceType": "Patient", "active": None}, "Patient.active", id="null"),
        pytest.param({"resourceType": "Patient", "name": []}, "Patient.name", id="empty-array"),
        pytest.param(
            {"resourceType": "Patient", "birthDate": 1988}, "Patient.birthDate", id="date-as-number"
        ),
    ],
)
def test_fhir_json_representation_is_enforced(
    client: httpx.Client, resource: dict[str, Any], expression: str
) -> None:
    outcome = _assert_outcome(client.post(f"/{resource['resourceType']}", json=resource), 400)
    assert outcome["issue"][0]["expression"] == [expression], outcome
    _nothing_stored(client)


@pytest.mark.parametrize(
    "div",
    [
        pytest.param(
            '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>', id="script"
        ),
        pytest.param(
            '<div xmlns="http://www.w3.org/1999/xhtml" onclick="steal()">Hi</div>',
            id="event-attribute",
        ),
        pytest.param(
            '<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:x()">x</a></div>',
            id="javascript-url",
        ),
        pytest.param("<div>no namespace</div>", id="no-xhtml-namespace"),
        pytest.param('<div xmlns="http://www.w3.org/1999/xhtml">  </div>', id="empty"),
    ],
)
def test_unsafe_or_invalid_narrative_is_refused(client: httpx.Client, div: str) -> None:
    body = {**minimal("Patient"), "text": {"status": "generated", "div": div}}
    outcome = _assert_outcome(client.post("/Patient", json=body), 400, "invariant")
    assert outcome["issue"][0]["expression"] == ["Patient.text.div"]
    _nothing_stored(client)


def test_safe_narrative_is_stored(client: httpx.Client) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Client <b>Alex</b> — plan agreed.</p></div>'
    body = {**minimal("Patient"), "text": {"status": "generated", "div": div}}
    created = client.post("/Patient", json=body)
    assert created.status_code == 201, created.text
    assert client.get(f"/Patient/{created.json()['id']}").json()["text"]["div"] == div


@pytest.mark.parametrize("method", [{"value": "POST"}, ["POST"], 7, None, "FETCH"])
def test_a_bundle_entry_method_that_is_not_a_method(client: httpx.Client, method: Any) -> None:
    entry = {"resource": minimal("Patient"), "request": {"method": method, "url": "Patient"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    outcome = _assert_outcome(client.post("", json=bundle, headers=FHIR_JSON), 400)
    assert "request.method" in outcome["issue"][0]["diagnostics"]
    response = client.post("", json={**bundle, "type": "batch"}, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"] == "400"
    _nothing_stored(client)


def test_a_create_with_search_parameters_in_its_url_is_refused(client: httpx.Client) -> None:
    """fhirpy sends a conditional create's criteria in the URL: refused, not a duplicate."""
    patient = {**minimal("Patient"), "identifier": [{"system": "urn:x", "value": "1"}]}
    outcome = _assert_outcome(
        client.post("/Patient", params={"identifier": "urn:x|1"}, json=patient, headers=FHIR_JSON),
        400,
    )
    assert outcome["issue"][0]["expression"] == ["If-None-Exist"]
    assert "If-None-Exist: identifier=urn:x|1" in outcome["issue"][0]["diagnostics"]
    _nothing_stored(client)
    # _format is a request for a representation, not a search.
    response = client.post("/Patient", params={"_format": "json"}, json=patient, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
