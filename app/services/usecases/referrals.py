"""Referral use cases: submit a package, the boxes, the packet, the actions, the history.

The friendly face over the same FHIR resources (issue 5): every write here goes through
ResourceService (so the referral rules of app/services/rules/referrals.py, audit and
notifications see it like any write), and each action is one database transaction.
SDOH CC IG referral workflow: https://hl7.org/fhir/us/sdoh-clinicalcare/referral_workflow.html
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from app.clock import Clock
from app.config import Settings
from app.fhir.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    ResourceInvalid,
    invalid_plain,
)
from app.fhir.jsonio import parse_json
from app.fhir.referral import (
    ACTIONS,
    FULFILL,
    GOAL_ACHIEVEMENT_SYSTEM,
    NEEDS_REASON,
    TASK_CODE_SYSTEM,
    TRANSITIONS,
    ActionInput,
    Party,
    actor_of,
    business_cutoff,
    check_action,
    check_party,
    focus_service_request,
    is_referral,
    output_reference,
    output_summary,
    overdue_reason,
    reference_of,
)
from app.fhir.validation import check_resource, check_type_and_id
from app.security.caller import OPERATOR, Caller
from app.security.scopes import require
from app.services.disclosure import NOTHING, Release
from app.services.params import single
from app.services.rules.access import AccessHook
from app.services.rules.referrals import agency_of, body_of, parties_of
from app.services.uow import transaction
from app.services.usecases.bundle import BundleService
from app.services.usecases.resources import ResourceService
from app.services.usecases.search import SearchService
from app.storage.repository import Repository, StoredVersion
from mappings.referral import referral_bundle
from schemas.casework import Referral

_CODE: Final = f"{TASK_CODE_SYSTEM}|{FULFILL}"
_BOXES: Final = ("inbox", "outbox")
# Task.owner / Task.requester stand for an agency directly or through one of these.
_AGENCY_FORMS: Final = {
    "owner": ("", ":PractitionerRole.organization", ":HealthcareService.organization"),
    "requester": ("", ":PractitionerRole.organization"),
}
# Types a referral packet holds, beside the Task (SDOH CC IG: the ServiceRequest and what
# it refers to in supportingInfo and reasonReference; the client; the plan and its goals).
_MAX_PACKET: Final = 500

# Plain case-management referral JSON -> a transaction Bundle (the domain mapping).
# The care plan a plain referral names, as the caller sees it: (body, version).
PlanOf = Callable[[str], tuple[dict[str, Any], int]]
# Plain referral JSON as a package Bundle, the plan it serves looked up once it is valid.
PlainReferral = Callable[[dict[str, Any], PlanOf], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ReferralView:
    """One referral as a caller sees it: the Task version, its overdue state, the caller's
    sides (which actions it may take)."""

    version: StoredVersion
    task: dict[str, Any]
    overdue: str | None
    parties: frozenset[Party]
    # What answering with the Task (and its history) releases to an agency that does not
    # own it: the redisclosure notice goes with a labelled one (docs/threat-model.md).
    release: Release = NOTHING


@dataclass(frozen=True, slots=True)
class ReferralPage:
    """A page of a referral box."""

    views: list[ReferralView]
    next_cursor: str | None
    applied: list[tuple[str, str]]
    release: Release = NOTHING


@dataclass(frozen=True, slots=True)
class Packet:
    """A referral with everything it carries (GET /referrals/{id})."""

    view: ReferralView
    resources: list[StoredVersion]
    release: Release = NOTHING


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One entry of a referral's history: a status change and who made it, when, why."""

    version_id: int
    status: str
    previous: str | None
    at: datetime
    agency: str | None
    client: str | None
    reason: str | None
    business_status: str | None


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """When an open referral is late: still requested since before accept, accepted and
    not started since before start (app/fhir/referral.py overdue_reason)."""

    accept: datetime
    start: datetime


