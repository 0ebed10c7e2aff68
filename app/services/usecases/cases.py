"""The plain case-management API's use cases: cases, supports, care plans, notes and
assessments, stored as FHIR through the one transaction path (BundleService).

Every write builds a transaction Bundle from mappings/ and runs it through BundleService, so
it is one database transaction and passes the same write hooks as any FHIR client's write
(assessment scoring, access rules, audit). Reads gather the FHIR resources of a case in one
snapshot and map them back. A case's records are found through the client (subject or
patient search) and the project's case extension (mappings.casework.case_of).
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.clock import Clock
from app.fhir.careplan_checks import PlanContext, check_plan, model_of
from app.fhir.case_process import is_closed, last_contacts
from app.fhir.errors import FHIRError, Issue, NotFound, ResourceInvalid
from app.fhir.instruments import response_flags, score_observation_id
from app.fhir.jsonio import loads_stored
from app.security.caller import Caller
from app.services.disclosure import Release
from app.services.uow import transaction
from app.services.usecases.bundle import BundleService
from app.services.usecases.resources import ResourceService
from app.services.usecases.search import SearchService
from app.storage.repository import Repository, StoredVersion
from mappings import casework as m
from schemas import casework as plain
from schemas.conformance import system

_MAX_RECORDS = 1000


@dataclass
class Stored:
    """FHIR resources read or written for one plain answer, and the plain answer."""

    value: Any
    resources: list[dict[str, Any]] = field(default_factory=list)
    # The ETag version of the main resource, when there is one.
    version_id: int | None = None


class _Tx:
    """A transaction Bundle under construction: urn:uuid placeholders for new resources."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.labels: list[str] = []

    def post(self, resource: dict[str, Any], label: str) -> str:
        url = f"urn:uuid:{uuid.uuid4()}"
        resource.pop("id", None)
        self.entries.append(
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        self.labels.append(label)
        return url

    def put(self, resource: dict[str, Any], label: str, if_match: int | None = None) -> None:
        request: dict[str, Any] = {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }
        if if_match is not None:
            request["ifMatch"] = f'W/"{if_match}"'
        self.entries.append({"resource": resource, "request": request})
        self.labels.append(label)

    def bundle(self) -> bytes:
        return orjson.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}
        )


def _swap(value: Any, old: str, new: str) -> None:
    """Replace every Reference.reference equal to old (placeholder ids before the urn:uuid of
    a resource created in the same transaction is known to the mapping)."""
    if isinstance(value, dict):
        if value.get("reference") == old:
            value["reference"] = new
        for item in value.values():
            _swap(item, old, new)
    elif isinstance(value, list):
        for item in value:
            _swap(item, old, new)


def _body(version: StoredVersion) -> dict[str, Any]:
    assert version.body is not None
    body: dict[str, Any] = loads_stored(version.body)
    return body


