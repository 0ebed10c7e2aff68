"""SQL for the web app's people and sessions (tables web_user and web_session).

Runs on the connection of a Repository's transaction, so what it writes commits or rolls
back with the rest of the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from app.storage.repository import Repository
from app.storage.tables import web_agency_table, web_session_table, web_user_table

U = web_user_table.c
S = web_session_table.c
A = web_agency_table.c


@dataclass(frozen=True, slots=True)
class WebUser:
    """One account."""

    id: str
    email: str
    name: str | None
    agency: str
    practitioner: str
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    disabled: bool
    created_at: datetime
    totp_secret: str | None = None


@dataclass(frozen=True, slots=True)
class WebSession:
    """One signed-in browser and its person."""

    token_hash: str
    user: WebUser
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    # "full", or waiting for the second factor: "totp", "enrol" (with the secret offered).
    stage: str = "full"
    enrol_secret: str | None = None


_USER_COLUMNS = (
    U.id,
    U.email,
    U.name,
    U.agency,
    U.practitioner,
    U.password_hash,
    U.failed_logins,
    U.locked_until,
    U.disabled,
    U.created_at,
    U.totp_secret,
)


class WebStore:
    """Reads and writes web_user and web_session inside one Repository transaction."""

    def __init__(self, repo: Repository) -> None:
        self._conn = repo.connection

    # -- people --------------------------------------------------------------------------
    def add_user(self, user: WebUser) -> None:
        """Insert an account (the email's unique index refuses a second one)."""
        self._conn.execute(
            insert(web_user_table).values(
                id=user.id,
                email=user.email,
                name=user.name,
                agency=user.agency,
                practitioner=user.practitioner,
                password_hash=user.password_hash,
                failed_logins=user.failed_logins,
                locked_until=user.locked_until,
                disabled=user.disabled,
                created_at=user.created_at,
            )
        )

    def user_by_email(self, email: str) -> WebUser | None:
        """The account of an (already lower-cased) email address."""
        row = self._conn.execute(select(*_USER_COLUMNS).where(U.email == email)).first()
        return WebUser(**row._mapping) if row is not None else None

    def users(self) -> list[WebUser]:
        """Every account, by email."""
        rows = self._conn.execute(select(*_USER_COLUMNS).order_by(U.email))
        return [WebUser(**row._mapping) for row in rows]

    def set_sign_in_state(
        self, user_id: str, *, failed_logins: int, locked_until: datetime | None
    ) -> None:
        """Record a failed sign-in (and a lock), or clear them after a good one."""
        self._conn.execute(
            update(web_user_table)
            .where(U.id == user_id)
            .values(failed_logins=failed_logins, locked_until=locked_until)
        )

    def set_password(self, user_id: str, password_hash: str) -> None:
        """A new password (the failures and the lock are cleared with it)."""
        self._conn.execute(
            update(web_user_table)
            .where(U.id == user_id)
            .values(password_hash=password_hash, failed_logins=0, locked_until=None)
        )

    def set_totp_secret(self, user_id: str, secret: str | None) -> None:
        """Enrol (or, with None, remove) the person's second factor."""
        self._conn.execute(update(web_user_table).where(U.id == user_id).values(totp_secret=secret))

    def requires_totp(self, agency: str) -> bool:
        """Whether the agency asks its people for a second factor."""
        row = self._conn.execute(select(A.require_totp).where(A.agency == agency)).first()
        return bool(row[0]) if row is not None else False

    def set_requires_totp(self, agency: str, required: bool) -> None:
        """Ask (or stop asking) an agency's people for a second factor."""
        self._conn.execute(delete(web_agency_table).where(A.agency == agency))
        self._conn.execute(insert(web_agency_table).values(agency=agency, require_totp=required))

    def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable or enable an account."""
        self._conn.execute(update(web_user_table).where(U.id == user_id).values(disabled=disabled))

    # -- sessions ------------------------------------------------------------------------
    def add_session(
        self,
        token_hash: str,
        user_id: str,
        csrf: str,
        now: datetime,
        expires_at: datetime,
        stage: str = "full",
        enrol_secret: str | None = None,
    ) -> None:
        """A new signed-in browser (or one still to give its second factor)."""
        self._conn.execute(
            insert(web_session_table).values(
                token_hash=token_hash,
                user_id=user_id,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                stage=stage,
                enrol_secret=enrol_secret,
            )
        )

    def complete_session(self, token_hash: str, now: datetime) -> None:
        """The second factor was given: the session is signed in."""
        self._conn.execute(
            update(web_session_table)
            .where(S.token_hash == token_hash)
            .values(stage="full", enrol_secret=None, last_seen_at=now)
        )

    def session(self, token_hash: str) -> WebSession | None:
        """The session of a token hash, with its person."""
        row = self._conn.execute(
            select(
                S.token_hash.label("session_token"),
                S.csrf.label("session_csrf"),
                S.created_at.label("session_created"),
                S.last_seen_at.label("session_seen"),
                S.expires_at.label("session_expires"),
                S.stage.label("session_stage"),
                S.enrol_secret.label("session_enrol"),
                *_USER_COLUMNS,
            )
            .join(web_user_table, U.id == S.user_id)
            .where(S.token_hash == token_hash)
        ).first()
        if row is None:
            return None
        found = dict(row._mapping)
        return WebSession(
            found.pop("session_token"),
            csrf=found.pop("session_csrf"),
            created_at=found.pop("session_created"),
            last_seen_at=found.pop("session_seen"),
            expires_at=found.pop("session_expires"),
            stage=found.pop("session_stage"),
            enrol_secret=found.pop("session_enrol"),
            user=WebUser(**found),
        )

    def touch_session(self, token_hash: str, now: datetime) -> None:
        """The session was used now (its idle time starts again)."""
        self._conn.execute(
            update(web_session_table).where(S.token_hash == token_hash).values(last_seen_at=now)
        )

    def end_session(self, token_hash: str) -> None:
        """Sign one browser out."""
        self._conn.execute(delete(web_session_table).where(S.token_hash == token_hash))

    def end_sessions(self, user_id: str) -> int:
        """Sign a person out everywhere; how many sessions ended."""
        result = self._conn.execute(delete(web_session_table).where(S.user_id == user_id))
        return int(result.rowcount or 0)

    def purge_sessions(self, before: datetime) -> int:
        """Forget sessions that ended before a moment."""
        result = self._conn.execute(delete(web_session_table).where(S.expires_at < before))
        return int(result.rowcount or 0)

    def count_sessions(self, user_id: str) -> int:
        """A person's live session rows."""
        return int(
            self._conn.execute(
                select(func.count()).select_from(web_session_table).where(S.user_id == user_id)
            ).scalar_one()
        )


__all__ = ["WebSession", "WebStore", "WebUser"]
