"""The closed loop between two agencies over HTTP (issue 5), on SQLite and PostgreSQL.

A clinic refers a client to an AOD service with the care plan; the service finds it in its
inbox, accepts, starts and completes it with what was done; the clinic then sees the loop
closed: the referral completed, the ServiceRequest completed, the goal updated, the care
plan activity carrying the outcome. (Notifications join this test when they land.)
"""

from __future__ import annotations

import httpx

from tests.support.referrals import OWNER, REQUESTER, Referrals, as_agency
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
