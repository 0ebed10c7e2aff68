"""FHIR records as a case worker reads them: names, not ids; plain words, not element names.
Pure functions over FHIR JSON (what the pages show), and the lookups of names they need."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from app.fhir.jsonio import loads_stored
from app.fhir.referral import Party, allowed_actions, reference_of
from app.records import StoredVersion
from app.services.usecases.referrals import ReferralView
from schemas.conformance import code_system, codes, display, questionnaires

# The words a worker uses for each referral status (SDOHCC Task.status).
STATUS_WORDS: Final = {
    "draft": "draft",
    "requested": "new",
    "accepted": "accepted",
    "rejected": "declined",
    "in-progress": "in progress",
    "on-hold": "on hold",
    "completed": "completed",
    "failed": "could not be provided",
    "cancelled": "cancelled",
    "entered-in-error": "entered in error",
}
ACTION_WORDS: Final = {
    "accept": "Accept",
    "decline": "Decline",
    "start": "Start the service",
    "hold": "Put on hold",
    "resume": "Resume",
    "complete": "Complete",
    "fail": "Could not provide",
    "cancel": "Cancel the referral",
}
# Actions that ask why (the state machine requires a reason).
NEEDS_REASON: Final = frozenset({"decline", "hold", "fail", "cancel"})
SERVICE_TYPES: Final = tuple((c, display("aod-service-type", c)) for c in codes("aod-service-type"))

Names = Callable[[str | None], str]


def body(version: StoredVersion) -> dict[str, Any]:
    """A live version's JSON."""
    assert version.body is not None
    found: dict[str, Any] = loads_stored(version.body)
    return found


def text_of(concept: Any) -> str | None:
    """A CodeableConcept as words: its text, else its first coding's display or code."""
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict):
            return str(coding.get("display") or coding.get("code") or "") or None
    return None


def person_name(resource: dict[str, Any] | None) -> str | None:
    """A Patient's, Practitioner's or RelatedPerson's name; an Organization's name."""
    if not resource:
        return None
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    for name in resource.get("name") or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str):
            return str(name["text"])
        parts = [*(name.get("given") or []), *([name["family"]] if name.get("family") else [])]
        if parts:
            return " ".join(str(p) for p in parts)
    return None


@dataclass(frozen=True, slots=True)
class ReferralLine:
    """One referral in a box."""

    id: str
    status: str
    status_words: str
    overdue: str | None
    client: str
    service: str
    other_agency: str
    requested: str | None
    priority: str
    sent: bool


def referral_line(view: ReferralView, names: Names, service: str | None) -> ReferralLine:
    """A referral as the inbox or outbox lists it."""
    task = view.task
    sent = Party.REQUESTER in view.parties and Party.OWNER not in view.parties
    other = reference_of(task.get("owner") if sent else task.get("requester"))
    status = str(task.get("status"))
    return ReferralLine(
        id=str(task.get("id")),
        status=status,
        status_words=STATUS_WORDS.get(status, status),
        overdue=view.overdue,
        client=names(reference_of(task.get("for"))),
        service=service or text_of(task.get("code")) or "Referral",
        other_agency=names(other),
        requested=task.get("authoredOn"),
        priority=str(task.get("priority") or "routine"),
        sent=sent,
    )


def order_lines(lines: Iterable[ReferralLine]) -> list[ReferralLine]:
    """Overdue first, then new, then open, then closed; newest first within each."""

    def rank(line: ReferralLine) -> tuple[int, str]:
        if line.overdue:
            group = 0
        elif line.status == "requested":
            group = 1
        elif line.status in ("accepted", "in-progress", "on-hold"):
            group = 2
        else:
            group = 3
        return group, "".join(chr(0x10FFFF - ord(c)) for c in (line.requested or ""))

    return sorted(lines, key=rank)


