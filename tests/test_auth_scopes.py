"""SMART scopes: the pure rules (app/security/scopes.py), then enforcement on the real app
over HTTP with real tokens: single interactions, every entry of a batch and a transaction,
_include, $everything, $export and history (scopes-and-launch-context.html)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from app.clock import Clock
from app.fhir.errors import Forbidden, InvalidScope
from app.security import scopes
from app.security.caller import Caller
from app.services.auth.clients import ClientRegistry
from tests.conftest import Backend
from tests.support.auth import (
    MovableClock,
    get_token,
    public_jwks,
    register_tokens,
    rsa_key,
    smart_server,
)
from tests.support.server import LiveServer

# -- the rules, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system/CarePlan.cruds", "system/CarePlan.cruds"),
        ("system/Task.rus", "system/Task.rus"),
        ("system/*.rs", "system/*.rs"),
        ("system/Patient.read", "system/Patient.rs"),
        ("system/Patient.write", "system/Patient.cud"),
        ("system/*.*", "system/*.cruds"),
    ],
)
def test_scopes_parse_in_v2_and_v1_syntax(text: str, expected: str) -> None:
    assert str(scopes.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "system/Patient.sr",
        "system/Patient.x",
        "system/Nope.rs",
        "system/Patient",
        "Patient.rs",
        "system/Observation.rs?category=laboratory",
        "system/Patient.rr",
    ],
)
def test_malformed_scopes_are_invalid_scope(text: str) -> None:
    with pytest.raises(InvalidScope):
        scopes.parse(text)


@pytest.mark.parametrize(
    ("requested", "registered", "granted"),
    [
        ("system/*.cruds", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.cruds", "system/*.rs", ["system/Patient.rs"]),
        ("system/*.rs", "system/*.cruds", ["system/*.rs"]),
        (
            "system/Patient.read system/Task.u",
            "system/Patient.r system/Task.cruds",
            ["system/Patient.r", "system/Task.u"],
        ),
        ("system/Task.rs", "system/Patient.rs", []),
        ("patient/*.rs user/*.rs launch", "system/*.rs", []),
        ("system/Patient.rs introspect", "system/Patient.r", ["system/Patient.r"]),
        ("introspect", "introspect system/Patient.r", ["introspect"]),
    ],
)
def test_grant_is_the_intersection(requested: str, registered: str, granted: list[str]) -> None:
    assert scopes.grant(requested, registered.split()) == granted


def test_registration_accepts_system_scopes_only() -> None:
    assert scopes.normalise(["system/Patient.read", "introspect", "system/Patient.rs"]) == [
        "system/Patient.rs",
        "introspect",
    ]
    for bad in (["patient/*.rs"], ["user/Patient.r"], [], ["launch"]):
        with pytest.raises(InvalidScope):
            scopes.normalise(bad)


def test_require_names_the_missing_scope_and_ignores_unenforced_callers() -> None:
    narrow = Caller(agency="Organization/a", client_id="c", scopes=frozenset({"system/Task.rs"}))
    scopes.require(narrow, "Task", "rs")
    with pytest.raises(Forbidden) as denied:
        scopes.require(narrow, "Task", "u")
    assert "system/Task.u" in denied.value.diagnostics
    with pytest.raises(Forbidden) as everything:
        scopes.require_types(narrow, None, "s")
    assert "system/*.s" in everything.value.diagnostics
    scopes.require(Caller(agency="Organization/a"), "Task", "cruds")  # auth off: no scopes


# -- enforcement over HTTP ---------------------------------------------------------------------

ORG = "Organization/scopes"


@dataclass
class Tokens:
    server: LiveServer
    tokens: dict[str, str]

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.fhir,
            headers={"Authorization": f"Bearer {self.tokens[name]}"},
            timeout=30,
        )


GRANTS = {
    "admin": "system/*.cruds",
    # Reads patients, creates and searches observations, nothing else.
    "narrow": "system/Patient.r system/Observation.cs",
    "reader": "system/*.rs",
    "patients": "system/Patient.rs system/Observation.rs",
}


@pytest.fixture(scope="module")
def smart(backend: Backend) -> Iterator[Tokens]:
    server = smart_server(backend, MovableClock())
    tokens = register_tokens(server, backend.engine, agency=ORG, grants=GRANTS, key=rsa_key("k1"))
    yield Tokens(server, tokens)
    server.stop()


def _forbidden(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "forbidden"
    assert scope in issue["diagnostics"]


def _patient(http: httpx.Client, family: str) -> str:
    family = f"{family}-{uuid.uuid4().hex[:8]}"
    created = http.post("/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _observation(subject: str, code: str = "72166-2") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
    }


def _count(http: httpx.Client, query: str) -> int:
    response = http.get(f"{query}&_total=accurate&_summary=count")
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_single_interactions_need_their_scope(smart: Tokens) -> None:
    with smart.client("admin") as admin, smart.client("narrow") as narrow:
        patient_id = _patient(admin, "Scoped")
        assert narrow.get(f"/Patient/{patient_id}").status_code == 200
        denied = narrow.get("/Patient", params={"_id": patient_id})
        _forbidden(denied, "system/Patient.s")
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        _forbidden(narrow.post("/Patient/_search", data={"_id": patient_id}), "system/Patient.s")
        _forbidden(narrow.post("/Patient", json={"resourceType": "Patient"}), "system/Patient.c")
        _forbidden(
            narrow.put(
                f"/Patient/{patient_id}", json={"resourceType": "Patient", "id": patient_id}
            ),
            "system/Patient.u",
        )
        _forbidden(narrow.delete(f"/Patient/{patient_id}"), "system/Patient.d")
        assert narrow.get(f"/Patient/{patient_id}/_history").json()["total"] == 1
        created = narrow.post("/Observation", json=_observation(f"Patient/{patient_id}"))
        assert created.status_code == 201
        observation = f"/Observation/{created.json()['id']}"
        _forbidden(narrow.get(observation), "system/Observation.r")
        _forbidden(narrow.get(f"{observation}/_history"), "system/Observation.r")
        _forbidden(narrow.get(f"{observation}/_history/1"), "system/Observation.r")
        assert (
            narrow.get("/Observation", params={"subject": f"Patient/{patient_id}"}).json()["total"]
            == 1
        )
        _forbidden(narrow.get("/Patient/_history"), "system/Patient.s")
        _forbidden(narrow.get("/_history"), "system/*.s")
        _forbidden(narrow.get("", params={"_type": "Patient,Observation"}), "system/Patient.s")
        assert narrow.get("", params={"_type": "Observation"}).status_code == 200
        # Conditional create searches: c alone is not enough.
        headers = {"If-None-Exist": "code=72166-2"}
        assert narrow.post(
            "/Observation", json=_observation(f"Patient/{patient_id}"), headers=headers
        ).status_code in (200, 201)
        with smart.client("patients") as reader:
            _forbidden(
                reader.post("/Observation", json=_observation(f"Patient/{patient_id}")),
                "system/Observation.c",
            )
        # Nothing the refused requests carried was stored.
        assert _count(admin, f"/Patient?_id={patient_id}") == 1


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def test_transaction_with_one_denied_entry_fails_whole(smart: Tokens) -> None:
    with smart.client("admin") as admin, smart.client("narrow") as narrow:
        patient_id = _patient(admin, "Txn")
        before = _count(admin, f"/Observation?subject=Patient/{patient_id}")
        bundle = _bundle(
            "transaction",
            _post(_observation(f"Patient/{patient_id}")),
            _post({"resourceType": "Patient", "name": [{"family": "Denied"}]}),
        )
        response = narrow.post("", json=bundle)
        _forbidden(response, "system/Patient.c")
        assert "Bundle.entry[1]" in response.json()["issue"][0]["diagnostics"]
        assert _count(admin, f"/Observation?subject=Patient/{patient_id}") == before
        # A GET entry is checked too, and so is a conditional reference (a search).
        reading = _bundle(
            "transaction",
            _post(_observation(f"Patient/{patient_id}")),
            {"request": {"method": "GET", "url": f"Patient?_id={patient_id}"}},
        )
        _forbidden(narrow.post("", json=reading), "system/Patient.s")
        conditional = _bundle("transaction", _post(_observation(f"Patient?_id={patient_id}")))
        _forbidden(narrow.post("", json=conditional), "system/Patient.s")
        assert _count(admin, f"/Observation?subject=Patient/{patient_id}") == before
        # With the scopes for every entry it commits.
        allowed = _bundle("transaction", _post(_observation(f"Patient/{patient_id}")))
        assert narrow.post("", json=allowed).status_code == 200
        assert _count(admin, f"/Observation?subject=Patient/{patient_id}") == before + 1


def test_batch_denies_entry_by_entry(smart: Tokens) -> None:
    with smart.client("admin") as admin, smart.client("narrow") as narrow:
        patient_id = _patient(admin, "Batch")
        bundle = _bundle(
            "batch",
            _post(_observation(f"Patient/{patient_id}")),
            _post({"resourceType": "Patient", "name": [{"family": "Denied"}]}),
            {"request": {"method": "GET", "url": f"Patient/{patient_id}"}},
            {"request": {"method": "DELETE", "url": f"Patient/{patient_id}"}},
        )
        response = narrow.post("", json=bundle)
        assert response.status_code == 200, response.text
        entries = response.json()["entry"]
        assert [e["response"]["status"] for e in entries] == ["201 Created", "403", "200 OK", "403"]
        outcome = entries[1]["response"]["outcome"]
        assert outcome["issue"][0]["code"] == "forbidden"
        assert "system/Patient.c" in outcome["issue"][0]["diagnostics"]
        assert "system/Patient.d" in entries[3]["response"]["outcome"]["issue"][0]["diagnostics"]
        assert admin.get(f"/Patient/{patient_id}").status_code == 200  # not deleted
        assert _count(admin, f"/Observation?subject=Patient/{patient_id}") == 1


def test_include_brings_in_only_readable_types(smart: Tokens) -> None:
    with smart.client("admin") as admin:
        patient_id = _patient(admin, "Include")
        admin.post("/Observation", json=_observation(f"Patient/{patient_id}"))
    query = {"subject": f"Patient/{patient_id}", "_include": "Observation:subject"}
    with smart.client("narrow") as narrow:  # Observation.s, Patient.r
        kinds = [
            e["resource"]["resourceType"]
            for e in narrow.get("/Observation", params=query).json()["entry"]
        ]
        assert sorted(kinds) == ["Observation", "Patient"]
    with smart.client("patients") as patients:  # Patient.rs, Observation.rs
        rev = patients.get(
            "/Patient", params={"_id": patient_id, "_revinclude": "Observation:subject"}
        ).json()
        assert sorted(e["resource"]["resourceType"] for e in rev["entry"]) == [
            "Observation",
            "Patient",
        ]


def test_include_of_an_unreadable_type_is_left_out(backend: Backend) -> None:
    server = smart_server(backend, MovableClock())
    try:
        key = rsa_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        grants = {"admin": "system/*.cruds", "obs": "system/Observation.rs"}
        tokens = {}
        for name, grant in grants.items():
            client_id = registry.register(
                agency=ORG, name=name, scopes_text=grant, jwks=public_jwks(key)
            ).client_id
            tokens[name] = get_token(server, key, client_id, grant)
        view = Tokens(server, tokens)
        with view.client("admin") as admin, view.client("obs") as obs:
            patient_id = _patient(admin, "Hidden")
            admin.post("/Observation", json=_observation(f"Patient/{patient_id}"))
            found = obs.get(
                "/Observation",
                params={"subject": f"Patient/{patient_id}", "_include": "Observation:subject"},
            ).json()
            assert [e["resource"]["resourceType"] for e in found["entry"]] == ["Observation"]
    finally:
        server.stop()


def test_everything_needs_read_of_the_patient_and_search_of_each_type(smart: Tokens) -> None:
    with smart.client("admin") as admin:
        patient_id = _patient(admin, "Everything")
        admin.post("/Observation", json=_observation(f"Patient/{patient_id}"))
    path = f"/Patient/{patient_id}/$everything"
    with smart.client("patients") as patients:  # Patient.rs, Observation.rs
        _forbidden(patients.get(path), "system/*.s")
        _forbidden(
            patients.get(path, params={"_type": "Observation,Condition"}), "system/Condition.s"
        )
        served = patients.get(path, params={"_type": "Patient,Observation"})
        assert served.status_code == 200
        kinds = sorted(e["resource"]["resourceType"] for e in served.json()["entry"])
        assert kinds == ["Observation", "Patient"]
    with smart.client("narrow") as narrow:  # Patient.r but no Patient.s
        _forbidden(narrow.get(path, params={"_type": "Patient"}), "system/Patient.s")
        _forbidden(narrow.get("/CarePlan/x/$everything"), "system/CarePlan.r")
    with smart.client("reader") as reader:
        assert reader.get(path).status_code == 200


def test_export_needs_read_and_search_of_each_type(smart: Tokens) -> None:
    prefer = {"Prefer": "respond-async"}
    with smart.client("patients") as patients:
        _forbidden(patients.get("/$export", headers=prefer), "system/*.r")
        _forbidden(
            patients.get("/$export", params={"_type": "Patient,Task"}, headers=prefer),
            "system/Task.r",
        )
        accepted = patients.get("/$export", params={"_type": "Patient"}, headers=prefer)
        assert accepted.status_code == 202, accepted.text
        status_url = accepted.headers["content-location"]
        # Polling needs a token as well.
        assert httpx.get(status_url).status_code == 401
        assert patients.get(status_url).status_code in (200, 202)
    with smart.client("narrow") as narrow:  # Patient.r without s
        _forbidden(
            narrow.get("/Patient/$export", params={"_type": "Patient"}, headers=prefer),
            "system/Patient.s",
        )


def test_auth_off_honours_a_bearer_token_and_its_scopes(backend: Backend) -> None:
    clock = MovableClock()
    server = smart_server(backend, clock, auth="off")
    try:
        key = rsa_key("k1")
        registry = ClientRegistry(engine=backend.engine, clock=Clock())
        client_id = registry.register(
            agency=ORG, name="dev", scopes_text="system/Patient.r", jwks=public_jwks(key)
        ).client_id
        token = get_token(server, key, client_id, "system/Patient.r")
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            # Without a token: the local operator, unconfined.
            assert http.get("/Observation").status_code == 200
            scoped = http.get("/Observation", headers={"Authorization": f"Bearer {token}"})
            _forbidden(scoped, "system/Observation.s")
            bad = http.get("/Observation", headers={"Authorization": "Bearer nonsense"})
            assert bad.status_code == 401
    finally:
        server.stop()


def test_access_token_claims_are_not_forgeable_by_clients(smart: Tokens) -> None:
    # The token's own scope claim is what is enforced: a client re-encoding its token with
    # wider scopes fails the signature check rather than gaining them.
    head, body, signature = smart.tokens["narrow"].split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = "system/*.cruds"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    response = httpx.post(
        f"{smart.server.fhir}/Patient",
        json={"resourceType": "Patient"},
        headers={"Authorization": f"Bearer {head}.{forged}.{signature}"},
    )
    assert response.status_code == 401
