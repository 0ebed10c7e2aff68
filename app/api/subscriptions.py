"""Subscription routes: $status and the shipped SubscriptionTopics (read-only).

Subscriptions themselves are created, updated and deleted through the ordinary FHIR
interactions (app/api/fhir.py); the write hook in app/services/rules/subscriptions.py checks them.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import CallerDep, ServicesDep, negotiate
from app.api.render import json_response, query_pairs
from app.fhir.errors import InvalidRequest
from app.fhir.subscriptions import status_bundle, topics_bundle

router = APIRouter(prefix="/fhir", dependencies=[Depends(negotiate)])
_TOPIC_SEARCH = frozenset({"url", "_id", "_format"})


@router.get("/Subscription/{subscription_id}/$status")
def subscription_status(subscription_id: str, services: ServicesDep, caller: CallerDep) -> Response:
    """$status (backport IG OperationDefinition-backport-subscription-status): the
    subscription's status, eventsSinceSubscriptionStart and error."""
    report = services.subscriptions.status(caller=caller, subscription_id=subscription_id)
    base = services.settings.base_url
    return json_response(status_bundle(report.view, base_url=base, status_id=str(uuid.uuid4())))


@router.get("/SubscriptionTopic")
def search_topics(request: Request, services: ServicesDep) -> Response:
    """search-type on SubscriptionTopic (backport IG: topic discovery), by url or _id."""
    found = services.subscriptions.topics()
    for name, value in query_pairs(request):
        if name not in _TOPIC_SEARCH:
            raise InvalidRequest(
                f"SubscriptionTopic is searched by url or _id only, not {name!r}",
                expression=(name,),
            )
        if name == "url":
            found = [t for t in found if t["url"] == value]
        elif name == "_id":
            found = [t for t in found if t["id"] == value]
    return json_response(topics_bundle(found, base_url=services.settings.base_url))


@router.get("/SubscriptionTopic/{topic_id}")
def read_topic(topic_id: str, services: ServicesDep) -> Response:
    """read of a shipped SubscriptionTopic (spec http.html#read)."""
    return json_response(services.subscriptions.topic(topic_id))
