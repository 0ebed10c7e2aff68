"""Subscription $status and the shipped SubscriptionTopics (Subscriptions R5 Backport IG)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from app.fhir.errors import NotFound
from app.fhir.subscriptions import (
    StatusView,
    topic_by_id,
    topics,
)
from app.security.caller import Caller
from app.services.uow import transaction
from app.storage.outbox import NotifyStore


@dataclass(frozen=True, slots=True)
class SubscriptionStatusReport:
    """What $status reports of one subscription."""

    view: StatusView
    pending: int


class SubscriptionService:
    """$status and the shipped SubscriptionTopics."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    def status(self, *, caller: Caller, subscription_id: str) -> SubscriptionStatusReport:
        """Subscription $status (backport IG OperationDefinition-backport-subscription-status):
        status, eventsSinceSubscriptionStart and the error, if any."""
        with transaction(self._engine, write=False) as repo:
            current = repo.current("Subscription", subscription_id)
            state = NotifyStore(repo.connection).state(subscription_id)
            if (
                current is None
                or current.deleted
                or state is None
                or (caller.agency is not None and state.agency != caller.agency)
            ):
                # Another agency's subscription answers as one that does not exist.
                raise NotFound(f"Subscription/{subscription_id} is not known")
            pending = NotifyStore(repo.connection).pending_count(subscription_id)
        view = StatusView(subscription_id, state.status, state.topic, state.events, state.error)
        return SubscriptionStatusReport(view, pending)

    @staticmethod
    def topic(topic_id: str) -> dict[str, Any]:
        """One shipped SubscriptionTopic (read)."""
        found = topic_by_id(topic_id)
        if found is None:
            raise NotFound(f"SubscriptionTopic/{topic_id} is not known")
        return found

    @staticmethod
    def topics() -> list[dict[str, Any]]:
        """Every shipped SubscriptionTopic."""
        return list(topics().values())


__all__ = ["SubscriptionService", "SubscriptionStatusReport"]
