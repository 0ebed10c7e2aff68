"""One Repository over one Unit of Work: every write of a request is one DB transaction.

Hot paths use SQLAlchemy Core statements (the ORM costs 6-14x more per row here).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.records import StoredVersion
from app.storage.access import AccessScope, visible_clause
from app.storage.access_rows import AccessRows
from app.storage.audit import AuditRow, audit_row
from app.storage.base import CURRENT_COLS, current_version
from app.storage.compartment_rows import CompartmentRows
from app.storage.db import READ_ONLY, write_gate
from app.storage.errors import StorageUnavailable
from app.storage.export_rows import ExportRows
from app.storage.index import IndexRows
from app.storage.rows import (
    NEW_TABLES,
    NewRows,
    Row,
    index_row_lists,
    new_rows,
    row_columns,
)
from app.storage.tables import (
    audit_event_table,
    index_tables,
    reference_table,
    resource_owner_table,
    resource_table,
    version_table,
)

R = resource_table.c
V = version_table.c

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """Keyset position in a history listing (newest first): strictly older than this."""

    last_updated: datetime
    resource_type: str
    id: str
    version_id: int


# Statements are built once: building and cache-keying a statement per call cost more
# than executing it on SQLite.
_SELECT_CURRENT = select(*CURRENT_COLS).where(
    R.resource_type == bindparam("q_type"), R.id == bindparam("q_id")
)
_SELECT_VERSION = select(
    V.resource_type, V.id, V.version_id, V.last_updated, V.body, V.method
).where(
    V.resource_type == bindparam("q_type"),
    V.id == bindparam("q_id"),
    V.version_id == bindparam("q_version"),
)
_INSERT_RESOURCE = insert(resource_table)
_UPDATE_RESOURCE = (
    update(resource_table)
    .where(R.resource_type == bindparam("q_type"), R.id == bindparam("q_id"))
    .values(
        version_id=bindparam("n_version"),
        last_updated=bindparam("n_updated"),
        deleted=bindparam("n_deleted"),
        body=bindparam("n_body"),
    )
)
_DELETE_INDEX = tuple(
    delete(table).where(
        table.c.resource_type == bindparam("q_type"), table.c.resource_id == bindparam("q_id")
    )
    for table in index_tables
)
_INSERT_INDEX = {table.name: insert(table) for table in index_tables}


_INDEX_COLUMNS = {table.name: row_columns(table) for table in index_tables}


def index_parameters(
    resource_type: str, resource_id: str, rows: IndexRows, into: dict[str, list[dict[str, Any]]]
) -> None:
    """Append the insert parameters of one resource's index rows, by table name."""
    lists_by_table = index_row_lists(resource_type, resource_id, rows)
    for table, lists in zip(index_tables, lists_by_table, strict=True):
        if lists:
            columns = _INDEX_COLUMNS[table.name]
            into[table.name].extend(dict(zip(columns, row, strict=True)) for row in lists)


def _lock_key(name: str) -> int:
    # pg_advisory_xact_lock takes a signed 64-bit key.
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


