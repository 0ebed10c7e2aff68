"""Helpers for the web app's tests: people, signing in, and reading a form's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from app.clock import Clock
from app.config import Settings
from app.services.auth.people import PeopleService
from app.storage.web_rows import WebUser
from tests.conftest import Backend

PASSWORD = "correct horse battery"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def add_person(
    backend: Backend, email: str, agency: str, practitioner: str, name: str | None = None
) -> WebUser:
    """An account in the test database (the service `casebridge users add` calls)."""
    people = PeopleService(engine=backend.engine, clock=Clock(), settings=Settings())
    return people.add_user(
        email=email, agency=agency, practitioner=practitioner, password=PASSWORD, name=name
    )


def directory(fhir: httpx.Client, agencies: dict[str, str], workers: dict[str, str]) -> None:
    """Organizations and Practitioners written by the operator (directory data)."""
    for org_id, name in agencies.items():
        org = {"resourceType": "Organization", "id": org_id, "name": name}
        assert fhir.put(f"/Organization/{org_id}", json=org, headers=FHIR_JSON).is_success
    for worker_id, name in workers.items():
        worker: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": worker_id,
            "name": [{"text": name}],
        }
        assert fhir.put(f"/Practitioner/{worker_id}", json=worker, headers=FHIR_JSON).is_success


AGENCIES = {"northside": "Northside Community Health", "eastside": "Eastside Housing"}
WORKERS = {"ann": "Ann Lee", "ben": "Ben Park"}


def two_agencies(fhir_base: str, backend: Backend) -> None:
    """The web tests' world: Northside (Ann) and Eastside (Ben), each with an account."""
    with httpx.Client(base_url=fhir_base, timeout=30) as fhir:
        directory(fhir, AGENCIES, WORKERS)
    add_person(
        backend, "ann@northside.example", "Organization/northside", "Practitioner/ann", "Ann Lee"
    )
    add_person(
        backend, "ben@eastside.example", "Organization/eastside", "Practitioner/ben", "Ben Park"
    )


@contextmanager
def sign_in(root: str, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A browser-like client signed in (cookies kept; redirects not followed)."""
    with httpx.Client(base_url=root, timeout=30, follow_redirects=False) as http:
        answer = http.post("/app/sign-in", data={"email": email, "password": password})
        assert answer.status_code == 303, answer.text
        yield http


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found[1]


def post_form(http: httpx.Client, path: str, page: str, data: dict[str, Any]) -> httpx.Response:
    """A form post as the browser sends it: the page's CSRF token with the fields."""
    token = csrf_of(http.get(page).text)
    return http.post(path, data={**data, "csrf": token})