class CaseService:
    """Use cases of /cases: plain JSON in and out, FHIR underneath."""

    def __init__(
        self,
        *,
        resources: ResourceService,
        bundles: BundleService,
        search: SearchService,
        clock: Clock,
    ) -> None:
        self._resources = resources
        self._bundles = bundles
        self._search = search
        self._clock = clock

    # -- plumbing ----------------------------------------------------------------------------
    def _run(self, tx: _Tx, caller: Caller) -> list[StoredVersion]:
        """Run a transaction Bundle; errors name the plain record at fault."""
        return self._ran(tx, caller)[0]

    def _ran(self, tx: _Tx, caller: Caller) -> tuple[list[StoredVersion], list[str]]:
        """Run a transaction Bundle: the versions written and the rules' warnings."""
        try:
            _kind, outcomes = self._bundles.process(tx.bundle(), caller=caller)
        except FHIRError as exc:
            raise _relabel(exc, tx.labels) from exc
        versions = []
        for outcome in outcomes:
            assert outcome.version is not None
            versions.append(outcome.version)
        warnings = [i.diagnostics for o in outcomes for i in o.issues if i.severity == "warning"]
        return versions, warnings

    def _warned(self, caller: Caller, case_id: str, warnings: list[str]) -> Stored:
        """The case as written, with what the process rules warned about."""
        stored = self.read_case(caller=caller, case_id=case_id)
        stored.value = stored.value.model_copy(update={"warnings": warnings})
        return stored

    def _snapshot(self, caller: Caller) -> AbstractContextManager[Repository]:
        """A read transaction under the caller's access scope (docs/threat-model.md): a case
        of another agency answers 404 like a missing one."""
        return transaction(
            self._resources.engine,
            write=False,
            snapshot=True,
            scope=self._resources.scope(caller),
        )

    def _find(
        self, repo: Repository, caller: Caller, resource_type: str, params: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        page = self._search.search(
            caller=caller,
            resource_type=resource_type,
            params=[*params, ("_count", str(_MAX_RECORDS))],
            strict=True,
            repo=repo,
        )
        return [_body(v) for v in page.matches]

    @staticmethod
    def _read(repo: Repository, resource_type: str, resource_id: str) -> StoredVersion:
        return ResourceService.read_in(repo, resource_type, resource_id)

    def _episode(self, repo: Repository, case_id: str) -> tuple[dict[str, Any], StoredVersion]:
        try:
            version = self._read(repo, "EpisodeOfCare", case_id)
        except FHIRError as exc:
            raise NotFound(f"Case {case_id} is not known") from exc
        return _body(version), version

    def _post_one(
        self, caller: Caller, resource: dict[str, Any], what: str
    ) -> tuple[dict[str, Any], StoredVersion]:
        """Store one new record of the case (a transaction of one entry); its body and
        version."""
        tx = _Tx()
        tx.post(resource, what)
        version = self._run(tx, caller)[0]
        return _body(version), version

    def _client_records(
        self, caller: Caller, case_id: str, resource_type: str
    ) -> list[dict[str, Any]]:
        """The case's client's records of a type (by the patient search parameter)."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            patient = f"Patient/{self._client_id(episode)}"
            return self._find(repo, caller, resource_type, [("patient", patient)])

    @staticmethod
    def _client_id(episode: dict[str, Any]) -> str:
        reference = (episode.get("patient") or {}).get("reference", "")
        return str(reference).split("/", 1)[-1]

    def _team(self, repo: Repository, episode: dict[str, Any]) -> dict[str, Any] | None:
        for team in episode.get("team", []):
            team_id = m._id_of(team, "CareTeam")
            if team_id:
                current = repo.visible_current("CareTeam", team_id)
                if current is not None:
                    return _body(current)
        return None

    def _of_case(
        self,
        repo: Repository,
        caller: Caller,
        case_id: str,
        resource_type: str,
        params: list[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        return [
            r for r in self._find(repo, caller, resource_type, params) if m.case_of(r) == case_id
        ]

    def released(self, *, caller: Caller, stored: Stored) -> Release:
        """What a plain answer releases to an agency that does not own the records behind
        it, logged in the accounting of disclosures like a FHIR read of those records."""
        versions = []
        for resource in stored.resources:
            meta = resource.get("meta") or {}
            number = str(meta.get("versionId") or "1")
            versions.append(
                StoredVersion(
                    str(resource.get("resourceType")),
                    str(resource.get("id")),
                    int(number) if number.isdigit() else 1,
                    self._clock.now(),
                    False,
                    None,
                )
            )
        return self._resources.disclosures.record(caller, versions, "read")

    # -- cases -------------------------------------------------------------------------------
    def create_case(self, *, caller: Caller, case: plain.NewCase) -> Stored:
        """Open a case: the client (when new), the care team and the EpisodeOfCare, in one
        transaction (spec http.html#transaction)."""
        tx = _Tx()
        client_ref: str
        if case.client is not None and case.client_id is None:
            client_ref = tx.post(m.client_to_patient(case.client), "client")
        elif case.client_id is not None and case.client is None:
            with self._snapshot(caller) as repo:
                try:
                    self._read(repo, "Patient", case.client_id)
                except FHIRError as exc:
                    raise ResourceInvalid(
                        f"client_id: client {case.client_id} is not known",
                        expression=("client_id",),
                    ) from exc
            client_ref = f"Patient/{case.client_id}"
        else:
            raise ResourceInvalid(
                "A new case names either client_id (a known client) or client (a new one)",
                expression=("client", "client_id"),
            )
        base = plain.Case.model_validate(case.model_dump(exclude={"client"}))
        placeholder = "Patient/new-client"
        team = m.case_to_care_team(base, client_id="new-client")
        team_ref = None
        if team is not None:
            _swap(team, placeholder, client_ref)
            team_ref = tx.post(team, "care_team")
        episode = m.case_to_episode(base, client_id="new-client", care_team_id="new-team")
        _swap(episode, placeholder, client_ref)
        if team_ref is None:
            episode.pop("team", None)
        else:
            _swap(episode, "CareTeam/new-team", team_ref)
        tx.post(episode, "case")
        versions, warnings = self._ran(tx, caller)
        return self._warned(caller, versions[-1].id, warnings)

    def read_case(self, *, caller: Caller, case_id: str) -> Stored:
        """The case, its client and care team."""
        with self._snapshot(caller) as repo:
            episode, version = self._episode(repo, case_id)
            team = self._team(repo, episode)
            client = f"Patient/{self._client_id(episode)}"
            patient = _body(self._read(repo, "Patient", self._client_id(episode)))
            # R4B Flag has no status search parameter.
            flags = [
                f
                for f in self._find(repo, caller, "Flag", [("patient", client)])
                if f.get("status") == "active"
            ]
        resources = [episode, patient] + ([team] if team else []) + flags
        return Stored(m.episode_to_case(episode, team, flags), resources, version.version_id)

    def update_case(
        self, *, caller: Caller, case_id: str, case: plain.Case, if_match: int | None
    ) -> Stored:
        """Replace the case's status, stage, model, people and dates (the client stays)."""
        with self._snapshot(caller) as repo:
            episode, _version = self._episode(repo, case_id)
            team = self._team(repo, episode)
        client_id = self._client_id(episode)
        if case.client_id is not None and case.client_id != client_id:
            raise ResourceInvalid(
                f"client_id: case {case_id} is about client {client_id}; it cannot be moved",
                expression=("client_id",),
            )
        tx = _Tx()
        case = case.model_copy(update={"id": case_id, "client_id": client_id})
        team_id = team["id"] if team else None
        new_team = m.case_to_care_team(
            case.model_copy(update={"care_team_id": team_id}), client_id=client_id
        )
        team_ref = f"CareTeam/{team_id}" if team_id else None
        if new_team is not None and team_id:
            tx.put(new_team, "care_team")
        elif new_team is not None:
            team_ref = tx.post(new_team, "care_team")
        elif team is not None:
            # Members all removed: the team is kept (its history matters) but closed.
            closed = {k: v for k, v in team.items() if k not in ("meta", "participant")}
            tx.put({**closed, "status": "inactive"}, "care_team")
        new_episode = m.case_to_episode(case, client_id=client_id, care_team_id="new-team")
        if team_ref is None:
            new_episode.pop("team", None)
        else:
            _swap(new_episode, "CareTeam/new-team", team_ref)
        tx.put(new_episode, "case", if_match)
        _versions, warnings = self._ran(tx, caller)
        return self._warned(caller, case_id, warnings)

    def transfer(
        self, *, caller: Caller, case_id: str, transfer: plain.Transfer, if_match: int | None
    ) -> Stored:
        """Pass an open case to another worker: the care manager and the care team change
        and the handover note joins the case's notes, in one transaction (If-Match: the
        case's version, else the version read here)."""
        with self._snapshot(caller) as repo:
            episode, version = self._episode(repo, case_id)
            team = self._team(repo, episode)
            worker = self._worker(repo, transfer.to)
        if is_closed(episode):
            raise ResourceInvalid(
                f"Case {case_id} is closed; reopen it before transferring it",
                expression=("EpisodeOfCare.status",),
            )
        agency = (episode.get("managingOrganization") or {}).get("reference")
        worker_agency = ((worker or {}).get("organization") or {}).get("reference")
        if worker is None:
            raise ResourceInvalid(f"to: {transfer.to} is not known", expression=("to",))
        if agency and worker_agency and worker_agency != agency:
            raise ResourceInvalid(
                f"to: {transfer.to} works for {worker_agency}, not {agency}; a case passes to "
                "another agency by a referral",
                expression=("to",),
            )
        before = (episode.get("careManager") or {}).get("reference")
        if before == transfer.to:
            raise ResourceInvalid(
                f"to: {transfer.to} already manages case {case_id}", expression=("to",)
            )
        tx = _Tx()
        if team is not None:
            members = [
                p
                for p in team.get("participant", [])
                if (p.get("member") or {}).get("reference") not in (before, transfer.to)
            ]
            members.append(
                {"role": [{"text": "case manager"}], "member": m._ref(transfer.to, transfer.name)}
            )
            tx.put({**_without_meta(team), "participant": members}, "care_team")
        moved = {**_without_meta(episode), "careManager": m._ref(transfer.to, transfer.name)}
        tx.put(moved, "case", if_match if if_match is not None else version.version_id)
        author = transfer.by or (before if before and _is_worker(before) else None)
        handover = plain.ProgressNote(
            date=transfer.date or self._clock.now().date(),
            author=author,
            text=f"Handover from {before or 'no care manager'} to {transfer.to}: {transfer.note}",
        )
        document = m.note_to_document(handover, client_id=self._client_id(episode), case_id=case_id)
        tx.post(document, "note")
        _versions, warnings = self._ran(tx, caller)
        return self._warned(caller, case_id, warnings)

    @staticmethod
    def _worker(repo: Repository, reference: str) -> dict[str, Any] | None:
        """The Practitioner or PractitionerRole a transfer names, as the caller sees it."""
        kind, _, worker_id = reference.partition("/")
        current = repo.visible_current(kind, worker_id)
        return _body(current) if current is not None and current.body is not None else None

    # -- the client --------------------------------------------------------------------------
    def read_client(self, *, caller: Caller, case_id: str) -> Stored:
        """The case's client."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            version = self._read(repo, "Patient", self._client_id(episode))
        patient = _body(version)
        return Stored(m.patient_to_client(patient), [patient], version.version_id)

    def update_client(
        self, *, caller: Caller, case_id: str, client: plain.Client, if_match: int | None
    ) -> Stored:
        """Replace the client's details (If-Match with the client's ETag); what the plain
        model does not speak of (identifiers, addresses, other extensions) is kept."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            client_id = self._client_id(episode)
            stored = _body(self._read(repo, "Patient", client_id))
        if client.id is not None and client.id != client_id:
            raise ResourceInvalid(
                f"id: case {case_id} is about client {client_id}", expression=("id",)
            )
        patient = m.client_to_patient(client.model_copy(update={"id": client_id}))
        tx = _Tx()
        tx.put(m.keep_unmodelled_client(patient, stored), "client", if_match)
        self._run(tx, caller)
        return self.read_client(caller=caller, case_id=case_id)

    # -- comprehensive assessment --------------------------------------------------------
    def add_comprehensive(
        self, *, caller: Caller, case_id: str, assessment: plain.ComprehensiveAssessment
    ) -> Stored:
        """A comprehensive assessment: its domains and their panel, in one transaction."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        panel, members = m.comprehensive_to_observations(
            assessment, client_id=self._client_id(episode), case_id=case_id
        )
        tx = _Tx()
        refs = [tx.post(member, f"domain {i}") for i, member in enumerate(members)]
        panel["hasMember"] = [{"reference": r} for r in refs]
        tx.post(panel, "comprehensive assessment")
        versions = self._run(tx, caller)
        bodies = [_body(v) for v in versions]
        return Stored(
            m.observations_to_comprehensive(bodies[-1], bodies[:-1]),
            bodies,
            versions[-1].version_id,
        )

    def comprehensive(self, *, caller: Caller, case_id: str) -> Stored:
        """The case's comprehensive assessments, oldest first."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            code = f"{system('assessment-domain')}|comprehensive-assessment"
            panels = self._of_case(
                repo,
                caller,
                case_id,
                "Observation",
                [("subject", f"Patient/{self._client_id(episode)}"), ("code", code)],
            )
            panels.sort(key=lambda o: (o.get("effectiveDateTime", ""), o.get("id", "")))
            values, resources = [], []
            for panel in panels:
                members = []
                for reference in panel.get("hasMember", []):
                    kind, _, member_id = str(reference.get("reference", "")).partition("/")
                    if kind == "Observation":
                        current = repo.visible_current("Observation", member_id)
                        if current is not None and current.body is not None:
                            members.append(_body(current))
                values.append(m.observations_to_comprehensive(panel, members))
                resources += [panel, *members]
        return Stored(values, resources)

    # -- supports ----------------------------------------------------------------------------
    def add_support(self, *, caller: Caller, case_id: str, support: plain.Support) -> Stored:
        """Record a family member or informal support of the client (RelatedPerson), or an
        informal system they take part in (a Group with the client as member)."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        resource = m.support_to_fhir(support, client_id=self._client_id(episode))
        body, version = self._post_one(caller, resource, "support")
        return Stored(m.support_from_fhir(body), [body], version.version_id)

    def supports(self, *, caller: Caller, case_id: str) -> Stored:
        """The client's supports, then the informal systems they take part in."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            people, systems = self._supports(repo, caller, f"Patient/{self._client_id(episode)}")
        records = [*people, *systems]
        return Stored([m.support_from_fhir(r) for r in records], records)

    def _supports(
        self, repo: Repository, caller: Caller, client_ref: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The client's RelatedPersons, and the informal systems' Groups they belong to."""
        people = self._find(repo, caller, "RelatedPerson", [("patient", client_ref)])
        groups = self._find(repo, caller, "Group", [("member", client_ref)])
        return people, [g for g in groups if m.is_system(g)]

    # -- consents ----------------------------------------------------------------------------
    def add_consent(self, *, caller: Caller, case_id: str, consent: plain.Consent) -> Stored:
        """The client's consent to disclose records to an agency (Consent)."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        client_id = self._client_id(episode)
        if consent.client_id != client_id:
            raise ResourceInvalid(
                f"client_id: case {case_id} is about client {client_id}",
                expression=("client_id",),
            )
        body, version = self._post_one(caller, m.consent_to_fhir(consent), "consent")
        return Stored(m.consent_from_fhir(body), [body], version.version_id)

    def consents(self, *, caller: Caller, case_id: str) -> Stored:
        """The client's consents."""
        found = self._client_records(caller, case_id, "Consent")
        return Stored([m.consent_from_fhir(c) for c in found], found)

    # -- care plans --------------------------------------------------------------------------
    def create_care_plan(self, *, caller: Caller, case_id: str, plan: plain.CarePlan) -> Stored:
        """A care plan with its needs (Condition), goals (Goal), strengths (Observation) and
        actions, in one transaction."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        tx = _Tx()
        self._plan_entries(tx, plan, episode, case_id, None, None)
        versions = self._run(tx, caller)
        return self.read_care_plan(caller=caller, case_id=case_id, plan_id=versions[-1].id)

    def update_care_plan(
        self,
        *,
        caller: Caller,
        case_id: str,
        plan_id: str,
        plan: plain.CarePlan,
        if_match: int | None,
    ) -> Stored:
        """Replace a care plan in one transaction. Needs and goals carrying the id of one of
        the plan's records update it (a goal's achievement, say); those without an id are
        created; strengths already recorded with the same text are reused. Records the plan no
        longer lists stay in the client's record, unreferenced."""
        current = self.read_care_plan(caller=caller, case_id=case_id, plan_id=plan_id)
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        tx = _Tx()
        self._plan_entries(tx, plan, episode, case_id, (plan_id, current), if_match)
        self._run(tx, caller)
        return self.read_care_plan(caller=caller, case_id=case_id, plan_id=plan_id)

    def _plan_entries(
        self,
        tx: _Tx,
        plan: plain.CarePlan,
        episode: dict[str, Any],
        case_id: str,
        existing: tuple[str, Stored] | None,
        if_match: int | None,
    ) -> None:
        """The transaction entries writing a plan and its needs, goals and strengths."""
        client_id = self._client_id(episode)
        keys = [n.key for n in plan.needs if n.key]
        if len(keys) != len(set(keys)):
            raise ResourceInvalid("needs: two needs share a key", expression=("needs",))
        old: plain.CarePlan | None = existing[1].value if existing else None
        old_needs = {n.id for n in old.needs} if old else set()
        old_goals = {g.id for g in old.goals} if old else set()
        old_strengths = {
            r["valueString"]: f"Observation/{r['id']}"
            for r in (existing[1].resources if existing else [])
            if r["resourceType"] == "Observation" and m.is_strength(r)
        }
        need_refs, by_key = [], {}
        for index, need in enumerate(plan.needs):
            condition = m.need_to_condition(need, client_id=client_id, case_id=case_id)
            if need.id is not None:
                if need.id not in old_needs:
                    raise ResourceInvalid(
                        f"needs[{index}].id: {need.id} is not a need of this plan",
                        expression=(f"needs[{index}].id",),
                    )
                tx.put(condition, f"needs[{index}]")
                url = f"Condition/{need.id}"
            else:
                url = tx.post(condition, f"needs[{index}]")
            need_refs.append(url)
            if need.key:
                by_key[need.key] = url
        goal_refs = []
        for index, goal in enumerate(plan.goals):
            addresses = [by_key.get(a, f"Condition/{a}") for a in goal.addresses]
            fhir = m.goal_to_fhir(goal, client_id=client_id, case_id=case_id, addresses=addresses)
            if goal.id is not None:
                if goal.id not in old_goals:
                    raise ResourceInvalid(
                        f"goals[{index}].id: {goal.id} is not a goal of this plan",
                        expression=(f"goals[{index}].id",),
                    )
                tx.put(fhir, f"goals[{index}]")
                goal_refs.append(f"Goal/{goal.id}")
            else:
                goal_refs.append(tx.post(fhir, f"goals[{index}]"))
        strength_refs = []
        for index, text in enumerate(plan.strengths):
            reused = old_strengths.get(text)
            strength_refs.append(
                reused
                or tx.post(
                    m.strength_to_observation(text, client_id=client_id, case_id=case_id),
                    f"strengths[{index}]",
                )
            )
        care_plan = m.care_plan_to_fhir(
            plan,
            client_id=client_id,
            case_id=case_id,
            goal_refs=goal_refs,
            need_refs=need_refs,
            strength_refs=strength_refs,
        )
        team = episode.get("team")
        if team:
            care_plan["careTeam"] = team
        if existing is None:
            tx.post(care_plan, "care plan")
        else:
            care_plan["id"] = existing[0]
            stored = next(
                (
                    r
                    for r in existing[1].resources
                    if r.get("resourceType") == "CarePlan" and r.get("id") == existing[0]
                ),
                None,
            )
            if stored is not None:
                care_plan = m.keep_unmodelled(care_plan, stored)
            tx.put(care_plan, "care plan", if_match)

    def _plan_parts(
        self, repo: Repository, plan: dict[str, Any]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The Goals, Conditions and supportingInfo resources a CarePlan references."""

        def load(references: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            found = {}
            for reference in references:
                value = reference.get("reference")
                if not isinstance(value, str) or value.count("/") != 1:
                    continue
                resource_type, resource_id = value.split("/")
                current = repo.visible_current(resource_type, resource_id)
                if current is not None:
                    found[value] = _body(current)
            return found

        return (
            load(plan.get("goal", [])),
            load(plan.get("addresses", [])),
            load(plan.get("supportingInfo", [])),
        )

    def read_care_plan(self, *, caller: Caller, case_id: str, plan_id: str) -> Stored:
        """A care plan of the case, with its goals, needs and strengths."""
        with self._snapshot(caller) as repo:
            self._episode(repo, case_id)
            version = self._read(repo, "CarePlan", plan_id)
            plan = _body(version)
            if m.case_of(plan) != case_id:
                raise NotFound(f"Case {case_id} has no care plan {plan_id}")
            goals, needs, supporting = self._plan_parts(repo, plan)
        strengths = {k: v for k, v in supporting.items() if m.is_strength(v)}
        value = m.care_plan_from_fhir(plan, goals=goals, needs=needs, strengths=strengths)
        resources = [plan, *goals.values(), *needs.values(), *strengths.values()]
        return Stored(value, resources, version.version_id)

    def care_plans(self, *, caller: Caller, case_id: str) -> Stored:
        """Every care plan of the case."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            plans = self._of_case(
                repo,
                caller,
                case_id,
                "CarePlan",
                [("subject", f"Patient/{self._client_id(episode)}")],
            )
            values, resources = [], []
            for plan in plans:
                goals, needs, supporting = self._plan_parts(repo, plan)
                strengths = {k: v for k, v in supporting.items() if m.is_strength(v)}
                values.append(
                    m.care_plan_from_fhir(plan, goals=goals, needs=needs, strengths=strengths)
                )
                resources += [plan, *goals.values(), *needs.values(), *strengths.values()]
        return Stored(values, resources)

    # -- notes -------------------------------------------------------------------------------
    def add_note(self, *, caller: Caller, case_id: str, note: plain.ProgressNote) -> Stored:
        """A progress note (DocumentReference in the case's context)."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        document = m.note_to_document(note, client_id=self._client_id(episode), case_id=case_id)
        body, version = self._post_one(caller, document, "note")
        return Stored(m.document_to_note(body), [body], version.version_id)

    def notes(self, *, caller: Caller, case_id: str) -> Stored:
        """The case's progress notes, oldest first."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            # DocumentReference's encounter parameter targets Encounter only: search by the
            # client and keep the notes whose context is this case.
            documents = self._of_case(
                repo,
                caller,
                case_id,
                "DocumentReference",
                [("subject", f"Patient/{self._client_id(episode)}")],
            )
        documents.sort(key=lambda d: (d.get("date", ""), d.get("id", "")))
        return Stored([m.document_to_note(d) for d in documents], documents)

    # -- assessments -------------------------------------------------------------------------
    def add_assessment(
        self, *, caller: Caller, case_id: str, assessment: plain.Assessment
    ) -> Stored:
        """A completed instrument (QuestionnaireResponse); the scoring hook adds its score
        Observation in the same transaction."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
        response = m.assessment_to_response(
            assessment, client_id=self._client_id(episode), case_id=case_id
        )
        body, version = self._post_one(caller, response, "assessment")
        with self._snapshot(caller) as repo:
            return self._assessment(repo, body, version)

    def _assessment(
        self, repo: Repository, response: dict[str, Any], version: StoredVersion | None = None
    ) -> Stored:
        # As the caller may see it: a score another agency did not share stays out.
        score_version = repo.visible_current("Observation", score_observation_id(response["id"]))
        score = _body(score_version) if score_version is not None else None
        resources = [response] + ([score] if score else [])
        return Stored(
            m.response_to_assessment(response, score, response_flags(response)),
            resources,
            version.version_id if version else None,
        )

    def assessments(self, *, caller: Caller, case_id: str) -> Stored:
        """The case's assessments, oldest first, with their scores."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            responses = [
                r
                for r in self._of_case(
                    repo,
                    caller,
                    case_id,
                    "QuestionnaireResponse",
                    [("subject", f"Patient/{self._client_id(episode)}")],
                )
                if r.get("questionnaire") in m.QUESTIONNAIRE_URLS.values()
            ]
            responses.sort(key=lambda r: (r.get("authored", ""), r.get("id", "")))
            parts = [self._assessment(repo, r) for r in responses]
        return Stored([p.value for p in parts], [r for p in parts for r in p.resources])

    # -- outcomes and the client's network ---------------------------------------------------
    def outcomes(self, *, caller: Caller, case_id: str) -> dict[str, list[dict[str, Any]]]:
        """Each instrument's scores over time, oldest first: {instrument: [{date, total,
        zone, assessment}]} (from the score Observations of the case's assessments)."""
        series: dict[str, list[dict[str, Any]]] = {}
        for assessment in self.assessments(caller=caller, case_id=case_id).value:
            if assessment.total is None:
                continue
            series.setdefault(assessment.instrument, []).append(
                {
                    "date": assessment.date.isoformat(),
                    "total": assessment.total,
                    "zone": assessment.zone,
                    "assessment": assessment.id,
                }
            )
        return series

    def network(self, *, caller: Caller, case_id: str) -> Network:
        """The client, their supports (RelatedPerson), the informal systems they take part in
        (Group), family history (FamilyMemberHistory), care team and referrals with the
        state of their Tasks; the names of the agencies and workers referred to."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            client_ref = f"Patient/{self._client_id(episode)}"
            client = _body(self._read(repo, "Patient", self._client_id(episode)))
            supports, systems = self._supports(repo, caller, client_ref)
            family = self._find(repo, caller, "FamilyMemberHistory", [("patient", client_ref)])
            team = self._team(repo, episode)
            requests = self._find(repo, caller, "ServiceRequest", [("subject", client_ref)])
            referrals = []
            for request in requests:
                tasks = self._find(
                    repo, caller, "Task", [("focus", f"ServiceRequest/{request['id']}")]
                )
                tasks.sort(key=lambda t: (t.get("meta") or {}).get("lastUpdated", ""))
                referrals.append((request, tasks[-1] if tasks else None))
            participants = (team or {}).get("participant", [])
            wanted = [p.get("member") for p in participants]
            wanted += [p for request, _ in referrals for p in request.get("performer", [])]
            names = self._names(repo, wanted)
        return Network(
            client,
            supports,
            family,
            participants,
            referrals,
            systems=systems,
            names=names,
            today=self._clock.now().date(),
        )

    @staticmethod
    def _names(repo: Repository, references: list[dict[str, Any] | None]) -> dict[str, str]:
        """The names of the agencies and workers referred to, read from their resources
        (those this caller may see); the reference's display where none is stored."""
        names: dict[str, str] = {}
        for reference in references:
            target = (reference or {}).get("reference")
            if not isinstance(target, str) or target in names or target.count("/") != 1:
                continue
            resource_type, resource_id = target.split("/")
            current = None
            if resource_type in ("Organization", "Practitioner"):
                current = repo.visible_current(resource_type, resource_id)
            name = _resource_name(_body(current)) if current is not None else None
            name = name or (reference or {}).get("display")
            if name:
                names[target] = name
        return names

    # -- checks ------------------------------------------------------------------------------
    def check_care_plan(self, *, caller: Caller, plan_id: str) -> list[Issue]:
        """GET /fhir/CarePlan/{id}/$check: what the plan lacks (app/fhir/careplan_checks.py)."""
        with self._snapshot(caller) as repo:
            plan = _body(self._read(repo, "CarePlan", plan_id))
            return check_plan(self._context(repo, caller, plan))

    def check_case(self, *, caller: Caller, case_id: str) -> list[Issue]:
        """GET /cases/{id}/check: the checks of every care plan of the case; a case without
        a plan is told so."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            plans = self._of_case(
                repo,
                caller,
                case_id,
                "CarePlan",
                [("subject", f"Patient/{self._client_id(episode)}")],
            )
            if not plans:
                return [
                    Issue(
                        "incomplete",
                        f"Case {case_id} has no care plan yet",
                        "warning",
                        ("EpisodeOfCare",),
                    )
                ]
            issues = []
            for plan in plans:
                for issue in check_plan(self._context(repo, caller, plan)):
                    where = tuple(f"CarePlan/{plan['id']}: {e}" for e in issue.expression)
                    issues.append(Issue(issue.code, issue.diagnostics, issue.severity, where))
            return issues

    def check_draft(self, *, caller: Caller, case_id: str, plan: plain.CarePlan) -> list[Issue]:
        """What a care plan being written would lack, before it is stored (the web app's
        checks as the worker types): the plan, its goals and strengths as they would be
        written, checked in the case's context. Nothing is stored."""
        with self._snapshot(caller) as repo:
            episode, _ = self._episode(repo, case_id)
            client_id = self._client_id(episode)
            keys = {n.key: f"Condition/draft-need-{i}" for i, n in enumerate(plan.needs) if n.key}
            goals = {
                f"Goal/draft-{i}": m.goal_to_fhir(
                    goal,
                    client_id=client_id,
                    case_id=case_id,
                    addresses=[keys.get(a, f"Condition/{a}") for a in goal.addresses],
                )
                for i, goal in enumerate(plan.goals)
            }
            strengths = {
                f"Observation/draft-strength-{i}": m.strength_to_observation(
                    text, client_id=client_id, case_id=case_id
                )
                for i, text in enumerate(plan.strengths)
            }
            fhir = m.care_plan_to_fhir(
                plan,
                client_id=client_id,
                case_id=case_id,
                goal_refs=list(goals),
                need_refs=[f"Condition/draft-need-{i}" for i in range(len(plan.needs))],
                strength_refs=list(strengths),
            )
            if episode.get("team"):
                fhir["careTeam"] = episode["team"]
            context = self._context(repo, caller, fhir, goals=goals, supporting=strengths)
            return check_plan(context)

    def _context(
        self,
        repo: Repository,
        caller: Caller,
        plan: dict[str, Any],
        *,
        goals: dict[str, dict[str, Any]] | None = None,
        supporting: dict[str, dict[str, Any]] | None = None,
    ) -> PlanContext:
        stored_goals, _needs, stored_supporting = self._plan_parts(repo, plan)
        goals = stored_goals if goals is None else goals
        supporting = (
            stored_supporting if supporting is None else {**stored_supporting, **supporting}
        )
        case_id = m.case_of(plan)
        episode = None
        if case_id:
            current = repo.visible_current("EpisodeOfCare", case_id)
            if current is not None:
                episode = _body(current)
        team_refs = list(plan.get("careTeam", [])) + list((episode or {}).get("team", []))
        teams, seen = [], set()
        for reference in team_refs:
            team_id = m._id_of(reference, "CareTeam")
            if team_id and team_id not in seen:
                seen.add(team_id)
                current = repo.visible_current("CareTeam", team_id)
                if current is not None:
                    teams.append(_body(current))
        caseload = None
        manager = ((episode or {}).get("careManager") or {}).get("reference")
        # EpisodeOfCare's care-manager parameter targets Practitioner only.
        if manager and manager.startswith("Practitioner/") and model_of(plan, episode):
            page = self._search.search(
                caller=caller,
                resource_type="EpisodeOfCare",
                params=[
                    ("care-manager", manager),
                    ("status", "active"),
                    ("_total", "accurate"),
                    ("_count", "1"),
                ],
                strict=True,
                repo=repo,
            )
            caseload = page.total
        subject = (plan.get("subject") or {}).get("reference")
        referrals, consents, notes = [], [], []
        if isinstance(subject, str) and subject.startswith("Patient/"):
            referrals = self._find(repo, caller, "ServiceRequest", [("subject", subject)])
            consents = self._find(repo, caller, "Consent", [("patient", subject)])
            if case_id:
                notes = self._find(repo, caller, "DocumentReference", [("subject", subject)])
        return PlanContext(
            plan=plan,
            goals=goals,
            supporting=supporting,
            episode=episode,
            care_teams=teams,
            caseload=caseload,
            referrals=referrals,
            consents=consents,
            today=self._clock.now().date(),
            last_contact=last_contacts(notes).get(case_id) if case_id else None,
        )


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def _is_worker(reference: str) -> bool:
    return reference.startswith(("Practitioner/", "PractitionerRole/"))


