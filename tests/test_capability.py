"""The CapabilityStatement says what is served (issue 18, section 3): every system
interaction it lists answers, every operation the server routes is listed, and every
operation of the project's own is defined by an OperationDefinition the server serves."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import Route

from app.fhir.referral import ACTIONS
from tests.conftest import Backend, server_with
from tests.support.server import LiveServer

FHIR_JSON = {"Content-Type": "application/fhir+json"}
OWN = "https://casebridge.org/fhir/OperationDefinition/"
# Endpoints of the bulk export flow that the IG does not define as operations.
NOT_OPERATIONS = frozenset({"$export-status", "$export-file"})


@pytest.fixture
def installed(backend: Backend) -> Iterator[LiveServer]:
    backend.truncate()
    server = server_with(backend, install_conformance=True)
    try:
        yield server
    finally:
        server.stop()


def _served_operations(server: LiveServer) -> set[tuple[str | None, str]]:
    """(type or None for system level, operation) of every route under /fhir with a $."""
    found: set[tuple[str | None, str]] = set()
    for route in server.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/fhir/"):
            continue
        segments = route.path.split("/")[2:]
        operation = segments[-1]
        if not operation.startswith("$") or operation in NOT_OPERATIONS:
            continue
        kind = None if segments[0].startswith("$") else segments[0]
        names = list(ACTIONS) if operation == "${action}" else [operation[1:]]
        found |= {(kind, name) for name in names}
    return found


def test_every_system_interaction_listed_is_served(client: httpx.Client) -> None:
    statement = client.get("/metadata").json()
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "search-system",
        "history-system",
    }
    for kind in ("transaction", "batch"):
        bundle: dict[str, object] = {"resourceType": "Bundle", "type": kind, "entry": []}
        assert client.post("", json=bundle, headers=FHIR_JSON).status_code == 200, kind
    assert client.get("", params={"_type": "Patient"}).json()["type"] == "searchset"
    assert client.get("/_history").json()["type"] == "history"


def test_every_operation_served_is_listed_and_defined(installed: LiveServer) -> None:
    with httpx.Client(base_url=installed.fhir, timeout=30) as http:
        rest = http.get("/metadata").json()["rest"][0]
        listed: set[tuple[str | None, str]] = {(None, o["name"]) for o in rest["operation"]}
        definitions = {}
        for resource in rest["resource"]:
            for operation in resource.get("operation", []):
                listed.add((resource["type"], operation["name"]))
                definitions[(resource["type"], operation["name"])] = operation["definition"]
        assert _served_operations(installed) <= listed
        # The project's own operations resolve to OperationDefinitions this server serves.
        own = {key: url for key, url in definitions.items() if url.startswith(OWN)}
        assert {key[1] for key in own} >= {"everything", "check", "disclosures", *ACTIONS}
        for (kind, name), url in own.items():
            found = http.get("/OperationDefinition", params={"url": url}).json()
            entries = [e["resource"] for e in found.get("entry", [])]
            assert len(entries) == 1, url
            definition = entries[0]
            assert (definition["code"], definition["resource"]) == (name, [kind]), url
            assert definition["instance"] is True
            assert definition["affectsState"] is (kind == "Task")
