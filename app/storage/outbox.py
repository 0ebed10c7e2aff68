"""SQL of Subscriptions: their delivery state and the notification outbox.

Rows are written by the write hook inside the writing transaction, and claimed, delivered
and retried by the delivery workers (app/notify) in short transactions of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from app.storage.tables import (
    outbox_table,
    resource_table,
    subscription_state_table,
    version_table,
)

S = subscription_state_table.c
OB = outbox_table.c
R = resource_table.c
V = version_table.c

# Set on a connection whose transaction wrote outbox rows; the delivery worker's commit
# listener wakes it when that transaction commits (app/notify/worker.py).
WROTE_OUTBOX: Final = "casebridge.wrote_outbox"

# The PostgreSQL NOTIFY channel workers LISTEN on for new outbox rows.
NOTIFY_CHANNEL: Final = "casebridge_outbox"
_NOTIFY = text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")

_NEXT_EVENT = (
    update(subscription_state_table)
    .where(S.id == bindparam("q_id"))
    .values(events=S.events + 1)
    .returning(S.events)
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An active subscription whose criteria select a resource type."""

    id: str
    version_id: int
    query: str
    agency: str | None


@dataclass(frozen=True, slots=True)
class State:
    """The delivery state of one subscription."""

    id: str
    version_id: int
    status: str
    resource_type: str
    query: str
    topic: str | None
    payload: str
    endpoint: str
    headers: str
    heartbeat_s: int
    agency: str | None
    events: int
    error: str | None
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row leased to one worker for one delivery attempt."""

    id: int
    subscription_id: str
    kind: str
    event_number: int | None
    focus_type: str
    focus_id: str
    focus_version: int
    method: str
    occurred_at: datetime
    attempts: int
    request_id: str | None = None


_STATE_COLS = (
    S.id,
    S.version_id,
    S.status,
    S.resource_type,
    S.query,
    S.topic,
    S.payload,
    S.endpoint,
    S.headers,
    S.heartbeat_s,
    S.agency,
    S.events,
    S.error,
    S.last_sent_at,
)
_CLAIM_COLS = (
    OB.id,
    OB.subscription_id,
    OB.kind,
    OB.event_number,
    OB.focus_type,
    OB.focus_id,
    OB.focus_version,
    OB.method,
    OB.occurred_at,
    OB.attempts,
    OB.request_id,
)


class NotifyStore:
    """Subscription state and outbox statements on one connection (one transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- subscription state ------------------------------------------------------------
    def state(self, subscription_id: str) -> State | None:
        """The delivery state of a subscription, or None."""
        row = self._conn.execute(select(*_STATE_COLS).where(S.id == subscription_id)).first()
        return None if row is None else State(**row._mapping)

    def save_state(self, values: Mapping[str, Any]) -> None:
        """Insert or replace a subscription's state; the event counter and the time of the
        last delivery survive updates of the Subscription."""
        kept = ("events", "last_sent_at")
        changed = {k: v for k, v in values.items() if k not in (*kept, "id")}
        done = self._conn.execute(
            update(subscription_state_table).where(S.id == values["id"]).values(**changed)
        )
        if done.rowcount == 0:
            self._conn.execute(
                insert(subscription_state_table).values(
                    **{"events": 0, "last_sent_at": None, **values}
                )
            )

    def set_status(
        self, subscription_id: str, *, status: str, error: str | None, version_id: int
    ) -> None:
        """Record a status the server set (active after a handshake, error after the cap)."""
        self._conn.execute(
            update(subscription_state_table)
            .where(S.id == subscription_id)
            .values(status=status, error=error, version_id=version_id)
        )

    def sent(self, subscription_id: str, at: datetime) -> None:
        """Note a successful POST (heartbeats are due a period after the last one)."""
        self._conn.execute(
            update(subscription_state_table).where(S.id == subscription_id).values(last_sent_at=at)
        )

    def take_heartbeat(self, subscription_id: str, previous: datetime | None, at: datetime) -> bool:
        """Claim one heartbeat: only the worker that moves last_sent_at from the value it
        saw sends it."""
        seen = S.last_sent_at.is_(None) if previous is None else S.last_sent_at == previous
        done = self._conn.execute(
            update(subscription_state_table)
            .where(S.id == subscription_id, seen)
            .values(last_sent_at=at)
        )
        return done.rowcount == 1

    def drop(self, subscription_id: str) -> None:
        """Forget a deleted subscription and what it had not been sent."""
        self._conn.execute(delete(subscription_state_table).where(S.id == subscription_id))
        self._conn.execute(
            update(outbox_table)
            .where(OB.subscription_id == subscription_id, OB.state == "pending")
            .values(state="dropped")
        )

    def candidates(self, resource_type: str) -> list[Candidate]:
        """Active subscriptions on a resource type, in id order (so that transactions take
        their counter rows in one order)."""
        rows = self._conn.execute(
            select(S.id, S.version_id, S.query, S.agency)
            .where(S.resource_type == resource_type, S.status == "active")
            .order_by(S.id)
        )
        return [Candidate(**row._mapping) for row in rows]

    def active_with_heartbeat(self) -> list[State]:
        """Active subscriptions that asked for heartbeats and have nothing pending."""
        pending = select(OB.id).where(OB.subscription_id == S.id, OB.state == "pending").exists()
        rows = self._conn.execute(
            select(*_STATE_COLS).where(S.status == "active", S.heartbeat_s > 0, ~pending)
        )
        return [State(**row._mapping) for row in rows]

    def matches(
        self,
        resource_type: str,
        resource_id: str,
        conditions: Sequence[ColumnElement[bool]],
        parameters: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether one live resource meets search conditions (its index rows are current
        within this transaction); parameters: values the conditions bind at execution
        (the access rule's)."""
        query = select(R.id).where(
            R.resource_type == resource_type, R.id == resource_id, R.deleted.is_(False), *conditions
        )
        return self._conn.execute(query, dict(parameters or {})).first() is not None

    # -- outbox ------------------------------------------------------------------------
    def next_event(self, subscription_id: str) -> int:
        """The subscription's next event number. The UPDATE holds the counter row until
        commit, so events of one subscription commit in number order on PostgreSQL too."""
        return int(self._conn.execute(_NEXT_EVENT, {"q_id": subscription_id}).scalar_one())

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue notifications (in the writing transaction)."""
        if not rows:
            return
        self._conn.execute(insert(outbox_table), [dict(r) for r in rows])
        self._conn.info[WROTE_OUTBOX] = True
        if self._pg:
            # Delivered at commit (never for a rollback) to workers of other processes.
            self._conn.execute(_NOTIFY)

    @staticmethod
    def _due_heads(now: datetime, limit: int, subscription_id: str | None = None) -> Select[Any]:
        # Only the oldest pending row a subscription can be sent (events while active, a
        # handshake while requested) is a candidate, so one notification per subscription
        # is in flight and they leave in order.
        sendable = or_(
            and_(S.status == "active", OB.kind == "event"),
            and_(S.status == "requested", OB.kind == "handshake"),
        )
        heads = (
            select(func.min(OB.id).label("head"))
            .select_from(outbox_table.join(subscription_state_table, S.id == OB.subscription_id))
            .where(OB.state == "pending", sendable)
            .where(*(() if subscription_id is None else (OB.subscription_id == subscription_id,)))
            .group_by(OB.subscription_id)
            .subquery()
        )
        return (
            select(*_CLAIM_COLS)
            .join(heads, OB.id == heads.c.head)
            .where(OB.next_attempt_at <= now, or_(OB.lease_until.is_(None), OB.lease_until < now))
            .order_by(OB.id)
            .limit(limit)
        )

    def any_due(self, now: datetime) -> bool:
        """Whether some notification could be claimed now (a read: an idle worker takes no
        write lock)."""
        return self._conn.execute(self._due_heads(now, 1)).first() is not None

    def claim(
        self,
        *,
        now: datetime,
        until: datetime,
        owner: str,
        limit: int,
        subscription_id: str | None = None,
    ) -> list[Claimed]:
        """Lease the head row of each subscription (or of one) that is due and not in
        flight."""
        query = self._due_heads(now, limit, subscription_id)
        if self._pg:
            # Workers in other processes skip rows another is claiming instead of waiting.
            query = query.with_for_update(of=outbox_table, skip_locked=True)
        rows = [Claimed(**row._mapping) for row in self._conn.execute(query)]
        if rows:
            self._conn.execute(
                update(outbox_table)
                .where(OB.id.in_([r.id for r in rows]))
                .values(lease_until=until, lease_owner=owner, attempts=OB.attempts + 1)
            )
        return [replace(r, attempts=r.attempts + 1) for r in rows]

    def delivered(self, row_id: int, at: datetime) -> None:
        """Mark a row sent (the receiver answered 2xx)."""
        self._conn.execute(
            update(outbox_table)
            .where(OB.id == row_id)
            .values(state="delivered", delivered_at=at, lease_until=None, last_error=None)
        )

    def retry_later(self, row_id: int, *, at: datetime, error: str) -> None:
        """Release a failed row to be tried again at a later time."""
        self._conn.execute(
            update(outbox_table)
            .where(OB.id == row_id, OB.state == "pending")
            .values(next_attempt_at=at, lease_until=None, last_error=error[:2000])
        )

    def release(self, row_id: int, *, error: str) -> None:
        """Release a row without counting the attempt (its subscription went to error: it
        is sent when the subscription is active again)."""
        self._conn.execute(
            update(outbox_table)
            .where(OB.id == row_id, OB.state == "pending")
            .values(lease_until=None, attempts=0, last_error=error[:2000])
        )

    def release_owned(self, owner: str) -> int:
        """Give back every lease a stopping worker holds (rows it claimed but did not send),
        so another worker need not wait for the leases to expire."""
        done = self._conn.execute(
            update(outbox_table)
            .where(OB.lease_owner == owner, OB.state == "pending", OB.lease_until.is_not(None))
            .values(lease_until=None, lease_owner=None)
        )
        return int(done.rowcount)

    def focus_body(self, resource_type: str, resource_id: str, version_id: int) -> bytes | None:
        """The stored body of the version an event reports."""
        row = self._conn.execute(
            select(V.body).where(
                V.resource_type == resource_type, V.id == resource_id, V.version_id == version_id
            )
        ).first()
        return None if row is None else row[0]

    def pending_count(self, subscription_id: str) -> int:
        """How many notifications of a subscription are not yet delivered."""
        return int(
            self._conn.execute(
                select(func.count())
                .select_from(outbox_table)
                .where(OB.subscription_id == subscription_id, OB.state == "pending")
            ).scalar_one()
        )

    def pending_by_subscription(self) -> dict[str, int]:
        """Notifications not yet delivered, per subscription (the metrics' backlog)."""
        rows = self._conn.execute(
            select(OB.subscription_id, func.count())
            .where(OB.state == "pending")
            .group_by(OB.subscription_id)
        )
        return {row[0]: int(row[1]) for row in rows}


__all__ = ["NOTIFY_CHANNEL", "WROTE_OUTBOX", "Candidate", "Claimed", "NotifyStore", "State"]
