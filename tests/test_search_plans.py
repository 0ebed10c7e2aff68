"""Query plans of typical searches, on both engines (EXPLAIN; issue "FHIR search": each
search kind is an index lookup, never a scan of bodies).

The data is the benchmark's (bench/casedata.py) for 400 clients, stored by the bulk loader
as `casebridge load` stores it, then analysed. Every SELECT a search sends is explained:
- nothing reads a whole table (SQLite: no SCAN of a table; PostgreSQL, with sequential
  scans priced out as on a large table: no Seq Scan);
- the driving criterion is read from its covering index alone (SQLite "COVERING INDEX",
  PostgreSQL "Index Only Scan");
- a page in id order walks that index in order and stops: no sort of the candidates
  (SQLite: no temporary B-tree for ORDER BY; PostgreSQL: no Sort node).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import event, text

from app.clock import Clock
from app.config import Settings
from app.security.caller import OPERATOR, Caller
from app.services.container import build_services
from app.services.jobs.bulk import analyze, load_ndjson
from bench.casedata import CaseDataPools, write_ndjson
from bench.search import SEARCHES
from tests.conftest import Backend, migrated_database

AGENCY = "Organization/plans"


@dataclass
class Loaded:
    db: Backend
    pools: CaseDataPools


@pytest.fixture(scope="module")
def loaded(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with migrated_database(backend.name, tmp_path_factory, "cbplan") as db:
        data = tmp_path_factory.mktemp("plans") / "cases.ndjson"
        with data.open("wb") as out:
            pools = write_ndjson(out, 400, seed=11)
        summary = load_ndjson(
            data,
            engine=db.engine,
            settings=Settings(database_url=db.url, auth="off"),
            workers=1,
            agency=AGENCY,
        )
        assert summary.failed == 0 and summary.loaded == pools.total
        analyze(db.engine)
        yield Loaded(db, pools)


@dataclass
class Sent:
    """A statement one search sent, with its parameters and the connection's options."""

    statement: str
    parameters: Any
    options: dict[str, Any]


