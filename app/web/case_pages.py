"""The web app's case pages: the caseload, opening a case, the case (stage, care team, care
plan as a contract with its checks, goals, notes, assessments, pictures), and the team
leader's report. Same services as /cases, as the signed-in person."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api import pictures
from app.api.deps import ServicesDep
from app.api.pictures.genogram import WORDS as RELATION_WORDS
from app.fhir.errors import FHIRError, NotFound, invalid_plain
from app.services.auth.people import Person
from app.services.container import Services
from app.services.usecases.caseload import parse_filters
from app.web.names import names_for
from app.web.render import PAGE_HEADERS, go, page
from app.web.session import PersonDep
from app.web.views import instrument_forms
from schemas import casework as plain
from schemas.conformance import codes, display

router = APIRouter()
FormOptional = Annotated[str | None, Form()]
FormText = Annotated[str, Form()]

STAGES = [(c, display("case-stage", c)) for c in codes("case-stage")]
MODELS = [(c, display("case-management-model", c)) for c in codes("case-management-model")]
CONTACTS = [(c, display("contact-type", c)) for c in codes("contact-type")]
CLOSURES = [(c, display("case-closure-reason", c)) for c in codes("case-closure-reason")]
RELATIONSHIPS = [(c, RELATION_WORDS.get(c, c)) for c in get_args(plain.Relationship)]
RELATIONSHIPS += [("FRND", "friend"), ("NBOR", "neighbour"), ("ROOM", "housemate")]
RELATIONSHIPS = list(dict.fromkeys(RELATIONSHIPS))
SYSTEMS = [(c, display("informal-system", c)) for c in codes("informal-system")]
CONNECTIONS = [(c, display("connection-strength", c)) for c in codes("connection-strength")]
FLOWS = [(c, display("energy-flow", c)) for c in codes("energy-flow")]


def _plain(model: type[Any], values: dict[str, Any]) -> Any:
    """A plain model from form values (empty fields left out); 400 naming the field."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v not in (None, "")})
    except ValidationError as exc:
        raise invalid_plain(exc, model.__name__) from exc


