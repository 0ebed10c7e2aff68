"""Bulk data export ($export, Bulk Data Access IG v2.0.0) over HTTP on SQLite and PostgreSQL:
kick-off, status polls, manifest, NDJSON files, filters, cancel, expiry and a re-import."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.fhir.errors import NotFound
from app.security.caller import OPERATOR
from app.services.disclosure import DisclosureLog
from app.services.jobs.bulk import load_ndjson
from app.services.jobs.export import ExportService, parse_request
from app.services.params import Cursors
from tests import factories
from tests.conftest import Backend, server_with
from tests.support.clock import EPOCH, fixed_clock
from tests.support.server import LiveServer

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def exporter(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """A server of its own with its own data_dir (export files land there); resources are
    written through it so that its clock stamps them and the export's transactionTime."""
    data_dir = tmp_path_factory.mktemp("export-data")
    server = server_with(backend, data_dir=data_dir)
    yield server, data_dir
    server.stop()


@pytest.fixture
def http(exporter: tuple[LiveServer, Path], backend: Backend) -> Iterator[httpx.Client]:
    backend.truncate()
    with httpx.Client(base_url=exporter[0].fhir, timeout=30) as client:
        yield client


def _put(http: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    response = http.put(
        f"/{resource['resourceType']}/{resource['id']}",
        content=orjson.dumps(resource),
        headers=factories.FHIR_JSON,
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _observation(rid: str, patient: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"text": "AUDIT-C score"},
        "valueInteger": 4,
    }
    if patient is not None:
        value["subject"] = {"reference": f"Patient/{patient}"}
    return value


def _organization(rid: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": rid, "name": "Northside AOD service"}


def _base(http: httpx.Client) -> str:
    return str(http.base_url).rstrip("/")


def _kick_off(http: httpx.Client, path: str = "/$export", **params: str) -> str:
    response = http.get(path, params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    location = response.headers["content-location"]
    assert location.startswith(f"{_base(http)}/$export-status/")
    return location


def _wait(http: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        response = http.get(status_url)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            assert "expires" in response.headers
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"]
        assert time.monotonic() < deadline, "the export did not finish in time"
        time.sleep(0.05)


def _download(http: httpx.Client, manifest: dict[str, Any]) -> dict[str, list[bytes]]:
    """type -> the lines of its file, checking the manifest's counts."""
    files: dict[str, list[bytes]] = {}
    for item in manifest["output"]:
        response = http.get(item["url"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = response.content.split(b"\n")
        assert lines[-1] == b""  # every line ends with a line break
        lines = lines[:-1]
        assert len(lines) == item["count"]
        assert item["type"] not in files
        files[item["type"]] = lines
    return files


def _split(files: dict[str, list[bytes]]) -> tuple[dict[str, list[bytes]], list[str]]:
    """The records, and the targets of the Provenance the server stored with each write
    (every write has one; they are exported like any resource)."""
    records = {t: lines for t, lines in files.items() if t != "Provenance"}
    targets: list[str] = []
    for line in files.get("Provenance", []):
        provenance = orjson.loads(line)
        assert provenance["meta"]["tag"][0]["code"] == "server"
        targets.extend(target["reference"] for target in provenance["target"])
    return records, targets


def _export(http: httpx.Client, path: str = "/$export", **params: str) -> dict[str, list[bytes]]:
    """The exported records (the server's Provenance left out: see _split)."""
    manifest = _wait(http, _kick_off(http, path, **params))
    assert manifest["requiresAccessToken"] is False
    assert manifest["error"] == []
    return _split(_download(http, manifest))[0]


def _ids(lines: list[bytes]) -> list[str]:
    return [orjson.loads(line)["id"] for line in lines]


def test_system_export_holds_exactly_the_live_current_versions(http: httpx.Client) -> None:
    for rid in ("p1", "p2", "p3"):
        _put(http, {**factories.patient(), "id": rid})
    updated = _put(http, {**factories.patient(gender="female"), "id": "p2"})
    assert http.delete("/Patient/p3").status_code == 204
    _put(http, _observation("o1", "p1"))
    _put(http, _organization("org1"))

    status_url = _kick_off(http)
    manifest = _wait(http, status_url)
    assert manifest["request"] == f"{_base(http)}/$export"
    assert manifest["transactionTime"] > updated["meta"]["lastUpdated"]
    assert manifest["requiresAccessToken"] is False
    assert manifest["error"] == []
    files, provenance_targets = _split(_download(http, manifest))
    assert sorted(provenance_targets) == sorted(
        [f"Patient/{p}/_history/1" for p in ("p1", "p2", "p3")]
        + ["Patient/p2/_history/2", "Patient/p3/_history/2"]
        + ["Observation/o1/_history/1", "Organization/org1/_history/1"]
    )

    assert {t: sorted(_ids(lines)) for t, lines in files.items()} == {
        "Observation": ["o1"],
        "Organization": ["org1"],
        "Patient": ["p1", "p2"],
    }
    for resource_type, lines in files.items():
        for line in lines:
            rid = orjson.loads(line)["id"]
            # The stored body, byte for byte: what a read serves.
            assert line == http.get(f"/{resource_type}/{rid}").content
    p2 = next(orjson.loads(line) for line in files["Patient"] if b'"p2"' in line)
    assert p2["meta"]["versionId"] == "2" and p2["gender"] == "female"

    # The status stays answerable until the files expire.
    assert http.get(status_url).status_code == 200


def test_type_and_since_filter(http: httpx.Client) -> None:
    _put(http, {**factories.patient(), "id": "early"})
    _put(http, _observation("o-early", "early"))
    later = _put(http, {**factories.patient(), "id": "later"})
    _put(http, _observation("o-later", "later"))
    _put(http, _organization("org-later"))

    files = _export(http, _type="Patient")
    assert {t: sorted(_ids(v)) for t, v in files.items()} == {"Patient": ["early", "later"]}

    since = later["meta"]["lastUpdated"]
    files = _export(http, _since=since)
    assert {t: sorted(_ids(v)) for t, v in files.items()} == {
        "Observation": ["o-later"],
        "Organization": ["org-later"],
        "Patient": ["later"],
    }
    # Repeated _type values add up; a "+" in an offset arrives as a space when unencoded.
    files = _export(
        http, _type="Observation", _since=since.replace("Z", "+00:00"), _outputFormat="ndjson"
    )
    assert {t: _ids(v) for t, v in files.items()} == {"Observation": ["o-later"]}
    response = http.get("/$export?_type=Patient&_type=Organization", headers=ASYNC)
    assert response.status_code == 202
    manifest = _wait(http, response.headers["content-location"])
    assert sorted(item["type"] for item in manifest["output"]) == ["Organization", "Patient"]


def test_patient_export_holds_the_patients_compartments(http: httpx.Client) -> None:
    _put(http, {**factories.patient(), "id": "p1"})
    _put(http, {**factories.patient(), "id": "gone"})
    _put(http, _observation("of-p1", "p1"))
    _put(http, _observation("of-gone", "gone"))
    _put(http, _observation("of-nobody", None))
    _put(http, {**factories.care_plan(), "id": "cp1", "subject": {"reference": "Patient/p1"}})
    _put(http, _organization("org1"))
    # The client's referrals: in the record though the R4B compartment leaves Task out, as
    # in Patient $everything.
    task = {"resourceType": "Task", "status": "requested", "intent": "order"}
    _put(http, {**task, "id": "t1", "for": {"reference": "Patient/p1"}})
    _put(http, {**task, "id": "t-nobody"})
    assert http.delete("/Patient/gone").status_code == 204

    files = _export(http, "/Patient/$export")
    assert {t: sorted(_ids(v)) for t, v in files.items()} == {
        "CarePlan": ["cp1"],
        "Observation": ["of-p1"],
        "Patient": ["p1"],
        "Task": ["t1"],
    }

    files = _export(http, "/Patient/$export", _type="Observation")
    assert {t: _ids(v) for t, v in files.items()} == {"Observation": ["of-p1"]}

    # A type outside the Patient compartment is refused, or skipped when asked to be lenient.
    refused = http.get("/Patient/$export", params={"_type": "Organization"}, headers=ASYNC)
    assert refused.status_code == 400
    assert "Organization" in refused.json()["issue"][0]["diagnostics"]
    lenient = {**ASYNC, "Prefer": "respond-async, handling=lenient"}
    response = http.get(
        "/Patient/$export", params={"_type": "Observation,Organization"}, headers=lenient
    )
    assert response.status_code == 202
    manifest = _wait(http, response.headers["content-location"])
    assert [item["type"] for item in manifest["output"]] == ["Observation"]


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "needle"),
    [
        ("/$export", {}, {}, 400, "respond-async"),
        ("/$export", {}, {"Prefer": "return=minimal"}, 400, "respond-async"),
        ("/$export", {"_outputFormat": "application/fhir+json"}, ASYNC, 400, "_outputFormat"),
        ("/$export", {"_outputFormat": "text/csv"}, ASYNC, 400, "_outputFormat"),
        ("/$export", {"_type": "Patient,Nonsense"}, ASYNC, 400, "Nonsense"),
        ("/$export", {"_type": "Patient,"}, ASYNC, 400, "empty"),
        ("/$export", {"_since": "2026-01-05"}, ASYNC, 400, "instant"),
        ("/$export", {"_since": "2026-13-05T00:00:00Z"}, ASYNC, 400, "_since"),
        ("/$export", {"_since": ["2026-01-05T00:00:00Z"] * 2}, ASYNC, 400, "once"),
        ("/$export", {"_typeFilter": "Patient?gender=other"}, ASYNC, 400, "not supported"),
        ("/$export", {"bogus": "1"}, ASYNC, 400, "bogus"),
        ("/Patient/$export", {"_type": "Organization"}, ASYNC, 400, "compartment"),
        ("/$export", {}, {**ASYNC, "Accept": "application/fhir+xml"}, 406, "XML"),
        ("/$export-status/0123456789abcdef0123456789abcdef", {}, {}, 404, "export job"),
        ("/$export-status/../../etc", {}, {}, 404, ""),
        ("/$export-status/not-a-job", {}, {}, 404, "export job"),
        ("/$export-file/0123456789abcdef0123456789abcdef/Patient.ndjson", {}, {}, 404, "job"),
        ("/$export-file/0123456789abcdef0123456789abcdef/..%2Fx", {}, {}, 404, ""),
    ],
)
def test_client_mistakes_are_operation_outcomes(
    http: httpx.Client,
    path: str,
    params: dict[str, Any],
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    response = http.get(path, params=params, headers=headers)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert needle in outcome["issue"][0]["diagnostics"]


def test_lenient_handling_ignores_unsupported_parameters_and_post_is_refused(
    http: httpx.Client,
) -> None:
    _put(http, {**factories.patient(), "id": "p1"})
    lenient = {**ASYNC, "Prefer": "respond-async; handling=lenient"}
    response = http.get(
        "/$export", params={"_typeFilter": "x", "_type": "Patient"}, headers=lenient
    )
    assert response.status_code == 202
    issues = response.json()["issue"]
    assert any(i["severity"] == "warning" and "_typeFilter" in i["diagnostics"] for i in issues)
    manifest = _wait(http, response.headers["content-location"])
    assert [item["type"] for item in manifest["output"]] == ["Patient"]

    refused = http.post("/$export", headers=ASYNC)
    assert refused.status_code == 405
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_cancel_deletes_the_job_and_its_files(
    http: httpx.Client, exporter: tuple[LiveServer, Path]
) -> None:
    _put(http, {**factories.patient(), "id": "p1"})
    status_url = _kick_off(http)
    manifest = _wait(http, status_url)
    job_id = status_url.rsplit("/", 1)[1]
    job_dir = exporter[1] / "exports" / job_id
    assert (job_dir / "Patient.ndjson").is_file()

    response = http.delete(status_url)
    assert response.status_code == 202
    assert response.json()["resourceType"] == "OperationOutcome"
    assert http.get(status_url).status_code == 404
    assert http.get(manifest["output"][0]["url"]).status_code == 404
    assert not job_dir.exists()
    assert http.delete(status_url).status_code == 404

    # Cancelled at once, whatever state it reached: gone, and no files stay behind.
    status_url = _kick_off(http)
    assert http.delete(status_url).status_code == 202
    assert http.get(status_url).status_code == 404
    job_dir = exporter[1] / "exports" / status_url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 10
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job_dir.exists()


def test_expired_exports_answer_404_and_their_files_are_removed(
    backend: Backend, tmp_path: Path
) -> None:
    backend.truncate()
    server = server_with(backend, data_dir=tmp_path, export_retention_s=1.0)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            _put(http, {**factories.patient(), "id": "p1"})
            status_url = _kick_off(http)
            manifest = _wait(http, status_url)
            file_url = manifest["output"][0]["url"]
            job_dir = tmp_path / "exports" / status_url.rsplit("/", 1)[1]
            assert (job_dir / "Patient.ndjson").is_file()
            time.sleep(1.3)
            response = http.get(file_url)
            assert response.status_code == 404
            assert response.json()["resourceType"] == "OperationOutcome"
            assert http.get(status_url).status_code == 404
            assert not job_dir.exists()
    finally:
        server.stop()


def test_exported_files_load_back_into_an_empty_database(
    http: httpx.Client, backend: Backend
) -> None:
    _put(http, {**factories.patient(), "id": "p1"})
    _put(http, {**factories.patient(gender="female"), "id": "p1"})
    _put(http, _observation("o1", "p1"))
    _put(http, {**factories.care_plan(), "id": "cp1", "subject": {"reference": "Patient/p1"}})
    _put(http, _organization("org1"))
    files = _export(http)
    before = {
        (t, orjson.loads(line)["id"]): orjson.loads(line) for t, v in files.items() for line in v
    }
    assert len(before) == 4

    backend.truncate()
    data = b"".join(line + b"\n" for lines in files.values() for line in lines)
    summary = load_ndjson(
        io.BytesIO(data), engine=backend.engine, settings=backend.settings(), workers=0
    )
    assert (summary.loaded, summary.failed) == (4, 0)

    for (resource_type, rid), original in before.items():
        response = http.get(f"/{resource_type}/{rid}")
        assert response.status_code == 200
        loaded = response.json()
        for value in (loaded, original):
            del value["meta"]["versionId"], value["meta"]["lastUpdated"]
        assert loaded == original


def test_a_failed_export_answers_500_with_an_operation_outcome(
    backend: Backend, tmp_path: Path
) -> None:
    backend.truncate()
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("export files cannot be written under a file")
    server = server_with(backend, data_dir=blocked)
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            _put(http, {**factories.patient(), "id": "p1"})
            status_url = _kick_off(http)
            deadline = time.monotonic() + 20
            while (response := http.get(status_url)).status_code == 202:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert response.status_code == 500
            issue = response.json()["issue"][0]
            assert issue["severity"] == "error" and issue["code"] == "exception"
            assert "server log" in issue["diagnostics"]  # no internals in the answer
            assert http.delete(status_url).status_code == 202
            assert http.get(status_url).status_code == 404
    finally:
        server.stop()


class _Paused(ExportService):
    """An export service whose workers wait before each page until the test lets them go."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reached = threading.Event()
        self.go = threading.Event()

    def _check(self, job_id: str) -> None:
        self.reached.set()
        assert self.go.wait(10)
        super()._check(job_id)


def _paused(backend: Backend, data_dir: Path) -> _Paused:
    return _Paused(
        engine=backend.engine,
        clock=fixed_clock(EPOCH + timedelta(days=1)),
        settings=backend.settings(data_dir=data_dir),
        page_size=1,
        disclosures=DisclosureLog(
            engine=backend.engine,
            clock=fixed_clock(EPOCH),
            # Export pages no _cursor tokens: a key that is never asked for.
            cursors=Cursors(lambda: b"unused"),
        ),
    )


def test_a_running_export_stops_at_the_next_page_when_cancelled(
    http: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    for rid in ("p1", "p2", "p3"):
        _put(http, {**factories.patient(), "id": rid})
    service = _paused(backend, tmp_path)
    try:
        job = service.kick_off(
            parse_request("system", [], lenient=False), caller=OPERATOR, request_url="x"
        )
        assert service.reached.wait(10)
        status = service.status(job.job_id, caller=OPERATOR)
        assert (status.state, status.progress) == ("running", "running")
        service.cancel(job.job_id, caller=OPERATOR)
        service.go.set()
    finally:
        service.shutdown()  # waits for the worker
    assert not (tmp_path / "exports" / job.job_id).exists()
    with pytest.raises(NotFound):
        service.status(job.job_id, caller=OPERATOR)


def test_shutting_down_fails_running_exports(
    http: httpx.Client, backend: Backend, tmp_path: Path
) -> None:
    _put(http, {**factories.patient(), "id": "p1"})
    service = _paused(backend, tmp_path)
    job = service.kick_off(
        parse_request("system", [], lenient=False), caller=OPERATOR, request_url="x"
    )
    assert service.reached.wait(10)
    stopper = threading.Thread(target=service.shutdown)
    stopper.start()
    time.sleep(0.1)
    service.go.set()
    stopper.join(10)
    status = service.status(job.job_id, caller=OPERATOR)
    assert status.state == "failed"
    assert status.error is not None and "stopped" in status.error
    assert not (tmp_path / "exports" / job.job_id).exists()


def test_capability_statement_lists_the_export_operations(http: httpx.Client) -> None:
    rest = http.get("/metadata").json()["rest"][0]
    bulk = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
    assert {"name": "export", "definition": f"{bulk}/export"} in rest["operation"]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"name": "export", "definition": f"{bulk}/patient-export"} in patient["operation"]
