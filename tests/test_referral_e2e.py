"""The closed loop between two agencies over HTTP (issue 5), on SQLite and PostgreSQL.

A clinic refers a client to an AOD service with the care plan; the service finds it in its
inbox, accepts, starts and completes it with what was done; the clinic then sees the loop
closed: the referral completed, the ServiceRequest completed, the goal updated, the care
plan activity carrying the outcome; with subscriptions, each step reaches both agencies.
"""

from __future__ import annotations

import time

import httpx

from tests.conftest import Backend, server_with
from tests.support.receiver import Receiver, wait_until
from tests.support.referrals import OTHER, OWNER, REQUESTER, Referrals, as_agency
from tests.support.server import LiveServer


def test_closed_loop(client: httpx.Client, live: LiveServer) -> None:
    ref = Referrals(client, live.root)
    clinic, service = as_agency(REQUESTER), as_agency(OWNER)

    # The clinic submits the package.
    sent = ref.submit(REQUESTER)
    tid = sent["id"]

    # The AOD service finds it in its inbox, with the care plan and the goal in the packet.
    inbox = client.get(f"{live.root}/referrals", params={"box": "inbox"}, headers=service).json()
    assert [(r["id"], r["status"]) for r in inbox["referrals"]] == [(tid, "requested")]
    packet = client.get(f"{live.root}/referrals/{tid}", headers=service).json()
    by_type = {e["resource"]["resourceType"]: e["resource"] for e in packet["entry"]}
    goal_ref = f"Goal/{by_type['Goal']['id']}"
    plan_id = by_type["CarePlan"]["id"]
    sr_id = by_type["ServiceRequest"]["id"]

    # Accept, start, complete, each with the ETag of the previous answer.
    view = sent
    for action in ("accept", "start"):
        response = ref.act(tid, action, OWNER, etag=view["etag"])
        assert response.status_code == 200, response.text
        view = response.json()
    assert view["status"] == "in-progress"
    outcome = {
        "outcome": {
            "summary": "Six counselling sessions; drinking days down from five to two a week.",
            "resources": [
                {
                    "resourceType": "Procedure",
                    "status": "completed",
                    "code": {"text": "AOD counselling, six sessions"},
                    "subject": {"reference": view["patient"]},
                }
            ],
            "goals": [{"goal": goal_ref, "achievementStatus": "achieved"}],
        }
    }
    response = ref.act(tid, "complete", OWNER, etag=view["etag"], body=outcome)
    assert response.status_code == 200, response.text
    assert response.json()["links"]["actions"] == {}

    # The clinic sees the loop closed.
    outbox = client.get(f"{live.root}/referrals", params={"box": "outbox"}, headers=clinic).json()
    assert [(r["id"], r["status"]) for r in outbox["referrals"]] == [(tid, "completed")]
    packet = client.get(f"{live.root}/referrals/{tid}", headers=clinic).json()
    resources = [e["resource"] for e in packet["entry"]]
    task = resources[0]
    assert task["status"] == "completed"
    summary = [o["valueString"] for o in task["output"] if "valueString" in o]
    assert summary == [outcome["outcome"]["summary"]]
    procedure_ref = next(
        o["valueReference"]["reference"] for o in task["output"] if "valueReference" in o
    )
    packet_refs = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert procedure_ref in packet_refs
    assert ref.read("ServiceRequest", sr_id)["status"] == "completed"
    goal = ref.read("Goal", goal_ref.split("/")[1])
    assert goal["achievementStatus"]["coding"][0]["code"] == "achieved"
    plan = ref.read("CarePlan", plan_id)
    activity = plan["activity"][0]
    assert activity["reference"]["reference"] == f"ServiceRequest/{sr_id}"
    assert activity["outcomeReference"] == [{"reference": procedure_ref}]
    assert activity["outcomeCodeableConcept"] == [{"text": outcome["outcome"]["summary"]}]

    history = client.get(f"{live.root}/referrals/{tid}/history", headers=clinic).json()
    assert [(h["status"], h["agency"]) for h in history["history"]] == [
        ("requested", REQUESTER),
        ("accepted", OWNER),
        ("in-progress", OWNER),
        ("completed", OWNER),
    ]
    # The same through the FHIR API: the clinic polls its Tasks by requester and status.
    found = client.get(
        f"{live.root}/fhir/Task",
        params={"requester": REQUESTER, "status": "completed", "code": "fulfill"},
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [tid]


FAST: dict[str, object] = {
    "notify_worker": True,
    "notify_poll_interval_s": 0.05,
    "notify_retry_base_s": 0.05,
    "notify_retry_max_s": 0.2,
    "notify_timeout_s": 2,
}


def _subscribe(http: httpx.Client, agency: str, criteria: str, endpoint: str) -> str:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Our referrals",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }
    response = http.post("/fhir/Subscription", json=body, headers=as_agency(agency))
    assert response.status_code == 201, response.text
    sub_id = str(response.json()["id"])
    wait_until(
        lambda: (
            http.get(f"/fhir/Subscription/{sub_id}", headers=as_agency(agency)).json()["status"]
            == "active"
        ),
        what="subscription active",
    )
    return sub_id


def _statuses(receiver: Receiver, task_id: str) -> list[str]:
    """The Task statuses notified, in event order (full-resource payloads)."""
    seen: dict[int, str] = {}
    for item in receiver.of_kind("event-notification"):
        for entry in item.bundle.get("entry", [])[1:]:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Task" and resource.get("id") == task_id:
                seen[item.event_numbers[0]] = resource["status"]
    return [seen[n] for n in sorted(seen)]


def test_closed_loop_with_notifications(backend: Backend, client: httpx.Client) -> None:
    """Both agencies subscribe; each step of the referral reaches them over a real HTTP
    receiver, in order, once; a third agency's subscription to the same Tasks hears nothing."""
    server = server_with(backend, **FAST)
    inbox, outbox, snoop = Receiver().start(), Receiver().start(), Receiver().start()
    try:
        with httpx.Client(base_url=server.root, timeout=30) as http:
            _subscribe(http, OWNER, f"Task?owner={OWNER}&code=fulfill", inbox.url)
            _subscribe(http, REQUESTER, f"Task?requester={REQUESTER}", outbox.url)
            _subscribe(http, OTHER, f"Task?owner={OWNER}", snoop.url)
            ref = Referrals(http, server.root)
            sent = ref.submit(REQUESTER)
            tid = sent["id"]
            inbox.wait_for(lambda r: _statuses(r, tid) == ["requested"])
            view = sent
            for action in ("accept", "start"):
                response = ref.act(tid, action, OWNER, etag=view["etag"])
                assert response.status_code == 200, response.text
                view = response.json()
            done = {"outcome": {"summary": "Six counselling sessions completed."}}
            response = ref.act(tid, "complete", OWNER, etag=view["etag"], body=done)
            assert response.status_code == 200, response.text
            loop = ["requested", "accepted", "in-progress", "completed"]
            outbox.wait_for(lambda r: _statuses(r, tid) == loop)
            inbox.wait_for(lambda r: _statuses(r, tid) == loop)
            # Each event once, in order, per subscription.
            for receiver in (inbox, outbox):
                assert receiver.events() == sorted(set(receiver.events()))
            completed = next(
                e["resource"]
                for item in outbox.of_kind("event-notification")
                for e in item.bundle.get("entry", [])[1:]
                if (e.get("resource") or {}).get("status") == "completed"
            )
            assert [o["valueString"] for o in completed["output"] if "valueString" in o] == [
                "Six counselling sessions completed."
            ]
            time.sleep(0.3)
            assert snoop.events() == []
    finally:
        server.stop()
        for receiver in (inbox, outbox, snoop):
            receiver.stop()
