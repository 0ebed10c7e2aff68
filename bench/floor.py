"""The floor: the least a validating FHIR create/read/update service does, run beside
casebridge in `make bench` so its figures read as a share of what the machine allows.

A minimal FastAPI app: the body parsed with orjson and validated as an R4B model
(fhir.resources), stored in SQLite (WAL, synchronous=NORMAL, like casebridge's
sqlite-normal run; casebridge's default syncs every commit, FULL) with five search index
rows, read back by id. No access rules, audit, Provenance, history, subscriptions or
referral rules: the difference to casebridge is what those cost.

Served by `uvicorn bench.floor:app` with CASEBRIDGE_FLOOR_DB naming the database file.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fhir.resources.R4B import get_fhir_model_class

_FHIR_JSON = "application/fhir+json"
_DB = os.environ.get("CASEBRIDGE_FLOOR_DB", "floor.db")

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(_DB, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS resource (
            resource_type TEXT, id TEXT, version_id INTEGER, last_updated TEXT, body TEXT,
            PRIMARY KEY (resource_type, id));
        CREATE TABLE IF NOT EXISTS search (
            resource_type TEXT, resource_id TEXT, param TEXT, value TEXT);
        CREATE INDEX IF NOT EXISTS ix_search ON search (resource_type, param, value);
        CREATE INDEX IF NOT EXISTS ix_search_owner ON search (resource_type, resource_id);
        """
    )
    return conn


# One connection per worker process: the handlers run on the event loop, one at a time.
_conn = _connect()


def _outcome(status: int, text: str) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }
    return Response(orjson.dumps(body), status, media_type=_FHIR_JSON)


def _index(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Five index rows, as a CarePlan's identifier, status, intent, subject and start."""
    identifiers = resource.get("identifier") or [{}]
    return [
        ("identifier", str(identifiers[0].get("value"))),
        ("status", str(resource.get("status"))),
        ("intent", str(resource.get("intent"))),
        ("subject", str((resource.get("subject") or {}).get("reference"))),
        ("date", str((resource.get("period") or {}).get("start"))),
    ]


def _validated(resource_type: str, body: bytes) -> dict[str, Any] | Response:
    try:
        resource = orjson.loads(body)
        get_fhir_model_class(resource_type).model_validate(resource)
    except Exception as exc:  # the floor answers a bad body, it does not explain it
        return _outcome(400, str(exc)[:200])
    if not isinstance(resource, dict):
        return _outcome(400, "not a resource")
    return resource


def _store(resource_type: str, resource_id: str, version: int, resource: dict[str, Any]) -> bytes:
    now = datetime.now(UTC).isoformat()
    resource["id"] = resource_id
    resource["meta"] = {"versionId": str(version), "lastUpdated": now}
    stored = orjson.dumps(resource)
    rows = [(resource_type, resource_id, p, v) for p, v in _index(resource)]
    _conn.execute("BEGIN IMMEDIATE")
    try:
        if version == 1:
            _conn.execute(
                "INSERT INTO resource VALUES (?, ?, ?, ?, ?)",
                (resource_type, resource_id, version, now, stored.decode()),
            )
        else:
            _conn.execute(
                "UPDATE resource SET version_id = ?, last_updated = ?, body = ? "
                "WHERE resource_type = ? AND id = ?",
                (version, now, stored.decode(), resource_type, resource_id),
            )
            _conn.execute(
                "DELETE FROM search WHERE resource_type = ? AND resource_id = ?",
                (resource_type, resource_id),
            )
        _conn.executemany("INSERT INTO search VALUES (?, ?, ?, ?)", rows)
        _conn.execute("COMMIT")
    except BaseException:
        _conn.execute("ROLLBACK")
        raise
    return stored


@app.get("/readyz")
async def ready() -> Response:
    """Ready as soon as it answers."""
    return Response(b"{}", media_type="application/json")


@app.post("/fhir/{resource_type}")
async def create(resource_type: str, request: Request) -> Response:
    """create: validate, store with a new id, answer 201 with the stored body."""
    resource = _validated(resource_type, await request.body())
    if isinstance(resource, Response):
        return resource
    resource_id = str(uuid.uuid4())
    stored = _store(resource_type, resource_id, 1, resource)
    headers = {"Location": f"/fhir/{resource_type}/{resource_id}/_history/1", "ETag": 'W/"1"'}
    return Response(stored, 201, headers=headers, media_type=_FHIR_JSON)


@app.get("/fhir/{resource_type}/{resource_id}")
async def read(resource_type: str, resource_id: str) -> Response:
    """read: the stored body, or 404."""
    row = _conn.execute(
        "SELECT body, version_id FROM resource WHERE resource_type = ? AND id = ?",
        (resource_type, resource_id),
    ).fetchone()
    if row is None:
        return _outcome(404, "not known")
    return Response(row[0].encode(), headers={"ETag": f'W/"{row[1]}"'}, media_type=_FHIR_JSON)


@app.put("/fhir/{resource_type}/{resource_id}")
async def update(resource_type: str, resource_id: str, request: Request) -> Response:
    """update: validate, store the next version."""
    resource = _validated(resource_type, await request.body())
    if isinstance(resource, Response):
        return resource
    row = _conn.execute(
        "SELECT version_id FROM resource WHERE resource_type = ? AND id = ?",
        (resource_type, resource_id),
    ).fetchone()
    if row is None:
        return _outcome(404, "not known")
    version = int(row[0]) + 1
    stored = _store(resource_type, resource_id, version, resource)
    return Response(stored, headers={"ETag": f'W/"{version}"'}, media_type=_FHIR_JSON)


@app.get("/fhir/{resource_type}")
async def count(resource_type: str) -> Response:
    """The number of resources of a type (the bench's storage report asks for it)."""
    (total,) = _conn.execute(
        "SELECT count(*) FROM resource WHERE resource_type = ?", (resource_type,)
    ).fetchone()
    return Response(
        orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": total}),
        media_type=_FHIR_JSON,
    )
