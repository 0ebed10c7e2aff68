"""The privacy policy as pure functions over FHIR JSON (docs/threat-model.md).

- Security labels (DS4P, https://hl7.org/fhir/R4B/security-labels.html): AOD records carry
  confidentiality R and sensitivity ETH, and under the US regime the policy 42CFRPart2
  (PrivacyRegime: CASEBRIDGE_PRIVACY_REGIME).
- Referral shares: what a referral Task lets the two agencies it names see
  (SDOH Clinical Care IG referral pattern: Task.focus = ServiceRequest).
- Consents (https://hl7.org/fhir/R4B/consent.html): which agencies an active permit Consent
  names, for which period, and whether its purpose of use covers labelled data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from app.fhir.referral import is_referral
from app.search.dates import parse_date_range
from app.storage.access import AccessScope
from mappings.casework import CONSENT_USES

V3_CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"
AGENCY_TYPE: Final = "https://casebridge.org/fhir/CodeSystem/agency-type"
AOD_AGENCY: Final = "aod"

# The labels an AOD record carries under every regime (DS4P): restricted, and substance
# abuse information sensitivity.
_AOD_SENSITIVITY: Final = (
    {"system": V3_CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": V3_ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"},
)
_PART2: Final = {"system": V3_ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"}
# The obligation on a release of labelled records: no redisclosure without the client's
# consent directive (DS4P).
_NO_REDISCLOSURE: Final = {
    "system": V3_ACT_CODE,
    "code": "NORDSCLCD",
    "display": "no redisclosure without consent directive",
}


@dataclass(frozen=True, slots=True)
class PrivacyRegime:
    """The law a deployment's sensitive records are kept under: the labels an AOD record is
    stamped with, the labels of a release, and the notice that goes with one."""

    code: str
    labels: tuple[dict[str, str], ...]
    release_labels: tuple[dict[str, str], ...]
    notice: str


REGIMES: Final[dict[str, PrivacyRegime]] = {
    # Privacy Act 1988 (Cth), Australian Privacy Principles: health information is sensitive
    # information (s 6), used or disclosed only for the purpose it was collected for, or
    # with consent (APP 6).
    "au-app": PrivacyRegime(
        "au-app",
        _AOD_SENSITIVITY,
        (_NO_REDISCLOSURE,),
        "Sensitive health information disclosed under the client's consent for this "
        "referral (Privacy Act 1988 (Cth), APP 6): do not use or disclose it for another "
        "purpose without the client's consent or another lawful basis.",
    ),
    # US 42 CFR Part 2: the policy label, and the notice of 42 CFR 2.32.
    "us-42cfr2": PrivacyRegime(
        "us-42cfr2",
        (*_AOD_SENSITIVITY, _PART2),
        (_PART2, _NO_REDISCLOSURE),
        "42 CFR part 2 prohibits unauthorized disclosure of these records.",
    ),
}
DEFAULT_REGIME: Final = REGIMES["au-app"]
# The labels of an AOD record under the default regime.
AOD_LABELS: Final = DEFAULT_REGIME.labels
_SENSITIVE: Final = frozenset(
    {
        (V3_ACT_CODE, "ETH"),
        (V3_ACT_CODE, "42CFRPart2"),
        (V3_CONFIDENTIALITY, "R"),
        (V3_CONFIDENTIALITY, "V"),
    }
)
# A tag (meta.tag or meta.security) by which a writer asks for the AOD labels.
_LABEL_REQUESTS: Final = frozenset({"ETH", "42CFRPart2", "SUD", AOD_AGENCY})
# Purposes of use under which a Consent releases labelled records: treatment and care
# coordination, the purposes of a referral (v3 ActReason); the uses a plain consent names.
RELEASE_PURPOSES: Final = frozenset(CONSENT_USES.values())


# Directory and infrastructure types: never labelled, and readable by every agency (who may
# change them is still their owner's business).
DIRECTORY_TYPES: Final = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "CodeSystem",
        "ValueSet",
        "ConceptMap",
        "NamingSystem",
        "Questionnaire",
        "SubscriptionTopic",
        "StructureDefinition",
        "SearchParameter",
        "CapabilityStatement",
        "OperationDefinition",
        "Library",
        "PlanDefinition",
        "ActivityDefinition",
        "Medication",
        "Substance",
    }
)


# Resources a referral shares that the other agency may also change: the Task (under the
# referral state machine) and, as the referral's side effects, the request's status, the
# Goals it addressed and the CarePlan activity it belongs to. Only their owner deletes them.
SHARED_WRITABLE: Final = frozenset({"Task", "ServiceRequest", "Goal", "CarePlan"})
# Resources that stand for an agency through one of their elements (a referral's requester
# or owner may be a PractitionerRole or a HealthcareService of the agency).
BELONGS_TO: Final = {"PractitionerRole": "organization", "HealthcareService": "providedBy"}
# What a non-owner may change of a shared ServiceRequest: its status (the referral's side
# effect). Its subject, supportingInfo, reasonReference and basedOn decide what the referral
# shares, so only the request's owner changes them.
SHARED_REQUEST_ELEMENTS: Final = frozenset({"status"})


def may_change(
    resource_type: str,
    resource_id: str,
    *,
    agency: str,
    owner: tuple[str | None, bool] | None,
    deleting: bool,
    shared: Callable[[], bool],
) -> bool:
    """Whether agency may update (or delete) a record it can see (docs/threat-model.md, 7).

    owner is the record's owner row (agency, sensitive), None when it has none: directory
    data the local operator wrote, which only the operator changes, except that an agency
    keeps its own Organization. shared() says whether a referral shares the record with
    agency (asked only when that could allow the write).
    """
    if owner is None:
        return (
            not deleting
            and resource_type == "Organization"
            and agency == f"Organization/{resource_id}"
        )
    if owner[0] == agency:
        return True
    return not deleting and resource_type in SHARED_WRITABLE and shared()


def _codings(meta: Any, element: str) -> Iterator[tuple[str | None, str | None]]:
    if not isinstance(meta, dict):
        return
    for coding in meta.get(element) or ():
        if isinstance(coding, dict):
            yield coding.get("system"), coding.get("code")


def is_sensitive(resource: dict[str, Any] | None) -> bool:
    """Whether the resource carries a label that restricts its release."""
    if not resource:
        return False
    return any(pair in _SENSITIVE for pair in _codings(resource.get("meta"), "security"))


def labels_requested(resource: dict[str, Any]) -> bool:
    """Whether the writer tagged the resource as AOD (meta.tag or meta.security)."""
    meta = resource.get("meta")
    codes = {code for _, code in _codings(meta, "tag")}
    codes |= {code for _, code in _codings(meta, "security")}
    return bool(codes & _LABEL_REQUESTS)


def labelable(resource_type: str) -> bool:
    """Whether records of this type are labelled when an AOD service writes them (client
    records; not the directory and infrastructure types)."""
    return resource_type not in DIRECTORY_TYPES


def scope_for(agency: str | None, now: datetime) -> AccessScope | None:
    """The access rule of an agency at an instant (None: the unconfined local operator)."""
    if agency is None:
        return None
    return AccessScope(agency, now, tuple(sorted(DIRECTORY_TYPES)))


def owned(resource_type: str, *, agency: str | None, sensitive: bool) -> bool:
    """Whether a newly written resource gets an owner row: whatever an agency writes (so
    only it may change it), and the operator's client records and labelled ones (which no
    agency sees without a referral and a consent). The operator's directory data has none."""
    return agency is not None or sensitive or labelable(resource_type)


