"""The connection every part of the repository works on, and positional row inserts.

Repository (app/storage/repository.py) is one object per transaction; its sections live in
their own modules (access_rows.py, compartment_rows.py, export_rows.py) as classes over
this base, so each reads top to bottom and all share the one connection and access scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from app.records import StoredVersion
from app.storage.access import AccessScope
from app.storage.rows import Row, row_columns
from app.storage.tables import resource_table
from app.storage.types import JSONBody

# The longest IN list a lookup sends; longer ones are paged or become one scan.
IN_LIST_MAX = 500

R = resource_table.c
# The columns a current version is read from, in current_version's order.
CURRENT_COLS = (R.resource_type, R.id, R.version_id, R.last_updated, R.deleted, R.body)


def current_version(row: Sequence[Any], **owner: Any) -> StoredVersion:
    """A StoredVersion from a row that starts with CURRENT_COLS."""
    return StoredVersion(row[0], row[1], row[2], row[3], row[4], row[5], **owner)


class OnConnection:
    """One connection inside one transaction, and the agency access rule of its listings."""

    def __init__(self, conn: Connection, scope: AccessScope | None = None) -> None:
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"
        # The agency access rule applied to every listing (None: the unconfined operator).
        # Point reads by key (current, version) stay unscoped: writes need the true state;
        # services check is_visible before they release what such a read returns.
        self.scope = scope
        # The values of the access rule's parameters, added to every statement it joins.
        self._access = scope.parameters() if scope is not None else {}

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for the stores of other tables that must work in
        the same transaction (app/storage/auth.py, audit.py, outbox.py)."""
        return self._conn

    def _visible(self, type_col: Any, id_col: Any) -> tuple[ColumnElement[bool], ...]:
        if self.scope is None:
            return ()
        return (self.scope.visible(type_col, id_col),)

    def insert_rows(self, table: Table, rows: Sequence[Row]) -> None:
        """Insert rows positional in row_columns(table) order, handed to the driver as they
        are: one COPY on PostgreSQL (psycopg's executemany sends one INSERT per row, about
        30 us each), one executemany of a fixed statement on SQLite. SQLAlchemy's own
        executemany builds and converts a parameter dict per row, which cost the bulk
        loader more than the database's work."""
        if not rows:
            return
        how = row_insert(table, self._conn.dialect)
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


@dataclass(frozen=True, slots=True)
class RowInsert:
    """How positional rows of one table reach one engine's driver (Repository.insert_rows)."""

    statement: str
    # (position, conversion) for the columns the driver does not take as they are.
    conversions: tuple[tuple[int, Any], ...]
    # PostgreSQL: a plain INSERT for a few rows (statement is a COPY there).
    insert: str = ""


# Up to this many rows, PostgreSQL gets INSERTs rather than a COPY.
_FEW_ROWS = 16


@cache
def row_insert(table: Table, dialect: Any) -> RowInsert:
    columns = row_columns(table)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    if dialect.name == "postgresql":
        # COPY's text format would write bytes as bytea: a JSON body goes as text.
        return RowInsert(
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
    return RowInsert(
        f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})",
        tuple((position, convert) for position, convert in enumerate(processors) if convert),
    )


__all__ = ["CURRENT_COLS", "IN_LIST_MAX", "OnConnection", "current_version"]
