"""GET /cases: a caseload, the cases a worker or a team leader looks at first.

Filters: care manager, stage, model of practice, status (open cases by default) and
overdue items, paged. Each line carries the client's name, the latest contact the notes
record and what is overdue in the case:
- referrals of the client not accepted, or not started, in time: the definition of
  GET /referrals?overdue=true (app/fhir/referral.py overdue_reason);
- care plans in force past their review date, and goals still being worked on past their
  due date (app/fhir/case_process.py, the definitions the plan checks use).

Everything is read in one snapshot under the caller's access scope: a case, plan, goal or
referral the caller may not see is not there (it neither lists nor counts).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, get_args
from urllib.parse import urlencode

from app.clock import Clock
from app.fhir.case_process import GOAL_WORKING, goal_overdue, last_contacts, review_overdue
from app.fhir.errors import InvalidRequest
from app.fhir.referral import OPEN, is_referral, overdue_reason, reference_of
from app.security.caller import Caller
from app.services.uow import transaction
from app.services.usecases.referrals import ReferralService
from app.services.usecases.reports import model_of_episode
from app.services.usecases.resources import ResourceService
from app.services.usecases.search import SearchService
from app.storage.repository import Repository
from mappings import casework as m
from schemas import casework as plain

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 200
# The open statuses: a caseload is the cases still being worked.
OPEN_CASES: Final = ("planned", "waitlist", "active", "onhold")
# Cases a caseload reads at most (an agency's whole caseload; more is refused as too costly
# by the search itself).
_MAX_CASES: Final = 10_000
# Clients whose records are read in one search (a reference parameter's value list).
_CHUNK: Final = 50
_WORKING: Final = ",".join(sorted(GOAL_WORKING))
_FILTERS: Final = frozenset(
    {"care_manager", "stage", "model", "status", "overdue", "page", "count"}
)


@dataclass(frozen=True, slots=True)
class CaseFilters:
    """What GET /cases was asked for, checked."""

    care_manager: str | None = None
    stages: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    statuses: tuple[str, ...] = OPEN_CASES
    overdue: bool | None = None
    page: int = 1
    count: int = DEFAULT_COUNT


def _choices(name: str, value: str, allowed: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(chosen - set(allowed))
    if unknown or not chosen:
        raise InvalidRequest(
            f"{name}={value[:60]!r}: use one or more of {', '.join(allowed)}",
            expression=(name,),
        )
    return chosen


def _number(name: str, value: str, most: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise InvalidRequest(f"{name} must be a whole number from 1 to {most}", expression=(name,))
    return int(value)


def parse_filters(params: Sequence[tuple[str, str]]) -> CaseFilters:
    """The query of GET /cases; an unknown or repeated parameter, or a bad value, is a 400
    naming it (a typo never widens a caseload silently)."""
    seen: dict[str, str] = {}
    for key, value in params:
        if key not in _FILTERS:
            raise InvalidRequest(
                f"GET /cases has no parameter {key[:40]!r}; use {', '.join(sorted(_FILTERS))}",
                expression=(key[:40],),
            )
        if key in seen:
            raise InvalidRequest(f"{key} is given twice", expression=(key,))
        seen[key] = value
    manager = seen.get("care_manager")
    if manager is not None and not re.fullmatch(plain.WORKER_PATTERN, manager):
        raise InvalidRequest(
            "care_manager is Practitioner/{id} or PractitionerRole/{id}",
            expression=("care_manager",),
        )
    overdue = seen.get("overdue")
    if overdue not in (None, "true", "false"):
        raise InvalidRequest("overdue must be true or false", expression=("overdue",))
    return CaseFilters(
        care_manager=manager,
        stages=_choices("stage", seen["stage"], get_args(plain.Stage))
        if "stage" in seen
        else frozenset(),
        models=_choices("model", seen["model"], get_args(plain.Model))
        if "model" in seen
        else frozenset(),
        statuses=tuple(sorted(_choices("status", seen["status"], get_args(plain.CaseStatus))))
        if "status" in seen
        else OPEN_CASES,
        overdue=None if overdue is None else overdue == "true",
        page=_number("page", seen["page"], 100_000) if "page" in seen else 1,
        count=_number("count", seen["count"], MAX_COUNT) if "count" in seen else DEFAULT_COUNT,
    )


class CaseloadService:
    """The case list."""

    def __init__(
        self,
        *,
        resources: ResourceService,
        search: SearchService,
        referrals: ReferralService,
        clock: Clock,
    ) -> None:
        self._resources = resources
        self._search = search
        self._referrals = referrals
        self._clock = clock

    def list_cases(self, *, caller: Caller, filters: CaseFilters) -> plain.Caseload:
        """One page of the caller's cases, oldest first, with what is overdue in each."""
        with transaction(
            self._resources.engine,
            write=False,
            snapshot=True,
            scope=self._resources.scope(caller),
        ) as repo:
            params = [("status", ",".join(filters.statuses))]
            # EpisodeOfCare's care-manager parameter targets Practitioner only.
            if filters.care_manager and filters.care_manager.startswith("Practitioner/"):
                params.append(("care-manager", filters.care_manager))
            episodes = [
                e
                for e in self._search.search_all(
                    caller=caller,
                    resource_type="EpisodeOfCare",
                    params=params,
                    repo=repo,
                    at_most=_MAX_CASES,
                )
                if _wanted(e, filters)
            ]
            episodes.sort(key=lambda e: ((e.get("period") or {}).get("start", ""), e["id"]))
            first = (filters.page - 1) * filters.count
            if filters.overdue is None:
                total = len(episodes)
                chosen = episodes[first : first + filters.count]
                lines = self._lines(repo, caller, chosen)
            else:
                lines = [
                    line
                    for line in self._lines(repo, caller, episodes)
                    if _is_late(line) == filters.overdue
                ]
                total = len(lines)
                lines = lines[first : first + filters.count]
        return plain.Caseload(
            total=total,
            page=filters.page,
            count=filters.count,
            cases=lines,
            next=_next(filters) if first + filters.count < total else None,
        )

    def _lines(
        self, repo: Repository, caller: Caller, episodes: list[dict[str, Any]]
    ) -> list[plain.CaseSummary]:
        """A caseload line per case, the client's records read a chunk of clients at a time."""
        today = self._clock.now().date()
        cutoffs = self._referrals.cutoffs()
        lines = []
        for start in range(0, len(episodes), _CHUNK):
            chunk = episodes[start : start + _CHUNK]
            clients = sorted({c for c in (_client(e) for e in chunk) if c})
            if not clients:
                continue
            patients = ("patient", ",".join(f"Patient/{c}" for c in clients))

            def of(*params: tuple[str, str], resource_type: str) -> list[dict[str, Any]]:
                return self._search.search_all(
                    caller=caller, resource_type=resource_type, params=params, repo=repo
                )

            plans = of(patients, ("status", "active,on-hold"), resource_type="CarePlan")
            goals = of(patients, ("lifecycle-status", _WORKING), resource_type="Goal")
            tasks = of(patients, ("status", ",".join(sorted(OPEN))), resource_type="Task")
            notes = of(patients, resource_type="DocumentReference")
            late_plans = _by_case(p for p in plans if review_overdue(p, today))
            late_goals = _by_case(g for g in goals if goal_overdue(g, today))
            late_referrals: dict[str, list[str]] = defaultdict(list)
            for task in tasks:
                reason = overdue_reason(
                    task, accept_cutoff=cutoffs.accept, start_cutoff=cutoffs.start
                )
                client = reference_of(task.get("for"))
                if is_referral(task) and reason and client:
                    late_referrals[client].append(f"Task/{task['id']}")
            contacts = last_contacts(notes)
            # The clients of the chunk in one search (not a read per line); a client of
            # another agency's shown here is a release, logged like the rest.
            names = {
                p["id"]: _name(p) for p in of(("_id", ",".join(clients)), resource_type="Patient")
            }
            for episode in chunk:
                case_id, client = episode["id"], _client(episode)
                case = m.episode_to_case(episode)
                lines.append(
                    plain.CaseSummary(
                        id=case_id,
                        client_id=client,
                        client_name=names.get(client) if client else None,
                        status=case.status,
                        stage=case.stage,
                        model=case.model,
                        managing_agency=case.managing_agency,
                        care_manager=case.care_manager,
                        start=case.start,
                        last_contact=contacts.get(case_id),
                        overdue=plain.Overdue(
                            referrals=sorted(late_referrals.get(f"Patient/{client}", [])),
                            reviews=sorted(late_plans.get(case_id, [])),
                            goals=sorted(late_goals.get(case_id, [])),
                        ),
                    )
                )
        return lines


