"""Races, on real parallel connections: two API processes in front of one database.

HAPI FHIR, Medplum and others have shipped the conditional-create race; these tests hold
this server to: no shared version ids, no lost updates, exactly one conditional create.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import Backend, server_with
from tests.factories import care_plan, patient
from tests.support.server import LiveServer

PARALLEL = 20


@pytest.fixture
def two_servers(backend: Backend) -> Iterator[tuple[str, str]]:
    """Two independent app instances (own engines and pools) on the same database."""
    backend.truncate()
    first: LiveServer = server_with(backend)
    second: LiveServer = server_with(backend)
    yield first.fhir, second.fhir
    first.stop()
    second.stop()


def _race(
    bases: tuple[str, str], call: Callable[[httpx.Client, int], httpx.Response]
) -> list[httpx.Response]:
    barrier = threading.Barrier(PARALLEL)

    def run(i: int) -> httpx.Response:
        with httpx.Client(base_url=bases[i % 2], timeout=60) as http:
            barrier.wait()
            return call(http, i)

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(run, range(PARALLEL)))


def test_parallel_updates_never_share_a_version_or_lose_one(two_servers: tuple[str, str]) -> None:
    base = two_servers[0]
    created = httpx.post(f"{base}/CarePlan", json=care_plan()).json()
    rid = created["id"]

    def update(http: httpx.Client, i: int) -> httpx.Response:
        return http.put(f"/CarePlan/{rid}", json={**created, "description": f"writer {i}"})

    responses = _race(two_servers, update)
    assert [r.status_code for r in responses] == [200] * PARALLEL
    versions = sorted(int(r.json()["meta"]["versionId"]) for r in responses)
    assert versions == list(range(2, PARALLEL + 2))
    history = httpx.get(f"{base}/CarePlan/{rid}/_history", params={"_count": 100}).json()
    assert history["total"] == PARALLEL + 1
    descriptions = {e["resource"]["description"] for e in history["entry"][:-1]}
    assert descriptions == {f"writer {i}" for i in range(PARALLEL)}
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in history["entry"]]
    assert stamps == sorted(stamps, reverse=True)


def test_parallel_if_match_updates_exactly_one_wins(two_servers: tuple[str, str]) -> None:
    base = two_servers[0]
    created = httpx.post(f"{base}/CarePlan", json=care_plan()).json()
    rid = created["id"]

    def update(http: httpx.Client, i: int) -> httpx.Response:
        return http.put(
            f"/CarePlan/{rid}",
            json={**created, "description": f"writer {i}"},
            headers={"If-Match": 'W/"1"'},
        )

    statuses = sorted(r.status_code for r in _race(two_servers, update))
    assert statuses == [200] + [412] * (PARALLEL - 1)
    assert httpx.get(f"{base}/CarePlan/{rid}").json()["meta"]["versionId"] == "2"


def test_parallel_conditional_creates_make_exactly_one(two_servers: tuple[str, str]) -> None:
    ident = {"system": "https://agency.example.org/clients", "value": "RACE-1"}

    def create(http: httpx.Client, i: int) -> httpx.Response:
        return http.post(
            "/Patient",
            json=patient(identifier=[ident], name=[{"family": f"Writer{i}"}]),
            headers={"If-None-Exist": "identifier=https://agency.example.org/clients|RACE-1"},
        )

    responses = _race(two_servers, create)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (PARALLEL - 1) + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert httpx.get(f"{two_servers[0]}/Patient/_history").json()["total"] == 1


def test_parallel_update_as_create_of_one_new_id(two_servers: tuple[str, str]) -> None:
    def put(http: httpx.Client, i: int) -> httpx.Response:
        return http.put("/Patient/new-client", json=patient(id="new-client", gender="other"))

    statuses = sorted(r.status_code for r in _race(two_servers, put))
    assert statuses == [200] * (PARALLEL - 1) + [201]
    history = httpx.get(f"{two_servers[0]}/Patient/new-client/_history", params={"_count": 50})
    assert history.json()["total"] == PARALLEL


def test_parallel_patches_apply_every_operation(two_servers: tuple[str, str]) -> None:
    base = two_servers[0]
    rid = httpx.post(f"{base}/CarePlan", json=care_plan(note=[{"text": "start"}])).json()["id"]

    def add_note(http: httpx.Client, i: int) -> httpx.Response:
        return http.patch(
            f"/CarePlan/{rid}",
            json=[{"op": "add", "path": "/note/-", "value": {"text": f"note {i}"}}],
            headers={"Content-Type": "application/json-patch+json"},
        )

    responses = _race(two_servers, add_note)
    assert [r.status_code for r in responses] == [200] * PARALLEL
    notes = {n["text"] for n in httpx.get(f"{base}/CarePlan/{rid}").json()["note"]}
    assert notes == {"start"} | {f"note {i}" for i in range(PARALLEL)}


def test_parallel_conditional_creates_with_different_spellings_make_one(
    two_servers: tuple[str, str],
) -> None:
    system = "https://agency.example.org/clients"
    spellings = [
        f"identifier={system}|RACE-2",
        "identifier=RACE-2",
        f"identifier={system}|RACE-2&_lastUpdated=gt2000-01-01",
        "identifier=nobody,RACE-2",
    ]

    def create(http: httpx.Client, i: int) -> httpx.Response:
        return http.post(
            "/Patient",
            json=patient(identifier=[{"system": system, "value": "RACE-2"}]),
            headers={"If-None-Exist": spellings[i % len(spellings)]},
        )

    for _ in range(3):
        responses = _race(two_servers, create)
        assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert httpx.get(f"{two_servers[0]}/Patient/_history").json()["total"] == 1
