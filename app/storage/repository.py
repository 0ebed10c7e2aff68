"""One Repository over one Unit of Work: every write of a request is one DB transaction.

Hot paths use SQLAlchemy Core statements (the ORM costs 6-14x more per row here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
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
    union,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.records import StoredVersion
from app.storage.access import AccessScope, visible_clause
from app.storage.audit import AuditRow, audit_row
from app.storage.db import write_gate
from app.storage.errors import StorageUnavailable
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
    access_grant_table,
    audit_event_table,
    consent_grant_table,
    disclosure_table,
    index_tables,
    reference_table,
    resource_owner_table,
    resource_table,
    version_table,
)
from app.storage.types import JSONBody

R = resource_table.c
V = version_table.c


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """Keyset position in a history listing (newest first): strictly older than this."""

    last_updated: datetime
    resource_type: str
    id: str
    version_id: int


_CURRENT_COLS = (R.resource_type, R.id, R.version_id, R.last_updated, R.deleted, R.body)


def _current_version(row: Sequence[Any], **owner: Any) -> StoredVersion:
    """A StoredVersion from a row that starts with _CURRENT_COLS."""
    return StoredVersion(row[0], row[1], row[2], row[3], row[4], row[5], **owner)


# Statements are built once: building and cache-keying a statement per call cost more
# than executing it on SQLite.
_SELECT_CURRENT = select(*_CURRENT_COLS).where(
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
_GRANT_COLUMNS = row_columns(access_grant_table)
# The longest IN list a lookup sends; longer ones are paged or become one scan.
_IN_LIST_MAX = 500


def index_parameters(
    resource_type: str, resource_id: str, rows: IndexRows, into: dict[str, list[dict[str, Any]]]
) -> None:
    """Append the insert parameters of one resource's index rows, by table name."""
    lists_by_table = index_row_lists(resource_type, resource_id, rows)
    for table, lists in zip(index_tables, lists_by_table, strict=True):
        if lists:
            columns = _INDEX_COLUMNS[table.name]
            into[table.name].extend(dict(zip(columns, row, strict=True)) for row in lists)


@dataclass(frozen=True, slots=True)
class _RowInsert:
    """How positional rows of one table reach one engine's driver (Repository.insert_rows)."""

    statement: str
    # (position, conversion) for the columns the driver does not take as they are.
    conversions: tuple[tuple[int, Any], ...]
    # PostgreSQL: a plain INSERT for a few rows (statement is a COPY there).
    insert: str = ""


# Up to this many rows, PostgreSQL gets INSERTs rather than a COPY.
_FEW_ROWS = 16


@cache
def _row_insert(table: Table, dialect: Any) -> _RowInsert:
    columns = row_columns(table)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    if dialect.name == "postgresql":
        # COPY's text format would write bytes as bytea: a JSON body goes as text.
        return _RowInsert(
            f"COPY {quote(table.name)} ({names}) FROM STDIN",
            tuple(
                (position, bytes.decode)
                for position, name in enumerate(columns)
                if isinstance(table.c[name].type, JSONBody)
            ),
            f"INSERT INTO {quote(table.name)} ({names}) "
            f"VALUES ({', '.join('%s' for _ in columns)})",
        )
    # The same conversions SQLAlchemy's own INSERT applies (UTC instants as text of one
    # shape, bodies as text), so bulk-loaded rows compare like any others.
    # The dialect's implementation of each type: a plain DateTime binds through SQLite's
    # own processor (microseconds always written), as SQLAlchemy's INSERT does.
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    marks = ", ".join("?" for _ in columns)
    return _RowInsert(
        f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})",
        tuple((position, convert) for position, convert in enumerate(processors) if convert),
    )


def _lock_key(name: str) -> int:
    # pg_advisory_xact_lock takes a signed 64-bit key.
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


