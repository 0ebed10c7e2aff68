"""SQL for the API client registry, used assertion jtis and the server's signing keys.

Runs on the connection of a Repository's transaction (app/services/uow.transaction), so
these rows commit or roll back with everything else the transaction does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from app.storage.repository import Repository
from app.storage.tables import api_client_table, auth_jti_table, auth_signing_key_table

C = api_client_table.c
J = auth_jti_table.c
K = auth_signing_key_table.c


class AuthStore:
    """Reads and writes the auth tables inside one Repository transaction."""

    def __init__(self, repo: Repository) -> None:
        self._conn: Connection = repo.connection

    # -- clients ---------------------------------------------------------------------------
    def insert_client(self, values: Mapping[str, Any]) -> None:
        """Register a client."""
        self._conn.execute(insert(api_client_table), dict(values))

    def client(self, client_id: str) -> dict[str, Any] | None:
        """A client's row as a mapping, or None."""
        row = self._conn.execute(select(api_client_table).where(C.client_id == client_id)).first()
        return None if row is None else dict(row._mapping)

    def clients(self) -> list[dict[str, Any]]:
        """Every client, oldest first."""
        rows = self._conn.execute(select(api_client_table).order_by(C.created_at, C.client_id))
        return [dict(row._mapping) for row in rows]

    def set_disabled(self, client_id: str, disabled: bool) -> bool:
        """Disable or enable a client; False if there is no such client."""
        result = self._conn.execute(
            update(api_client_table).where(C.client_id == client_id).values(disabled=disabled)
        )
        return bool(result.rowcount)

    # -- assertion replay ------------------------------------------------------------------
    def record_jti(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Remember a used jti; False if the client used it before (a replay).

        ON CONFLICT DO NOTHING rather than catching the duplicate-key error: on PostgreSQL
        a failed statement would abort the whole transaction. Two processes racing with the
        same jti: the primary key lets exactly one insert it.
        """
        values = {"client_id": client_id, "jti": jti, "expires_at": expires_at}
        if self._conn.dialect.name == "postgresql":
            statement: Any = pg_insert(auth_jti_table).values(values)
        else:
            statement = sqlite_insert(auth_jti_table).values(values)
        # RETURNING, not rowcount: psycopg reports no row count for this statement.
        inserted = statement.on_conflict_do_nothing().returning(J.jti)
        return self._conn.execute(inserted).first() is not None

    def forget_jtis(self, before: datetime) -> int:
        """Drop jtis of assertions that expired before the instant (they cannot be replayed)."""
        result = self._conn.execute(delete(auth_jti_table).where(J.expires_at < before))
        return int(result.rowcount)

    # -- signing keys ----------------------------------------------------------------------
    def signing_keys(self) -> list[tuple[str, str]]:
        """(kid, private JWK JSON) of every signing key, oldest first."""
        rows = self._conn.execute(select(K.kid, K.private_jwk).order_by(K.created_at, K.kid)).all()
        return [(row[0], row[1]) for row in rows]

    def add_signing_key(self, kid: str, private_jwk: str, created_at: datetime) -> None:
        """Store a signing key unless one with this kid exists."""
        values = {"kid": kid, "private_jwk": private_jwk, "created_at": created_at}
        if self._conn.dialect.name == "postgresql":
            statement: Any = pg_insert(auth_signing_key_table).values(values)
        else:
            statement = sqlite_insert(auth_signing_key_table).values(values)
        self._conn.execute(statement.on_conflict_do_nothing())


__all__ = ["AuthStore"]
