"""Official R4 examples (tests/fixtures/examples, CC0) are accepted and read back equal."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import FHIR_JSON

EXAMPLES = sorted((Path(__file__).parent / "fixtures" / "examples").glob("*.json"))


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    resource = dict(resource)
    resource.pop("id", None)
    meta = dict(resource.pop("meta", {}))
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if meta:
        resource["meta"] = meta
    return resource


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_official_example_round_trips(client: httpx.Client, path: Path) -> None:
    raw = path.read_bytes()
    original = json.loads(raw, parse_float=Decimal)
    resource_type = original["resourceType"]
    created = client.post(f"/{resource_type}", content=raw, headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    read = client.get(f"/{resource_type}/{created.json()['id']}")
    assert read.status_code == 200
    assert _without_server_meta(json.loads(read.content, parse_float=Decimal)) == (
        _without_server_meta(original)
    )
    # The same example under its own id, by update-as-create.
    put = client.put(f"/{resource_type}/{original['id']}", content=raw, headers=FHIR_JSON)
    assert put.status_code == 201, put.text
    assert put.json()["id"] == original["id"]


def test_there_are_examples_of_the_mission_types() -> None:
    types = {json.loads(p.read_bytes())["resourceType"] for p in EXAMPLES}
    assert {"CarePlan", "Goal", "ServiceRequest", "Observation", "Task"} <= types