def add_aod_labels(
    resource: dict[str, Any], labels: tuple[dict[str, str], ...] = AOD_LABELS
) -> bool:
    """Add the AOD labels (the regime's) the resource lacks; True if it changed."""
    meta = resource.setdefault("meta", {})
    security = meta.setdefault("security", [])
    present = set(_codings(meta, "security"))
    changed = False
    for label in labels:
        if (label["system"], label["code"]) not in present:
            security.append(dict(label))
            changed = True
    return changed


def keep_labels(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Carry every security label of old into new (a non-owner's write never lowers a
    record's labels); True if new changed."""
    if not old:
        return False
    kept = [
        label for label in (old.get("meta") or {}).get("security") or () if isinstance(label, dict)
    ]
    if not kept:
        return False
    meta = new.get("meta")
    if not isinstance(meta, dict):
        meta = new["meta"] = {}
    security = meta.get("security")
    if not isinstance(security, list):
        security = meta["security"] = []
    present = set(_codings(meta, "security"))
    changed = False
    for label in kept:
        if (label.get("system"), label.get("code")) not in present:
            security.append(dict(label))
            present.add((label.get("system"), label.get("code")))
            changed = True
    return changed


def changes_beyond(old: dict[str, Any], new: dict[str, Any], allowed: frozenset[str]) -> set[str]:
    """Top-level elements that differ between two versions, other than id, meta (the
    server's and the labels) and the allowed ones."""
    ignored = allowed | {"id", "meta"}
    return {k for k in (set(old) | set(new)) - ignored if old.get(k) != new.get(k)}


def is_aod_agency(organization: dict[str, Any] | None) -> bool:
    """Whether an Organization is registered as an AOD service (Organization.type)."""
    if not organization:
        return False
    for concept in organization.get("type") or ():
        for coding in (concept or {}).get("coding") or ():
            if coding.get("system") == AGENCY_TYPE and coding.get("code") == AOD_AGENCY:
                return True
    return False


# -- references --------------------------------------------------------------------------
def local_reference(value: Any, own_base: str) -> tuple[str, str] | None:
    """(type, id) of a Reference to a resource on this server, else None."""
    if not isinstance(value, dict):
        return None
    reference = value.get("reference")
    if not isinstance(reference, str):
        return None
    if reference.startswith(own_base + "/"):
        reference = reference[len(own_base) + 1 :]
    parts = reference.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1] or ":" in parts[0]:
        return None
    return parts[0], parts[1]


def is_referral_task(task: dict[str, Any]) -> bool:
    """A referral: Task.code task-code#fulfill with focus a ServiceRequest (SDOH CC IG).
    The referral rules' own definition (app/fhir/referral.py), so that a Task shares only
    when the state machine and its rules (who writes Task.output) apply to it: a focus
    written another way (an absolute URL, a version) is no referral for either."""
    return is_referral({"resourceType": "Task", **task})


@dataclass(frozen=True, slots=True)
class Grant:
    """One resource shared with one agency by one referral, by its owner (the grantor)."""

    agency: str
    resource_type: str
    resource_id: str
    basis: str
    patient_id: str | None
    # The agency that owns the resource and so shared it ("" for the local operator); a
    # consent releases it only when that agency recorded the consent.
    grantor: str = ""

    def row(self) -> dict[str, Any]:
        """As an access_grant row (without task_id)."""
        return {
            "agency": self.agency,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "basis": self.basis,
            "patient_id": self.patient_id,
            "grantor": self.grantor,
        }


@dataclass(frozen=True, slots=True)
class Referral:
    """What a referral Task names: the agencies it shares with, the client, what it
    carries (key, basis) for the referrer to share, and the output the receiver reports."""

    task_id: str
    agencies: frozenset[str]
    patient_id: str | None
    performer: str | None
    carried: tuple[tuple[tuple[str, str], str], ...]
    reported: tuple[tuple[str, str], ...]

    def keys(self) -> set[tuple[str, str]]:
        """Every record named, for looking their owners up at once."""
        return {key for key, _ in self.carried} | set(self.reported) | {("Task", self.task_id)}


def referral_of(
    task_id: str,
    task: dict[str, Any],
    service_request: dict[str, Any] | None,
    *,
    own_base: str,
    organization_of: Callable[[tuple[str, str]], str | None],
) -> Referral | None:
    """What a referral Task names (None: not a referral, or it names no agency).

    The Task and its ServiceRequest are shared by the referral itself; the client's data it
    carries (the Patient, the request's supportingInfo, reasonReference and basedOn, the
    Task's input references) only under the client's consent: minimum necessary, nothing
    else of the record. The outcome in Task.output is the referral's answer, which the
    referrer sees on the referral alone unless it is labelled. organization_of maps a
    requester/owner reference to its agency ("Organization/x").
    """
    if not is_referral_task(task):
        return None
    agencies = frozenset(
        agency
        for element in ("owner", "requester")
        if (ref := local_reference(task.get(element), own_base)) is not None
        and (agency := organization_of(ref)) is not None
    )
    if not agencies:
        return None
    owner_ref = local_reference(task.get("owner"), own_base)
    patient = local_reference(task.get("for"), own_base)
    patient_id = patient[1] if patient is not None and patient[0] == "Patient" else None
    focus = local_reference(task.get("focus"), own_base)
    carried: list[tuple[tuple[str, str], str]] = [(("Task", task_id), "referral")]
    if focus is not None:
        carried.append((focus, "referral"))
    client: list[Any] = [task.get("for")]
    for item in task.get("input") or ():
        if isinstance(item, dict):
            client.append(item.get("valueReference"))
    if service_request:
        client.append(service_request.get("subject"))
        for element in ("supportingInfo", "reasonReference", "basedOn"):
            client.extend(service_request.get(element) or ())
        if patient_id is None:
            subject = local_reference(service_request.get("subject"), own_base)
            if subject is not None and subject[0] == "Patient":
                patient_id = subject[1]
    carried += [(key, "client") for v in client if (key := local_reference(v, own_base))]
    reported = tuple(
        key
        for item in task.get("output") or ()
        if isinstance(item, dict)
        and (key := local_reference(item.get("valueReference"), own_base)) is not None
    )
    return Referral(
        task_id,
        agencies,
        patient_id,
        organization_of(owner_ref) if owner_ref is not None else None,
        tuple(carried),
        reported,
    )


def referral_shares(
    referral: Referral, owner_of: Callable[[tuple[str, str]], str | None]
) -> list[Grant]:
    """What a referral shares, and with whom. Only an owner shares (docs/threat-model.md,
    3): what the referral carries shares a record only when the agency that made the
    referral (the Task's owner row) owns it, and its output only what the receiving agency
    (Task.owner) owns; anything else it names shares nothing. The local operator's
    referrals share what they name. owner_of gives a record's owning agency ("" for the
    operator), None for a record without an owner row (directory data, or none at all).
    """
    referrer = owner_of(("Task", referral.task_id)) or ""
    shared: dict[tuple[str, str], tuple[str, str]] = {}

    def share(key: tuple[str, str], basis: str, sharer: str | None, trusted: bool) -> None:
        owner = owner_of(key)
        if owner is None or (not trusted and owner != sharer):
            return
        if key not in shared or basis == "referral":
            shared[key] = (basis, owner)

    # The operator's referral carries what the operator put in it; what any referral's
    # receiver reports is shared only if the receiver owns it (it wrote Task.output, even
    # in a Task the operator made).
    for key, basis in referral.carried:
        share(key, basis, referrer, trusted=not referrer)
    for key in referral.reported:
        share(key, "referral", referral.performer, trusted=False)
    return [
        Grant(agency, resource_type, resource_id, basis, referral.patient_id, grantor)
        for agency in sorted(referral.agencies)
        for (resource_type, resource_id), (basis, grantor) in sorted(shared.items())
    ]


def consent_grants(
    consent: dict[str, Any] | None, *, own_base: str, grantor: str
) -> list[dict[str, Any]]:
    """consent_grant rows (patient_id, agency, starts, ends, sensitive_ok, grantor) of a
    Consent: none unless it is active, of a Patient, and its provision permits (R4B
    Consent). grantor is the agency that recorded it ("" for the operator): a consent
    releases only that agency's records, never another's (only an owner shares)."""
    if not consent or consent.get("status") != "active":
        return []
    patient = local_reference(consent.get("patient"), own_base)
    if patient is None or patient[0] != "Patient":
        return []
    provision = consent.get("provision") or {}
    if provision.get("type", "permit") != "permit":
        return []
    starts, ends = _period(provision.get("period"))
    purposes = {
        coding.get("code")
        for coding in provision.get("purpose") or ()
        if isinstance(coding, dict) and coding.get("system") == V3_ACT_REASON
    }
    sensitive_ok = bool(purposes & RELEASE_PURPOSES)
    agencies = set()
    for actor in provision.get("actor") or ():
        key = local_reference((actor or {}).get("reference"), own_base)
        if key is not None and key[0] == "Organization":
            agencies.add(f"Organization/{key[1]}")
    return [
        {
            "patient_id": patient[1],
            "agency": agency,
            "starts": starts,
            "ends": ends,
            "sensitive_ok": sensitive_ok,
            "grantor": grantor,
        }
        for agency in sorted(agencies)
    ]


def _period(period: Any) -> tuple[datetime | None, datetime | None]:
    """A Period as [start, end) instants: the end's whole precision is included."""
    if not isinstance(period, dict):
        return None, None
    starts = ends = None
    if isinstance(period.get("start"), str):
        starts = parse_date_range(period["start"]).low
    if isinstance(period.get("end"), str):
        ends = parse_date_range(period["end"]).high
    return starts, ends