class Repository:
    """Reads and writes resources on one connection inside one transaction."""

    def __init__(self, conn: Connection, scope: AccessScope | None = None) -> None:
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"
        # The agency access rule applied to every listing (None: the unconfined operator).
        # Point reads by key (current, version) stay unscoped: writes need the true state;
        # services check is_visible before they release what such a read returns.
        self.scope = scope
        # The values of the access rule's parameters, added to every statement it joins.
        self._access = scope.parameters() if scope is not None else {}
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
        other = Repository(self._conn, scope)
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

    def _visible(self, type_col: Any, id_col: Any) -> tuple[ColumnElement[bool], ...]:
        if self.scope is None:
            return ()
        return (self.scope.visible(type_col, id_col),)

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

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for the stores of other tables that must work in
        the same transaction (app/storage/auth.py, audit.py, outbox.py)."""
        return self._conn

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
        return _current_version(row, owner=owner, owner_read=True), bool(visible)

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
        return _current_version(row)

    def current_many(self, resource_type: str, ids: Sequence[str]) -> dict[str, StoredVersion]:
        """current() of many resources of one type at once, by id (absent ones left out)."""
        if not ids:
            return {}
        query = select(*_CURRENT_COLS).where(
            R.resource_type == resource_type, R.id.in_(sorted(set(ids)))
        )
        return {r[1]: _current_version(r) for r in self._conn.execute(query)}

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
            select(*_CURRENT_COLS, *keys)
            .where(
                *_of_type(resource_type),
                R.deleted.is_(False),
                *conditions,
                *self._visible(R.resource_type, R.id),
            )
            .order_by(*order_by)
            .limit(limit)
        )
        return [(_current_version(r), list(r[6:])) for r in self._conn.execute(query, self._access)]

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
        columns: list[Any] = list(_CURRENT_COLS)
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
            return [(_current_version(r), [r[1]]) for r in result]
        return [
            (
                _current_version(
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
        query = select(*_CURRENT_COLS).where(
            R.resource_type == resource_type,
            R.deleted.is_(False),
            R.id.in_(sorted(set(ids))),
            *self._visible(R.resource_type, R.id),
        )
        return [_current_version(r) for r in self._conn.execute(query, self._access)]

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
    def write_version(
        self,
        *,
        version: StoredVersion,
        exists: bool,
        index: IndexRows,
        previous: IndexRows | None = None,
    ) -> None:
        """Write a new current version, its history row and its index rows together.

        A deletion passes empty index rows: only live resources have index rows. previous:
        the index rows of the version replaced, when known; an index table whose rows are
        the same for both is left alone (no statement, no page touched), else every index
        table of the resource is rewritten.
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
        rows = index_row_lists(version.resource_type, version.id, index)
        before = (
            index_row_lists(version.resource_type, version.id, previous)
            if previous is not None
            else [None] * len(rows)
        )
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
        else:
            self._conn.execute(_INSERT_RESOURCE, _resource_parameters(version))
        self.insert_rows(version_table, [_version_row(version)])
        for table, statement, new, old in zip(
            index_tables, _DELETE_INDEX, rows, before, strict=True
        ):
            if old is not None and old == new:
                continue
            if exists and (old is None or old):
                self._conn.execute(statement, key)
            self.insert_rows(table, new)

    def insert_new_rows(self, rows: NewRows) -> None:
        """Insert new resources given as positional rows (app/storage/rows.py), the rows of
        many resources concatenated per table of NEW_TABLES (bulk loading and import)."""
        for table, table_rows in zip(NEW_TABLES, rows, strict=True):
            self.insert_rows(table, table_rows)

    def insert_rows(self, table: Table, rows: Sequence[Row]) -> None:
        """Insert rows positional in row_columns(table) order, handed to the driver as they
        are: one COPY on PostgreSQL (psycopg's executemany sends one INSERT per row, about
        30 us each), one executemany of a fixed statement on SQLite. SQLAlchemy's own
        executemany builds and converts a parameter dict per row, which cost the bulk
        loader more than the database's work."""
        if not rows:
            return
        how = _row_insert(table, self._conn.dialect)
        if how.conversions:
            converted: list[Row] = []
            for row in rows:
                values = list(row)
                for position, convert in how.conversions:
                    if values[position] is not None:
                        values[position] = convert(values[position])
                converted.append(tuple(values))
            rows = converted
        if not self._pg:
            self._conn.exec_driver_sql(how.statement, list(rows))
            return
        if len(rows) <= _FEW_ROWS:
            # COPY costs a round trip more than an INSERT: worth it for many rows only.
            self._conn.exec_driver_sql(how.insert, list(rows))
            return
        import psycopg  # only the PostgreSQL engine reaches this

        driver = self._conn.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor, cursor.copy(how.statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            # The driver was called directly: raise what SQLAlchemy would have (an
            # IntegrityError for a duplicate key), so callers handle it the same way.
            raise DBAPIError.instance(how.statement, None, exc, psycopg.Error) from exc

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

    # -- access (owners, referral shares, consents, disclosures) -------------------------
    def owner(self, resource_type: str, resource_id: str) -> tuple[str | None, bool] | None:
        """(agency, sensitive) of a resource's owner row, or None when it has none."""
        row = self._conn.execute(
            _SELECT_OWNER, {"o_type": resource_type, "o_id": resource_id}
        ).first()
        return None if row is None else (row[0], bool(row[1]))

    def owners(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str | None, bool]]:
        """Owner rows of many resources at once: (type, id) -> (agency, sensitive)."""
        found: dict[tuple[str, str], tuple[str | None, bool]] = {}
        by_type: dict[str, set[str]] = {}
        for resource_type, resource_id in keys:
            by_type.setdefault(resource_type, set()).add(resource_id)
        for resource_type, ids in by_type.items():
            rows = self._conn.execute(
                _SELECT_OWNERS, {"o_type": resource_type, "o_ids": sorted(ids)}
            )
            for row in rows:
                found[(resource_type, row[0])] = (row[1], bool(row[2]))
        return found

    def set_owner(
        self,
        resource_type: str,
        resource_id: str,
        agency: str | None,
        sensitive: bool,
        *,
        new: bool = False,
    ) -> None:
        """Create or replace a resource's owner row (new: the caller knows it has none)."""
        values = {"o_type": resource_type, "o_id": resource_id, "agency": agency}
        if not new:
            done = self._conn.execute(_UPDATE_OWNER, {**values, "sensitive": sensitive})
            if done.rowcount:
                return
        self.insert_rows(resource_owner_table, [(resource_type, resource_id, agency, sensitive)])

    def shared_with(self, agency: str, resource_type: str, resource_id: str) -> set[str]:
        """The bases ("referral", "client") on which referrals share a resource with agency."""
        g = access_grant_table.c
        rows = self._conn.execute(
            select(g.basis)
            .where(
                g.resource_type == resource_type,
                g.resource_id == resource_id,
                g.agency == agency,
            )
            .distinct()
        )
        return {row[0] for row in rows}

    def grant_patients(
        self, agency: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The client a referral shares each of these resources with agency for, where
        one does: (type, id) -> patient id, one query per type."""
        g = access_grant_table.c
        by_type: dict[str, set[str]] = {}
        for resource_type, resource_id in keys:
            by_type.setdefault(resource_type, set()).add(resource_id)
        found: dict[tuple[str, str], str] = {}
        for resource_type, ids in by_type.items():
            rows = self._conn.execute(
                select(g.resource_id, g.patient_id).where(
                    g.resource_type == resource_type,
                    g.resource_id.in_(sorted(ids)),
                    g.agency == agency,
                    g.patient_id.is_not(None),
                )
            )
            for row in rows:
                found.setdefault((resource_type, row[0]), str(row[1]))
        return found

    def replace_task_grants(self, grants: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Replace what referral Tasks share: task id -> rows (agency, resource_type,
        resource_id, basis, patient_id); a Task mapped to no rows shares nothing. One
        DELETE and one INSERT for them all."""
        if not grants:
            return
        g = access_grant_table.c
        self._conn.execute(delete(access_grant_table).where(g.task_id.in_(sorted(grants))))
        self.insert_rows(
            access_grant_table,
            [
                tuple({**row, "task_id": task_id}[name] for name in _GRANT_COLUMNS)
                for task_id, rows in grants.items()
                for row in rows
            ],
        )

    def referring_any(
        self, source_type: str, param: str, target_type: str, target_ids: Collection[str]
    ) -> set[str]:
        """Ids of live resources of source_type whose param refers to any of target_ids."""
        if not target_ids:
            return set()
        c = reference_table.c
        query = select(c.resource_id, c.target_id).where(
            c.resource_type == source_type, c.param == param, c.target_type == target_type
        )
        if len(target_ids) <= _IN_LIST_MAX:
            query = query.where(c.target_id.in_(sorted(target_ids)))
            return {row[0] for row in self._conn.execute(query)}
        # Many targets (after a bulk load): one pass over all such references. Pages of
        # IN lists each scanned them all when the planner had no statistics yet for the
        # freshly loaded rows (quadratic in the load's size).
        wanted = set(target_ids)
        return {row[0] for row in self._conn.execute(query) if row[1] in wanted}

    def replace_consent_grants(self, consent_id: str, grants: Sequence[Mapping[str, Any]]) -> None:
        """Replace what one Consent permits (rows: patient_id, agency, starts, ends,
        sensitive_ok)."""
        c = consent_grant_table.c
        self._conn.execute(delete(consent_grant_table).where(c.consent_id == consent_id))
        if grants:
            self._conn.execute(
                insert(consent_grant_table), [{**row, "consent_id": consent_id} for row in grants]
            )

    def consents_in_force(self, patient_id: str, *, scope: AccessScope | None = None) -> list[str]:
        """Ids of the client's consents in force for the scope's agency at its instant."""
        scope = scope or self.scope
        if scope is None:
            return []
        return sorted({row[0] for row in self._conn.execute(scope.consent_for(patient_id))})

    def insert_disclosures(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record releases of records to agencies other than their owners."""
        if rows:
            self._conn.execute(insert(disclosure_table), list(rows))

    def disclosures(
        self, patient_id: str, *, agency: str | None, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """A client's disclosures, oldest first, keyset-paged on the row id; with agency,
        only those it made (as owner) or received."""
        d = disclosure_table.c
        query = select(disclosure_table).where(d.patient_id == patient_id)
        if agency is not None:
            query = query.where(or_(d.agency == agency, d.owner_agency == agency))
        if after is not None:
            query = query.where(d.row_id > after)
        rows = self._conn.execute(query.order_by(d.row_id).limit(limit))
        return [dict(row._mapping) for row in rows]

    # -- compartments ($everything) ------------------------------------------------------
    def compartment_listing(
        self,
        *,
        owner_type: str,
        owner_id: str,
        links: Mapping[str, Sequence[str]],
        referenced_types: Sequence[str],
        types: Sequence[str] | None,
        since: datetime | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[tuple[StoredVersion, bool]]:
        """The live members of a compartment (spec compartmentdefinition.html) and the
        resources of ``referenced_types`` that members refer to, in (type, id) order, strictly
        after ``after``; each with True for a member, False for a referenced resource.

        ``links`` maps a resource type to the reference parameters that put it in the
        compartment; the owner itself is a member. Everything is read from the reference
        index (only live current versions have rows), never from bodies. ``types`` and
        ``since`` (last_updated >= since) filter members and referenced resources alike.
        """
        statement = _listing_statement(
            _links_key(links),
            referenced=bool(referenced_types),
            typed=types is not None,
            since=since is not None,
            after=after is not None,
            shared_types=self.scope.shared_types if self.scope is not None else None,
        )
        values: dict[str, Any] = {
            "c_owner_type": owner_type,
            "c_owner_id": owner_id,
            "c_limit": limit,
        }
        if referenced_types:
            values["c_referenced"] = sorted(referenced_types)
        if types is not None:
            values["c_types"] = sorted(types)
        if since is not None:
            values["c_since"] = since
        if after is not None:
            values["c_after_type"], values["c_after_id"] = after
        if self.scope is not None:
            statement = statement.where(*self._visible(R.resource_type, R.id))
        rows = self._conn.execute(statement, {**values, **self._access})
        return [(_current_version(r), r[6] == 0) for r in rows]

    def count_compartment(
        self,
        *,
        owner_type: str,
        owner_id: str,
        links: Mapping[str, Sequence[str]],
        types: Sequence[str] | None,
        since: datetime | None,
    ) -> int:
        """How many live members compartment_listing lists (referenced resources not counted)."""
        statement = _count_statement(
            _links_key(links), typed=types is not None, since=since is not None
        )
        values: dict[str, Any] = {"c_owner_type": owner_type, "c_owner_id": owner_id}
        if types is not None:
            values["c_types"] = sorted(types)
        if since is not None:
            values["c_since"] = since
        if self.scope is not None:
            statement = statement.where(*self._visible(R.resource_type, R.id))
        return int(self._conn.execute(statement, {**values, **self._access}).scalar_one())

    # -- bulk data export ($export) ------------------------------------------------------
    def export_page(
        self,
        resource_type: str,
        *,
        after_id: str | None,
        since: datetime | None,
        until: datetime,
        patient_params: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[str, bytes, int]]:
        """(id, body, version id) of live current versions of a type in id order, after
        after_id, last updated in [since, until]: one page of an export.

        With patient_params, only resources whose reference index rows of those parameters
        point at a live Patient (members of some patient's compartment).
        """
        query = select(R.id, R.body, R.version_id).where(
            R.resource_type == resource_type,
            R.deleted.is_(False),
            R.last_updated <= until,
            *self._visible(R.resource_type, R.id),
        )
        if after_id is not None:
            query = query.where(R.id > after_id)
        if since is not None:
            query = query.where(R.last_updated >= since)
        if patient_params is not None:
            ref = reference_table.c
            patient = resource_table.alias("patient")
            linked = (
                select(ref.row_id)
                .join_from(
                    reference_table,
                    patient,
                    and_(patient.c.resource_type == "Patient", patient.c.id == ref.target_id),
                )
                .where(
                    ref.resource_type == resource_type,
                    ref.resource_id == R.id,
                    ref.param.in_(sorted(patient_params)),
                    ref.target_type == "Patient",
                    patient.c.deleted.is_(False),
                    # A patient the caller may not see does not make a resource a patient's:
                    # else the export would tell which patients exist.
                    *self._visible(patient.c.resource_type, patient.c.id),
                )
            )
            query = query.where(linked.exists())
        rows = self._conn.execute(query.order_by(R.id).limit(limit), self._access)
        return [(row[0], row[1], row[2]) for row in rows]

    @staticmethod
    def _export_jobs() -> Any:
        from app.storage.tables import export_job_table

        return export_job_table

    def insert_export_job(self, values: Mapping[str, Any]) -> None:
        """Record a new export job."""
        self._conn.execute(insert(self._export_jobs()), dict(values))

    def export_job(self, job_id: str) -> dict[str, Any] | None:
        """An export job's row as a mapping of column name to value, or None."""
        jobs = self._export_jobs()
        row = self._conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else dict(row._mapping)

    def update_export_job(
        self, job_id: str, *, statuses: Sequence[str], values: Mapping[str, Any]
    ) -> bool:
        """Change a job that is in one of statuses; False when it is not (gone, or moved on)."""
        jobs = self._export_jobs()
        result = self._conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(list(statuses)))
            .values(**values)
        )
        return bool(result.rowcount)

    def touch_export_jobs(
        self, job_ids: Sequence[str], *, statuses: Sequence[str], at: datetime
    ) -> None:
        """Set updated_at of those jobs still in one of statuses (a liveness heartbeat)."""
        if not job_ids:
            return
        jobs = self._export_jobs()
        self._conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(sorted(job_ids)), jobs.c.status.in_(list(statuses)))
            .values(updated_at=at)
        )

    def delete_export_jobs(self, job_ids: Sequence[str]) -> int:
        """Remove jobs; how many there were."""
        if not job_ids:
            return 0
        jobs = self._export_jobs()
        result = self._conn.execute(delete(jobs).where(jobs.c.id.in_(sorted(job_ids))))
        return int(result.rowcount)

    def expired_export_jobs(self, now: datetime, limit: int) -> list[str]:
        """Ids of jobs whose files expired at or before now."""
        jobs = self._export_jobs()
        query = select(jobs.c.id).where(jobs.c.expires_at <= now).order_by(jobs.c.id).limit(limit)
        return [row[0] for row in self._conn.execute(query)]

    def stale_export_jobs(self, *, statuses: Sequence[str], before: datetime) -> list[str]:
        """Ids of jobs in one of statuses that nothing has touched since before."""
        jobs = self._export_jobs()
        query = select(jobs.c.id).where(
            jobs.c.status.in_(list(statuses)), jobs.c.updated_at < before
        )
        return [row[0] for row in self._conn.execute(query.order_by(jobs.c.id))]


