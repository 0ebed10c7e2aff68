"""Assessments over HTTP on both databases: a QuestionnaireResponse to AUDIT, K10 or PHQ-9
gets its score Observation (LOINC where one exists) in the same transaction; invalid or
incomplete answers are refused with a 422 naming the item and nothing is stored.

Zone edges: AUDIT 7|8, 15|16, 19|20 (WHO zones I-IV); K10 19|20, 24|25, 29|30 (AIHW
METeOR 634146); PHQ-9 4|5, 9|10, 14|15, 19|20 (Kroenke 2001)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.fhir.instruments import score_observation_id
from tests.conftest import Backend, server_with

FHIR = {"Content-Type": "application/fhir+json"}
BASE = "https://casebridge.org/fhir"
# Item count and the scores each item offers.
ITEMS = {
    "audit": [[0, 1, 2, 3, 4]] * 8 + [[0, 2, 4]] * 2,
    "k10": [[1, 2, 3, 4, 5]] * 10,
    "phq9": [[0, 1, 2, 3]] * 9,
}


def answers_for(instrument: str, total: int) -> list[int]:
    """Per-item scores that add up to total (greedy, highest items first)."""
    scales = ITEMS[instrument]
    chosen = [min(s) for s in scales]
    remaining = total - sum(chosen)
    for index, scale in enumerate(scales):
        for option in sorted(scale, reverse=True):
            if option - chosen[index] <= remaining:
                remaining -= option - chosen[index]
                chosen[index] = option
                break
    assert remaining == 0 and sum(chosen) == total
    return chosen


def response(
    instrument: str, scores: Sequence[int | str], status: str = "completed"
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{BASE}/Questionnaire/{instrument}",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-02-01",
        "item": [
            {
                "linkId": f"{instrument}-{n}",
                "answer": [
                    {"valueCoding": {"system": f"{BASE}/CodeSystem/answer-score", "code": str(s)}}
                ],
            }
            for n, s in enumerate(scores, start=1)
        ],
    }


def score_of(http: httpx.Client, response_id: str) -> dict[str, Any]:
    found = http.get(f"/Observation/{score_observation_id(response_id)}")
    assert found.status_code == 200, found.text
    return dict(found.json())


EDGES = [
    ("audit", 0, "audit-low"),
    ("audit", 7, "audit-low"),
    ("audit", 8, "audit-hazardous"),
    ("audit", 15, "audit-hazardous"),
    ("audit", 16, "audit-harmful"),
    ("audit", 19, "audit-harmful"),
    ("audit", 20, "audit-dependence"),
    ("audit", 40, "audit-dependence"),
    ("k10", 10, "k10-low"),
    ("k10", 19, "k10-low"),
    ("k10", 20, "k10-mild"),
    ("k10", 24, "k10-mild"),
    ("k10", 25, "k10-moderate"),
    ("k10", 29, "k10-moderate"),
    ("k10", 30, "k10-severe"),
    ("k10", 50, "k10-severe"),
    ("phq9", 0, "phq9-minimal"),
    ("phq9", 4, "phq9-minimal"),
    ("phq9", 5, "phq9-mild"),
    ("phq9", 9, "phq9-mild"),
    ("phq9", 10, "phq9-moderate"),
    ("phq9", 14, "phq9-moderate"),
    ("phq9", 15, "phq9-moderately-severe"),
    ("phq9", 19, "phq9-moderately-severe"),
    ("phq9", 20, "phq9-severe"),
    ("phq9", 27, "phq9-severe"),
]
CODES = {"audit": "75624-7", "phq9": "44261-6", "k10": "k10-total"}


@pytest.mark.parametrize(
    ("instrument", "total", "zone"), EDGES, ids=[f"{i}-{t}" for i, t, _ in EDGES]
)
def test_zone_edges(client: httpx.Client, instrument: str, total: int, zone: str) -> None:
    created = client.post(
        "/QuestionnaireResponse",
        json=response(instrument, answers_for(instrument, total)),
        headers=FHIR,
    )
    assert created.status_code == 201, created.text
    observation = score_of(client, created.json()["id"])
    assert observation["valueInteger"] == total
    assert observation["interpretation"][0]["coding"][0]["code"] == zone
    assert observation["code"]["coding"][0]["code"] == CODES[instrument]
    assert observation["derivedFrom"] == [
        {"reference": f"QuestionnaireResponse/{created.json()['id']}"}
    ]
    assert observation["subject"] == {"reference": "Patient/p1"}


def _refused(http: httpx.Client, body: dict[str, Any], needle: str) -> None:
    result = http.post("/QuestionnaireResponse", json=body, headers=FHIR)
    assert result.status_code == 422, result.text
    outcome = result.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(needle in i["diagnostics"] for i in outcome["issue"]), outcome


def test_invalid_and_incomplete_answers_are_refused(client: httpx.Client) -> None:
    scores: list[int | str] = [0] * 10
    _refused(client, response("audit", scores[:9]), "item audit-10 ")
    _refused(client, response("audit", [*scores[:8], 1, 0]), "item audit-9 ")  # 1 is no option
    _refused(client, response("k10", [0] + [1] * 9), "item k10-1 ")  # K10 scores start at 1
    _refused(client, response("phq9", [0] * 8 + ["x"]), "item phq9-9 ")
    extra = response("phq9", [0] * 9)
    extra["item"].append({"linkId": "phq9-10", "answer": [{"valueCoding": {"code": "0"}}]})
    _refused(client, extra, "'phq9-10' is not an item")
    twice = response("phq9", [0] * 9)
    twice["item"].append(dict(twice["item"][0]))
    _refused(client, twice, "answered twice")
    assert client.get("/QuestionnaireResponse").json()["total"] == 0
    assert client.get("/Observation").json()["total"] == 0


def test_in_progress_is_kept_unscored_then_scored_when_completed(client: httpx.Client) -> None:
    partial = client.post(
        "/QuestionnaireResponse", json=response("phq9", [3, 3], "in-progress"), headers=FHIR
    )
    assert partial.status_code == 201, partial.text
    rid = partial.json()["id"]
    assert client.get(f"/Observation/{score_observation_id(rid)}").status_code == 404
    done = response("phq9", [3] * 9)
    done["id"] = rid
    assert client.put(f"/QuestionnaireResponse/{rid}", json=done, headers=FHIR).status_code == 200
    assert score_of(client, rid)["valueInteger"] == 27
    amended = response("phq9", [0] * 9, "amended")
    amended["id"] = rid
    assert (
        client.put(f"/QuestionnaireResponse/{rid}", json=amended, headers=FHIR).status_code == 200
    )
    observation = score_of(client, rid)
    assert observation["valueInteger"] == 0 and observation["meta"]["versionId"] == "2"
    assert client.delete(f"/QuestionnaireResponse/{rid}").status_code in (200, 204)
    assert client.get(f"/Observation/{score_observation_id(rid)}").status_code == 410


def test_scored_in_the_same_transaction(client: httpx.Client) -> None:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": response("audit", answers_for("audit", 12)),
                "request": {"method": "POST", "url": "QuestionnaireResponse"},
            },
            {
                "resource": response("k10", answers_for("k10", 33)),
                "request": {"method": "POST", "url": "QuestionnaireResponse"},
            },
        ],
    }
    result = client.post("", json=bundle, headers=FHIR)
    assert result.status_code == 200, result.text
    ids = [e["response"]["location"].split("/")[1] for e in result.json()["entry"]]
    assert score_of(client, ids[0])["valueInteger"] == 12
    assert score_of(client, ids[1])["interpretation"][0]["coding"][0]["code"] == "k10-severe"
    # A bad response fails the whole transaction: no response, no score.
    bundle["entry"][1]["resource"] = response("k10", [1] * 9)
    failed = client.post("", json=bundle, headers=FHIR)
    assert failed.status_code == 422
    assert "k10-10" in failed.json()["issue"][0]["diagnostics"]
    assert client.get("/QuestionnaireResponse").json()["total"] == 2
    assert client.get("/Observation").json()["total"] == 2


def test_other_questionnaires_are_left_alone(client: httpx.Client) -> None:
    body = response("audit", [0] * 10)
    body["questionnaire"] = "https://example.org/Questionnaire/intake"
    body["item"] = [{"linkId": "a", "answer": [{"valueString": "anything"}]}]
    assert client.post("/QuestionnaireResponse", json=body, headers=FHIR).status_code == 201
    assert client.get("/Observation").json()["total"] == 0


def test_plain_assessments_report_total_and_zone(
    live: Any, backend: Any, client: httpx.Client
) -> None:
    with httpx.Client(base_url=live.root, timeout=30) as root:
        case = root.post("/cases", json={"client": {"given_names": ["Kim"]}}).json()
        first = root.post(
            f"/cases/{case['id']}/assessments",
            json={
                "instrument": "k10",
                "date": "2026-01-10",
                "answers": dict(enumerate(answers_for("k10", 31), start=1)),
            },
        )
        assert first.status_code == 201, first.text
        assert (first.json()["total"], first.json()["zone"]) == (31, "k10-severe")
        missing = root.post(
            f"/cases/{case['id']}/assessments",
            json={"instrument": "k10", "date": "2026-02-10", "answers": {"1": 2}},
        )
        assert missing.status_code == 422
        assert "k10-2" in missing.json()["issue"][0]["diagnostics"]
        listed = root.get(f"/cases/{case['id']}/assessments").json()
        assert [a["total"] for a in listed] == [31]


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_phq9_item_9_raises_a_self_harm_flag_whatever_the_total(
    live: Any, backend: Any, client: httpx.Client, item9: int
) -> None:
    # Item 9 (thoughts of being better off dead, or of hurting oneself) above 0 is a risk to
    # follow up the same day, even when the total is "minimal".
    answers = dict.fromkeys(range(1, 10), 0)
    answers[9] = item9
    with httpx.Client(base_url=live.root, timeout=30) as root:
        case = root.post("/cases", json={"client": {"given_names": ["Kim"]}}).json()
        made = root.post(
            f"/cases/{case['id']}/assessments",
            json={"instrument": "phq9", "date": "2026-01-10", "answers": answers},
        )
        assert made.status_code == 201, made.text
        result = made.json()
        assert result["total"] == item9
        assert result["zone"] == "phq9-minimal"
        assert result["flags"] == ["self-harm-risk"]
        # R4B Flag has no status search parameter.
        found = client.get(f"/Flag?patient=Patient/{case['client_id']}").json()["entry"]
        flags = [e for e in found if e["search"]["mode"] == "match"]
        assert len(flags) == 1
        flag = flags[0]["resource"]
        assert flag["code"]["coding"][0]["code"] == "self-harm-risk"
        assert flag["period"]["start"].startswith("2026-01-10")
        # The case shows it first.
        shown = root.get(f"/cases/{case['id']}").json()
        assert next(iter(shown)) == "id" and list(shown)[1] == "alerts"
        assert [a["code"] for a in shown["alerts"]] == ["self-harm-risk"]
        assert shown["alerts"][0]["assessment"] == result["id"]
        # Amended with item 9 at 0: the flag becomes inactive, and stays in the record.
        fixed = client.get(f"/QuestionnaireResponse/{result['id']}").json()
        for item in fixed["item"]:
            if item["linkId"] == "phq9-9":
                item["answer"][0]["valueCoding"]["code"] = "0"
        fixed["status"] = "amended"
        assert (
            client.put(
                f"/QuestionnaireResponse/{result['id']}", json=fixed, headers=FHIR
            ).status_code
            == 200
        )
        assert root.get(f"/cases/{case['id']}").json()["alerts"] == []
        kept = client.get(f"/Flag/{flag['id']}").json()
        assert kept["status"] == "inactive"


def test_phq9_without_item_9_raises_no_flag(live: Any, client: httpx.Client) -> None:
    answers = dict.fromkeys(range(1, 9), 3)
    answers[9] = 0
    with httpx.Client(base_url=live.root, timeout=30) as root:
        case = root.post("/cases", json={"client": {"given_names": ["Kim"]}}).json()
        made = root.post(
            f"/cases/{case['id']}/assessments",
            json={"instrument": "phq9", "date": "2026-01-10", "answers": answers},
        ).json()
        assert made["zone"] == "phq9-severe" and made["flags"] == []
        assert client.get("/Flag").json().get("total", 0) == 0


ABS_EDGES = [
    (10, "k10-abs-low"),
    (15, "k10-abs-low"),
    (16, "k10-abs-moderate"),
    (21, "k10-abs-moderate"),
    (22, "k10-abs-high"),
    (29, "k10-abs-high"),
    (30, "k10-abs-very-high"),
    (50, "k10-abs-very-high"),
]


def test_k10_on_the_abs_population_bands(backend: Backend) -> None:
    """CASEBRIDGE_K10_BANDS=abs reads K10 totals on the ABS National Health Survey bands."""
    backend.truncate()
    server = server_with(backend, k10_bands="abs")
    try:
        with httpx.Client(base_url=server.fhir, timeout=30) as http:
            for total, zone in ABS_EDGES:
                created = http.post(
                    "/QuestionnaireResponse",
                    json=response("k10", answers_for("k10", total)),
                    headers=FHIR,
                )
                assert created.status_code == 201, created.text
                observation = score_of(http, created.json()["id"])
                assert observation["valueInteger"] == total
                coding = observation["interpretation"][0]["coding"][0]
                assert coding["code"] == zone, total
                assert coding["display"].startswith("K10 (ABS bands)")
            # Other instruments are read on their own bands either way.
            audit = http.post(
                "/QuestionnaireResponse",
                json=response("audit", answers_for("audit", 8)),
                headers=FHIR,
            )
            interpretation = score_of(http, audit.json()["id"])["interpretation"]
            assert interpretation[0]["coding"][0]["code"] == "audit-hazardous"
    finally:
        server.stop()