class Repository(AccessRows, CompartmentRows, ExportRows):
    """Reads and writes resources on one connection inside one transaction: resources,
    history, locks and the transaction's queued rows here; owners, grants, consents and
    disclosures (AccessRows), compartments (CompartmentRows) and export jobs (ExportRows)
    in their own modules, on the same connection (app/storage/base.py)."""

    def __init__(
        self, conn: Connection, scope: AccessScope | None = None, *, writable: bool = True
    ) -> None:
        super().__init__(conn, scope)
        # Whether this is a write transaction. A read one must not write: on SQLite a read
        # transaction that starts writing after another writer committed fails at once
        # with "database is locked" (SQLITE_BUSY_SNAPSHOT; no busy wait can cure it).
        self.writable = writable
        # Work to do once, just before commit, on everything registered under its key.
        self._deferred: dict[str, tuple[Callable[[Repository, set[Any]], None], set[Any]]] = {}
        # Rows no statement of this transaction reads back (the server's audit and
        # Provenance records), inserted just before commit, one statement per table.
        self._appends: dict[Table, list[Row]] = {}
        # Locks this transaction holds: name -> exclusive (PostgreSQL advisory locks).
        self._locks: dict[str, bool] = {}

    def defer(self, key: str, action: Callable[[Repository, set[Any]], None], item: Any) -> None:
        """Run action(repo, items) once just before this transaction commits, with every
        item registered under key (work that must see the transaction's last write: the
        shares of a referral whose records a later entry of a transaction creates)."""
        found = self._deferred.get(key)
        if found is None:
            self._deferred[key] = (action, {item})
        else:
            found[1].add(item)

    def run_deferred(self) -> None:
        """Run the deferred work (unit_of_work does, before it commits)."""
        while self._deferred:
            key = next(iter(self._deferred))
            action, items = self._deferred.pop(key)
            action(self, items)

    def with_scope(self, scope: AccessScope | None) -> Repository:
        """The same connection and transaction under another access scope (a search run
        for one agency inside a transaction opened for another: notification matching)."""
        if scope == self.scope:
            return self
        other = Repository(self._conn, scope, writable=self.writable)
        other._deferred = self._deferred
        other._appends = self._appends
        other._locks = self._locks
        return other

    # -- appends: rows written once, never read back in the transaction ---------------
    # Queued rows are inserted just before commit, one statement per table for the whole
    # transaction however many writes it holds. Only for rows nothing in the transaction
    # reads back (flush_appends runs first where something might: conditional matching,
    # a transaction Bundle's reads).
    def append_new_later(self, rows: NewRows, owner: tuple[str | None, bool]) -> None:
        """Queue a new resource's rows (app/storage/rows.py new_rows) and its owner row."""
        for table, table_rows in zip(NEW_TABLES, rows, strict=True):
            self._append(table, table_rows)
        resource_type, resource_id = rows[0][0][0], rows[0][0][1]
        self._append(resource_owner_table, [(resource_type, resource_id, *owner)])

    def append_audit_later(self, rows: Sequence[AuditRow]) -> None:
        """Queue audit_event rows."""
        self._append(audit_event_table, [audit_row(row) for row in rows])

    def _append(self, table: Table, rows: Sequence[Row]) -> None:
        if rows:
            self._appends.setdefault(table, []).extend(rows)

    def flush_appends(self) -> None:
        """Insert the queued rows now, tables in the order they were first queued."""
        while self._appends:
            table = next(iter(self._appends))
            self.insert_rows(table, self._appends.pop(table))

    def is_visible(
        self, resource_type: str, resource_id: str, *, scope: AccessScope | None = None
    ) -> bool:
        """Whether the agency of scope (default: this repository's) may see the resource;
        True when there is no scope."""
        scope = scope or self.scope
        if scope is None:
            return True
        values = {**scope.parameters(), "v_type": resource_type, "v_id": resource_id}
        return self._conn.execute(_visible_one(scope.shared_types), values).first() is not None

    def current_checked(
        self, resource_type: str, resource_id: str
    ) -> tuple[StoredVersion | None, bool]:
        """current() and whether this repository's agency may see it, in one statement;
        the version carries its owner row (the disclosure log then looks nothing up)."""
        if self.scope is None:
            return self.current(resource_type, resource_id), True
        values = {
            **self._access,
            "q_type": resource_type,
            "q_id": resource_id,
            "v_type": resource_type,
            "v_id": resource_id,
        }
        row = self._conn.execute(_current_checked(self.scope.shared_types), values).first()
        if row is None:
            return None, False
        agency, sensitive, visible = row[6], row[7], row[8]
        owner = (agency, bool(sensitive)) if sensitive is not None else None
        return current_version(row, owner=owner, owner_read=True), bool(visible)

    def visible_current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The live current version when the scope's agency may see it, else None."""
        current = self.current(resource_type, resource_id)
        if current is None or current.deleted or not self.is_visible(resource_type, resource_id):
            return None
        return current

    # -- locks -------------------------------------------------------------------------
    def lock(self, name: str) -> None:
        """Serialise writers on a name until commit (PostgreSQL advisory lock).

        SQLite writers already hold the database write lock (BEGIN IMMEDIATE).
        """
        self._take([(name, True)])

    def lock_type(self, resource_type: str, *, exclusive: bool) -> None:
        """Writers of a type share a lock; conditional writers take it alone (PostgreSQL).

        A conditional write searches and then writes; holding the type exclusively while it
        does means no other write of that type can slip in between, whatever spelling the
        criteria use. SQLite writers are already serialised by BEGIN IMMEDIATE.
        """
        self._take([(f"type:{resource_type}", exclusive)])

    def lock_for_write(
        self, resource_type: str, resource_id: str | None, *, exclusive: bool = False
    ) -> None:
        """The locks one resource write takes, in one round trip: its type (shared, or
        exclusive for a conditional write) then, for an existing id, the resource."""
        wanted = [(f"type:{resource_type}", exclusive)]
        if resource_id is not None:
            wanted.append((f"{resource_type}/{resource_id}", True))
        self._take(wanted)

    def _take(self, wanted: Sequence[tuple[str, bool]]) -> None:
        # A lock already held (as strongly) in this transaction is not asked for again;
        # PostgreSQL grants a session what it holds, so the order across calls is safe.
        if not self._pg:
            return
        calls: list[str] = []
        values: dict[str, int] = {}
        for name, exclusive in wanted:
            held = self._locks.get(name)
            if held is not None and (held or not exclusive):
                continue
            self._locks[name] = exclusive
            function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            calls.append(f"{function}(:k{len(calls)})")
            values[f"k{len(values)}"] = _lock_key(name)
        if calls:
            self._conn.execute(text(f"SELECT {', '.join(calls)}"), values)

    # -- reads -------------------------------------------------------------------------
    def current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The current row of a resource (deleted ones included), or None."""
        row = self._conn.execute(
            _SELECT_CURRENT, {"q_type": resource_type, "q_id": resource_id}
        ).first()
        if row is None:
            return None
        return current_version(row)

    def current_many(self, resource_type: str, ids: Sequence[str]) -> dict[str, StoredVersion]:
        """current() of many resources of one type at once, by id (absent ones left out)."""
        if not ids:
            return {}
        query = select(*CURRENT_COLS).where(
            R.resource_type == resource_type, R.id.in_(sorted(set(ids)))
        )
        return {r[1]: current_version(r) for r in self._conn.execute(query)}

    def version(
        self, resource_type: str, resource_id: str, version_id: int
    ) -> StoredVersion | None:
        """One historical version, or None."""
        row = self._conn.execute(
            _SELECT_VERSION, {"q_type": resource_type, "q_id": resource_id, "q_version": version_id}
        ).first()
        return None if row is None else _version_from_row(row)

    def find_ids(
        self, resource_type: str, conditions: Sequence[ColumnElement[bool]], limit: int
    ) -> list[str]:
        """Ids of live resources of a type matching all conditions (for conditional writes)."""
        self.flush_appends()
        query = (
            select(R.id)
            .where(
                R.resource_type == resource_type,
                R.deleted.is_(False),
                *conditions,
                *self._visible(R.resource_type, R.id),
            )
            .order_by(R.id)
            .limit(limit)
        )
        return [row[0] for row in self._conn.execute(query, self._access)]

    def search(
        self,
        resource_type: str | None,
        conditions: Sequence[ColumnElement[bool]],
        *,
        order_by: Sequence[ColumnElement[Any]],
        keys: Sequence[ColumnElement[Any]],
        limit: int,
    ) -> list[tuple[StoredVersion, list[Any]]]:
        """Current versions of live resources matching all conditions, in the given order,
        each with the values of ``keys`` (a paging cursor is made of them). A None type
        searches every type (the conditions say which)."""
        query = (
            select(*CURRENT_COLS, *keys)
            .where(
                *_of_type(resource_type),
                R.deleted.is_(False),
                *conditions,
                *self._visible(R.resource_type, R.id),
            )
            .order_by(*order_by)
            .limit(limit)
        )
        return [(current_version(r), list(r[6:])) for r in self._conn.execute(query, self._access)]

    def search_driven(
        self,
        resource_type: str,
        driver: Select[Any],
        conditions: Sequence[ColumnElement[Any]],
        *,
        after_id: str | None,
        descending: bool,
        limit: int,
    ) -> list[tuple[StoredVersion, list[Any]]]:
        """Like search, in id order, for a search driven by index rows (``driver`` selects
        the resource ids of its matching rows, which exist only for live resources of the
        type): the page's ids walk those rows in id order and stop after ``limit`` matches,
        and the page's bodies are joined to them, in one statement.

        With ``id IN (driver)`` PostgreSQL hashes every candidate and sorts the matches
        (an agency's 3,000 Tasks for a page of 20); here the index order is the page order.
        The driver is a subquery (the databases merge it into the join) so that the other
        conditions' probes, which may read the same index table, correlate to the resource
        row alone. One statement, not ids then bodies: a search page is then a single read
        with no transaction round trips of its own (SearchService), and the bodies are
        those of the ids that passed the access rule, read in the same snapshot.
        """
        rows = driver.subquery("driver")
        id_col = rows.c[0]
        ids_query = (
            select(id_col.label("page_id"))
            .select_from(
                rows.join(resource_table, and_(R.resource_type == resource_type, R.id == id_col))
            )
            .where(*conditions, *self._visible(R.resource_type, R.id))
            .distinct()
            .order_by(id_col.desc() if descending else id_col.asc())
            .limit(limit)
        )
        if after_id is not None:
            ids_query = ids_query.where(id_col < after_id if descending else id_col > after_id)
        page = ids_query.subquery("page")
        page_id = page.c.page_id
        rows_from = page.join(
            resource_table, and_(R.resource_type == resource_type, R.id == page_id)
        )
        order = page_id.desc() if descending else page_id.asc()
        columns: list[Any] = list(CURRENT_COLS)
        if self.scope is not None:
            # An agency's page: the owner rows come along for the disclosure log.
            columns += [_OWN.resource_id, _OWN.agency, _OWN.sensitive]
            rows_from = rows_from.outerjoin(
                resource_owner_table,
                and_(_OWN.resource_type == R.resource_type, _OWN.resource_id == R.id),
            )
        query = select(*columns).select_from(rows_from).where(R.deleted.is_(False))
        result = self._conn.execute(query.order_by(order), self._access)
        if self.scope is None:
            return [(current_version(r), [r[1]]) for r in result]
        return [
            (
                current_version(
                    r, owner=(r[7], bool(r[8])) if r[6] is not None else None, owner_read=True
                ),
                [r[1]],
            )
            for r in result
        ]

    def live(self, resource_type: str, ids: Sequence[str]) -> list[StoredVersion]:
        """The current versions of those of ids that are live resources of the type."""
        if not ids:
            return []
        query = select(*CURRENT_COLS).where(
            R.resource_type == resource_type,
            R.deleted.is_(False),
            R.id.in_(sorted(set(ids))),
            *self._visible(R.resource_type, R.id),
        )
        return [current_version(r) for r in self._conn.execute(query, self._access)]

    def referenced(
        self,
        source_type: str,
        source_ids: Sequence[str],
        params: Sequence[str] | None,
        target_type: str | None,
        limit: int,
    ) -> list[tuple[str, str]]:
        """(type, id) of local resources the sources refer to through the parameters
        (all reference parameters when params is None): _include. Under a scope, only
        targets its agency may see (they fill the limit instead of hidden ones)."""
        c = reference_table.c
        query = select(c.target_type, c.target_id).where(
            c.resource_type == source_type,
            c.resource_id.in_(sorted(set(source_ids))),
            c.target_id.is_not(None),
            *self._visible(c.target_type, c.target_id),
        )
        if params is not None:
            query = query.where(c.param.in_(params))
        if target_type is not None:
            query = query.where(c.target_type == target_type)
        rows = self._conn.execute(query.distinct().limit(limit), self._access)
        return [(row[0], row[1]) for row in rows]

    def referencing(
        self,
        source_type: str,
        params: Sequence[str] | None,
        target_type: str,
        target_ids: Sequence[str],
        limit: int,
    ) -> list[str]:
        """Ids of resources of source_type that refer to any of the targets: _revinclude.
        Under a scope, only sources its agency may see: a hidden one would count against
        the limit and tell that it exists."""
        c = reference_table.c
        query = select(c.resource_id).where(
            c.resource_type == source_type,
            c.target_type == target_type,
            c.target_id.in_(sorted(set(target_ids))),
            *self._visible(c.resource_type, c.resource_id),
        )
        if params is not None:
            query = query.where(c.param.in_(params))
        rows = self._conn.execute(query.distinct().limit(limit), self._access)
        return [row[0] for row in rows]

    def count(
        self,
        resource_type: str | None,
        conditions: Sequence[ColumnElement[bool]],
        *,
        at_most: int | None = None,
    ) -> int:
        """How many live resources of a type (None: any type) match all conditions; with
        at_most, counting stops after at_most + 1 (the cost stays bounded)."""
        where = (
            *_of_type(resource_type),
            R.deleted.is_(False),
            *conditions,
            *self._visible(R.resource_type, R.id),
        )
        if at_most is None:
            query = select(func.count()).select_from(resource_table).where(*where)
        else:
            bounded = select(R.id).where(*where).limit(at_most + 1).subquery()
            query = select(func.count()).select_from(bounded)
        return int(self._conn.execute(query, self._access).scalar_one())

    def count_rows(self, rows: Select[Any], key: tuple[Any, Any] | None, *, at_most: int) -> int:
        """How many of the rows a select lists, up to at_most + 1, counting only those
        whose (type, id) key the scope may see (the candidates of a search's driver)."""
        visible = self._visible(*key) if key is not None else ()
        bounded = rows.where(*visible).limit(at_most + 1).subquery()
        return int(
            self._conn.execute(select(func.count()).select_from(bounded), self._access).scalar_one()
        )

    def history(
        self,
        *,
        resource_type: str | None,
        resource_id: str | None,
        since: datetime | None,
        at: datetime | None,
        after: HistoryCursor | None,
        limit: int,
    ) -> list[StoredVersion]:
        """Versions newest first (spec http.html#history), keyset-paged so pages stay stable."""
        query: Select[Any] = select(
            V.resource_type, V.id, V.version_id, V.last_updated, V.body, V.method
        )
        if resource_type is not None:
            query = query.where(V.resource_type == resource_type)
        if resource_id is not None:
            query = query.where(V.id == resource_id)
        query = query.where(*self._visible(V.resource_type, V.id))
        if since is not None:
            query = query.where(V.last_updated >= since)
        if at is not None:
            query = query.where(V.last_updated <= at)
        if after is not None:
            query = query.where(
                or_(
                    V.last_updated < after.last_updated,
                    and_(
                        V.last_updated == after.last_updated,
                        or_(
                            V.resource_type < after.resource_type,
                            and_(
                                V.resource_type == after.resource_type,
                                or_(
                                    V.id < after.id,
                                    and_(V.id == after.id, V.version_id < after.version_id),
                                ),
                            ),
                        ),
                    ),
                )
            )
        query = query.order_by(
            V.last_updated.desc(), V.resource_type.desc(), V.id.desc(), V.version_id.desc()
        ).limit(limit)
        return [_version_from_row(row) for row in self._conn.execute(query, self._access)]

    def count_history(
        self, *, resource_type: str | None, resource_id: str | None, since: datetime | None
    ) -> int:
        """How many versions a history listing holds in all."""
        query = select(func.count()).select_from(version_table)
        query = query.where(*self._visible(V.resource_type, V.id))
        if resource_type is not None:
            query = query.where(V.resource_type == resource_type)
        if resource_id is not None:
            query = query.where(V.id == resource_id)
        if since is not None:
            query = query.where(V.last_updated >= since)
        return int(self._conn.execute(query, self._access).scalar_one())

    # -- writes ------------------------------------------------------------------------
    def write_version(self, *, version: StoredVersion, exists: bool, index: IndexRows) -> None:
        """Write a new current version, its history row and its index rows together.

        A deletion passes empty index rows: only live resources have index rows.
        """
        if not exists and version.body is not None:
            # The rows of a new resource go to the driver positional, as the bulk loader's
            # do: no statement is compiled or parameter dict built per write.
            self.insert_new_rows(
                new_rows(
                    version.resource_type,
                    version.id,
                    version.version_id,
                    version.last_updated,
                    version.method,
                    version.body,
                    index,
                )
            )
            return
        key = {"q_type": version.resource_type, "q_id": version.id}
        if exists:
            self._conn.execute(
                _UPDATE_RESOURCE,
                {
                    **key,
                    "n_version": version.version_id,
                    "n_updated": version.last_updated,
                    "n_deleted": version.deleted,
                    "n_body": version.body,
                },
            )
            for statement in _DELETE_INDEX:
                self._conn.execute(statement, key)
        else:
            self._conn.execute(_INSERT_RESOURCE, _resource_parameters(version))
        self.insert_rows(version_table, [_version_row(version)])
        rows = index_row_lists(version.resource_type, version.id, index)
        for table, table_rows in zip(index_tables, rows, strict=True):
            self.insert_rows(table, table_rows)

    def insert_new_rows(self, rows: NewRows) -> None:
        """Insert new resources given as positional rows (app/storage/rows.py), the rows of
        many resources concatenated per table of NEW_TABLES (bulk loading and import)."""
        for table, table_rows in zip(NEW_TABLES, rows, strict=True):
            self.insert_rows(table, table_rows)

    def replace_index(self, resource_type: str, resource_id: str, index: IndexRows) -> None:
        """Replace the index rows of a resource (reindexing after a registry change)."""
        key = {"q_type": resource_type, "q_id": resource_id}
        for statement in _DELETE_INDEX:
            self._conn.execute(statement, key)
        into: dict[str, list[dict[str, Any]]] = {table.name: [] for table in index_tables}
        index_parameters(resource_type, resource_id, index, into)
        self._execute_index(into)

    def live_ids(
        self, resource_type: str, *, after_id: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """(id, body) of live resources of a type in id order, from after_id (reindexing)."""
        query = select(R.id, R.body).where(R.resource_type == resource_type, R.deleted.is_(False))
        if after_id is not None:
            query = query.where(R.id > after_id)
        rows = self._conn.execute(query.order_by(R.id).limit(limit))
        return [(row[0], row[1]) for row in rows]

    def _execute_index(self, into: dict[str, list[dict[str, Any]]]) -> None:
        for name, parameters in into.items():
            if parameters:
                self._conn.execute(_INSERT_INDEX[name], parameters)


_OWN = resource_owner_table.c


@lru_cache(maxsize=8)
def _current_checked(shared_types: tuple[str, ...]) -> Select[Any]:
    """The current row of (q_type, q_id) with its owner row's agency and label and whether
    (v_type, v_id), the same resource, passes the access rule: a point read in one
    round trip."""
    key = (_OWN.resource_type == R.resource_type, _OWN.resource_id == R.id)
    agency = select(_OWN.agency).where(*key).limit(1).scalar_subquery()
    sensitive = select(_OWN.sensitive).where(*key).limit(1).scalar_subquery()
    rule = visible_clause(
        bindparam("v_type", type_=String()), bindparam("v_id", type_=String()), shared_types
    )
    visible = case((rule, literal_column("1")), else_=literal_column("0"))
    return select(*CURRENT_COLS, agency, sensitive, visible).where(
        R.resource_type == bindparam("q_type"), R.id == bindparam("q_id")
    )


@lru_cache(maxsize=8)
def _visible_one(shared_types: tuple[str, ...]) -> Select[Any]:
    """SELECT 1 when the resource (v_type, v_id) passes the access rule."""
    return select(literal_column("1")).where(
        visible_clause(
            bindparam("v_type", type_=String()), bindparam("v_id", type_=String()), shared_types
        )
    )


def _resource_parameters(version: StoredVersion) -> dict[str, Any]:
    return {
        "resource_type": version.resource_type,
        "id": version.id,
        "version_id": version.version_id,
        "last_updated": version.last_updated,
        "deleted": version.deleted,
        "body": version.body,
    }


def _version_row(version: StoredVersion) -> Row:
    return (
        version.resource_type,
        version.id,
        version.version_id,
        version.last_updated,
        version.method,
        version.body,
    )


def _of_type(resource_type: str | None) -> tuple[ColumnElement[bool], ...]:
    return () if resource_type is None else (R.resource_type == resource_type,)


def _version_from_row(row: Sequence[Any]) -> StoredVersion:
    return StoredVersion(
        resource_type=row[0],
        id=row[1],
        version_id=row[2],
        last_updated=row[3],
        deleted=row[4] is None,
        body=row[4],
        method=row[5],
    )


# Connection problems, resources exhausted, server shutting down, lock wait timed out,
# serialization failure, deadlock.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "55P03", "40001", "40P01")


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_TRANSIENT_SQLSTATES)


@contextmanager
def unit_of_work(
    engine: Engine,
    *,
    write: bool,
    snapshot: bool = False,
    single_read: bool = False,
    scope: AccessScope | None = None,
) -> Iterator[Repository]:
    """One database transaction; commits on success, rolls back on any exception.

    Driver failures that a retry could cure surface as StorageUnavailable.
    """
    gate = write_gate(engine) if write else None
    try:
        # The connection is checked out before the gate: pool work stays out of the section
        # every writer of every process waits for.
        with engine.connect() as conn, gate.held() if gate else nullcontext():
            # One execution_options call: each costs several microseconds per request.
            options: dict[str, Any] = {}
            if conn.dialect.name == "sqlite":
                options[READ_ONLY] = not write
                if write:
                    options["sqlite_begin"] = "IMMEDIATE"
                elif single_read:
                    # One SELECT needs no BEGIN/COMMIT round trips of its own.
                    options["sqlite_begin"] = None
            elif single_read:
                options["isolation_level"] = "AUTOCOMMIT"
            elif snapshot:
                # Several statements that must agree (a page and its total).
                options["isolation_level"] = "REPEATABLE READ"
            if options:
                conn = conn.execution_options(**options)
            with conn.begin():
                repo = Repository(conn, scope, writable=write)
                yield repo
                repo.run_deferred()
                repo.flush_appends()
    except DBAPIError as exc:
        if _is_transient(exc):
            # Which statement failed, how, and in which kind of transaction: a busy error
            # that skipped the busy handler is told apart from a wait past the timeout.
            log.warning(
                "database unavailable: %s (%s) in a %s transaction, statement: %s",
                exc.orig,
                getattr(exc.orig, "sqlite_errorname", None) or getattr(exc.orig, "sqlstate", None),
                "write" if write else "single-read" if single_read else "read",
                (exc.statement or "")[:300],
            )
            raise StorageUnavailable(str(exc.orig) if exc.orig else str(exc)) from exc
        raise
    except PoolTimeoutError as exc:
        raise StorageUnavailable("no database connection became free in time") from exc
    except TimeoutError as exc:
        raise StorageUnavailable(str(exc)) from exc


__all__ = [
    "HistoryCursor",
    "Repository",
    "StoredVersion",
    "index_parameters",
    "unit_of_work",
]