# -- the caseload ---------------------------------------------------------------------------
@router.get("/app/cases")
def caseload(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """My caseload (or the team's): cases by stage with overdue items first."""
    params = [(k, v) for k, v in request.query_params.multi_items() if v]
    mine = request.query_params.get("mine")
    params = [(k, v) for k, v in params if k != "mine"]
    if mine == "yes":
        params.append(("care_manager", person.user.practitioner))
    listed = services.caseload.list_cases(caller=person.caller(), filters=parse_filters(params))
    cases = sorted(
        listed.cases,
        key=lambda c: (not (c.overdue.referrals or c.overdue.reviews or c.overdue.goals), c.stage),
    )
    return page(
        request,
        "cases.html",
        person,
        caseload=listed,
        cases=cases,
        stages=STAGES,
        models=MODELS,
        chosen=dict(request.query_params),
    )


@router.get("/app/cases/new")
def new_case_page(request: Request, person: PersonDep) -> Response:
    """Engagement: a new client and their case."""
    return page(request, "case_new.html", person, models=MODELS, values={}, error=None)


@router.post("/app/cases/new")
def new_case(
    request: Request,
    services: ServicesDep,
    person: PersonDep,
    given_names: FormText,
    family_name: FormOptional = None,
    birth_date: FormOptional = None,
    gender: FormOptional = None,
    phone: FormOptional = None,
    indigenous_status: FormOptional = None,
    language: FormOptional = None,
    interpreter_needed: FormOptional = None,
    model: FormOptional = None,
) -> Response:
    """Open the case, the person as its care manager, the agency as its manager."""
    values = {
        "given_names": given_names,
        "family_name": family_name,
        "birth_date": birth_date,
        "gender": gender,
        "phone": phone,
        "indigenous_status": indigenous_status,
        "language": language,
        "interpreter_needed": interpreter_needed,
        "model": model,
    }
    try:
        client = _plain(
            plain.Client,
            {
                "given_names": [n for n in given_names.split() if n],
                "family_name": family_name,
                "birth_date": birth_date,
                "gender": gender,
                "phone": phone,
                "indigenous_status": indigenous_status,
                "language": language,
                "interpreter_needed": {"yes": True, "no": False}.get(interpreter_needed or ""),
            },
        )
        case = plain.NewCase(
            client=client,
            stage="engagement",
            model=model or None,
            managing_agency=person.user.agency,
            care_manager=person.user.practitioner,
            care_team=[
                plain.TeamMember(
                    member=person.user.practitioner,
                    name=person.user.name,
                    role="case manager",
                )
            ],
            start=services.clock.now().date(),
        )
        stored = services.cases.create_case(caller=person.caller(), case=case)
    except FHIRError as exc:
        return page(
            request,
            "case_new.html",
            person,
            status=exc.status,
            models=MODELS,
            values=values,
            error=exc.diagnostics,
        )
    return go(f"/app/cases/{stored.value.id}")


# -- a case ---------------------------------------------------------------------------------
def _case_page(
    request: Request,
    services: Services,
    person: Person,
    case_id: str,
    *,
    error: str | None = None,
    status: int = 200,
    warnings: list[str] | None = None,
) -> Response:
    caller = person.caller()
    try:
        case = services.cases.read_case(caller=caller, case_id=case_id)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    client = services.cases.read_client(caller=caller, case_id=case_id).value
    plans = services.cases.care_plans(caller=caller, case_id=case_id).value
    notes = services.cases.notes(caller=caller, case_id=case_id).value
    assessments = services.cases.assessments(caller=caller, case_id=case_id).value
    supports = services.cases.supports(caller=caller, case_id=case_id).value
    checks = services.cases.check_case(caller=caller, case_id=case_id)
    return page(
        request,
        "case.html",
        person,
        status=status,
        case=case.value,
        etag=case.version_id,
        client=client,
        plans=plans,
        notes=list(reversed(notes)),
        assessments=list(reversed(assessments)),
        supports=supports,
        checks=[i for i in checks if i.severity in ("warning", "error")],
        stages=STAGES,
        contacts=CONTACTS,
        closures=CLOSURES,
        relationships=RELATIONSHIPS,
        systems=SYSTEMS,
        connections=CONNECTIONS,
        flows=FLOWS,
        instruments=instrument_forms(services.settings.k10_bands),
        error=error,
        warnings=warnings or [],
        today=services.clock.now().date().isoformat(),
        names=names_for(services, caller),
    )


@router.get("/app/cases/{case_id}")
def case_page(request: Request, case_id: str, services: ServicesDep, person: PersonDep) -> Response:
    """The case: who, where it stands, the plan as a contract, notes, assessments."""
    return _case_page(request, services, person, case_id)


# -- writing a care plan --------------------------------------------------------------------
# Rows the form offers for a new plan; a saved plan's form has one free row more than it
# holds, up to what a plan may hold (schemas/casework.py).
_ROWS = {"need": 3, "goal": 3, "action": 4}
_MAX_ROWS = {"need": 50, "goal": 50, "action": 100}


def _choices(model: type[Any], field: str) -> list[tuple[str, str]]:
    """The codes a plain model's Literal field allows, with words for a select."""
    allowed = model.model_fields[field].annotation
    codes = [c for arg in get_args(allowed) for c in (get_args(arg) or (arg,))]
    return [(c, c.replace("-", " ")) for c in codes if isinstance(c, str)]


GOAL_STATUSES = _choices(plain.Goal, "status")
ACHIEVEMENTS = _choices(plain.Goal, "achievement")
ACTION_STATUSES = _choices(plain.Action, "status")
PLAN_STATUSES = _choices(plain.CarePlan, "status")


def _rows(form: Any) -> dict[str, int]:
    """How many rows of each kind the form held (the page says; bounded)."""
    rows = dict(_ROWS)
    for kind, most in _MAX_ROWS.items():
        given = form.get(f"rows_{kind}")
        if isinstance(given, str) and given.isdigit():
            rows[kind] = max(1, min(int(given), most))
    return rows


def plan_from_form(form: Any) -> plain.CarePlan:
    """A plain care plan from the plan form: rows of needs, goals and actions (blank rows
    left out), strengths one per line; on a saved plan's form, the ids of its needs and
    goals and the status of each. 400 naming the field for a bad value."""

    def value(name: str) -> str | None:
        found = form.get(name)
        return found.strip() if isinstance(found, str) and found.strip() else None

    rows = _rows(form)
    needs = []
    for i in range(1, rows["need"] + 1):
        text = value(f"need_{i}")
        if text:
            needs.append({"key": f"need-{i}", "id": value(f"need_id_{i}"), "description": text})
    goals = []
    for i in range(1, rows["goal"] + 1):
        text = value(f"goal_{i}")
        if not text:
            continue
        need = value(f"goal_need_{i}")
        goals.append(
            {
                "id": value(f"goal_id_{i}"),
                "description": text,
                "measure": value(f"goal_measure_{i}"),
                "target": value(f"goal_target_{i}"),
                "due": value(f"goal_due_{i}"),
                "addresses": [need] if need and any(n["key"] == need for n in needs) else [],
                "expressed_by_client": value(f"goal_client_{i}") == "yes",
                "status": value(f"goal_status_{i}"),
                "achievement": value(f"goal_achievement_{i}"),
            }
        )
    actions = []
    for i in range(1, rows["action"] + 1):
        what = value(f"action_what_{i}")
        if not what:
            continue
        who = value(f"action_who_{i}")
        responsibility = value(f"action_resp_{i}")
        actions.append(
            {
                "what": what,
                "how": value(f"action_how_{i}"),
                "where": value(f"action_where_{i}"),
                "start": value(f"action_start_{i}"),
                "end": value(f"action_end_{i}"),
                "status": value(f"action_status_{i}"),
                "who": [{"who": who, "responsibility": responsibility or "responsible"}]
                if who
                else [],
            }
        )
    strengths = [line.strip() for line in (value("strengths") or "").splitlines() if line.strip()]
    plan: plain.CarePlan = _plain(
        plain.CarePlan,
        {
            "title": value("title") or "Care plan",
            "status": value("status"),
            "model": value("model"),
            "start": value("start"),
            "end": value("end"),
            "review_due": value("review_due"),
            "needs": [{k: v for k, v in n.items() if v is not None} for n in needs],
            "goals": [{k: v for k, v in g.items() if v not in (None, "")} for g in goals],
            "actions": [{k: v for k, v in a.items() if v not in (None, "")} for a in actions],
            "strengths": strengths,
        },
    )
    return plan


def form_from_plan(plan: plain.CarePlan) -> tuple[dict[str, Any], dict[str, int]]:
    """The plan form's values for a saved plan, and its rows (one free row of each kind)."""
    values: dict[str, Any] = {
        "title": plan.title,
        "status": plan.status,
        "model": plan.model,
        "start": plan.start,
        "end": plan.end,
        "review_due": plan.review_due,
        "strengths": "\n".join(plan.strengths),
    }
    key_of: dict[str, str] = {}
    for i, need in enumerate(plan.needs, start=1):
        values |= {f"need_{i}": need.description, f"need_id_{i}": need.id}
        if need.id:
            key_of[need.id] = f"need-{i}"
    for i, goal in enumerate(plan.goals, start=1):
        addressed = [key_of[a] for a in goal.addresses if a in key_of]
        values |= {
            f"goal_{i}": goal.description,
            f"goal_id_{i}": goal.id,
            f"goal_measure_{i}": goal.measure,
            f"goal_target_{i}": goal.target,
            f"goal_due_{i}": goal.due,
            f"goal_need_{i}": addressed[0] if addressed else None,
            f"goal_client_{i}": "yes" if goal.expressed_by_client else None,
            f"goal_status_{i}": goal.status,
            f"goal_achievement_{i}": goal.achievement,
        }
    for i, action in enumerate(plan.actions, start=1):
        first = action.who[0] if action.who else None
        values |= {
            f"action_what_{i}": action.what,
            f"action_how_{i}": action.how,
            f"action_where_{i}": action.where,
            f"action_start_{i}": action.start,
            f"action_end_{i}": action.end,
            f"action_status_{i}": action.status,
            f"action_who_{i}": first.who if first else None,
            f"action_resp_{i}": first.responsibility if first else None,
        }
    counts = {"need": len(plan.needs), "goal": len(plan.goals), "action": len(plan.actions)}
    rows = {k: max(_ROWS[k], min(counts[k] + 1, _MAX_ROWS[k])) for k in _ROWS}
    return {k: ("" if v is None else str(v)) for k, v in values.items()}, rows


def reviewed(saved: plain.CarePlan, edited: plain.CarePlan) -> plain.CarePlan:
    """The saved plan as the review form changed it. The form shows one person per action
    and no phases, supports, service types, sessions or reasons a goal is achievable:
    those are kept from the saved plan (an action by its row, a goal by its id), so a
    review in the browser never drops what an API client wrote."""
    goals = {g.id: g for g in saved.goals if g.id}
    merged_goals = [
        g.model_copy(update={"achievable_because": goals[g.id].achievable_because})
        if g.id in goals
        else g
        for g in edited.goals
    ]
    actions = []
    for i, action in enumerate(edited.actions):
        old = saved.actions[i] if i < len(saved.actions) else None
        if old is None:
            actions.append(action)
            continue
        who = action.who + [w for w in old.who[1:] if w not in action.who]
        actions.append(
            action.model_copy(
                update={"service_type": old.service_type, "sessions": old.sessions, "who": who}
            )
        )
    return edited.model_copy(
        update={
            "goals": merged_goals,
            "actions": actions,
            "phases": saved.phases,
            "supports": saved.supports,
        }
    )


def _plan_form(
    request: Request,
    services: Services,
    person: Person,
    case_id: str,
    *,
    values: dict[str, Any],
    rows: dict[str, int] | None = None,
    plan_id: str | None = None,
    etag: int | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    try:
        case = services.cases.read_case(caller=person.caller(), case_id=case_id).value
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    return page(
        request,
        "plan_form.html",
        person,
        status=status,
        case=case,
        values=values,
        error=error,
        models=MODELS,
        rows=rows or _ROWS,
        plan_id=plan_id,
        etag=etag,
        goal_statuses=GOAL_STATUSES,
        achievements=ACHIEVEMENTS,
        action_statuses=ACTION_STATUSES,
        plan_statuses=PLAN_STATUSES,
        team=[(m.member, m.name or m.member) for m in case.care_team],
    )


@router.get("/app/cases/{case_id}/plans/new")
def new_plan_page(
    request: Request, case_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """Planning: the care plan as a contract, checked as the worker writes it."""
    return _plan_form(request, services, person, case_id, values={})


@router.post("/app/cases/{case_id}/plans/check")
async def check_plan_draft(
    request: Request, case_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """What the plan being written lacks (htmx swaps this list in as the worker types)."""
    form = await request.form()
    try:
        plan = plan_from_form(form)
        issues = await run_in_threadpool(
            services.cases.check_draft, caller=person.caller(), case_id=case_id, plan=plan
        )
        lines = [i.diagnostics for i in issues if i.severity in ("warning", "error")]
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        lines = [exc.diagnostics]
    return page(request, "plan_checks.html", person, lines=lines)


@router.post("/app/cases/{case_id}/plans")
async def create_plan(
    request: Request, case_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """Store the care plan (its needs, goals, strengths and actions in one transaction)."""
    form = await request.form()
    try:
        plan = plan_from_form(form)
        await run_in_threadpool(
            services.cases.create_care_plan, caller=person.caller(), case_id=case_id, plan=plan
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        return await _plan_form_again(request, services, person, case_id, form, exc)
    return go(f"/app/cases/{case_id}#plan-title")


async def _plan_form_again(
    request: Request,
    services: Services,
    person: Person,
    case_id: str,
    form: Any,
    exc: FHIRError,
    *,
    plan_id: str | None = None,
    etag: int | None = None,
    error: str | None = None,
) -> Response:
    """The plan form as the worker sent it, with what was wrong (nothing was stored)."""
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(
        lambda: _plan_form(
            request,
            services,
            person,
            case_id,
            values=values,
            rows=_rows(form),
            plan_id=plan_id,
            etag=etag,
            error=error or exc.diagnostics,
            status=exc.status,
        )
    )


@router.get("/app/cases/{case_id}/plans/{plan_id}/edit")
def edit_plan_page(
    request: Request, case_id: str, plan_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """Reviewing a plan with the client: the saved plan in the same form, with each goal's
    progress and each action's status (monitoring and evaluation)."""
    try:
        saved = services.cases.read_care_plan(
            caller=person.caller(), case_id=case_id, plan_id=plan_id
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="care plan")
    values, rows = form_from_plan(saved.value)
    return _plan_form(
        request,
        services,
        person,
        case_id,
        values=values,
        rows=rows,
        plan_id=plan_id,
        etag=saved.version_id,
    )


@router.post("/app/cases/{case_id}/plans/{plan_id}")
async def update_plan(
    request: Request, case_id: str, plan_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """Store the reviewed plan: needs and goals keep their records (a goal's achievement is
    a change of that Goal), in one transaction, only if nobody changed the plan since the
    form was opened (If-Match with the version the form was opened at)."""
    form = await request.form()
    version = str(form.get("version") or "")
    caller = person.caller()
    try:
        saved = await run_in_threadpool(
            services.cases.read_care_plan, caller=caller, case_id=case_id, plan_id=plan_id
        )
        if not version.isdigit():  # not the review form: it carries the version it shows
            return go(f"/app/cases/{case_id}/plans/{plan_id}/edit")
        plan = reviewed(saved.value, plan_from_form(form))
        await run_in_threadpool(
            services.cases.update_care_plan,
            caller=caller,
            case_id=case_id,
            plan_id=plan_id,
            plan=plan,
            if_match=int(version),
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="care plan")
    except FHIRError as exc:
        stale = (
            "Someone changed this plan after you opened it; nothing was saved. Open the "
            "plan again to see their change, then make yours."
        )
        return await _plan_form_again(
            request,
            services,
            person,
            case_id,
            form,
            exc,
            plan_id=plan_id,
            etag=int(version),
            error=stale if exc.status == 412 else None,
        )
    return go(f"/app/cases/{case_id}#plan-title")


@router.post("/app/cases/{case_id}/stage")
def change_stage(
    request: Request,
    case_id: str,
    services: ServicesDep,
    person: PersonDep,
    stage: FormText,
    version: FormOptional = None,
    closure_reason: FormOptional = None,
    closure_summary: FormOptional = None,
) -> Response:
    """Move the case to a stage (closing it with a reason and a summary); what the process
    warns about is shown on the case."""
    caller = person.caller()
    try:
        current = services.cases.read_case(caller=caller, case_id=case_id).value
        changes: dict[str, Any] = {"stage": stage}
        if stage == "closure":
            changes.update(
                status="finished",
                closure_reason=closure_reason or None,
                closure_summary=(closure_summary or "").strip() or None,
            )
        updated = current.model_copy(update=changes)
        stored = services.cases.update_case(
            caller=caller,
            case_id=case_id,
            case=plain.Case.model_validate(updated.model_dump()),
            if_match=int(version) if version and version.isdigit() else None,
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        return _case_page(
            request, services, person, case_id, error=exc.diagnostics, status=exc.status
        )
    return _case_page(request, services, person, case_id, warnings=stored.value.warnings)


@router.post("/app/cases/{case_id}/supports")
def add_support(
    request: Request,
    case_id: str,
    services: ServicesDep,
    person: PersonDep,
    name: FormText,
    kind: FormOptional = None,
    relationship: FormOptional = None,
    gender: FormOptional = None,
    birth_date: FormOptional = None,
    death_date: FormOptional = None,
    connection: FormOptional = None,
    flow: FormOptional = None,
) -> Response:
    """Family, friends and informal systems (work, school, faith, self-help, ...): the
    ecomap's and genogram's people."""
    try:
        support = _plain(
            plain.Support,
            {
                "name": name,
                "kind": kind or "person",
                "relationship": relationship,
                "gender": gender,
                "birth_date": birth_date,
                "death_date": death_date,
                "connection": connection,
                "flow": flow,
            },
        )
        services.cases.add_support(caller=person.caller(), case_id=case_id, support=support)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        return _case_page(
            request, services, person, case_id, error=exc.diagnostics, status=exc.status
        )
    return go(f"/app/cases/{case_id}#supports")


@router.post("/app/cases/{case_id}/notes")
def add_note(
    request: Request,
    case_id: str,
    services: ServicesDep,
    person: PersonDep,
    text: FormText,
    date: FormOptional = None,
    contact_type: FormOptional = None,
    duration_minutes: FormOptional = None,
    did_not_attend: FormOptional = None,
) -> Response:
    """A progress note, its author the person."""
    try:
        note = _plain(
            plain.ProgressNote,
            {
                "date": date or services.clock.now().date().isoformat(),
                "author": person.user.practitioner,
                "text": text,
                "contact_type": contact_type,
                "duration_minutes": duration_minutes,
                "did_not_attend": did_not_attend == "yes",
            },
        )
        services.cases.add_note(caller=person.caller(), case_id=case_id, note=note)
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        return _case_page(
            request, services, person, case_id, error=exc.diagnostics, status=exc.status
        )
    return go(f"/app/cases/{case_id}#notes")


@router.post("/app/cases/{case_id}/assessments")
async def add_assessment(
    request: Request, case_id: str, services: ServicesDep, person: PersonDep
) -> Response:
    """An instrument filled in on the form (item_1 .. item_N), scored by the server."""
    form = await request.form()
    instrument = str(form.get("instrument") or "")
    answers: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key.startswith("item_") and isinstance(value, str) and value != "":
            answers[key.removeprefix("item_")] = value
    date = str(form.get("date") or services.clock.now().date().isoformat())
    try:
        assessment = _plain(
            plain.Assessment, {"instrument": instrument, "date": date, "answers": answers}
        )
        await run_in_threadpool(
            services.cases.add_assessment,
            caller=person.caller(),
            case_id=case_id,
            assessment=assessment,
        )
    except NotFound:
        return page(request, "not_found.html", person, status=404, what="case")
    except FHIRError as exc:
        return await run_in_threadpool(
            _case_page, request, services, person, case_id, error=exc.diagnostics, status=exc.status
        )
    return go(f"/app/cases/{case_id}#assessments")


@router.get("/app/cases/{case_id}/pictures/{name}.svg")
def picture(case_id: str, name: str, services: ServicesDep, person: PersonDep) -> Response:
    """The outcomes chart, ecomap or genogram of the case."""
    caller = person.caller()
    if name == "outcomes":
        svg = pictures.outcomes_svg(services.cases.outcomes(caller=caller, case_id=case_id))
    elif name in ("ecomap", "genogram"):
        network = services.cases.network(caller=caller, case_id=case_id)
        draw = pictures.ecomap_svg if name == "ecomap" else pictures.genogram_svg
        svg = draw(network)
    else:
        raise NotFound(f"No picture {name!r}")
    return Response(svg, media_type="image/svg+xml", headers=PAGE_HEADERS)


# -- the team leader ------------------------------------------------------------------------
@router.get("/app/reports/caseload")
def report(request: Request, services: ServicesDep, person: PersonDep) -> Response:
    """Caseloads against the models' ratios, turnaround, goal attainment, what is overdue."""
    data = services.reports.caseload(caller=person.caller())
    return page(request, "report.html", person, report=data)


__all__ = ["router"]
