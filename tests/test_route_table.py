"""Every route declares what it touches (app/security/routes.py), and a token's scopes are
checked against that declaration on every route, FHIR or not (issue 16, hole 7)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.deps import get_caller
from app.config import Settings
from app.main import create_app
from app.security.routes import NAMED, PATH_TYPE, ROUTES
from app.web.session import signed_in
from tests.conftest import Backend
from tests.support.auth import MovableClock, register_tokens, rsa_key, smart_server
from tests.support.server import LiveServer

# Values for the path parameters of every route.
PATH_VALUES = {
    "resource_type": "Patient",
    "resource_id": "p1",
    "version_id": "1",
    "case_id": "c1",
    "task_id": "t1",
    "action": "accept",
    "care_plan_id": "cp1",
    "plan_id": "cp1",
    "patient_id": "p1",
    "subscription_id": "s1",
    "topic_id": "t1",
    "event_id": "e1",
    "job_id": "j1",
    "name": "n1",
}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every APIRoute of the app, through the routers it includes."""
    found: list[APIRoute] = []
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        router = getattr(route, "original_router", None)
        if router is not None:
            found += [r for r in router.routes if isinstance(r, APIRoute)]
    return found


def _depends_on_caller(dependant: Dependant) -> bool:
    """The route resolves who is asking: a token's caller (API) or a signed-in person (the
    web app's session, which checks the same route table)."""
    return any(
        d.call in (get_caller, signed_in) or _depends_on_caller(d) for d in dependant.dependencies
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    path = tmp_path_factory.mktemp("routes") / "casebridge.db"
    settings = Settings(
        database_url=f"sqlite:///{path}",
        environment="test",
        auth="off",
        install_conformance=False,
        notify_worker=False,
        migrate=True,
    )
    return create_app(settings)


def _keys(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    keys: list[tuple[str, str, APIRoute]] = []
    for r in api_routes(app):
        assert r.methods is not None, r.path  # an APIRoute always has its methods
        keys += [(m, r.path, r) for m in sorted(r.methods)]
    return keys


def test_every_route_has_an_entry_and_every_entry_a_route(app: FastAPI) -> None:
    served = {(method, path) for method, path, _ in _keys(app)}
    assert len(served) > 60
    missing = sorted(served - set(ROUTES))
    assert missing == [], f"routes without an entry in app/security/routes.py: {missing}"
    stale = sorted(set(ROUTES) - served)
    assert stale == [], f"entries of app/security/routes.py that no route serves: {stale}"


def test_public_routes_ask_for_no_caller_and_every_other_route_does(app: FastAPI) -> None:
    for method, path, route in _keys(app):
        entry = ROUTES[(method, path)]
        asks = _depends_on_caller(route.dependant)
        assert asks != entry.public, (method, path)


def test_path_types_are_declared_only_where_the_path_names_a_type() -> None:
    for (method, path), entry in ROUTES.items():
        types = {t for t, _ in entry.touches}
        if PATH_TYPE in types:
            assert "{resource_type}" in path, (method, path)
        for resource_type, letters in entry.touches:
            assert letters and set(letters) <= set("cruds"), (method, path)
            assert resource_type in (PATH_TYPE, NAMED, "*") or resource_type[0].isupper()


# -- over HTTP: a token holding only system/Organization.rs -----------------------------------
ORG = "Organization/routes"


@pytest.fixture(scope="module")
def narrow(backend: Backend) -> Iterator[tuple[LiveServer, str]]:
    server = smart_server(backend, MovableClock())
    tokens = register_tokens(
        server,
        backend.engine,
        agency=ORG,
        grants={"directory reader": "system/Organization.rs"},
        key=rsa_key("k1"),
    )
    yield server, tokens["directory reader"]
    server.stop()


def _request(method: str, path: str) -> dict[str, Any]:
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
    # Prefer: respond-async lets an export kick-off reach its scope check.
    headers = {"Content-Type": "application/fhir+json", "Prefer": "respond-async"}
    content = b"{}"
    if method == "PATCH":
        headers["Content-Type"] = "application/json-patch+json"
        content = b"[]"
    elif path.endswith("/_search"):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        content = b""
    elif method in ("GET", "DELETE"):
        content = b""
    return {"method": method, "url": url, "headers": headers, "content": content}


def _checked_on_the_route(method: str, path: str) -> bool:
    """Routes whose entry a token of Organization.rs alone cannot satisfy."""
    entry = ROUTES[(method, path)]
    if entry.public or not entry.touches:
        return False
    if path.startswith("/app/"):
        return False  # pages take no token: a session (tests/test_web.py)
    return any(t not in ("Organization",) for t, _ in entry.touches)


@pytest.mark.parametrize(
    ("method", "path"),
    [pytest.param(m, p, id=f"{m} {p}") for (m, p) in sorted(ROUTES) if _checked_on_the_route(m, p)],
)
def test_a_token_without_the_routes_scopes_is_refused(
    narrow: tuple[LiveServer, str], method: str, path: str
) -> None:
    server, token = narrow
    request = _request(method, path)
    request["headers"]["Authorization"] = f"Bearer {token}"
    response = httpx.request(
        request["method"],
        f"{server.root}{request['url']}",
        headers=request["headers"],
        content=request["content"],
        timeout=30,
    )
    assert response.status_code == 403, response.text
    assert "scope" in response.json()["issue"][0]["diagnostics"]


def test_the_narrow_token_still_reads_what_it_holds(narrow: tuple[LiveServer, str]) -> None:
    server, token = narrow
    response = httpx.get(
        f"{server.fhir}/Organization", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def clinical(backend: Backend) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """Tokens of a case worker's app: each holds a few types only."""
    server = smart_server(backend, MovableClock())
    grants = {
        "observations": "system/Observation.rs",
        "patients": "system/Patient.rs",
        "plans": "system/EpisodeOfCare.rs system/Patient.rs system/CarePlan.rs system/Goal.rs",
        "subscriptions": "system/Subscription.cruds system/Observation.rs",
    }
    yield (
        server,
        register_tokens(server, backend.engine, agency=ORG, grants=grants, key=rsa_key("k2")),
    )
    server.stop()


@pytest.mark.parametrize(
    ("token", "path", "needed"),
    [
        ("observations", "/fhir/Observation?subject:Patient.name=Rivera", "Patient"),
        # Unqualified, the chain may pass through any target type of subject.
        ("observations", "/fhir/Observation?subject.name=Rivera", ""),
        ("patients", "/fhir/Patient?_has:Condition:subject:code:text=Alcohol", "Condition"),
        ("plans", "/cases/c1/careplans", "Condition"),
        ("plans", "/cases/c1/careplans/cp1", "Condition"),
    ],
)
def test_chains_has_and_plain_views_need_the_scopes_of_what_they_read(
    clinical: tuple[LiveServer, dict[str, str]], token: str, path: str, needed: str
) -> None:
    # A filter on a type searches it; a plan view shows its needs (Conditions).
    server, tokens = clinical
    response = httpx.get(
        f"{server.root}{path}", headers={"Authorization": f"Bearer {tokens[token]}"}, timeout=30
    )
    assert response.status_code == 403, response.text
    assert f"system/{needed}" in response.text


@pytest.mark.parametrize(
    ("criteria", "needed"),
    [
        ("Patient?_lastUpdated=gt2000-01-01", "Patient"),
        ("Observation?subject:Patient.name=Rivera", "Patient"),
    ],
)
def test_a_subscription_needs_the_scopes_of_what_it_selects(
    clinical: tuple[LiveServer, dict[str, str]], criteria: str, needed: str
) -> None:
    # A subscription is a standing search whose results are sent to the subscriber.
    server, tokens = clinical
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "changes",
        "criteria": criteria,
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://hooks.example.org/x",
            "payload": "application/fhir+json",
        },
    }
    response = httpx.post(
        f"{server.fhir}/Subscription",
        json=body,
        headers={"Authorization": f"Bearer {tokens['subscriptions']}"},
        timeout=30,
    )
    assert response.status_code == 403, response.text
    assert f"system/{needed}" in response.text
