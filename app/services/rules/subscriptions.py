"""Subscriptions (spec R4B subscription.html; Subscriptions R5 Backport IG for topics).

SubscriptionHook is a rule of the one write pipeline (app/services/writes.py):
- on a Subscription write it checks the channel and criteria (422/400 before anything is
  stored), sets the status the server owns (requested until a handshake succeeds) and keeps
  the subscription's delivery state row in step, queueing the handshake;
- on any other write it finds the active subscriptions whose criteria select the new
  version, by running each subscription's criteria through the search engine restricted to
  that one resource inside the writing transaction, and queues one outbox row per match
  with the subscription's next event number.
Nothing is sent here: app/notify delivers committed outbox rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import MethodNotAllowed, ResourceInvalid
from app.fhir.registry import is_resource_type
from app.fhir.subscriptions import (
    SubscriptionSpec,
    read_subscription,
    same_channel,
)
from app.search.query import Context, Criteria, parse_filters
from app.security.caller import Caller
from app.security.policy import scope_for
from app.security.scopes import require, searched_through
from app.security.targets import TargetRefused, check_written
from app.services.request_audit import current_request
from app.services.writes import FollowUp, WriteEvent
from app.storage.access import AccessScope
from app.storage.outbox import Candidate, NotifyStore
from app.storage.repository import Repository, StoredVersion
from app.storage.tables import resource_table

R = resource_table.c

# The server acting on its own Subscriptions (activation after a handshake, error after the
# retry cap): the only writer allowed to set status active or error.
NOTIFIER: Final = Caller(client_id="casebridge-notifier")
# Criteria on these types are refused: notifications about Subscriptions would feed on the
# status writes of the delivery worker itself.
_NOT_SUBSCRIBABLE: Final = frozenset({"Subscription", "SubscriptionTopic"})


def _wall_now() -> datetime:
    # Delivery scheduling (due times, leases) is wall-clock bookkeeping, like export jobs,
    # not the clock that stamps lastUpdated.
    return datetime.now(UTC)


class SubscriptionHook:
    """The WriteRule of Subscriptions: validation on write, and the outbox of every write."""

    def __init__(self, *, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        # Parsed criteria by (subscription id, version): parsing costs more than matching.
        self._criteria: dict[tuple[str, int], Criteria] = {}

    def _context(self) -> Context:
        return Context(own_base=self._settings.base_url, now=self._clock.now())

    def check(self, resource: dict[str, Any], caller: Caller | None = None) -> SubscriptionSpec:
        """Check a Subscription body: channel (422) and criteria in strict search (400).
        With a caller, its token must let it search what the criteria select and pass
        through (and read it, for a full-resource payload): a subscription is a standing
        search whose results are sent to it."""
        spec = read_subscription(resource, own_base=self._settings.base_url)
        if not self._settings.notify_allow_private_endpoints:
            try:
                check_written(spec.endpoint)
            except TargetRefused as exc:
                raise ResourceInvalid(
                    f"channel.endpoint is refused: {exc}; notifications go to public hosts "
                    "(the operator may allow others: CASEBRIDGE_NOTIFY_ALLOW_PRIVATE_ENDPOINTS)",
                    expression=("Subscription.channel.endpoint",),
                ) from exc
        if not is_resource_type(spec.resource_type) or spec.resource_type in _NOT_SUBSCRIBABLE:
            raise ResourceInvalid(
                f"Subscriptions cannot select {spec.resource_type!r}",
                expression=("Subscription.criteria",),
            )
        context = self._context()
        if caller is not None:
            require(caller, spec.resource_type, "rs" if spec.payload == "full-resource" else "s")
            context = replace(context, through=searched_through(caller))
        # Strict: a parameter the search engine cannot evaluate is refused, never ignored
        # (ignoring it would widen what the subscriber is sent).
        parse_filters(spec.resource_type, spec.params, context, strict=True)
        return spec

    # -- WriteRule -----------------------------------------------------------------------
    def before_write(self, repo: Repository, event: WriteEvent) -> bool:  # noqa: ARG002
        """Refuse bad Subscriptions and writes of the shipped topics; set the status."""
        if event.resource_type == "SubscriptionTopic":
            raise MethodNotAllowed(
                "SubscriptionTopics are defined by this server and read-only; "
                "see GET [base]/SubscriptionTopic"
            )
        if event.resource_type != "Subscription" or event.resource is None:
            return False
        resource = event.resource
        if event.caller is NOTIFIER:
            self.check(resource)
            return False
        spec = self.check(resource, event.caller)
        previous = _body(event.current)
        keep_active = (
            spec.status == "active"
            and previous is not None
            and previous.get("status") == "active"
            and same_channel(previous, resource)
        )
        # The client asks (requested) or stops (off); the server activates after a
        # successful handshake (subscription.html#states).
        status = spec.status if spec.status == "off" or keep_active else "requested"
        if status == resource.get("status") and "error" not in resource:
            return False
        resource["status"] = status
        resource.pop("error", None)
        return True

    def after_write(
        self, repo: Repository, event: WriteEvent, version: StoredVersion
    ) -> Sequence[FollowUp]:
        """Keep the subscription state in step; queue the events this write causes."""
        store = NotifyStore(repo.connection)
        if event.resource_type == "Subscription":
            self._subscription_written(store, event, version)
            return ()
        if version.deleted:
            return ()  # deletions match no criteria: the resource has no index rows left
        request = current_request()
        request_id = request.request_id if request is not None else None
        rows = []
        for candidate in store.candidates(event.resource_type):
            # A subscriber is told only of what it could have read or searched for: its
            # agency's access rule (docs/threat-model.md) joins the criteria, evaluated now.
            scope = scope_for(candidate.agency, self._clock.now())
            criteria = self._parsed(candidate, event.resource_type, scope)
            visible = (scope.visible(R.resource_type, R.id),) if scope is not None else ()
            if not store.matches(
                event.resource_type,
                event.resource_id,
                (*criteria.conditions, *visible),
                scope.parameters() if scope is not None else None,
            ):
                continue
            rows.append(
                {
                    "subscription_id": candidate.id,
                    "kind": "event",
                    "event_number": store.next_event(candidate.id),
                    "focus_type": version.resource_type,
                    "focus_id": version.id,
                    "focus_version": version.version_id,
                    "method": version.method or "PUT",
                    "occurred_at": version.last_updated,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": _wall_now(),
                    "request_id": request_id,
                }
            )
        store.add(rows)
        return ()

    def _parsed(
        self, candidate: Candidate, resource_type: str, scope: AccessScope | None
    ) -> Criteria:
        params = parse_qsl(candidate.query.partition("?")[2], keep_blank_values=True)
        if scope is not None:
            # Chains and _has in the criteria pass only through what the agency may see, at
            # this instant: not cached.
            context = replace(self._context(), scope=scope)
            return parse_filters(resource_type, params, context, strict=True)
        key = (candidate.id, candidate.version_id)
        with self._lock:
            found = self._criteria.get(key)
        if found is not None:
            return found
        parsed = parse_filters(resource_type, params, self._context(), strict=True)
        with self._lock:
            if len(self._criteria) > 10_000:
                self._criteria.clear()
            self._criteria[key] = parsed
        return parsed

    def _subscription_written(
        self, store: NotifyStore, event: WriteEvent, version: StoredVersion
    ) -> None:
        if event.resource is None:
            store.drop(event.resource_id)
            return
        spec = read_subscription(event.resource, own_base=self._settings.base_url)
        previous = store.state(event.resource_id)
        agency = previous.agency if previous is not None else event.caller.agency
        store.save_state(
            {
                "id": event.resource_id,
                "version_id": version.version_id,
                "status": spec.status,
                "resource_type": spec.resource_type,
                "query": spec.query,
                "topic": spec.topic,
                "payload": spec.payload,
                "endpoint": spec.endpoint,
                "headers": orjson.dumps(list(spec.headers)).decode(),
                "heartbeat_s": spec.heartbeat_s,
                "agency": agency,
                "error": event.resource.get("error"),
            }
        )
        if spec.status == "requested":
            request = current_request()
            store.add(
                [
                    {
                        "subscription_id": event.resource_id,
                        "kind": "handshake",
                        "event_number": None,
                        "focus_type": "Subscription",
                        "focus_id": event.resource_id,
                        "focus_version": version.version_id,
                        "method": version.method,
                        "occurred_at": version.last_updated,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": _wall_now(),
                        "request_id": request.request_id if request is not None else None,
                    }
                ]
            )


def _body(version: StoredVersion | None) -> dict[str, Any] | None:
    if version is None or version.body is None:
        return None
    loaded: dict[str, Any] = orjson.loads(version.body)
    return loaded


__all__ = ["NOTIFIER", "SubscriptionHook"]