@dataclass
class PacketView:
    """A referral's packet, readable: who, what, why, under which consent, for which plan."""

    line: ReferralLine
    actions: list[tuple[str, str, bool]]
    client: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    consents: list[dict[str, Any]] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    reason: str | None = None
    notice: str | None = None


def packet_view(
    view: ReferralView, resources: list[dict[str, Any]], names: Names, notice: str | None
) -> PacketView:
    """The packet's records sorted by what they are to the worker."""
    task = view.task
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    request = _first(by_type.get("ServiceRequest"))
    line = referral_line(view, names, text_of((request or {}).get("code")))
    actions = [
        (name, ACTION_WORDS.get(name, name), name in NEEDS_REASON)
        for name in allowed_actions(str(task.get("status")), view.parties)
    ]
    outcome = [
        text
        for item in task.get("output") or []
        if isinstance(item, dict)
        for text in [
            item.get("valueString")
            or text_of(item.get("type"))
            or reference_of(item.get("valueReference"))
        ]
        if text
    ]
    reason = (task.get("statusReason") or {}).get("text")
    return PacketView(
        line=line,
        actions=actions,
        client=_first(by_type.get("Patient")),
        request=request,
        consents=by_type.get("Consent", []),
        plans=by_type.get("CarePlan", []),
        goals=by_type.get("Goal", []),
        others=[r for kind, found in by_type.items() if kind not in _SHOWN_APART for r in found],
        outcome=[str(o) for o in outcome],
        reason=reason if isinstance(reason, str) else None,
        notice=notice,
    )


@dataclass(frozen=True, slots=True)
class InstrumentForm:
    """An instrument as a form: its items with their answer options, and its zones (for
    the score shown as the worker answers; the server scores what is stored)."""

    code: str
    title: str
    items: list[tuple[int, str, list[tuple[int, str]]]]
    # (low, high, words) of each zone.
    zones: list[tuple[int, int, str]]


def instrument_forms(k10_bands: str) -> list[InstrumentForm]:
    """AUDIT, K10 and PHQ-9 from the project's Questionnaires and assessment-zone bands."""
    forms = []
    zone_concepts = code_system("assessment-zone")["concept"]
    for code, title in (("audit", "AUDIT (alcohol use)"), ("k10", "K10 (psychological distress)"),
                        ("phq9", "PHQ-9 (depression)")):  # fmt: skip
        questionnaire = questionnaires()[f"https://casebridge.org/fhir/Questionnaire/{code}"]
        items = []
        for number, item in enumerate(questionnaire.get("item", []), 1):
            options = [
                (int(o["valueCoding"]["code"]), str(o["valueCoding"].get("display", "")))
                for o in item.get("answerOption", [])
            ]
            items.append((number, str(item.get("text", "")), options))
        banded = "k10-abs" if code == "k10" and k10_bands == "abs" else code
        zones = []
        for concept in zone_concepts:
            props = {p["code"]: next(v for k, v in p.items() if k.startswith("value"))
                     for p in concept.get("property", [])}  # fmt: skip
            if props.get("instrument") == banded:
                words = str(concept["display"]).split(": ", 1)[-1]
                zones.append((int(props["low"]), int(props["high"]), words))
        forms.append(InstrumentForm(code, title, items, zones))
    return forms


# Shown in their own places on the packet, or who sent and received it (the directory):
# not among the records sent with the referral.
_SHOWN_APART: Final = frozenset(
    {"Patient", "ServiceRequest", "Consent", "CarePlan", "Goal", "Task", "Organization",
     "Practitioner", "PractitionerRole", "HealthcareService", "Location"}
)  # fmt: skip


def _first(found: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return found[0] if found else None


__all__ = [
    "ACTION_WORDS",
    "NEEDS_REASON",
    "SERVICE_TYPES",
    "STATUS_WORDS",
    "InstrumentForm",
    "PacketView",
    "ReferralLine",
    "body",
    "instrument_forms",
    "order_lines",
    "packet_view",
    "person_name",
    "referral_line",
    "text_of",
]
