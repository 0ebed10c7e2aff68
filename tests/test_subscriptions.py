"""Subscriptions (R4 criteria and R5-backport topics) with rest-hook delivery from the outbox.

Every test runs the real app under uvicorn on a database of its own (SQLite file or
PostgreSQL schema, per the `backend` parameter), and real HTTP receivers on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.clock import Clock
from app.config import Settings
from app.fhir.subscriptions import (
    FILTER_CRITERIA_URL,
    HEARTBEAT_PERIOD_URL,
    PAYLOAD_CONTENT_URL,
)
from app.main import create_app
from app.storage.tables import metadata
from tests.conftest import Backend, migrated_database
from tests.factories import FHIR_JSON
from tests.support.cli import start_worker
from tests.support.receiver import Receiver, wait_until
from tests.support.server import LiveServer, free_port, start_server

TOPIC = "http://casebridge.org/fhir/SubscriptionTopic/referral-task"
SR_TOPIC = "http://casebridge.org/fhir/SubscriptionTopic/service-request"
# Short retry delays keep the tests quick; the cap is high unless a test is about it.
FAST: dict[str, object] = {
    "notify_poll_interval_s": 0.05,
    "notify_retry_base_s": 0.05,
    "notify_retry_max_s": 0.2,
    "notify_max_attempts": 1000,
    "notify_lease_s": 10,
    "notify_timeout_s": 2,
    # The receivers listen on 127.0.0.1 (the default refuses such endpoints).
    "notify_allow_private_endpoints": True,
}


@dataclass
class NotifyDb:
    """A migrated database of this module's own (no other test's worker delivers from it)."""

    name: str
    url: str
    engine: Engine

    def settings(self, port: int, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.url,
            "environment": "test",
            "auth": "off",
            "base_url": f"http://127.0.0.1:{port}/fhir",
            **FAST,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    def truncate(self) -> None:
        tables = [t.name for t in reversed(metadata.sorted_tables)]
        with self.engine.begin() as conn:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="module")
def notify_db(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyDb]:
    with migrated_database(backend.name, tmp_path_factory, "cbn") as database:
        yield NotifyDb(database.name, database.url, database.engine)


def start(db: NotifyDb, port: int | None = None, **overrides: object) -> LiveServer:
    port = port or free_port()
    # A real clock: several servers write to one database in some tests (ids must differ).
    return start_server(create_app(db.settings(port, **overrides), clock=Clock()), port)


@pytest.fixture
def server(notify_db: NotifyDb) -> Iterator[LiveServer]:
    notify_db.truncate()
    live = start(notify_db)
    yield live
    live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.fhir, timeout=30) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()


# -- builders ----------------------------------------------------------------------------


def criteria_subscription(
    endpoint: str, criteria: str, *, payload: str | None = "application/fhir+json", **extra: Any
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload is not None:
        channel["payload"] = payload
    channel.update(extra.pop("channel", {}))
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Referrals sent to us",
        "criteria": criteria,
        "channel": channel,
        **extra,
    }


def topic_subscription(
    endpoint: str,
    *,
    topic: str = TOPIC,
    filters: tuple[str, ...] = (),
    content: str = "id-only",
    heartbeat: int | None = None,
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT_URL, "valueCode": content}]},
    }
    if heartbeat is not None:
        channel["extension"] = [{"url": HEARTBEAT_PERIOD_URL, "valueUnsignedInt": heartbeat}]
    if headers:
        channel["header"] = list(headers)
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Referral updates",
        "criteria": topic,
        "channel": channel,
    }
    if filters:
        body["_criteria"] = {
            "extension": [{"url": FILTER_CRITERIA_URL, "valueString": f} for f in filters]
        }
    return body


def task(owner: str | None, status: str = "requested", note: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "for": {"reference": "Patient/client-1"},
        "requester": {"reference": "Organization/clinic-a"},
        "authoredOn": "2026-01-05T10:00:00Z",
    }
    if owner is not None:
        body["owner"] = {"reference": owner}
    if note:
        body["note"] = [{"text": note}]
    return body


# Records are written as the subscribing agency, so that its subscriptions may see them (the
# agency access rules: a subscriber is told only of what it could read).
AGENCY = "Organization/b"


def post(http: httpx.Client, body: dict[str, Any], agency: str | None = AGENCY) -> dict[str, Any]:
    headers = dict(FHIR_JSON)
    if agency:
        headers["X-Casebridge-Agency"] = agency
    response = http.post(f"/{body['resourceType']}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def put(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    headers = {**FHIR_JSON, "X-Casebridge-Agency": AGENCY}
    response = http.put(f"/{body['resourceType']}/{body['id']}", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    updated: dict[str, Any] = response.json()
    return updated


def status_of(http: httpx.Client, subscription_id: str) -> str:
    return str(http.get(f"/Subscription/{subscription_id}").json()["status"])


def wait_active(http: httpx.Client, subscription_id: str) -> None:
    wait_until(lambda: status_of(http, subscription_id) == "active", what="active")


def subscribe(http: httpx.Client, body: dict[str, Any], agency: str = "Organization/b") -> str:
    created = post(http, body, agency)
    assert created["status"] == "requested"
    wait_active(http, created["id"])
    return str(created["id"])


def status_report(http: httpx.Client, subscription_id: str) -> dict[str, Any]:
    response = http.get(f"/Subscription/{subscription_id}/$status")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    assert resource["resourceType"] == "SubscriptionStatus"
    assert resource["type"] == "query-status"
    return resource


# -- validation --------------------------------------------------------------------------

BAD_SUBSCRIPTIONS = {
    "ftp-endpoint": (
        lambda _own: criteria_subscription("ftp://127.0.0.1/x", "Task?owner=Organization/b"),
        422,
        "http or https",
    ),
    "relative-endpoint": (
        lambda _own: criteria_subscription("/hook", "Task?owner=Organization/b"),
        422,
        "http or https",
    ),
    "own-admin-path": (
        lambda own: criteria_subscription(f"{own}/admin/reset", "Task?owner=Organization/b"),
        422,
        "this server itself",
    ),
    "own-fhir-via-localhost": (
        lambda own: criteria_subscription(
            own.replace("127.0.0.1", "localhost") + "/fhir/Task", "Task?owner=Organization/b"
        ),
        422,
        "this server itself",
    ),
    "own-well-known": (
        lambda own: criteria_subscription(f"{own}/.well-known/smart-configuration", "Task?x=1"),
        422,
        "this server itself",
    ),
    "websocket-channel": (
        lambda _own: criteria_subscription(
            "http://127.0.0.1:9/h", "Task?owner=Organization/b", channel={"type": "websocket"}
        ),
        422,
        "rest-hook",
    ),
    "unknown-topic": (
        lambda _own: topic_subscription("http://127.0.0.1:9/h", topic="http://x.org/T/none"),
        422,
        "Unknown SubscriptionTopic",
    ),
    "topic-filter-not-offered": (
        lambda _own: topic_subscription("http://127.0.0.1:9/h", filters=("Task?patient=P/1",)),
        422,
        "cannot filter by",
    ),
    "unsupported-search-parameter": (
        lambda _own: criteria_subscription("http://127.0.0.1:9/h", "Task?no-such-param=1"),
        400,
        "not supported",
    ),
    "criteria-without-query": (
        lambda _own: criteria_subscription("http://127.0.0.1:9/h", "Task"),
        422,
        "neither",
    ),
    "criteria-on-subscriptions": (
        lambda _own: criteria_subscription("http://127.0.0.1:9/h", "Subscription?status=active"),
        422,
        "cannot select",
    ),
    "header-not-a-header": (
        lambda _own: criteria_subscription(
            "http://127.0.0.1:9/h", "Task?status=requested", channel={"header": ["no colon"]}
        ),
        422,
        "Name: value",
    ),
    "header-reserved": (
        lambda _own: criteria_subscription(
            "http://127.0.0.1:9/h", "Task?status=requested", channel={"header": ["Host: x"]}
        ),
        422,
        "may not set",
    ),
    "xml-payload": (
        lambda _own: criteria_subscription(
            "http://127.0.0.1:9/h", "Task?status=requested", payload="application/fhir+xml"
        ),
        422,
        "not served",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUBSCRIPTIONS))
def test_bad_subscriptions_are_refused_and_nothing_is_stored(
    case: str, server: LiveServer, http: httpx.Client, notify_db: NotifyDb
) -> None:
    build, status, words = BAD_SUBSCRIPTIONS[case]
    response = http.post("/Subscription", json=build(server.root), headers=FHIR_JSON)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]
    assert http.get("/Subscription").json().get("total", 0) == 0
    with notify_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subscription_state")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM notification_outbox")).scalar_one() == 0


def test_topics_are_served_read_only(http: httpx.Client) -> None:
    topic = http.get("/SubscriptionTopic/referral-task").json()
    assert topic["url"] == TOPIC
    filters = {f["filterParameter"] for f in topic["canFilterBy"]}
    assert filters == {"owner", "requester", "status", "code"}
    listed = http.get("/SubscriptionTopic").json()
    assert {e["resource"]["id"] for e in listed["entry"]} == {"referral-task", "service-request"}
    assert http.get("/SubscriptionTopic", params={"url": SR_TOPIC}).json()["total"] == 1
    assert http.get("/SubscriptionTopic/nope").status_code == 404
    refused = http.post(
        "/SubscriptionTopic", json={**topic, "id": None, "url": "http://x"}, headers=FHIR_JSON
    )
    assert refused.status_code == 405
    assert refused.json()["resourceType"] == "OperationOutcome"


# -- delivery ----------------------------------------------------------------------------


def test_criteria_subscription_handshake_then_matching_events_with_full_resource(
    http: httpx.Client, receiver: Receiver, notify_db: NotifyDb
) -> None:
    body = criteria_subscription(
        receiver.url,
        "Task?owner=Organization/b&status=requested",
        channel={"header": ["Authorization: Bearer hook-secret"]},
    )
    created = post(http, body, "Organization/b")
    assert created["status"] == "requested"
    receiver.wait_for(lambda r: len(r.of_kind("handshake")) == 1)
    handshake = receiver.of_kind("handshake")[0]
    assert handshake.headers["Authorization"] == "Bearer hook-secret"
    assert handshake.bundle["type"] == "history"
    wait_active(http, created["id"])

    matching = post(http, task("Organization/b"))
    post(http, task("Organization/c"))  # another owner
    post(http, task("Organization/b", status="draft"))  # another status
    accepted = put(http, {**matching, "status": "accepted"})  # no longer status=requested
    post(http, task("Organization/b", note="second"))

    receiver.wait_for(lambda r: len(r.events()) == 2)
    time.sleep(0.3)  # nothing else arrives
    assert receiver.events() == [1, 2]
    first = receiver.of_kind("event-notification")[0]
    status = first.status
    assert status["eventsSinceSubscriptionStart"] == "1"
    assert status["subscription"]["reference"].endswith(f"/Subscription/{created['id']}")
    assert status["notificationEvent"][0]["focus"]["reference"].endswith(f"/Task/{matching['id']}")
    entry = first.bundle["entry"][1]
    assert entry["resource"]["id"] == matching["id"]
    assert entry["resource"]["status"] == "requested"
    assert entry["request"] == {"method": "POST", "url": f"Task/{matching['id']}"}
    assert first.headers["Authorization"] == "Bearer hook-secret"
    assert accepted["status"] == "accepted"
    report = status_report(http, created["id"])
    assert report["status"] == "active"
    assert report["eventsSinceSubscriptionStart"] == "2"
    with notify_db.engine.connect() as conn:
        agency = conn.execute(text("SELECT agency FROM subscription_state")).scalar_one()
    assert agency == "Organization/b"  # the agency that created it, for the access rules


def test_deleted_subscription_sends_nothing_more(http: httpx.Client, receiver: Receiver) -> None:
    sub = subscribe(http, topic_subscription(receiver.url))
    receiver.stop()  # the first event stays pending
    post(http, task("Organization/b"))
    assert http.delete(f"/Subscription/{sub}").status_code in (200, 204)
    receiver.start()
    post(http, task("Organization/b"))
    time.sleep(0.5)
    assert receiver.events() == []
    gone = http.get(f"/Subscription/{sub}/$status")
    assert gone.status_code == 404
    assert gone.json()["resourceType"] == "OperationOutcome"


def test_a_subscriber_is_told_only_of_what_it_may_read(
    http: httpx.Client, receiver: Receiver
) -> None:
    """Agency c asks for b's Tasks: it may not read them, so nothing reaches it, while b's own
    subscription to the same criteria is notified (the agency access rules)."""
    own = Receiver().start()
    try:
        snoop = subscribe(
            http, criteria_subscription(receiver.url, "Task?owner=Organization/b"), "Organization/c"
        )
        mine = subscribe(http, criteria_subscription(own.url, "Task?owner=Organization/b"))
        post(http, task("Organization/b"))
        own.wait_for(lambda r: r.events() == [1])
        time.sleep(0.5)
        assert receiver.events() == []
        assert status_report(http, mine)["eventsSinceSubscriptionStart"] == "1"
        # c's own subscription is c's: b cannot ask for its $status.
        other = http.get(
            f"/Subscription/{snoop}/$status", headers={"X-Casebridge-Agency": "Organization/b"}
        )
        assert other.status_code == 404
    finally:
        own.stop()


def test_a_notification_is_withheld_when_the_subscriber_may_no_longer_see_the_record(
    http: httpx.Client, receiver: Receiver
) -> None:
    """Agency c refers its client to b under the client's consent; b subscribes to the
    client. c changes the client and revokes the consent in one transaction: matched while
    b could still see it, the event is not sent, and the accounting of disclosures lists
    only what b was sent."""
    c = {**FHIR_JSON, "X-Casebridge-Agency": "Organization/c"}
    client = http.post("/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=c)
    pid = client.json()["id"]
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"text": "treatment"},
        "category": [{"text": "referral"}],
        "patient": {"reference": f"Patient/{pid}"},
        "provision": {
            "type": "permit",
            "actor": [{"role": {"text": "recipient"}, "reference": {"reference": AGENCY}}],
        },
    }
    cid = http.post("/Consent", json=consent, headers=c).json()["id"]
    request = http.post(
        "/ServiceRequest",
        json={
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
        },
        headers=c,
    ).json()
    referral = {
        **task(AGENCY),
        "focus": {"reference": f"ServiceRequest/{request['id']}"},
        "for": {"reference": f"Patient/{pid}"},
        "requester": {"reference": "Organization/c"},
    }
    assert http.post("/Task", json=referral, headers=c).status_code == 201
    assert http.get(f"/Patient/{pid}", headers={"X-Casebridge-Agency": AGENCY}).status_code == 200
    subscribe(http, criteria_subscription(receiver.url, f"Patient?_id={pid}"))
    changed = {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1990"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
            {
                "resource": {**consent, "id": cid, "status": "inactive"},
                "request": {"method": "PUT", "url": f"Consent/{cid}"},
            },
        ],
    }
    assert http.post("", json=bundle, headers=c).status_code == 200
    assert http.get(f"/Patient/{pid}", headers={"X-Casebridge-Agency": AGENCY}).status_code == 404
    time.sleep(1.5)
    assert receiver.of_kind("event-notification") == []
    # Consent given again: the next change reaches b, with the record.
    http.put(f"/Consent/{cid}", json={**consent, "id": cid}, headers=c).raise_for_status()
    http.put(f"/Patient/{pid}", json={**changed, "birthDate": "1991"}, headers=c).raise_for_status()
    receiver.wait_for(lambda r: len(r.of_kind("event-notification")) == 1)
    sent = receiver.of_kind("event-notification")[0].bundle["entry"][1]["resource"]
    assert sent["birthDate"] == "1991"


@pytest.mark.parametrize("content", ["empty", "id-only", "full-resource"])
def test_topic_subscription_payload_content(
    content: str, http: httpx.Client, receiver: Receiver
) -> None:
    sub = subscribe(
        http, topic_subscription(receiver.url, filters=("owner=Organization/b",), content=content)
    )
    created = post(http, task("Organization/b"))
    post(http, task("Organization/z"))  # filtered out
    updated = put(http, {**created, "status": "accepted"})
    receiver.wait_for(lambda r: len(r.events()) == 2)
    time.sleep(0.2)
    assert receiver.events() == [1, 2]
    notes = receiver.of_kind("event-notification")
    for note, version in zip(notes, (created, updated), strict=True):
        assert note.status["topic"] == TOPIC
        entries = note.bundle["entry"]
        if content == "empty":
            assert len(entries) == 1
            continue
        assert len(entries) == 2
        assert entries[1]["fullUrl"].endswith(f"/Task/{created['id']}")
        assert entries[1]["response"]["etag"] == f'W/"{version["meta"]["versionId"]}"'
        if content == "id-only":
            assert "resource" not in entries[1]
        else:
            assert entries[1]["resource"]["status"] == version["status"]
            assert entries[1]["resource"]["meta"]["versionId"] == version["meta"]["versionId"]
    assert status_report(http, sub)["eventsSinceSubscriptionStart"] == "2"


def test_service_request_topic_filters_by_status(http: httpx.Client, receiver: Receiver) -> None:
    subscribe(http, topic_subscription(receiver.url, topic=SR_TOPIC, filters=("status=revoked",)))
    request = post(
        http,
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/client-1"},
        },
    )
    assert receiver.events() == []
    put(http, {**request, "status": "revoked"})
    receiver.wait_for(lambda r: r.events() == [1])


def test_heartbeats_arrive_at_the_period(http: httpx.Client, receiver: Receiver) -> None:
    sub = subscribe(http, topic_subscription(receiver.url, heartbeat=1))
    receiver.wait_for(lambda r: len(r.of_kind("heartbeat")) >= 2, timeout=6)
    beats = receiver.of_kind("heartbeat")
    assert beats[1].at - beats[0].at >= 0.9
    assert beats[0].status["subscription"]["reference"].endswith(f"/Subscription/{sub}")
    assert beats[0].status["eventsSinceSubscriptionStart"] == "0"


def test_receiver_down_then_up_every_event_in_order_none_twice(
    notify_db: NotifyDb, server: LiveServer, http: httpx.Client, receiver: Receiver
) -> None:
    sub = subscribe(http, topic_subscription(receiver.url, filters=("owner=Organization/b",)))
    # A second server on the same database delivers too: rows are leased, so the two
    # never send the same notification and order per subscription holds.
    other = start(notify_db)
    try:
        receiver.stop()
        ids = []
        for n in range(12):
            created = post(http, task("Organization/b", note=f"n{n}"))
            ids.append(created["id"])
            if n % 3 == 0:
                put(http, {**created, "status": "accepted"})
                ids.append(created["id"])
        time.sleep(1.0)  # retries fail meanwhile
        assert status_of(http, sub) == "active"
        receiver.start()
        receiver.wait_for(lambda r: len(r.events()) >= len(ids), timeout=20)
        time.sleep(0.5)
    finally:
        other.stop()
    numbers = receiver.events()
    assert numbers == list(range(1, len(ids) + 1))  # in order, none missing, none twice
    focus = [
        n.status["notificationEvent"][0]["focus"]["reference"].rsplit("/", 1)[1]
        for n in receiver.of_kind("event-notification")
    ]
    assert focus == ids
    assert status_report(http, sub)["eventsSinceSubscriptionStart"] == str(len(ids))


def test_restart_resumes_delivery_with_nothing_lost(
    notify_db: NotifyDb, receiver: Receiver
) -> None:
    notify_db.truncate()
    first = start(notify_db)
    with httpx.Client(base_url=first.fhir, timeout=30) as http:
        sub = subscribe(http, topic_subscription(receiver.url, content="full-resource"))
        receiver.stop()
        written = [post(http, task("Organization/b", note=str(n)))["id"] for n in range(5)]
    first.stop()
    receiver.start()
    time.sleep(0.3)
    assert receiver.events() == []  # nobody is delivering
    second = start(notify_db)
    try:
        receiver.wait_for(lambda r: len(r.events()) == 5)
        with httpx.Client(base_url=second.fhir, timeout=30) as http:
            assert status_report(http, sub)["eventsSinceSubscriptionStart"] == "5"
    finally:
        second.stop()
    assert receiver.events() == [1, 2, 3, 4, 5]
    got = [n.bundle["entry"][1]["resource"]["id"] for n in receiver.of_kind("event-notification")]
    assert got == written


def test_a_crashed_workers_lease_expires_and_the_row_is_sent(
    notify_db: NotifyDb, receiver: Receiver
) -> None:
    from datetime import UTC, datetime, timedelta

    notify_db.truncate()
    first = start(notify_db)
    with httpx.Client(base_url=first.fhir, timeout=30) as http:
        subscribe(http, topic_subscription(receiver.url))
    first.stop()
    api = start(notify_db, notify_worker=False)
    try:
        with httpx.Client(base_url=api.fhir, timeout=30) as http:
            post(http, task("Organization/b"))
        # A worker that claimed the row and died: its lease holds for a while.
        expires = datetime.now(UTC) + timedelta(seconds=1.5)
        with notify_db.engine.begin() as conn:
            leased = conn.execute(
                text(
                    "UPDATE notification_outbox SET lease_owner = 'dead', lease_until = :t "
                    "WHERE kind = 'event'"
                ),
                {"t": expires if notify_db.name == "postgresql" else expires.replace(tzinfo=None)},
            )
            assert leased.rowcount == 1
        second = start(notify_db)
        try:
            receiver.wait_for(lambda r: r.events() == [1])
        finally:
            second.stop()
    finally:
        api.stop()
    arrived = receiver.of_kind("event-notification")[0].at
    assert arrived >= expires.timestamp() - 0.05  # not while the lease held


def test_separate_worker_process_delivers(notify_db: NotifyDb, receiver: Receiver) -> None:
    notify_db.truncate()
    api = start(notify_db, notify_worker=False)
    port = free_port()
    worker = start_worker(
        {
            "CASEBRIDGE_DATABASE_URL": notify_db.url,
            "CASEBRIDGE_BASE_URL": f"http://127.0.0.1:{port}/fhir",
            # PostgreSQL: LISTEN/NOTIFY wakes the worker, so a long poll must not delay it.
            "CASEBRIDGE_NOTIFY_POLL_INTERVAL_S": "30" if notify_db.name == "postgresql" else "0.05",
            "CASEBRIDGE_NOTIFY_ALLOW_PRIVATE_ENDPOINTS": "true",
        }
    )
    try:
        with httpx.Client(base_url=api.fhir, timeout=30) as http:
            sub = subscribe(http, topic_subscription(receiver.url))
            post(http, task("Organization/b"))
            receiver.wait_for(lambda r: r.events() == [1], timeout=10)
            assert status_of(http, sub) == "active"
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=15)
        api.stop()
    assert worker.returncode == 0, err.decode()


def test_rolled_back_transaction_sends_nothing(http: httpx.Client, receiver: Receiver) -> None:
    subscribe(http, topic_subscription(receiver.url, filters=("owner=Organization/b",)))
    existing = post(http, task("Organization/z"))
    failing = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": task("Organization/b"), "request": {"method": "POST", "url": "Task"}},
            {
                "resource": {**existing, "status": "cancelled"},
                "request": {
                    "method": "PUT",
                    "url": f"Task/{existing['id']}",
                    "ifMatch": 'W/"99"',
                },
            },
        ],
    }
    response = http.post("", json=failing, headers=FHIR_JSON)
    assert response.status_code == 412, response.text
    post(http, task("Organization/b", note="committed"))
    receiver.wait_for(lambda r: len(r.events()) == 1)
    time.sleep(0.5)
    # One event, numbered 1: the rolled-back write took no number and sent nothing.
    assert receiver.events() == [1]
    only = receiver.of_kind("event-notification")[0]
    assert only.bundle["entry"][1]["fullUrl"]


def test_error_after_the_retry_cap_then_reactivation_delivers_the_rest(
    notify_db: NotifyDb, receiver: Receiver
) -> None:
    notify_db.truncate()
    live = start(notify_db, notify_max_attempts=3)
    try:
        with httpx.Client(base_url=live.fhir, timeout=30) as http:
            sub = subscribe(http, topic_subscription(receiver.url))
            receiver.answer_status = 500
            post(http, task("Organization/b"))
            wait_until(lambda: status_of(http, sub) == "error", what="error status")
            stored = http.get(f"/Subscription/{sub}").json()
            assert "failed 3 times" in stored["error"]
            assert "HTTP 500" in stored["error"]
            report = status_report(http, sub)
            assert report["status"] == "error"
            assert report["eventsSinceSubscriptionStart"] == "1"
            assert "failed 3 times" in report["error"][0]["text"]
            post(http, task("Organization/b"))  # not matched while in error
            # The subscriber fixes its endpoint and asks again.
            receiver.answer_status = 200
            put(http, {**stored, "status": "requested"})
            wait_active(http, sub)
            receiver.wait_for(lambda r: r.events() == [1])
            assert status_report(http, sub)["eventsSinceSubscriptionStart"] == "1"
    finally:
        live.stop()


def test_failed_handshake_sets_error(notify_db: NotifyDb, receiver: Receiver) -> None:
    notify_db.truncate()
    live = start(notify_db, notify_max_attempts=2)
    receiver.answer_status = 503
    try:
        with httpx.Client(base_url=live.fhir, timeout=30) as http:
            created = post(http, topic_subscription(receiver.url))
            wait_until(lambda: status_of(http, created["id"]) == "error", what="error")
            assert "handshake" in http.get(f"/Subscription/{created['id']}").json()["error"]
            post(http, task("Organization/b"))
            time.sleep(0.3)
            assert receiver.received == []
    finally:
        live.stop()


def test_client_cannot_set_active_and_off_stops_delivery(
    http: httpx.Client, receiver: Receiver
) -> None:
    body = topic_subscription(receiver.url)
    body["status"] = "active"
    created = post(http, body)
    assert created["status"] == "requested"  # the server activates, after a handshake
    wait_active(http, created["id"])
    active = http.get(f"/Subscription/{created['id']}").json()
    # Same endpoint, still active: no new handshake.
    put(http, {**active, "reason": "renamed"})
    assert status_of(http, created["id"]) == "active"
    put(http, {**http.get(f"/Subscription/{created['id']}").json(), "status": "off"})
    post(http, task("Organization/b"))
    time.sleep(0.4)
    assert receiver.events() == []
    assert len(receiver.of_kind("handshake")) == 1


# -- polling without an endpoint ----------------------------------------------------------


def _many_tasks(db: NotifyDb, count: int = 4000) -> None:
    """Tasks with their index rows, written straight to storage (the plan, not the write
    path, is under test): 50 owners, every tenth unowned, a fifth requested, a year of
    lastUpdated."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from app.storage.tables import reference_table, resource_table, token_table

    db.truncate()
    start_at = datetime(2025, 1, 1, tzinfo=UTC)
    resources, references, tokens = [], [], []
    for n in range(count):
        rid = f"task-{n:05d}"
        resources.append(
            {
                "resource_type": "Task",
                "id": rid,
                "version_id": 1,
                "last_updated": start_at + timedelta(hours=2 * n),
                "deleted": False,
                "body": b"{}",
            }
        )
        key = {"resource_type": "Task", "resource_id": rid}
        if n % 10:
            references.append(
                {
                    **key,
                    "param": "owner",
                    "target_type": "Organization",
                    "target_id": f"o{n % 50}",
                    "version": None,
                    "url": None,
                }
            )
        status = "requested" if n % 5 == 0 else "completed"
        tokens.append({**key, "param": "status", "system": None, "code": status, "text": None})
    with db.engine.begin() as conn:
        conn.execute(insert(resource_table), resources)
        conn.execute(insert(reference_table), references)
        conn.execute(insert(token_table), tokens)
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            [("owner", "Organization/o7"), ("_lastUpdated", "gt2025-10-01T00:00:00Z")],
            "ix_search_reference_target",
        ),
        ([("owner:missing", "true"), ("status", "requested")], "ix_search_token_lookup"),
    ],
    ids=["owner-and-lastUpdated", "unowned-requested"],
)
def test_polling_queries_are_index_lookups(
    query: list[tuple[str, str]], index: str, notify_db: NotifyDb
) -> None:
    """Agencies without an endpoint poll; their two usual searches are driven by an index
    on a table of thousands of Tasks (EXPLAIN on both engines)."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from app.search.query import Context, parse_filters
    from app.storage.tables import resource_table

    _many_tasks(notify_db)
    criteria = parse_filters(
        "Task", query, Context("http://x/fhir", datetime.now(UTC)), strict=True
    )
    r = resource_table.c
    statement = select(r.id).where(
        r.resource_type == "Task", r.deleted.is_(False), *criteria.conditions
    )
    with notify_db.engine.connect() as conn:
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        if notify_db.name == "sqlite":
            plan = [row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
            assert not [p for p in plan if p.startswith("SCAN")], plan
        else:
            # A few thousand rows of one type fit in a few pages, where PostgreSQL rightly
            # prefers reading them all; forbidding that shows the plan of a large table.
            conn.execute(text("SET enable_seqscan = off"))
            plan = [row[0] for row in conn.execute(text(f"EXPLAIN {compiled}"))]
            assert not [p for p in plan if "Seq Scan" in p], plan
        assert any(index in p for p in plan), plan
        found = sorted(row[0] for row in conn.execute(statement))
    if index == "ix_search_token_lookup":
        # Unowned: n % 10 == 0; requested: n % 5 == 0.
        assert found == [f"task-{n:05d}" for n in range(0, 4000, 10)]
    else:
        # Owner o7 (n % 50 == 7), updated after 2025-10-01 (2 hours a step: n > 3276).
        assert found == [f"task-{n:05d}" for n in range(3307, 4000, 50)]


def test_a_notification_carries_the_request_id_of_the_write_that_raised_it(
    http: httpx.Client, receiver: Receiver
) -> None:
    created = http.post(
        "/Subscription",
        json=topic_subscription(receiver.url),
        headers={**FHIR_JSON, "X-Casebridge-Agency": "Organization/b", "X-Request-ID": "sub-1"},
    )
    assert created.status_code == 201, created.text
    wait_active(http, created.json()["id"])
    headers = {**FHIR_JSON, "X-Casebridge-Agency": AGENCY, "X-Request-ID": "ehr-write-77"}
    response = http.post("/Task", json=task("Organization/b"), headers=headers)
    assert response.status_code == 201, response.text
    post(http, task("Organization/b"))  # an id the server made
    receiver.wait_for(lambda r: len(r.events()) == 2)
    first, second = receiver.of_kind("event-notification")
    assert first.headers["X-Request-ID"] == "ehr-write-77"
    made = second.headers["X-Request-ID"]
    assert made != "ehr-write-77" and len(made) == 32
    # The handshake carries the id of the Subscription's write.
    assert receiver.of_kind("handshake")[0].headers["X-Request-ID"] == "sub-1"