# Compartment statements are built once per shape, values bound at execution: building the
# many-branch OR of the patient compartment cost ten times more than running it.
LinksKey = tuple[tuple[str, tuple[str, ...]], ...]


_OWN = resource_owner_table.c
_SELECT_OWNER = select(_OWN.agency, _OWN.sensitive).where(
    _OWN.resource_type == bindparam("o_type"), _OWN.resource_id == bindparam("o_id")
)
_UPDATE_OWNER = (
    update(resource_owner_table)
    .where(_OWN.resource_type == bindparam("o_type"), _OWN.resource_id == bindparam("o_id"))
    .values(agency=bindparam("agency"), sensitive=bindparam("sensitive"))
)
_SELECT_OWNERS = select(_OWN.resource_id, _OWN.agency, _OWN.sensitive).where(
    _OWN.resource_type == bindparam("o_type", type_=String()),
    _OWN.resource_id.in_(bindparam("o_ids", expanding=True)),
)


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
    return select(*_CURRENT_COLS, agency, sensitive, visible).where(
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


def _links_key(links: Mapping[str, Sequence[str]]) -> LinksKey:
    return tuple(sorted((t, tuple(sorted(set(p)))) for t, p in links.items() if p))


def _compartment_members(links: LinksKey) -> Any:
    """(resource_type, resource_id) of the owner and of every resource whose link parameters
    refer to it: one lookup on the reference index's target index per linked type."""
    c = reference_table.c
    owner_type = bindparam("c_owner_type", type_=String())
    owner_id = bindparam("c_owner_id", type_=String())
    owner = select(R.resource_type, R.id.label("resource_id")).where(
        R.resource_type == owner_type, R.id == owner_id
    )
    if not links:
        return owner.cte("members")
    branches = [
        and_(
            c.resource_type == resource_type,
            c.param.in_(params),
            c.target_id == owner_id,
            c.target_type == owner_type,
        )
        for resource_type, params in links
    ]
    linked = select(c.resource_type, c.resource_id).where(or_(*branches))
    return union(owner, linked).cte("members")


def _listing_filters(*, typed: bool, since: bool) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [R.deleted.is_(False)]
    if typed:
        filters.append(R.resource_type.in_(bindparam("c_types", expanding=True)))
    if since:
        filters.append(R.last_updated >= bindparam("c_since"))
    return filters


@lru_cache(maxsize=64)
def _listing_statement(
    links: LinksKey,
    *,
    referenced: bool,
    typed: bool,
    since: bool,
    after: bool,
    shared_types: tuple[str, ...] | None = None,
) -> Select[Any]:
    """The compartment listing; with shared_types (an agency's scope), references are
    followed only from members the agency may see: what a hidden member refers to would
    tell of it."""
    members = _compartment_members(links)
    listed: list[Select[Any]] = [
        select(members.c.resource_type, members.c.resource_id, literal_column("0").label("kind"))
    ]
    if referenced:
        ref = reference_table.alias("ref")
        listed.append(
            select(ref.c.target_type, ref.c.target_id, literal_column("1"))
            .join_from(
                members,
                ref,
                and_(
                    ref.c.resource_type == members.c.resource_type,
                    ref.c.resource_id == members.c.resource_id,
                ),
            )
            .where(
                ref.c.target_type.in_(bindparam("c_referenced", expanding=True)),
                ref.c.target_id.is_not(None),
                *(
                    (visible_clause(members.c.resource_type, members.c.resource_id, shared_types),)
                    if shared_types is not None
                    else ()
                ),
            )
        )
    both = union_all(*listed).subquery("listed")
    kinds = (
        select(both.c.resource_type, both.c.resource_id, func.min(both.c.kind).label("kind"))
        .group_by(both.c.resource_type, both.c.resource_id)
        .subquery("everything")
    )
    query = (
        select(*_CURRENT_COLS, kinds.c.kind)
        .join_from(
            kinds,
            resource_table,
            and_(R.resource_type == kinds.c.resource_type, R.id == kinds.c.resource_id),
        )
        .where(*_listing_filters(typed=typed, since=since))
    )
    if after:
        after_type = bindparam("c_after_type", type_=String())
        after_id = bindparam("c_after_id", type_=String())
        query = query.where(
            or_(R.resource_type > after_type, and_(R.resource_type == after_type, R.id > after_id))
        )
    return query.order_by(R.resource_type, R.id).limit(bindparam("c_limit"))


@lru_cache(maxsize=64)
def _count_statement(links: LinksKey, *, typed: bool, since: bool) -> Select[Any]:
    members = _compartment_members(links)
    return (
        select(func.count())
        .select_from(members)
        .join(
            resource_table,
            and_(R.resource_type == members.c.resource_type, R.id == members.c.resource_id),
        )
        .where(*_listing_filters(typed=typed, since=since))
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
            sqlite = conn.dialect.name == "sqlite"
            if write and sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            elif single_read:
                # One SELECT needs no BEGIN/COMMIT round trips of its own.
                if sqlite:
                    conn = conn.execution_options(sqlite_begin=None)
                else:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            elif snapshot and not sqlite:
                # Several statements that must agree (a page and its total).
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                repo = Repository(conn, scope)
                yield repo
                repo.run_deferred()
                repo.flush_appends()
    except DBAPIError as exc:
        if _is_transient(exc):
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
