"""`casebridge clients add | list | disable`, run as a user would, on both databases; a
client registered on the command line then authenticates at the real token endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clock import Clock
from app.fhir.errors import FHIRError
from app.services.auth.clients import ClientRegistry
from tests.conftest import Backend
from tests.support.auth import (
    MovableClock,
    assertion,
    ec_key,
    get_token,
    public_jwks,
    request_token,
    rsa_key,
    smart_server,
    token_form,
)
from tests.support.cli import run_cli


def _env(backend: Backend) -> dict[str, str]:
    return {"CASEBRIDGE_DATABASE_URL": backend.url}


def _registry(backend: Backend) -> ClientRegistry:
    return ClientRegistry(engine=backend.engine, clock=Clock())


def test_add_prints_the_client_id_alone_then_list_and_disable(
    backend: Backend, tmp_path: Path
) -> None:
    key = rsa_key("ops-2026")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(key)))
    added = run_cli(
        [
            "clients",
            "add",
            "--org",
            "Organization/harbour",
            "--name",
            "Harbour AOD EHR",
            "--jwks-file",
            str(jwks_file),
            "--scope",
            "system/CarePlan.cruds system/Task.read",
        ],
        _env(backend),
    )
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.strip()
    assert added.stdout == f"{client_id}\n"  # alone on stdout, for $(...) in scripts
    assert re.fullmatch(r"[0-9a-f-]{36}", client_id)
    stored = _registry(backend).get(client_id)
    assert stored is not None
    assert stored.agency == "Organization/harbour" and stored.name == "Harbour AOD EHR"
    assert stored.scopes == ("system/CarePlan.cruds", "system/Task.rs")
    assert stored.jwks == public_jwks(key) and not stored.disabled

    listed = run_cli(["clients", "list"], _env(backend))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if client_id in line)
    assert "Organization/harbour" in row and "active" in row and "ops-2026" in row

    server = smart_server(backend, MovableClock())
    try:
        token = get_token(server, key, client_id, "system/CarePlan.rs")
        with httpx.Client(
            base_url=server.fhir, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            assert http.get("/CarePlan").status_code == 200
            assert http.get("/Patient").status_code == 403

        disabled = run_cli(["clients", "disable", client_id], _env(backend))
        assert disabled.returncode == 0, disabled.stderr
        assert client_id in disabled.stdout
        stored = _registry(backend).get(client_id)
        assert stored is not None and stored.disabled
        listed = run_cli(["clients", "list"], _env(backend))
        assert "disabled" in next(line for line in listed.stdout.splitlines() if client_id in line)
        refused = request_token(
            server,
            token_form(
                assertion(key, client_id=client_id, aud=f"{server.root}/auth/token"),
                "system/CarePlan.rs",
            ),
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    finally:
        server.stop()


def test_add_with_a_jwks_url(backend: Backend) -> None:
    added = run_cli(
        [
            "clients",
            "add",
            "--org",
            "Organization/clinic",
            "--name",
            "Clinic",
            "--jwks-url",
            "https://clinic.example/.well-known/jwks.json",
            "--scope",
            "system/*.rs",
        ],
        _env(backend),
    )
    assert added.returncode == 0, added.stderr
    stored = _registry(backend).get(added.stdout.strip())
    assert stored is not None
    assert stored.jwks_url == "https://clinic.example/.well-known/jwks.json"
    assert stored.jwks is None


def test_bad_registrations_are_refused_and_store_nothing(backend: Backend, tmp_path: Path) -> None:
    key = ec_key("k1")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(public_jwks(key)))
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    weak = tmp_path / "p256.json"
    weak.write_text(json.dumps(public_jwks(ec_key("k2", "P-256"))))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    base = ["clients", "add", "--org", "Organization/x", "--name", "X"]
    cases = {
        "private": [*base, "--jwks-file", str(private), "--scope", "system/*.rs"],
        "not JSON": [*base, "--jwks-file", str(broken), "--scope", "system/*.rs"],
        "exactly one": [
            *base,
            "--jwks-file",
            str(good),
            "--jwks-url",
            "https://a.example/j",
            "--scope",
            "system/*.rs",
        ],
        "system/ scopes only": [*base, "--jwks-file", str(good), "--scope", "patient/*.rs"],
    }
    registry = _registry(backend)
    before = len(registry.all())
    for expected, args in cases.items():
        result = run_cli(args, _env(backend))
        assert result.returncode == 2, (expected, result.stdout, result.stderr)
        assert expected in result.stderr, (expected, result.stderr)
        assert result.stdout == ""
    # The same checks, without a process each.
    refusals = {
        "P-384": {"jwks": json.loads(weak.read_text()), "scopes_text": "system/*.rs"},
        "Organization/{id}": {"agency": "Patient/x"},
        "cruds": {"scopes_text": "system/Patient.sr"},
        "https": {"jwks": None, "jwks_url": "http://keys.example/jwks.json"},
        "no kid": {"jwks": {"keys": [{k: v for k, v in key.as_dict().items() if k != "kid"}]}},
    }
    for expected, changes in refusals.items():
        values: dict[str, Any] = {
            "agency": "Organization/x",
            "name": "X",
            "scopes_text": "system/*.rs",
            "jwks": public_jwks(key),
        }
        values.update(changes)
        with pytest.raises(FHIRError) as refused:
            registry.register(**values)
        assert expected in refused.value.diagnostics
    assert len(registry.all()) == before

    unknown = run_cli(["clients", "disable", "no-such-client"], _env(backend))
    assert unknown.returncode == 1
    assert "no-such-client" in unknown.stderr
