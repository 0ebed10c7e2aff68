"""Scoring the project's assessment instruments (AUDIT, K10, PHQ-9): pure FHIR rules.

A QuestionnaireResponse (spec questionnaireresponse.html) to one of the Questionnaires in
schemas/fhir/questionnaires is checked against it: every answer must be one of the item's
answerOptions (by code) and, once the response is completed or amended, every required item
must be answered once. The total is the sum of the options' ordinalValue extensions; the risk
zone is the concept of the CodeSystem assessment-zone whose low..high holds the total.
Responses in progress (or stopped) are checked but not scored.

Some answers are risks whatever the total: PHQ-9 item 9 (thoughts of being better off dead
or of self-harm) answered above 0 raises the flag self-harm-risk (Kroenke et al. 2001; every
PHQ-9 guide asks for same-day follow-up). A flagged response gets a FHIR Flag on the client
(spec flag.html), which the case views list first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from app.fhir.errors import Issue, ResourceInvalid
from mappings.casework import EXT, QUESTIONNAIRE_URLS, SCORE_CODES
from schemas.conformance import code_system, questionnaires, system

ORDINAL: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
_SCORED_STATUSES: Final = frozenset({"completed", "amended"})
_INSTRUMENTS: Final = {url: name for name, url in QUESTIONNAIRE_URLS.items()}
SELF_HARM: Final = "self-harm-risk"
# instrument -> (item linkId, flag): an answer above 0 to the item raises the flag.
RISK_ITEMS: Final = {"phq9": ("phq9-9", SELF_HARM)}
FLAG_DETAIL: Final = "http://hl7.org/fhir/StructureDefinition/flag-detail"


@dataclass(frozen=True, slots=True)
class Score:
    """The total of one response, the zone it falls in, and the risks its answers raise."""

    instrument: str
    total: int
    zone: str
    zone_display: str
    flags: tuple[str, ...] = ()


def risk_flags(instrument: str, answers: dict[str, int]) -> tuple[str, ...]:
    """The flags the answers (linkId -> score) raise, whatever the total."""
    risk = RISK_ITEMS.get(instrument)
    if risk is None or answers.get(risk[0], 0) <= 0:
        return ()
    return (risk[1],)


def instrument_of(response: dict[str, Any]) -> str | None:
    """audit, k10 or phq9 when the response answers one of the project's instruments."""
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str):
        return None
    return _INSTRUMENTS.get(canonical.split("|", 1)[0])


def zone_for(instrument: str, total: int) -> tuple[str, str]:
    """The assessment-zone code and display holding this total (KeyError if none does)."""
    for concept in code_system("assessment-zone")["concept"]:
        props = {
            p["code"]: next(v for k, v in p.items() if k != "code") for p in concept["property"]
        }
        if props["instrument"] == instrument and props["low"] <= total <= props["high"]:
            return concept["code"], concept["display"]
    raise KeyError(f"{instrument} total {total}")


def _options(item: dict[str, Any]) -> dict[str, int]:
    found = {}
    for option in item.get("answerOption", []):
        ordinal = next(e["valueDecimal"] for e in option["extension"] if e["url"] == ORDINAL)
        found[option["valueCoding"]["code"]] = int(ordinal)
    return found


def score_response(response: dict[str, Any], *, k10_bands: str = "clinical") -> Score | None:
    """Check a response to one of the project's instruments and score it.

    None for a response to another Questionnaire, or one still in progress. Raises
    ResourceInvalid (422) naming each item with an invalid, repeated or missing answer.
    k10_bands: "clinical" (AIHW: likely to be well, mild, moderate, severe) or "abs" (the
    ABS population bands: low, moderate, high, very high).
    """
    instrument = instrument_of(response)
    if instrument is None:
        return None
    questionnaire = questionnaires()[QUESTIONNAIRE_URLS[instrument]]
    items = {item["linkId"]: item for item in questionnaire["item"]}
    issues: list[Issue] = []
    scores: dict[str, int] = {}
    for index, given in enumerate(response.get("item", [])):
        where = f"QuestionnaireResponse.item[{index}]"
        link = given.get("linkId")
        item = items.get(link)
        if item is None:
            issues.append(_issue(f"{where}: {link!r} is not an item of {instrument}", where))
            continue
        if link in scores:
            issues.append(_issue(f"{where}: item {link} is answered twice", where))
            continue
        answers = given.get("answer", [])
        if len(answers) != 1:
            issues.append(
                _issue(f"{where}: item {link} takes exactly one answer, not {len(answers)}", where)
            )
            continue
        options = _options(item)
        coding = answers[0].get("valueCoding")
        code = coding.get("code") if isinstance(coding, dict) else None
        other_system = isinstance(coding, dict) and coding.get("system") not in (
            None,
            system("answer-score"),
        )
        if code not in options or other_system:
            issues.append(
                _issue(
                    f"{where}.answer[0]: item {link} takes a valueCoding with one of the codes "
                    f"{', '.join(options)} of {system('answer-score')}",
                    f"{where}.answer[0]",
                )
            )
            continue
        scores[link] = options[code]
    status = response.get("status")
    if status in _SCORED_STATUSES:
        for link, item in items.items():
            if item.get("required") and link not in scores and not _named(issues, link):
                issues.append(
                    _issue(
                        f"QuestionnaireResponse.item: item {link} ({item['text'][:60]}) is not "
                        f"answered; a {status} {instrument} response answers every item",
                        "QuestionnaireResponse.item",
                    )
                )
    if issues:
        raise ResourceInvalid(issues[0].diagnostics, issues=issues)
    if status not in _SCORED_STATUSES:
        return None
    total = sum(scores.values())
    bands = "k10-abs" if instrument == "k10" and k10_bands == "abs" else instrument
    zone, zone_display = zone_for(bands, total)
    return Score(instrument, total, zone, zone_display, risk_flags(instrument, scores))


