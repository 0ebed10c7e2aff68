"""The delivery worker: sends committed outbox rows to rest-hook endpoints.

At-least-once, in order per subscription (spec R4B subscription.html#2.46.7; backport IG
channels.html rest-hook):
- Rows are claimed with a lease (an UPDATE in a short transaction; FOR UPDATE SKIP LOCKED
  on PostgreSQL), only the oldest pending row of a subscription at a time, so one
  notification per subscription is in flight and several workers or processes never send
  the same row at once. A worker that dies leaves its leases to expire; the row is sent
  again (receivers dedupe by eventNumber).
- A failed POST is retried with exponential backoff and jitter; after
  notify_max_attempts the Subscription's status becomes error with Subscription.error
  saying why, and its undelivered rows wait until it is active again.
- The outbox is the whole state: a restarted worker resumes where the database says.
- A commit in this process that wrote outbox rows wakes the worker at once (an engine
  commit listener); other processes' commits are found by polling.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection

from app import __version__
from app.fhir.subscriptions import Event, StatusView, notification_bundle
from app.metrics import DELIVERIES
from app.records import StoredVersion
from app.security.caller import Caller
from app.security.policy import scope_for
from app.security.targets import TargetRefused, check_resolved
from app.services.container import Services
from app.services.jobs.audit import Access
from app.services.rules.subscriptions import NOTIFIER
from app.services.uow import transaction
from app.storage.outbox import NOTIFY_CHANNEL, WROTE_OUTBOX, Claimed, NotifyStore, State
from app.storage.repository import Repository

log = logging.getLogger(__name__)
_HEARTBEAT_CHECK_S = 1.0
_COMMITTED_OUTBOX = "casebridge.committed_outbox"


def _now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, *, base_s: float, max_s: float, jitter: float) -> float:
    """Seconds before attempt n+1 after n failed ones: exponential backoff, capped, with
    "equal jitter" (half fixed, half random) so that subscribers failing together do not
    retry in lockstep. jitter is a number in [0, 1)."""
    ceiling = min(max_s, base_s * 2.0 ** min(max(attempts - 1, 0), 60))
    return ceiling * (0.5 + 0.5 * jitter)


@dataclass(frozen=True, slots=True)
class _Job:
    """A leased outbox row with what sending it needs."""

    row: Claimed
    state: State
    body: bytes | None


class DeliveryWorker:
    """Delivers notifications on a dispatcher thread and a small pool of sender threads."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings
        self._engine = services.engine
        self._owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None
        self._next_heartbeat_check = 0.0

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start delivering (idempotent)."""
        if self._thread is not None:
            return
        self._http = httpx.Client(
            timeout=self._settings.notify_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"casebridge/{__version__} notifications"},
        )
        self._pool = ThreadPoolExecutor(
            max_workers=self._settings.notify_concurrency, thread_name_prefix="notify-send"
        )
        event.listen(self._engine, "commit", self._on_commit)
        event.listen(self._engine, "rollback", self._on_rollback)
        event.listen(self._engine.pool, "checkin", self._on_checkin)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="notify-dispatch", daemon=True)
        self._thread.start()
        if self._engine.dialect.name == "postgresql":
            self._listener = threading.Thread(
                target=self._listen, name="notify-listen", daemon=True
            )
            self._listener.start()

    def stop(self) -> None:
        """Stop after the notifications in flight finish (their rows stay leased if not)."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._thread = None
        if self._listener is not None:
            self._wake_listener()
            self._listener.join(timeout=5)
            self._listener = None
        event.remove(self._engine, "commit", self._on_commit)
        event.remove(self._engine, "rollback", self._on_rollback)
        event.remove(self._engine.pool, "checkin", self._on_checkin)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.close()
        try:
            with transaction(self._engine, write=True) as repo:
                NotifyStore(repo.connection).release_owned(self._owner)
        except Exception:  # the leases expire by themselves
            log.warning("could not release notification leases", exc_info=True)

    def _wake_listener(self) -> None:
        # The listener blocks up to half a second waiting for notices; one sent now lets it
        # see the stop at once (stopping took a second per server otherwise).
        try:
            with self._engine.begin() as conn:
                conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
        except Exception:  # it stops within half a second anyway
            log.debug("could not wake the LISTEN thread", exc_info=True)

    def wait(self) -> None:
        """Block until stop() is called (the `casebridge worker` command)."""
        self._stop.wait()

    # The commit event fires before the database commits, so a worker woken there could
    # look before the rows are visible; it is woken when the connection returns to the
    # pool, after the commit.
    @staticmethod
    def _on_commit(conn: Connection) -> None:
        if conn.info.pop(WROTE_OUTBOX, False):
            conn.info[_COMMITTED_OUTBOX] = True

    @staticmethod
    def _on_rollback(conn: Connection) -> None:
        conn.info.pop(WROTE_OUTBOX, None)

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_COMMITTED_OUTBOX, False):
            self._wake.set()

    def _listen(self) -> None:
        """PostgreSQL: LISTEN for commits of other processes that wrote outbox rows, so
        they are sent without waiting for the next poll (polling stays as the fallback)."""
        url = self._engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Commits made before LISTEN took effect sent no notice to this worker.
                    self._wake.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._wake.set()
            except psycopg.Error:
                log.info("LISTEN %s lost; polling meanwhile", NOTIFY_CHANNEL, exc_info=True)
                self._stop.wait(1.0)

    # -- dispatch ------------------------------------------------------------------------
    def _run(self) -> None:
        # The first round runs at once: a (re)started worker resumes what is pending.
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception:  # the database may be down: try again next round
                log.warning("notification dispatch failed", exc_info=True)
            self._wake.wait(self._settings.notify_poll_interval_s)
            self._wake.clear()

    def _dispatch(self) -> None:
        assert self._pool is not None
        with self._inflight_lock:
            free = self._settings.notify_concurrency - self._inflight
        if free > 0:
            now = _now()
            jobs: list[_Job] = []
            with transaction(self._engine, write=False, single_read=True) as repo:
                due = NotifyStore(repo.connection).any_due(now)
            if due:
                with transaction(self._engine, write=True) as repo:
                    jobs = self._claim(repo, now, limit=free)
            for job in jobs:
                with self._inflight_lock:
                    self._inflight += 1
                self._pool.submit(self._send_claimed, job)
        monotonic = time.monotonic()
        if monotonic >= self._next_heartbeat_check:
            self._next_heartbeat_check = monotonic + _HEARTBEAT_CHECK_S
            self._heartbeats()

    def _claim(
        self, repo: Repository, now: datetime, *, limit: int, subscription_id: str | None = None
    ) -> list[_Job]:
        """Lease rows and read what sending them needs, in the caller's transaction."""
        store = NotifyStore(repo.connection)
        until = now + timedelta(seconds=self._settings.notify_lease_s)
        jobs = []
        for row in store.claim(
            now=now, until=until, owner=self._owner, limit=limit, subscription_id=subscription_id
        ):
            state = store.state(row.subscription_id)
            if state is None:
                continue  # deleted meanwhile: its rows were dropped
            if not self._still_visible(repo, row, state, now):
                # Matched when written, but the subscriber may no longer see the record (a
                # consent revoked since, or in the same transaction): nothing is sent.
                store.delivered(row.id, now)
                log.info("Subscription/%s: event %s withheld", state.id, row.event_number)
                continue
            body = None
            if row.kind == "event" and state.payload == "full-resource":
                body = store.focus_body(row.focus_type, row.focus_id, row.focus_version)
                self._account(repo, row, state, body, now)
            jobs.append(_Job(row, state, body))
        return jobs

    def _account(
        self, repo: Repository, row: Claimed, state: State, body: bytes | None, now: datetime
    ) -> None:
        """A full-resource notification releases the record: the accounting of disclosures
        lists it like any other release to an agency that does not own it."""
        if body is None or row.focus_type is None or row.focus_id is None:
            return
        version = StoredVersion(
            row.focus_type, row.focus_id, row.focus_version or 1, now, False, body
        )
        self._services.disclosures.record(
            Caller(agency=state.agency), [version], "notification", repo=repo
        )

    @staticmethod
    def _still_visible(repo: Repository, row: Claimed, state: State, now: datetime) -> bool:
        """Whether the subscribing agency may see the event's record now."""
        if row.kind != "event" or row.focus_type is None or row.focus_id is None:
            return True
        scope = scope_for(state.agency, now)
        return scope is None or repo.is_visible(row.focus_type, row.focus_id, scope=scope)

    def _send_claimed(self, job: _Job) -> None:
        try:
            # After a success the same thread goes on with the subscription's next row,
            # claimed in the transaction that recorded the success.
            next_job: _Job | None = job
            while next_job is not None and not self._stop.is_set():
                next_job = self._deliver(next_job)
        except Exception:
            log.warning("notification %s could not be handled", job.row.id, exc_info=True)
        finally:
            with self._inflight_lock:
                self._inflight -= 1
            # The subscription's next row may be waiting for this one.
            self._wake.set()

    # -- one notification ----------------------------------------------------------------
    def _deliver(self, job: _Job) -> _Job | None:
        """Send one notification and record the outcome; the subscription's next job."""
        row, state = job.row, job.state
        events: tuple[Event, ...] = ()
        count = state.events
        if row.kind == "event":
            assert row.event_number is not None
            count = row.event_number
            events = (
                Event(
                    row.event_number,
                    row.occurred_at,
                    row.focus_type,
                    row.focus_id,
                    row.focus_version,
                    row.method,
                    job.body,
                ),
            )
        view = StatusView(state.id, state.status, state.topic, count, None)
        kind = "event-notification" if row.kind == "event" else row.kind
        error = self._post(state, view, kind, events, row.request_id)
        self._audit(row, state, kind, error)
        now = _now()
        if error is None:
            return self._succeeded(row, state, now)
        DELIVERIES.labels(row.subscription_id, "failed").inc()
        if row.attempts >= self._settings.notify_max_attempts:
            self._give_up(row, state, error)
            return None
        with transaction(self._engine, write=True) as repo:
            NotifyStore(repo.connection).retry_later(
                row.id, at=now + self._backoff(row.attempts), error=error
            )
        return None

    def _audit(self, row: Claimed, state: State, kind: str, error: str | None) -> None:
        """Every delivery attempt is an AuditEvent of the subscribing agency (issue 6):
        what was disclosed to which endpoint, and whether it arrived."""
        focus = row.focus_type is not None and row.focus_id is not None
        self._services.audit.recorder.record(
            Access(
                interaction="operation",
                status=200 if error is None else 502,
                recorded=self._services.clock.now(),
                caller=Caller(agency=state.agency, client_id=NOTIFIER.client_id),
                resource_type=row.focus_type if focus else "Subscription",
                resource_id=row.focus_id if focus else state.id,
                version_id=str(row.focus_version) if focus and row.focus_version else None,
                description=f"{kind} of Subscription/{state.id}",
                path=f"Subscription/{state.id}/$notify",
            )
        )

    def _post(
        self,
        state: State,
        view: StatusView,
        kind: str,
        events: tuple[Event, ...],
        request_id: str | None = None,
    ) -> str | None:
        """POST one notification; None on a 2xx answer, else what went wrong. request_id:
        the X-Request-ID of the request whose write raised the event, sent along."""
        assert self._http is not None
        content = notification_bundle(
            view,
            kind=kind,
            payload=state.payload,
            base_url=self._settings.base_url,
            now=_now(),
            bundle_id=str(uuid.uuid4()),
            events=events,
        )
        headers = {"Content-Type": "application/fhir+json"}
        for line in orjson.loads(state.headers):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        if not self._settings.notify_allow_private_endpoints:
            try:
                # Resolved now, not when the Subscription was written: the name may have
                # been pointed at the operator's network since.
                check_resolved(state.endpoint)
            except TargetRefused as exc:
                return f"the endpoint is refused: {exc}"[:500]
        try:
            response = self._http.post(state.endpoint, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"the endpoint answered HTTP {response.status_code}"

    def _backoff(self, attempts: int) -> timedelta:
        settings = self._settings
        return timedelta(
            seconds=retry_delay(
                attempts,
                base_s=settings.notify_retry_base_s,
                max_s=settings.notify_retry_max_s,
                jitter=random.random(),
            )
        )

    def _succeeded(self, row: Claimed, state: State, now: datetime) -> _Job | None:
        DELIVERIES.labels(row.subscription_id, "sent").inc()
        with transaction(self._engine, write=True) as repo:
            store = NotifyStore(repo.connection)
            store.delivered(row.id, now)
            if state.heartbeat_s or row.kind == "handshake":
                # Only heartbeats need the time; skipping the update otherwise keeps the
                # worker off the counter row that concurrent writers lock.
                store.sent(row.subscription_id, now)
            if row.kind == "handshake":
                current = store.state(row.subscription_id)
                # Activate only the version the handshake was for (a client may have
                # changed the endpoint meanwhile: that version has its own handshake).
                if (
                    current is not None
                    and current.status == "requested"
                    and current.version_id == row.focus_version
                ):
                    self._set_status(repo, state.id, "active", None)
                return None
            if self._stop.is_set():
                return None
            jobs = self._claim(repo, now, limit=1, subscription_id=row.subscription_id)
        return jobs[0] if jobs else None

    def _give_up(self, row: Claimed, state: State, error: str) -> None:
        what = "handshake" if row.kind == "handshake" else f"event {row.event_number}"
        message = (
            f"Delivery of {what} to {state.endpoint} failed {row.attempts} times; last: {error}"
        )[:1000]
        with transaction(self._engine, write=True) as repo:
            store = NotifyStore(repo.connection)
            store.release(row.id, error=error)
            current = store.state(row.subscription_id)
            expected = "requested" if row.kind == "handshake" else "active"
            if current is not None and current.status == expected:
                self._set_status(repo, state.id, "error", message)
        log.warning("Subscription/%s set to error: %s", state.id, message)

    def _set_status(self, repo: Any, subscription_id: str, status: str, error: str | None) -> None:
        """Write the next version of the Subscription with the server-set status."""
        resources = self._services.resources
        current = repo.current("Subscription", subscription_id)
        if current is None or current.body is None:
            return
        body: dict[str, Any] = orjson.loads(current.body)
        body.pop("meta", None)
        body["status"] = status
        if error is None:
            body.pop("error", None)
        else:
            body["error"] = error
        resources.update_in(repo, NOTIFIER, "Subscription", subscription_id, body, None)

    # -- heartbeats ----------------------------------------------------------------------
    def _heartbeats(self) -> None:
        """Send a heartbeat to each active subscription idle for its heartbeatPeriod
        (backport IG: backport-heartbeat-period)."""
        assert self._pool is not None
        now = _now()
        with transaction(self._engine, write=False) as repo:
            due = [
                s
                for s in NotifyStore(repo.connection).active_with_heartbeat()
                if s.last_sent_at is None
                or now - s.last_sent_at >= timedelta(seconds=s.heartbeat_s)
            ]
        for state in due:
            with transaction(self._engine, write=True) as repo:
                taken = NotifyStore(repo.connection).take_heartbeat(
                    state.id, state.last_sent_at, now
                )
            if taken:
                self._pool.submit(self._send_heartbeat, state)

    def _send_heartbeat(self, state: State) -> None:
        view = StatusView(state.id, state.status, state.topic, state.events, None)
        try:
            error = self._post(state, view, "heartbeat", ())
        except Exception:
            log.warning("heartbeat to Subscription/%s failed", state.id, exc_info=True)
            return
        if error is not None:
            # A missed heartbeat is the receiver's signal that something is wrong; events
            # carry the retry and error logic.
            log.info("heartbeat to Subscription/%s failed: %s", state.id, error)


__all__ = ["DeliveryWorker", "retry_delay"]