def _client(episode: dict[str, Any]) -> str | None:
    reference = reference_of(episode.get("patient"))
    if reference is None or not reference.startswith("Patient/"):
        return None
    return reference.split("/", 1)[1]


def _wanted(episode: dict[str, Any], filters: CaseFilters) -> bool:
    case = m.episode_to_case(episode)
    if filters.care_manager and case.care_manager != filters.care_manager:
        return False
    if filters.stages and case.stage not in filters.stages:
        return False
    return not filters.models or model_of_episode(episode) in filters.models


def _by_case(resources: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for resource in resources:
        case_id = m.case_of(resource)
        if case_id:
            found[case_id].append(f"{resource['resourceType']}/{resource['id']}")
    return found


def _name(patient: dict[str, Any] | None) -> str | None:
    if patient is None:
        return None
    client = m.patient_to_client(patient)
    parts = [*client.given_names, *([client.family_name] if client.family_name else [])]
    return " ".join(parts) or None


def _is_late(line: plain.CaseSummary) -> bool:
    late = line.overdue
    return bool(late.referrals or late.reviews or late.goals)


def _next(filters: CaseFilters) -> str:
    query = [("page", str(filters.page + 1)), ("count", str(filters.count))]
    if filters.care_manager:
        query.append(("care_manager", filters.care_manager))
    if filters.stages:
        query.append(("stage", ",".join(sorted(filters.stages))))
    if filters.models:
        query.append(("model", ",".join(sorted(filters.models))))
    if filters.statuses != OPEN_CASES:
        query.append(("status", ",".join(filters.statuses)))
    if filters.overdue is not None:
        query.append(("overdue", str(filters.overdue).lower()))
    return "/cases?" + urlencode(query, safe="/,")


__all__ = ["CaseFilters", "CaseloadService", "parse_filters"]
