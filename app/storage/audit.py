"""The audit_event table: append rows, read one, filter and page (keyset, newest first).

Rows are never updated; they are deleted only by the retention archive (`casebridge audit
archive`), once they are safely in its files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select
from sqlalchemy.engine import Connection

from app.storage.base import IN_LIST_MAX
from app.storage.tables import audit_event_table

A = audit_event_table.c
_INSERT = insert(audit_event_table)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit_event row as written."""

    id: str
    recorded: datetime
    agency: str | None
    client_id: str | None
    patient: str | None
    subtype: str
    action: str
    outcome: str
    entity_type: str | None
    entity_id: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Conditions of an AuditEvent search; each list is OR within, AND across fields.

    ``recorded`` holds (operator, instant) pairs with operator one of >=, >, <=, <.
    ``agents`` match the agency column or, for values that are no reference, the client id.
    """

    agencies: Sequence[str] = ()
    clients: Sequence[str] = ()
    patients: Sequence[str] = ()
    entities: Sequence[tuple[str, str | None]] = ()
    subtypes: Sequence[str] = ()
    actions: Sequence[str] = ()
    outcomes: Sequence[str] = ()
    recorded: Sequence[tuple[str, datetime]] = field(default_factory=tuple)
    # The agency whose events alone may be seen (None: all, for the local operator).
    visible_to: str | None = None


class AuditStore:
    """The audit_event table on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, rows: Sequence[AuditRow]) -> None:
        """Insert rows, many in one statement."""
        if rows:
            self._conn.execute(_INSERT, [_parameters(row) for row in rows])

    def get(self, event_id: str) -> tuple[datetime, bytes, str | None] | None:
        """(recorded, body, agency) of one AuditEvent, or None."""
        row = self._conn.execute(
            select(A.recorded, A.body, A.agency).where(A.id == event_id)
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    def find(
        self, where: AuditFilter, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[str, datetime, bytes]]:
        """(id, recorded, body) of matching events, newest first, strictly after the
        keyset position ``after`` (recorded, id) of the previous page's last row."""
        conditions = _conditions(where)
        if after is not None:
            moment, last_id = after
            conditions.append(or_(A.recorded < moment, and_(A.recorded == moment, A.id < last_id)))
        query = (
            select(A.id, A.recorded, A.body)
            .where(*conditions)
            .order_by(A.recorded.desc(), A.id.desc())
            .limit(limit)
        )
        return [(row[0], row[1], row[2]) for row in self._conn.execute(query)]

    def recorded_before(self, moment: datetime, limit: int) -> list[tuple[str, datetime, bytes]]:
        """(id, recorded, body) of up to limit events recorded before moment, oldest first
        (the retention archive)."""
        query = (
            select(A.id, A.recorded, A.body)
            .where(A.recorded < moment)
            .order_by(A.recorded, A.id)
            .limit(limit)
        )
        return [(row[0], row[1], row[2]) for row in self._conn.execute(query)]

    def delete(self, event_ids: Sequence[str]) -> int:
        """Delete these events (the retention archive, once they are archived)."""
        deleted = 0
        for start in range(0, len(event_ids), IN_LIST_MAX):
            chunk = list(event_ids[start : start + IN_LIST_MAX])
            deleted += self._conn.execute(delete(audit_event_table).where(A.id.in_(chunk))).rowcount
        return deleted


def _conditions(where: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.visible_to is not None:
        conditions.append(A.agency == where.visible_to)
    who: list[ColumnElement[bool]] = []
    if where.agencies:
        who.append(A.agency.in_(list(where.agencies)))
    if where.clients:
        who.append(A.client_id.in_(list(where.clients)))
    if who:
        conditions.append(or_(*who))
    if where.patients:
        conditions.append(A.patient.in_(list(where.patients)))
    if where.entities:
        conditions.append(
            or_(
                *(
                    and_(A.entity_type == t, A.entity_id == i)
                    if i is not None
                    else A.entity_type == t
                    for t, i in where.entities
                )
            )
        )
    if where.subtypes:
        conditions.append(A.subtype.in_(list(where.subtypes)))
    if where.actions:
        conditions.append(A.action.in_(list(where.actions)))
    if where.outcomes:
        conditions.append(A.outcome.in_(list(where.outcomes)))
    for operator, moment in where.recorded:
        conditions.append(_COMPARE[operator](A.recorded, moment))
    return conditions


_COMPARE: dict[str, Any] = {
    ">=": lambda column, value: column >= value,
    ">": lambda column, value: column > value,
    "<=": lambda column, value: column <= value,
    "<": lambda column, value: column < value,
}


def audit_row(row: AuditRow) -> tuple[Any, ...]:
    """An AuditRow positional, in the table's column order (Repository.insert_rows)."""
    return tuple(getattr(row, name) for name in _COLUMNS)


_COLUMNS = tuple(column.name for column in audit_event_table.columns)
assert set(_COLUMNS) == set(AuditRow.__slots__), _COLUMNS


def _parameters(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "recorded": row.recorded,
        "agency": row.agency,
        "client_id": row.client_id,
        "patient": row.patient,
        "subtype": row.subtype,
        "action": row.action,
        "outcome": row.outcome,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "body": row.body,
    }


__all__ = ["AuditFilter", "AuditRow", "AuditStore", "audit_row"]