def _relabel(exc: FHIRError, labels: list[str]) -> FHIRError:
    """A transaction error names "Bundle.entry[i]"; say which plain record that was."""
    issues = []
    for issue in exc.issues:
        text = issue.diagnostics
        for index, label in enumerate(labels):
            text = text.replace(f"Bundle.entry[{index}]", label)
        issues.append(Issue(issue.code, text, issue.severity, issue.expression))
    exc.issues = issues
    exc.diagnostics = issues[0].diagnostics if issues else exc.diagnostics
    return exc


def _resource_name(resource: dict[str, Any]) -> str | None:
    """An Organization's name, or a Practitioner's first name."""
    name = resource.get("name")
    if isinstance(name, str):
        return name
    for human in name or []:
        text = human.get("text") or " ".join(
            [*human.get("prefix", []), *human.get("given", []), human.get("family", "")]
        )
        if text.strip():
            return str(text).strip()
    return None


@dataclass
class Network:
    """The people and agencies around a client (ecomap and genogram)."""

    client: dict[str, Any]
    supports: list[dict[str, Any]]
    family: list[dict[str, Any]]
    care_team: list[dict[str, Any]]
    # (ServiceRequest, the latest Task on it or None)
    referrals: list[tuple[dict[str, Any], dict[str, Any] | None]]
    # Informal systems the client takes part in (Groups of the informal-system kinds).
    systems: list[dict[str, Any]] = field(default_factory=list)
    # "Type/id" -> name, for the agencies and workers referred to.
    names: dict[str, str] = field(default_factory=dict)
    # The day ages are counted to.
    today: dt.date = field(default_factory=dt.date.today)