class ReferralService:
    """POST/GET /referrals, the actions and the Task operations (issue 5)."""

    def __init__(
        self,
        *,
        resources: ResourceService,
        bundles: BundleService,
        search: SearchService,
        clock: Clock,
        settings: Settings,
        from_plain: PlainReferral | None = None,
    ) -> None:
        self._resources = resources
        self._bundles = bundles
        self._search = search
        self._clock = clock
        self._settings = settings
        self._from_plain = from_plain

    @property
    def base_url(self) -> str:
        """The FHIR base URL (references under it are local)."""
        return self._settings.base_url

    # -- overdue -------------------------------------------------------------------------
    def cutoffs(self) -> Cutoffs:
        """The moments before which an open referral is late to be accepted or started."""
        now = self._clock.now()
        return Cutoffs(
            business_cutoff(now, self._settings.referral_accept_days),
            business_cutoff(now, self._settings.referral_start_days),
        )

    def _view(
        self, version: StoredVersion, caller: Caller, repo: Repository, cutoffs: Cutoffs
    ) -> ReferralView:
        task = body_of(version)
        assert task is not None
        reason = overdue_reason(task, accept_cutoff=cutoffs.accept, start_cutoff=cutoffs.start)
        return ReferralView(version, task, reason, parties_of(repo, caller, task, self.base_url))

    def changed_since(self, *, caller: Caller, since: datetime) -> int:
        """How many referrals the caller may see changed after a moment (a count: nothing
        is released, so nothing is logged as a disclosure). The web app's event stream."""
        page = self._search.search(
            caller=caller,
            resource_type="Task",
            params=[
                ("code", _CODE),
                ("_lastUpdated", f"gt{since.isoformat()}"),
                ("_summary", "count"),
            ],
            strict=True,
        )
        return int(page.total or 0)

    def overdue_by_agency(self, *, at_most: int = 10_000) -> dict[str, int]:
        """Open referrals not accepted, or not started, in time, per receiving agency (the
        metrics' gauge; the server's own count, no agency's view). Counts at most at_most."""
        alternatives = [[("code", _CODE), *late] for late in _late(self.cutoffs())]
        by_owner: dict[str | None, int] = {}
        cursor: str | None = None
        seen = 0
        while seen < at_most:
            params = [("_count", "1000"), *([("_cursor", cursor)] if cursor else [])]
            page = self._search.search_any(
                caller=OPERATOR,
                resource_type="Task",
                alternatives=alternatives,
                params=params,
                sort="-_lastUpdated",
            )
            for version in page.matches:
                owner = reference_of((body_of(version) or {}).get("owner"))
                by_owner[owner] = by_owner.get(owner, 0) + 1
            seen += len(page.matches)
            cursor = page.next_cursor
            if cursor is None or not page.matches:
                break
        # Each owner reference resolved once (a role's organization is a lookup).
        counts: dict[str, int] = {}
        with transaction(self._resources.engine, write=False) as repo:
            for owner, count in by_owner.items():
                agency = agency_of(repo, {"reference": owner}, self.base_url) if owner else None
                counts[agency or "unknown"] = counts.get(agency or "unknown", 0) + count
        return counts

    # -- submit --------------------------------------------------------------------------
    def _served_plan(self, caller: Caller, plan_id: str) -> tuple[dict[str, Any], int]:
        """The care plan a plain referral names, as the caller may see it (a hidden or
        missing plan answers the same: 422)."""
        scope = self._resources.scope(caller)
        with transaction(self._resources.engine, write=False, scope=scope) as repo:
            current = repo.visible_current("CarePlan", plan_id)
        body = body_of(current)
        if current is None or body is None:
            raise ResourceInvalid(
                f"care_plan_id: CarePlan/{plan_id} is not known", expression=("care_plan_id",)
            )
        return body, current.version_id

    def _check_deliverable(self, caller: Caller, plain: dict[str, Any]) -> None:
        """A plain referral whose records are labelled (sensitive, or written by an AOD
        service, whose records all are) reaches the receiving agency only under a consent
        of the client, recorded by the referring agency, that releases them for care: it is
        refused with the reason rather than stored where the receiver would never see it."""
        sensitive = plain.get("sensitive") is True
        client, receiver = f"{plain['client_id']}", f"{plain['to_agency']}"
        with transaction(self._resources.engine, write=False) as repo:
            if not sensitive and not AccessHook.is_aod(repo, caller.agency):
                return
            if repo.releases_labelled(client, receiver, caller.agency or "", self._clock.now()):
                return
        why = "is marked sensitive" if sensitive else "is an AOD service's record"
        raise ResourceInvalid(
            f"The referral {why}, so it carries labelled records, and no consent of client "
            f"{client} in force releases them to {receiver} for care (coordination, "
            "management or treatment): record the client's consent first (POST "
            "/cases/{case}/consents with covers_sensitive true). Nothing was stored.",
            expression=("consent_id",),
        )

    def submit(self, *, caller: Caller, body: bytes) -> ReferralView:
        """POST /referrals: a referral package stored atomically as one transaction Bundle
        (spec http.html#transaction); the Task is the referral (SDOH CC IG)."""
        data = parse_json(body, max_depth=self._settings.max_json_depth)
        if not isinstance(data, dict):
            raise InvalidRequest("POST /referrals takes a FHIR Bundle or a plain referral object")
        if data.get("resourceType") != "Bundle":
            if self._from_plain is None:
                raise InvalidRequest(
                    "POST /referrals takes a transaction Bundle; plain case-management referral "
                    "JSON is not accepted by this server yet"
                )
            plain = data
            data = self._from_plain(plain, lambda plan_id: self._served_plan(caller, plan_id))
            self._check_deliverable(caller, plain)
        task_index = _check_package(data, caller)
        kind, outcomes = self._bundles.process(orjson.dumps(data), caller=caller)
        assert kind == "transaction-response"
        version = outcomes[task_index].version
        assert version is not None
        with transaction(self._resources.engine, write=False) as repo:
            return self._view(version, caller, repo, self.cutoffs())

    # -- boxes ---------------------------------------------------------------------------
    def listing(self, *, caller: Caller, params: Sequence[tuple[str, str]]) -> ReferralPage:
        """GET /referrals?box=inbox|outbox&status=&overdue=true&_count=&_cursor=: the
        caller's referrals, newest change first, as one indexed search (search.html)."""
        known = {"box", "status", "overdue", "_count", "_cursor"}
        for name, _ in params:
            if name not in known:
                raise InvalidRequest(
                    f"Unknown parameter {name[:40]!r}; use box, status, overdue, _count",
                    expression=(name,),
                )
        box = single(params, "box")
        status = single(params, "status")
        overdue = single(params, "overdue")
        if box is not None and box not in _BOXES:
            raise InvalidRequest("box must be inbox or outbox", expression=("box",))
        if overdue is not None and overdue not in ("true", "false"):
            raise InvalidRequest("overdue must be true or false", expression=("overdue",))
        if status is not None:
            for value in status.split(","):
                if value not in ACTIONS_STATUSES:
                    raise InvalidRequest(
                        f"status {value[:40]!r} is not a referral status", expression=("status",)
                    )
        cutoffs = self.cutoffs()
        sides = self._sides(caller, box)
        state = [("status", status)] if status else []
        late = _late(cutoffs)
        states = [[*s, *state] for s in late] if overdue == "true" else [state]
        alternatives = [[("code", _CODE), *side, *s] for side in sides for s in states]
        result = [(k, v) for k, v in params if k in ("_count", "_cursor")]
        page = self._search.search_any(
            caller=caller,
            resource_type="Task",
            alternatives=alternatives,
            params=result,
            sort="-_lastUpdated",
            excluding=late if overdue == "false" else (),
        )
        with transaction(self._resources.engine, write=False) as repo:
            views = [self._view(v, caller, repo, cutoffs) for v in page.matches]
        applied = [(k, v) for k, v in params if k != "_cursor"]
        return ReferralPage(views, page.next_cursor, applied, page.release)

    @staticmethod
    def _sides(caller: Caller, box: str | None) -> list[list[tuple[str, str]]]:
        if caller.agency is None:
            if box is not None:
                raise InvalidRequest(
                    "box needs an acting agency (X-Casebridge-Agency or a token); the local "
                    "operator lists every referral",
                    expression=("box",),
                )
            return [[]]
        params = ("owner",) if box == "inbox" else ("requester",) if box else _PARTY_PARAMS
        return [[(f"{p}{form}", caller.agency)] for p in params for form in _AGENCY_FORMS[p]]

    # -- one referral --------------------------------------------------------------------
    def _referral(self, repo: Repository, caller: Caller, task_id: str) -> StoredVersion:
        check_type_and_id("Task", task_id)
        version = self._resources.read_in(repo, "Task", task_id)
        task = body_of(version)
        if not is_referral(task):
            raise NotFound(
                f"Task/{task_id} is not a referral (code fulfill, focus a ServiceRequest)"
            )
        assert task is not None
        check_party(parties_of(repo, caller, task, self.base_url), who=caller.who)
        return version

    def read(self, *, caller: Caller, task_id: str) -> Packet:
        """GET /referrals/{id}: the Task and its packet: the ServiceRequest, what it refers
        to (supportingInfo, reasonReference, basedOn), the client, the care plans and goals,
        and the outcome (Task.output). Only the requester and the owner see it, and of the
        packet only what the agency access rules release to the caller (the client's data
        under a consent: docs/threat-model.md); the release is logged as a disclosure."""
        scope = self._resources.scope(caller)
        with transaction(self._resources.engine, write=False, snapshot=True, scope=scope) as repo:
            version = self._referral(repo, caller, task_id)
            view = self._view(version, caller, repo, self.cutoffs())
            resources = _packet(repo, view.task, self.base_url)
        release = self._resources.disclosures.record(caller, [version, *resources], "referral")
        return Packet(view, resources, release)

    def history(self, *, caller: Caller, task_id: str) -> tuple[ReferralView, list[StatusChange]]:
        """GET /referrals/{id}/history: every status change, from the Task versions
        (spec http.html#history), with the agency that made it and its statusReason."""
        scope = self._resources.scope(caller)
        with transaction(self._resources.engine, write=False, snapshot=True, scope=scope) as repo:
            version = self._referral(repo, caller, task_id)
            view = self._view(version, caller, repo, self.cutoffs())
            versions = repo.history(
                resource_type="Task",
                resource_id=task_id,
                since=None,
                at=None,
                after=None,
                limit=version.version_id + 1,
            )
        changes: list[StatusChange] = []
        previous: str | None = None
        for old in sorted(versions, key=lambda v: v.version_id):
            task = body_of(old)
            if task is None:
                continue
            status = str(task.get("status"))
            if status == previous:
                continue
            agency, client = actor_of(task)
            reason = task.get("statusReason")
            business = task.get("businessStatus")
            changes.append(
                StatusChange(
                    old.version_id,
                    status,
                    previous,
                    old.last_updated,
                    agency,
                    client,
                    reason.get("text") if isinstance(reason, dict) else None,
                    business.get("text") if isinstance(business, dict) else None,
                )
            )
            previous = status
        # Every version's status and reason is the Task's content, released like a read.
        release = self._resources.disclosures.record(caller, [version], "referral")
        return replace(view, release=release), changes

    # -- actions -------------------------------------------------------------------------
    def act(
        self,
        *,
        caller: Caller,
        task_id: str,
        action: str,
        if_match: int | None,
        given: ActionInput,
    ) -> ReferralView:
        """One referral action (accept, decline, start, hold, resume, complete, fail,
        cancel): exactly one Task transition and its side effects in one transaction."""
        chosen = ACTIONS.get(action)
        if chosen is None:
            raise NotFound(f"No referral action {action[:40]!r}; use {', '.join(ACTIONS)}")
        check_type_and_id("Task", task_id)
        # Without If-Match the state machine is the guard: an action is one status change
        # from the statuses it applies to (app/fhir/referral.py, UNCONDITIONAL).
        scope = self._resources.scope(caller)
        with transaction(self._resources.engine, write=True, scope=scope) as repo:
            repo.lock_for_write("Task", task_id)
            current = self._resources.read_in(repo, "Task", task_id)
            if if_match is not None and current.version_id != if_match:
                raise PreconditionFailed(
                    f"Version conflict: If-Match names version {if_match}, the current "
                    f"version of Task/{task_id} is {current.version_id}"
                )
            task = body_of(current)
            if not is_referral(task):
                raise NotFound(f"Task/{task_id} is not a referral")
            assert task is not None
            status = str(task.get("status"))
            parties = parties_of(repo, caller, task, self.base_url)
            check_party(parties, who=caller.who)
            check_action(chosen, status, parties)
            new = copy.deepcopy(task)
            new["status"] = chosen.status
            if given.reason:
                new["statusReason"] = {"text": given.reason}
            elif chosen.status not in NEEDS_REASON:
                # A reason given for an earlier status (a hold) does not explain this one.
                new.pop("statusReason", None)
            if chosen.name == "complete":
                self._close_loop(repo, caller, new, given)
            result = self._resources.update_in(repo, caller, "Task", task_id, new, if_match, "PUT")
            view = self._view(result.version, caller, repo, self.cutoffs())
        # The answer holds the Task as written: the other agency's referral, for a receiver.
        release = self._resources.disclosures.record(caller, [result.version], "referral")
        return replace(view, release=release)

    def _close_loop(
        self, repo: Repository, caller: Caller, task: dict[str, Any], given: ActionInput
    ) -> None:
        """complete: the outcome into Task.output; Procedures/Observations created; the
        referral's Goals and its CarePlan activity updated (all in this transaction)."""
        made: list[str] = []
        for i, raw in enumerate(given.resources):
            kind = str(raw.get("resourceType"))
            try:
                resource = check_resource(raw, resource_type=kind, resource_id=None)
            except (InvalidRequest, ResourceInvalid) as exc:
                raise type(exc)(
                    f"outcome.resources[{i}]: {exc.diagnostics}", (f"outcome.resources[{i}]",)
                ) from exc
            require(caller, kind, "c")  # the outcome records are the caller's creations
            written = self._resources.create_in(repo, caller, kind, resource)
            made.append(f"{kind}/{written.version.id}")
        for ref in given.references:
            kind, _, rid = ref.partition("/")
            # Visible to the caller: a hidden record answers as a missing one.
            if body_of(repo.visible_current(kind, rid)) is None:
                raise ResourceInvalid(
                    f"outcome.references names {ref}, which is not known",
                    expression=("outcome.references",),
                )
        done = [*made, *given.references]
        outputs = list(task.get("output") or [])
        if given.summary:
            outputs.append(output_summary(given.summary))
        outputs.extend(output_reference(ref) for ref in done)
        task["output"] = outputs
        focus = focus_service_request(task)
        assert focus is not None
        request = body_of(repo.visible_current("ServiceRequest", focus.partition("/")[2])) or {}
        plans = _care_plans(repo, focus, request)
        goals = _goal_refs(request, plans)
        if given.goals:
            require(caller, "Goal", "u")
        for goal_ref, code in given.goals:
            if goal_ref not in goals:
                raise ResourceInvalid(
                    f"{goal_ref} is not a goal of this referral (its ServiceRequest's "
                    "supportingInfo or the goals of its care plan)",
                    expression=("outcome.goals",),
                )
            goal_id = goal_ref.partition("/")[2]
            goal = body_of(repo.visible_current("Goal", goal_id))
            if goal is None:
                raise ResourceInvalid(f"{goal_ref} is not known", expression=("outcome.goals",))
            goal["achievementStatus"] = {
                "coding": [{"system": GOAL_ACHIEVEMENT_SYSTEM, "code": code}]
            }
            self._resources.update_in(repo, caller, "Goal", goal_id, goal, None)
        for plan_id, plan in plans.items():
            if _record_activity_outcome(plan, focus, done, given.summary):
                self._resources.update_in(repo, caller, "CarePlan", plan_id, plan, None)


