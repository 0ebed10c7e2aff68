"""X-Request-ID and the request log (issue 21): the id is kept or made, echoed, written on
the request's AuditEvents (BALP XrequestId) and on its one JSON log line, which names the
route template and never a path, an id or a query value."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import httpx
import pytest

FHIR_JSON = {"Content-Type": "application/fhir+json"}
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


def _request_ids(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["identifier"]["value"]
        for e in event.get("entity", [])
        if e.get("type", {}).get("system") == BALP_ENTITY_TYPE and e["type"]["code"] == "XrequestId"
    ]


def _audited(client: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    """The AuditEvents naming request_id (reads are flushed in batches: poll)."""
    deadline = time.monotonic() + 10
    while True:
        bundle = client.get("/AuditEvent", params={"_count": "500"}).json()
        found = [
            e["resource"]
            for e in bundle.get("entry", [])
            if request_id in _request_ids(e["resource"])
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_usable_id_is_kept_and_echoed_otherwise_one_is_made(client: httpx.Client) -> None:
    response = client.get("/metadata", headers={"X-Request-ID": "ehr-42.7f:c"})
    assert response.headers["x-request-id"] == "ehr-42.7f:c"
    made = client.get("/metadata").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/metadata").headers["x-request-id"] != made
    for unusable in (b"has spaces", b"x" * 129, b"semi;colon", b"caf\xc3\xa9"):
        echoed = client.get("/metadata", headers={b"X-Request-ID": unusable}).headers
        assert re.fullmatch(r"[0-9a-f]{32}", echoed["x-request-id"]), unusable
    # Errors carry it too.
    missing = client.get("/Patient/nobody-here", headers={"X-Request-ID": "trace-404"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "trace-404"


def test_the_audit_events_of_a_request_name_its_id(client: httpx.Client) -> None:
    created = client.post(
        "/Patient", json={"resourceType": "Patient"}, headers={**FHIR_JSON, "X-Request-ID": "w-1"}
    )
    assert created.status_code == 201
    rid = created.json()["id"]
    written = _audited(client, "w-1")
    assert [e["subtype"][0]["code"] for e in written] == ["create"]
    assert client.get(f"/Patient/{rid}", headers={"X-Request-ID": "r-1"}).status_code == 200
    read = _audited(client, "r-1")
    assert [e["subtype"][0]["code"] for e in read] == ["read"]
    assert any(e.get("what", {}).get("reference") == f"Patient/{rid}" for e in read[0]["entity"])


def test_one_json_line_per_request_without_personal_data(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="casebridge.request")
    created = client.post(
        "/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Okafor-Logline"}]},
        headers={**FHIR_JSON, "X-Request-ID": "log-1", "X-Casebridge-Agency": "Organization/a1"},
    )
    assert created.status_code == 201
    rid = created.json()["id"]
    client.get("/Patient", params={"family": "Okafor-Logline"}, headers={"X-Request-ID": "log-2"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [
            json.loads(r.getMessage()) for r in caplog.records if r.name == "casebridge.request"
        ]
        if {"log-1", "log-2"} <= {line["request_id"] for line in lines}:
            break
        time.sleep(0.02)
    by_id = {line["request_id"]: line for line in lines}
    write = by_id["log-1"]
    assert write["method"] == "POST"
    assert write["route"] == "/fhir/{resource_type}"
    assert write["status"] == 201
    assert write["agency"] == "Organization/a1"
    assert write["duration_ms"] > 0
    assert write["time"].endswith("Z")
    search = by_id["log-2"]
    assert (search["route"], search["status"]) == ("/fhir/{resource_type}", 200)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "casebridge.request")
    assert rid not in text
    assert "Okafor-Logline" not in text
