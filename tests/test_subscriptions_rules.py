"""The pure rules of Subscriptions: what a Subscription asks for, notification shapes, and
the retry schedule. Notifications are checked against the R4B models of fhir.resources."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.subscriptiontopic import SubscriptionTopic
from hypothesis import given
from hypothesis import strategies as st

from app.fhir.errors import ResourceInvalid
from app.fhir.subscriptions import (
    FILTER_CRITERIA_URL,
    PAYLOAD_CONTENT_URL,
    Event,
    StatusView,
    check_endpoint,
    notification_bundle,
    read_subscription,
    status_bundle,
    topics,
)
from app.notify.worker import retry_delay

OWN = "http://127.0.0.1:8000/fhir"
TOPIC = "http://casebridge.org/fhir/SubscriptionTopic/referral-task"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _subscription(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "r",
        "criteria": TOPIC,
        "_criteria": {
            "extension": [{"url": FILTER_CRITERIA_URL, "valueString": "Task?owner=Organization/b"}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://agency.example.org/hook",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": "full-resource"}]},
        },
    }
    body.update(changes)
    Subscription.model_validate(body)  # every case starts from a valid R4B Subscription
    return body


def test_shipped_topics_are_valid_r4b_subscription_topics() -> None:
    assert len(topics()) == 2
    for topic in topics().values():
        SubscriptionTopic.model_validate(topic)


def test_topic_subscription_is_read_into_a_search_query() -> None:
    spec = read_subscription(_subscription(), own_base=OWN)
    assert spec.resource_type == "Task"
    assert spec.params == (("owner", "Organization/b"),)
    assert spec.query == "Task?owner=Organization%2Fb"
    assert (spec.topic, spec.payload, spec.heartbeat_s) == (TOPIC, "full-resource", 0)


def test_topic_is_also_named_by_this_servers_url() -> None:
    spec = read_subscription(
        _subscription(criteria=f"{OWN}/SubscriptionTopic/referral-task"), own_base=OWN
    )
    assert spec.topic == TOPIC


@pytest.mark.parametrize(
    ("payload", "content", "expected"),
    [
        (None, None, "empty"),
        ("application/fhir+json", None, "full-resource"),
        ("application/fhir+json", "id-only", "id-only"),
        (None, "empty", "empty"),
    ],
)
def test_r4_payload_defaults(payload: str | None, content: str | None, expected: str) -> None:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": "http://h.example/x"}
    if payload:
        channel["payload"] = payload
    if content:
        channel["_payload"] = {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": content}]}
    spec = read_subscription(
        _subscription(criteria="Task?status=requested", channel=channel), own_base=OWN
    )
    assert spec.payload == expected


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8000/admin",
        "http://localhost:8000/fhir/Task",
        "http://[::1]:8000/.well-known/smart-configuration",
        "HTTP://127.0.0.1:8000/auth/token",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:pw@agency.example.org/hook",
        "http://agency.example.org:99999/hook",
        "",
    ],
)
def test_endpoints_refused(endpoint: str) -> None:
    with pytest.raises(ResourceInvalid):
        check_endpoint(endpoint, OWN)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8001/hook", "https://agency.example.org/hook", "http://10.0.0.5/x"],
)
def test_endpoints_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint, OWN) == endpoint


def _event(number: int) -> Event:
    body = orjson.dumps(
        {
            "resourceType": "Task",
            "id": "t1",
            "meta": {"versionId": "2", "lastUpdated": "2026-01-05T09:00:00Z"},
            "status": "accepted",
            "intent": "order",
        }
    )
    return Event(number, NOW, "Task", "t1", 2, "PUT", body)


@pytest.mark.parametrize("payload", ["empty", "id-only", "full-resource"])
def test_event_notifications_are_valid_r4b_bundles(payload: str) -> None:
    view = StatusView("s1", "active", TOPIC, 7, None)
    raw = notification_bundle(
        view,
        kind="event-notification",
        payload=payload,
        base_url=OWN,
        now=NOW,
        bundle_id="6a1f0e9e-5d41-4c55-9d7a-0b8e2f1d9c33",
        events=(_event(7),),
    )
    bundle = orjson.loads(raw)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    status = bundle["entry"][0]["resource"]
    assert status["resourceType"] == "SubscriptionStatus"
    assert status["eventsSinceSubscriptionStart"] == "7"
    assert status["notificationEvent"][0]["eventNumber"] == "7"
    assert len(bundle["entry"]) == (1 if payload == "empty" else 2)
    if payload == "full-resource":
        assert bundle["entry"][1]["resource"]["status"] == "accepted"


def test_status_bundle_is_a_valid_searchset_with_the_error() -> None:
    view = StatusView("s1", "error", None, 3, "Delivery failed 10 times")
    bundle = status_bundle(view, base_url=OWN, status_id="0b8e2f1d-9c33-4c55-9d7a-6a1f0e9e5d41")
    Bundle.model_validate(bundle)
    status = bundle["entry"][0]["resource"]
    assert (status["type"], status["status"]) == ("query-status", "error")
    assert status["error"] == [{"text": "Delivery failed 10 times"}]
    assert "topic" not in status


@given(
    attempts=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=10),
    cap=st.floats(min_value=0.01, max_value=3600),
    jitter=st.floats(min_value=0, max_value=0.999999),
)
def test_retry_delay_doubles_up_to_the_cap_with_half_jitter(
    attempts: int, base: float, cap: float, jitter: float
) -> None:
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 60))
    delay = retry_delay(attempts, base_s=base, max_s=cap, jitter=jitter)
    assert ceiling * 0.5 <= delay <= ceiling
    later = retry_delay(attempts + 1, base_s=base, max_s=cap, jitter=jitter)
    assert later >= delay
