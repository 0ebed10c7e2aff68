"""`casebridge audit archive` (issue 21): AuditEvents older than the cut-off move to
compressed NDJSON archives (or are deleted, where the operator's policy allows), through the
real command against the test server's database; the accounting of disclosures stays."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.conftest import Backend
from tests.support.cli import run_cli, start_worker
from tests.support.clock import EPOCH
from tests.support.referrals import OWNER, REQUESTER, Referrals, as_agency
from tests.support.server import LiveServer

# The test server's clock stands at EPOCH: its AuditEvents are this many days old today.
AGE_DAYS = (datetime.now(UTC) - EPOCH).days


def _audit_ids(http: httpx.Client) -> set[str]:
    bundle = http.get("/AuditEvent", params={"_count": "1000"}).json()
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def _settled(http: httpx.Client, at_least: int) -> set[str]:
    """The AuditEvent ids once the background flush has written at least this many."""
    deadline = time.monotonic() + 10
    while True:
        ids = _audit_ids(http)
        if len(ids) >= at_least or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def _archive(backend: Backend, *args: str) -> str:
    result = run_cli(["audit", "archive", *args], {"CASEBRIDGE_DATABASE_URL": backend.url})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_old_audit_events_move_to_monthly_archives_and_disclosures_stay(
    client: httpx.Client, live: LiveServer, backend: Backend, tmp_path: Path
) -> None:
    referrals = Referrals(client, live.root)
    view = referrals.submit(REQUESTER)
    patient = view["patient"]
    # The receiving agency reads the requester's Task: a release of another agency's record.
    assert client.get(f"/Task/{view['id']}", headers=as_agency(OWNER)).status_code == 200
    before = _settled(client, 2)
    assert AGE_DAYS > 60, "the test clock must lie in the past"
    archive = tmp_path / "archive"

    # Nothing is that old yet.
    out = _archive(backend, "--older-than-days", str(AGE_DAYS + 30), "--to", str(archive))
    assert out.startswith("0 AuditEvents")
    assert not list(archive.glob("*.gz"))
    assert before <= _audit_ids(client)

    out = _archive(backend, "--older-than-days", str(AGE_DAYS - 30), "--to", str(archive))
    files = sorted(archive.glob("*.gz"))
    assert [f.name for f in files] == [f"audit-{EPOCH:%Y-%m}.ndjson.gz"]
    with gzip.open(files[0], "rt") as lines:
        archived = [json.loads(line) for line in lines]
    archived_ids = {event["id"] for event in archived}
    assert before <= archived_ids
    assert all(event["resourceType"] == "AuditEvent" for event in archived)
    assert f"{len(archived)} AuditEvents" in out
    # Gone from the database: what is listed now are only the listings made since.
    assert not (before & _audit_ids(client))
    # The accounting of disclosures answers as before.
    disclosures = client.get(f"/{patient}/$disclosures", headers=as_agency(REQUESTER)).json()
    released = [e["resource"] for e in disclosures.get("entry", [])]
    assert any(
        agent.get("who", {}).get("reference") == OWNER
        for event in released
        for agent in event.get("agent", [])
    ), released

    # Run again: only what is new moves, appended as a new member of the same file.
    time.sleep(0.3)
    again = _settled(client, 1)
    _archive(backend, "--older-than-days", str(AGE_DAYS - 30), "--to", str(archive))
    with gzip.open(files[0], "rt") as lines:
        ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids))
    assert (archived_ids | again) <= set(ids)

    # Deleting without archiving, where the operator's policy allows it.
    _settled(client, 1)
    out = _archive(backend, "--older-than-days", str(AGE_DAYS - 30), "--no-archive")
    assert "(not archived)" in out
    assert int(out.split()[0].replace(",", "")) >= 1
    assert sorted(archive.glob("*.gz")) == files


def test_the_worker_archives_on_a_schedule(
    client: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    """CASEBRIDGE_AUDIT_ARCHIVE_DAYS: `casebridge worker` runs the archive itself."""
    assert client.get("/metadata").status_code == 200
    before = _settled(client, 1)
    archive = tmp_path / "scheduled"
    worker = start_worker(
        {
            "CASEBRIDGE_DATABASE_URL": backend.url,
            "CASEBRIDGE_AUDIT_ARCHIVE_DAYS": str(AGE_DAYS - 30),
            "CASEBRIDGE_AUDIT_ARCHIVE_DIR": str(archive),
            "CASEBRIDGE_AUDIT_ARCHIVE_INTERVAL_S": "0.2",
        }
    )
    try:
        deadline = time.monotonic() + 30
        while not list(archive.glob("*.gz")) or before & _audit_ids(client):
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker archived nothing"
            time.sleep(0.1)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    with gzip.open(next(archive.glob("*.gz")), "rt") as lines:
        assert before <= {json.loads(line)["id"] for line in lines}
