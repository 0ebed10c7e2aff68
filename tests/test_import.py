"""casebridge import: NDJSON and Bundle files and directories, errors as file:line, and a
re-run that stores nothing twice (both databases, through the real command)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.conftest import Backend
from tests.support.cli import run_cli


def _run(args: list[str], backend: Backend) -> subprocess.CompletedProcess[str]:
    return run_cli(args, {"CASEBRIDGE_DATABASE_URL": backend.url, "COLUMNS": "200"})


def _write_ndjson(path: Path, *resources: dict[str, object]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))


def _patient(pid: str, **more: object) -> dict[str, object]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": "Imported"}], **more}


def test_import_files_and_directories_then_again(
    client: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    (folder / "nested").mkdir(parents=True)
    _write_ndjson(folder / "Patient.ndjson", _patient("im-1"), _patient("im-2", gender="nope"))
    _write_ndjson(folder / "nested" / "More.jsonl", _patient("im-3"))
    (folder / "notes.txt").write_text("not a resource file: a directory import skips it")
    bundle = tmp_path / "package.json"
    goal = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "stable housing"},
        "subject": {"reference": "Patient/im-1"},
    }
    bundle.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {**goal, "id": "im-goal"}},
                    {"resource": {**goal, "lifecycleStatus": "bogus"}},
                ],
            }
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    first = _run(["import", str(folder), str(bundle), str(broken), "--workers", "0"], backend)
    assert first.returncode == 1, first.stderr
    assert "Imported 3 resources from 4 files" in first.stdout, first.stdout
    assert f"{folder / 'Patient.ndjson'}:2: Patient.gender" in first.stderr
    assert f"{bundle}:entry[1]: Goal.lifecycleStatus" in first.stderr
    assert f"{broken}:1:" in first.stderr
    assert client.get("/Patient/im-1").status_code == 200
    assert client.get("/Patient/im-2").status_code == 404
    assert client.get("/Goal/im-goal").json()["subject"] == {"reference": "Patient/im-1"}
    assert client.get("/Goal", params={"subject": "Patient/im-1"}).json()["total"] == 1

    again = _run(["import", str(folder), str(bundle), "--workers", "0"], backend)
    assert "Imported 0 resources from 3 files" in again.stdout, again.stdout
    assert "3 already present (skipped)" in again.stdout
    history = client.get("/_history").json()
    assert history["total"] == 3  # one version each: nothing was written twice


def test_imported_dates_search_like_written_ones(
    client: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    # Imported rows go to the driver positional; their instants must be stored in the
    # shape SQLAlchemy writes (whole seconds included), or ranges compare them wrongly.
    path = tmp_path / "Patient.ndjson"
    _write_ndjson(path, _patient("im-born", birthDate="2025-03-01"))
    done = _run(["import", str(path), "--workers", "0"], backend)
    assert done.returncode == 0, done.stderr
    client.put("/Patient/pw-born", json=_patient("pw-born", birthDate="2025-03-01"))
    for query, expected in (
        ("birthdate=2025-03-01", {"im-born", "pw-born"}),
        ("birthdate=ge2025-03-01", {"im-born", "pw-born"}),
        ("birthdate=lt2025-03-01", set()),
        ("birthdate=sa2025-02-28", {"im-born", "pw-born"}),
    ):
        found = client.get(f"/Patient?{query}").json()
        assert {e["resource"]["id"] for e in found.get("entry", [])} == expected, query