def sent_statements(loaded: Loaded, path: str, caller: Caller = OPERATOR) -> list[Sent]:
    """Every statement one search sends, run as the caller."""
    engine = loaded.db.engine
    sent: list[Sent] = []

    def capture(conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append(Sent(statement, parameters, dict(conn.get_execution_options())))

    services = build_services(
        settings=Settings(database_url=loaded.db.url, auth="off", install_conformance=False),
        engine=engine,
        clock=Clock(),
    )
    resource_type, _, query = path.removeprefix("/fhir/").partition("?")
    # The key that seals paging tokens is read once per process, not per search.
    services.auth.keys.signer()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        page = services.search.search(
            caller=caller, resource_type=resource_type, params=parse_qsl(query), strict=True
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert page.matches, path
    return sent


def plans(loaded: Loaded, path: str, caller: Caller) -> list[tuple[str, list[str]]]:
    """(SQL, plan lines) of every SELECT one search sends."""
    engine = loaded.db.engine
    sent = [
        (s.statement, s.parameters)
        for s in sent_statements(loaded, path, caller)
        if s.statement.lstrip().upper().startswith("SELECT")
    ]
    found = []
    with engine.connect() as conn:
        if loaded.db.name == "sqlite":
            for statement, parameters in sent:
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                found.append((statement, [str(row[-1]) for row in rows]))
        else:
            # 400 clients' records fit in a few pages, where PostgreSQL rightly reads whole
            # tables; pricing that out shows the plan it takes on a large table.
            conn.execute(text("SET enable_seqscan = off"))
            conn.execute(text("SET enable_bitmapscan = off"))
            for statement, parameters in sent:
                rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                found.append((statement, [str(row[0]) for row in rows]))
    return found


@pytest.mark.parametrize("key", ["a", "b", "c", "d", "e", "f", "g", "h"])
@pytest.mark.parametrize("as_agency", [False, True], ids=["operator", "agency"])
def test_typical_searches_read_indexes_only(loaded: Loaded, key: str, as_agency: bool) -> None:
    search = next(s for s in SEARCHES if s.key == key)
    path = search.build(random.Random(key), loaded.pools)
    caller = Caller(agency=AGENCY) if as_agency else OPERATOR
    explained = plans(loaded, path, caller)
    sqlite = loaded.db.name == "sqlite"
    for statement, plan in explained:
        shown = os.linesep.join([statement, *plan])
        if sqlite:
            scans = [p for p in plan if p.startswith("SCAN") and "COVERING INDEX" not in p]
            # A SCAN of a subquery or of the page's own rows is not a table read.
            subqueries = ("SCAN driver", "SCAN anon", "SCAN page")
            assert not [p for p in scans if not p.startswith(subqueries)], shown
            # The access rule's probe of each candidate's owner reads no table row (the
            # table is its primary key's b-tree: WITHOUT ROWID).
            owner_reads = [p for p in plan if p.startswith("SEARCH resource_owner")]
            assert all("PRIMARY KEY" in p or "COVERING" in p for p in owner_reads), shown
        else:
            assert not [p for p in plan if "Seq Scan" in p], shown


@pytest.mark.parametrize("key", ["a", "g"])
def test_a_page_walks_the_driving_index_in_order(loaded: Loaded, key: str) -> None:
    """Task owner + status and Observation code: the page's ids come from the driver's
    covering index in id order, with no sort of its thousands of candidates."""
    search = next(s for s in SEARCHES if s.key == key)
    path = search.build(random.Random(key), loaded.pools)
    explained = plans(loaded, path, Caller(agency=AGENCY))
    page = [(s, p) for s, p in explained if "SELECT DISTINCT" in s]
    assert len(page) == 1, [s for s, _ in explained]
    statement, plan = page[0]
    shown = os.linesep.join([statement, *plan])
    index = "ix_search_reference_target" if key == "a" else "ix_search_token_lookup"
    if loaded.db.name == "sqlite":
        # The page's ids (MATERIALIZE page ... SCAN page) come in index order; the bodies
        # joined to them may be put back in that order, a sort of the page alone.
        walk = plan[plan.index("MATERIALIZE page") : plan.index("SCAN page")]
        assert any(f"COVERING INDEX {index}" in p for p in walk), shown
        assert not any("TEMP B-TREE" in p for p in walk), shown
    else:
        assert any(f"Index Only Scan using {index}" in p for p in plan), shown
        assert not any(p.lstrip(" ->").startswith("Sort") for p in plan), shown


@pytest.mark.parametrize("key", ["a", "b", "h"])
@pytest.mark.parametrize("as_agency", [False, True], ids=["operator", "agency"])
def test_a_page_alone_is_one_statement_without_a_transaction(
    loaded: Loaded, key: str, as_agency: bool
) -> None:
    """A page with no total to count and nothing to include is one SELECT (ids and bodies
    together, and for an agency the owner rows its disclosure log reads) run on its own:
    no BEGIN/COMMIT round trips. Asking for a counted total puts the page and its count
    in one snapshot."""
    path = next(s for s in SEARCHES if s.key == key).build(random.Random(key), loaded.pools)
    sqlite = loaded.db.name == "sqlite"
    caller = Caller(agency=AGENCY) if as_agency else OPERATOR
    alone = sent_statements(loaded, path, caller)
    assert len(alone) == 1, [s.statement for s in alone]
    options = alone[0].options
    if sqlite:
        assert options.get("sqlite_begin", "DEFERRED") is None, options
    else:
        assert options.get("isolation_level") == "AUTOCOMMIT", options
    counted = sent_statements(loaded, f"{path}&_total=accurate", caller)
    if sqlite:
        assert counted[0].statement == "BEGIN DEFERRED", [s.statement for s in counted]
    else:
        assert {s.options.get("isolation_level") for s in counted} == {"REPEATABLE READ"}