def _named(issues: list[Issue], link: str) -> bool:
    return any(f"item {link} " in issue.diagnostics for issue in issues)


def _issue(message: str, where: str) -> Issue:
    return Issue("value", message, "error", (where,))


def score_observation_id(response_id: str) -> str:
    """The id of the Observation holding a response's score: derived, so an amended response
    updates its score instead of adding another."""
    return "score-" + hashlib.sha256(response_id.encode()).hexdigest()[:40]


def score_observation(response: dict[str, Any], response_id: str, score: Score) -> dict[str, Any]:
    """The Observation of a response's total score (LOINC where a code exists), its zone as
    interpretation, derived from the response (spec observation.html#derivedFrom)."""
    observation: dict[str, Any] = {"resourceType": "Observation"}
    case = [e for e in response.get("extension", []) if e.get("url") == EXT["case"]]
    if case:
        observation["extension"] = case
    observation["status"] = "final"
    observation["category"] = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "survey",
                }
            ]
        }
    ]
    observation["code"] = {"coding": [dict(SCORE_CODES[score.instrument])]}
    if isinstance(response.get("subject"), dict):
        observation["subject"] = response["subject"]
    if isinstance(response.get("authored"), str):
        observation["effectiveDateTime"] = response["authored"]
    observation["valueInteger"] = score.total
    observation["interpretation"] = [
        {
            "coding": [
                {
                    "system": system("assessment-zone"),
                    "code": score.zone,
                    "display": score.zone_display,
                }
            ]
        }
    ]
    observation["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response_id}"}]
    return observation


def response_flags(response: dict[str, Any]) -> tuple[str, ...]:
    """The flags a stored response's answers raise (it was checked when written)."""
    instrument = instrument_of(response)
    if instrument is None:
        return ()
    answers: dict[str, int] = {}
    for item in response.get("item") or ():
        for answer in item.get("answer") or ():
            code = (answer.get("valueCoding") or {}).get("code")
            if isinstance(code, str) and code.isdigit():
                answers[str(item.get("linkId"))] = int(code)
    return risk_flags(instrument, answers)


def flag_id(response_id: str) -> str:
    """The id of the Flag a response raises: derived, like its score's."""
    return "flag-" + hashlib.sha256(response_id.encode()).hexdigest()[:40]


def risk_flag(response: dict[str, Any], response_id: str, score: Score) -> dict[str, Any]:
    """The Flag (spec flag.html) of a response whose answers raise a risk: active, on the
    client, from when the response was authored, pointing at the response."""
    concepts = {c["code"]: c for c in code_system("observation")["concept"]}
    flag: dict[str, Any] = {
        "resourceType": "Flag",
        "extension": [
            {
                "url": FLAG_DETAIL,
                "valueReference": {"reference": f"QuestionnaireResponse/{response_id}"},
            }
        ],
        "status": "active",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                        "code": "clinical",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": system("observation"),
                    "code": code,
                    "display": concepts[code]["display"],
                }
                for code in score.flags
            ],
            "text": "; ".join(concepts[code]["definition"] for code in score.flags),
        },
    }
    if isinstance(response.get("subject"), dict):
        flag["subject"] = response["subject"]
    if isinstance(response.get("authored"), str):
        flag["period"] = {"start": response["authored"]}
    return flag


__all__ = [
    "RISK_ITEMS",
    "SELF_HARM",
    "Score",
    "flag_id",
    "instrument_of",
    "response_flags",
    "risk_flag",
    "risk_flags",
    "score_observation",
    "score_observation_id",
    "score_response",
    "zone_for",
]