# Every status the box filter accepts: those of the referral state machine.
ACTIONS_STATUSES: Final = frozenset(TRANSITIONS)
_PARTY_PARAMS: Final = ("owner", "requester")


def _local(ref: str | None, base_url: str) -> tuple[str, str] | None:
    if ref is None:
        return None
    if ref.startswith(base_url + "/"):
        ref = ref[len(base_url) + 1 :]
    kind, _, rid = ref.partition("/")
    if not kind or not rid or "/" in rid or "?" in rid or ":" in kind:
        return None
    return kind, rid


def _refs(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [r for r in (reference_of(i) for i in items) if r is not None]


def _care_plans(repo: Repository, focus: str, request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The care plans a referral belongs to: its ServiceRequest's basedOn and supportingInfo
    CarePlans, and those with an activity referring to it."""
    ids = {
        ref.partition("/")[2]
        for ref in _refs(request.get("basedOn")) + _refs(request.get("supportingInfo"))
        if ref.startswith("CarePlan/")
    }
    ids.update(
        repo.referencing(
            "CarePlan", ["activity-reference"], "ServiceRequest", [focus.partition("/")[2]], 50
        )
    )
    plans: dict[str, dict[str, Any]] = {}
    for version in repo.live("CarePlan", sorted(ids)):
        body = body_of(version)
        if body is not None:
            plans[version.id] = body
    return plans


def _goal_refs(request: dict[str, Any], plans: dict[str, dict[str, Any]]) -> set[str]:
    found = {r for r in _refs(request.get("supportingInfo")) if r.startswith("Goal/")}
    for plan in plans.values():
        found.update(r for r in _refs(plan.get("goal")) if r.startswith("Goal/"))
    return found


def _record_activity_outcome(
    plan: dict[str, Any], focus: str, done: list[str], summary: str | None
) -> bool:
    """The CarePlan activity that is this referral (activity.reference = the ServiceRequest)
    gets the outcome: outcomeReference and the summary as outcomeCodeableConcept."""
    changed = False
    for activity in plan.get("activity") or []:
        if not isinstance(activity, dict) or reference_of(activity.get("reference")) != focus:
            continue
        if done:
            activity["outcomeReference"] = [
                *(activity.get("outcomeReference") or []),
                *({"reference": ref} for ref in done),
            ]
        if summary:
            activity["outcomeCodeableConcept"] = [
                *(activity.get("outcomeCodeableConcept") or []),
                {"text": summary},
            ]
        changed = changed or bool(done or summary)
    return changed


def _packet(repo: Repository, task: dict[str, Any], base_url: str) -> list[StoredVersion]:
    """The resources of a referral packet, the Task's own references first."""
    wanted: list[str] = []
    wanted += _refs(task.get("focus")) + _refs(task.get("for"))
    wanted += _refs(task.get("requester")) + _refs(task.get("owner"))
    for item in task.get("output") or []:
        if isinstance(item, dict):
            wanted += _refs(item.get("valueReference"))
    focus = focus_service_request(task)
    request = (
        body_of(repo.visible_current("ServiceRequest", focus.partition("/")[2])) if focus else None
    )
    plans: dict[str, dict[str, Any]] = {}
    if request is not None and focus is not None:
        for name in ("subject", "supportingInfo", "reasonReference", "basedOn", "requester"):
            wanted += _refs(request.get(name))
        plans = _care_plans(repo, focus, request)
        wanted += [f"CarePlan/{plan_id}" for plan_id in plans]
        wanted += sorted(_goal_refs(request, plans))
    seen: set[tuple[str, str]] = set()
    found: list[StoredVersion] = []
    for ref in wanted:
        key = _local(ref, base_url)
        if key is None or key in seen or key == ("Task", str(task.get("id"))):
            continue
        seen.add(key)
        version = repo.visible_current(*key)
        if version is not None:
            found.append(version)
        if len(found) >= _MAX_PACKET:
            break
    return found


def _check_package(bundle: dict[str, Any], caller: Caller) -> int:
    """A referral package: a transaction Bundle with exactly one referral Task (POST, status
    requested, an owner, focus a ServiceRequest entry of the Bundle that is active).
    Returns the Task's entry index. The roles (requester = the caller's agency) are checked
    by the referral rules when the Task is written."""
    if bundle.get("type") != "transaction":
        raise InvalidRequest(
            "A referral package is a Bundle of type transaction", expression=("Bundle.type",)
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise InvalidRequest("The referral package has no entries", expression=("Bundle.entry",))
    by_url: dict[str, dict[str, Any]] = {}
    tasks: list[int] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            by_url[full_url] = resource
        if resource.get("resourceType") == "Task" and _codes_fulfill(resource):
            tasks.append(index)
    if len(tasks) != 1:
        raise ResourceInvalid(
            f"A referral package holds exactly one referral Task (code {_CODE}); "
            f"this one holds {len(tasks)}",
            expression=("Bundle.entry",),
        )
    index = tasks[0]
    where = f"Bundle.entry[{index}]"
    entry = entries[index]
    task = entry["resource"]
    request_part = entry.get("request")
    if not isinstance(request_part, dict) or request_part.get("method") != "POST":
        raise InvalidRequest(f"{where}: the referral Task is created (POST)", expression=(where,))
    focus = reference_of(task.get("focus"))
    request = by_url.get(focus) if focus is not None else None
    if request is None or request.get("resourceType") != "ServiceRequest":
        raise ResourceInvalid(
            f"{where}: Task.focus must name the ServiceRequest entry of the package by its fullUrl",
            expression=(f"{where}.resource.focus",),
        )
    if task.get("status") != "requested":
        raise ResourceInvalid(
            f"{where}: a submitted referral Task has status requested",
            expression=(f"{where}.resource.status",),
        )
    if request.get("status") != "active":
        raise ResourceInvalid(
            "The referral's ServiceRequest has status active while its Task is requested",
            expression=("ServiceRequest.status",),
        )
    for name in ("owner", "requester"):
        if reference_of(task.get(name)) is None:
            raise ResourceInvalid(
                f"{where}: a referral Task names its {name}",
                expression=(f"{where}.resource.{name}",),
            )
    requester = reference_of(task.get("requester"))
    if (
        caller.agency is not None
        and requester is not None
        and requester.startswith("Organization/")
        and requester != caller.agency
    ):
        raise Conflict(
            f"{where}: Task.requester is {requester[:80]}, but the caller acts for "
            f"{caller.agency}: an agency submits its own referrals",
            expression=(f"{where}.resource.requester",),
        )
    return index


def _codes_fulfill(task: dict[str, Any]) -> bool:
    code = task.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == TASK_CODE_SYSTEM and c.get("code") == FULFILL
        for c in codings
    )


def plain_referral_bundle(value: dict[str, Any], plan_of: PlanOf) -> dict[str, Any]:
    """Plain case-management referral JSON (schemas/casework.py Referral) as the package
    Bundle POST /referrals stores (mappings/casework.py), with the care plan it serves."""
    try:
        referral = Referral.model_validate(value)
    except ValidationError as exc:
        raise invalid_plain(exc, "Referral") from exc
    plan = plan_of(referral.care_plan_id) if referral.care_plan_id else None
    return referral_bundle(referral, plan)


def _late(cutoffs: Cutoffs) -> list[list[tuple[str, str]]]:
    """The search criteria of an overdue referral: still requested since before the accept
    cutoff, or accepted and not started since before the start cutoff (overdue_reason)."""
    return [
        [("status", "requested"), ("authored-on", f"le{cutoffs.accept.isoformat()}")],
        [("status", "accepted"), ("period", f"le{cutoffs.start.isoformat()}")],
    ]


__all__ = [
    "Cutoffs",
    "Packet",
    "ReferralPage",
    "ReferralService",
    "ReferralView",
    "StatusChange",
    "plain_referral_bundle",
]
