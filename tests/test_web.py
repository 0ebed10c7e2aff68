"""The web app over HTTP on both databases (issue 20): accounts, signing in and out,
lockout, CSRF, agency isolation, the pages' headers and the audit naming the person.
The browser journeys are in tests/test_web_browser.py."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.support.cli import run_cli
from tests.support.referrals import package
from tests.support.server import LiveServer
from tests.support.web import (
    FHIR_JSON,
    PASSWORD,
    csrf_of,
    post_form,
    sign_in,
    two_agencies,
)

A, B = "Organization/northside", "Organization/eastside"


@pytest.fixture
def site(live: LiveServer, backend: Backend) -> Iterator[str]:
    """A clean database with two agencies, a worker in each and their accounts."""
    backend.truncate()
    two_agencies(live.fhir, backend)
    yield live.root


def _open_case(http: httpx.Client, given: str = "Alex") -> str:
    answer = post_form(
        http,
        "/app/cases/new",
        "/app/cases/new",
        {"given_names": given, "family_name": "Rivera", "birth_date": "1988-04-02"},
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[1]


def test_the_readme_command_adds_a_person(backend: Backend, site: str, live: LiveServer) -> None:
    env = {"CASEBRIDGE_DATABASE_URL": backend.url}
    args = ["users", "add", "--org", "Organization/westside", "--org-name", "Westside Health",
            "--practitioner", "Practitioner/cy", "--email", "Cy@Westside.example",
            "--name", "Cy"]  # fmt: skip
    made = run_cli(args, env, stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    assert "cy@westside.example can sign in" in made.stdout
    # A new server is ready to use: the agency and the worker are in the directory.
    with httpx.Client(base_url=live.fhir, timeout=30) as fhir:
        assert fhir.get("/Organization/westside").json()["name"] == "Westside Health"
        assert fhir.get("/Practitioner/cy").json()["name"] == [{"text": "Cy"}]
    again = run_cli(args, env, stdin=f"{PASSWORD}\n")
    assert again.returncode == 2 and "already has an account" in again.stderr
    short = run_cli([*args[:-4], "--email", "dee@westside.example"], env, stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    listed = run_cli(["users", "list"], {**env, "COLUMNS": "200"})
    assert "cy@westside.example" in listed.stdout
    with sign_in(site, "CY@westside.example") as http:
        page = http.get("/app/referrals/new")
        assert page.status_code == 200
    # Unlock and disable, as an administrator would.
    assert run_cli(["users", "disable", "cy@westside.example"], env).returncode == 0
    with httpx.Client(base_url=site, timeout=30) as http:
        refused = http.post(
            "/app/sign-in", data={"email": "cy@westside.example", "password": PASSWORD}
        )
        assert refused.status_code == 401
    assert run_cli(["users", "enable", "cy@westside.example"], env).returncode == 0
    with sign_in(site, "cy@westside.example") as http:
        assert http.get("/app/cases").status_code == 200


def test_pages_need_a_person_and_say_so_by_redirect(site: str) -> None:
    with httpx.Client(base_url=site, timeout=30) as http:
        assert http.get("/").headers["location"] == "/app/"
        assert http.get("/app/").headers["location"] == "/app/sign-in"
        answer = http.get("/app/cases?mine=yes")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app/sign-in?next=/app/cases%3Fmine%3Dyes"
        # The API is untouched: JSON errors there, a page under /app.
        assert http.get("/nowhere").headers["content-type"].startswith("application/")
        form = http.get("/app/sign-in")
        assert form.status_code == 200 and "<form" in form.text
        assert "default-src 'self'" in form.headers["content-security-policy"]
        assert form.headers["cache-control"] == "no-store"


def test_sign_in_refuses_alike_and_locks_after_repeated_failures(site: str) -> None:
    with httpx.Client(base_url=site, timeout=30) as http:
        unknown = http.post("/app/sign-in", data={"email": "nobody@x.example", "password": "x"})
        wrong = http.post(
            "/app/sign-in", data={"email": "ann@northside.example", "password": "wrong"}
        )
        assert unknown.status_code == wrong.status_code == 401
        message = re.findall(r'role="alert"[^>]*>([^<]+)<', unknown.text)
        assert message == re.findall(r'role="alert"[^>]*>([^<]+)<', wrong.text)
        assert "casebridge_session" not in http.cookies
        for _ in range(4):  # five wrong in a row, counting the one above
            http.post("/app/sign-in", data={"email": "ann@northside.example", "password": "no"})
        locked = http.post(
            "/app/sign-in", data={"email": "ann@northside.example", "password": PASSWORD}
        )
        assert locked.status_code == 401
        assert message == re.findall(r'role="alert"[^>]*>([^<]+)<', locked.text)
    with sign_in(site, "ben@eastside.example") as http:
        assert http.get("/app/referrals").status_code == 200


def test_the_session_cookie_and_signing_out(site: str) -> None:
    answer = httpx.post(
        f"{site}/app/sign-in",
        data={"email": "ann@northside.example", "password": PASSWORD,
              "next": "https://evil.example/"},
    )  # fmt: skip
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert answer.headers["location"] == "/app/referrals"  # never another site
    third = answer.cookies["casebridge_session"]
    with (
        sign_in(site, "ann@northside.example") as http,
        sign_in(site, "ann@northside.example") as second,
    ):
        page = http.get("/app/referrals")
        assert page.status_code == 200 and "Ann Lee" in page.text
        token = http.cookies["casebridge_session"]
        assert http.post("/app/sign-out", data={"csrf": csrf_of(page.text)}).status_code == 303
        # The signed-out cookie opens nothing; the person's other sessions still work.
        stale = httpx.get(f"{site}/app/referrals", cookies={"casebridge_session": token})
        assert stale.status_code == 303
        assert (
            httpx.get(f"{site}/app/referrals", cookies={"casebridge_session": third}).status_code
            == 200
        )
        everywhere = second.post(
            "/app/sign-out",
            data={"csrf": csrf_of(second.get("/app/referrals").text), "everywhere": "yes"},
        )
        assert everywhere.status_code == 303
        gone = httpx.get(f"{site}/app/referrals", cookies={"casebridge_session": third})
        assert gone.status_code == 303


def test_forms_without_the_sessions_token_or_from_another_site_are_refused(site: str) -> None:
    with sign_in(site, "ann@northside.example") as http:
        form = {"given_names": "Alex", "family_name": "Rivera"}
        assert http.post("/app/cases/new", data=form).status_code == 403
        assert http.post("/app/cases/new", data={**form, "csrf": "guess"}).status_code == 403
        token = csrf_of(http.get("/app/cases/new").text)
        foreign = http.post(
            "/app/cases/new",
            data={**form, "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert "another site" in foreign.text and foreign.headers["content-type"].startswith(
            "text/html"
        )
        assert http.get("/app/cases").text.count("Rivera") == 0
        made = http.post("/app/cases/new", data={**form, "csrf": token}, headers={"Origin": site})
        assert made.status_code == 303
        # htmx sends the token as a header.
        header = http.post("/app/cases/new", data=form, headers={"X-CSRF-Token": token})
        assert header.status_code == 303


def test_one_agencys_person_never_sees_anothers_client(site: str) -> None:
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann)
        page = ann.get(f"/app/cases/{case_id}")
        assert page.status_code == 200 and "Alex Rivera" in page.text
        assert "Alex Rivera" in ann.get("/app/cases").text
    with sign_in(site, "ben@eastside.example") as ben:
        hidden = ben.get(f"/app/cases/{case_id}")
        missing = ben.get("/app/cases/no-such-case")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text
        assert "Alex" not in ben.get("/app/cases").text
        assert "Alex" not in ben.get("/app/referrals").text
        token = csrf_of(ben.get("/app/cases/new").text)
        note = ben.post(f"/app/cases/{case_id}/notes", data={"text": "x", "csrf": token})
        absent = ben.post("/app/cases/no-such-case/notes", data={"text": "x", "csrf": token})
        assert note.status_code == absent.status_code == 404
        picture = ben.get(f"/app/cases/{case_id}/pictures/genogram.svg")
        assert picture.status_code == 404
        for page_ in (ben.get("/app/referrals/no-such"), ben.get(f"/app/referrals/{case_id}")):
            assert page_.status_code == 404
        # Every page naming a case: Ann's answers as a missing one does.
        from app.security.routes import ROUTES

        checked = 0
        for method, path in sorted(ROUTES):
            if not path.startswith("/app/cases/{case_id}"):
                continue
            url = path.replace("{name}", "ecomap").replace("{plan_id}", "a-plan")
            # A body every form accepts, so each request reaches the case's lookup.
            fields = {"csrf": token, "text": "x", "stage": "assessment", "instrument": "k10",
                      "name": "x"}  # fmt: skip
            fields.update({f"item_{i}": "1" for i in range(1, 11)}, version="1")
            answers = [
                ben.request(method, url.replace("{case_id}", target), data=fields)
                for target in (case_id, "no-such-case")
            ]
            assert answers[0].status_code == answers[1].status_code == 404, (method, path)
            assert answers[0].text.replace(case_id, "X") == answers[1].text.replace(
                "no-such-case", "X"
            ), (method, path)
            checked += 1
        assert checked >= 8


def test_the_audit_names_the_person(site: str, live: LiveServer) -> None:
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann)
        answer = post_form(
            ann, f"/app/cases/{case_id}/notes", f"/app/cases/{case_id}", {"text": "Met at home."}
        )
        assert answer.status_code == 303
    with httpx.Client(base_url=live.fhir, timeout=30) as fhir:
        events = fhir.get("/AuditEvent", params={"action": "C", "_count": "100"}).json()
        created = [
            e["resource"]
            for e in events.get("entry", [])
            if any(
                "DocumentReference/" in str(x.get("what", {}).get("reference"))
                for x in e["resource"].get("entity", [])
            )
        ]
        assert created, events
        agents = [a["who"].get("reference") for a in created[0]["agent"]]
        assert "Practitioner/ann" in agents and A in agents
        provenance = fhir.get("/Provenance", params={"_count": "50"}).json()
        performers = {
            a["who"].get("reference")
            for entry in provenance.get("entry", [])
            for a in entry["resource"]["agent"]
            if a["type"]["coding"][0]["code"] == "performer"
        }
        assert "Practitioner/ann" in performers
        # Reading the case's page is an access too, naming the person and the case (the
        # audit is written off the request path: wait for it).
        views: list[dict[str, Any]] = []
        for _ in range(50):
            found = fhir.get(
                "/AuditEvent", params={"entity": f"EpisodeOfCare/{case_id}", "action": "E"}
            ).json()
            views = [e["resource"] for e in found.get("entry", [])]
            if views:
                break
            time.sleep(0.1)
        assert views
        assert "Practitioner/ann" in [a["who"].get("reference") for a in views[0]["agent"]]


def test_what_people_type_is_shown_as_text_never_run(site: str) -> None:
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann, given="<script>alert(1)</script>")
        page = ann.get(f"/app/cases/{case_id}")
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        listed = ann.get("/app/cases").text
        assert "<script>alert(1)" not in listed


def test_the_directory_finds_services_by_type_and_place_and_shows_capacity(site: str) -> None:
    with sign_in(site, "ben@eastside.example") as ben:
        for name, kind, city, postcode in (
            ("Eastside Housing Support", "supported-accommodation", "Footscray", "3011"),
            ("Eastside Counselling", "counselling", "Sunshine", "3020"),
        ):
            added = post_form(
                ben,
                "/app/services",
                "/app/services",
                {"name": name, "service_type": kind, "city": city, "postcode": postcode},
            )
            assert added.status_code == 303, added.text
        own = ben.get("/app/services").text
        service_id = re.search(r'data-service="([^"]+)"[^<]*<td>Eastside Housing Support', own)
        assert service_id, own
        switched = post_form(
            ben,
            f"/app/services/{service_id[1]}/capacity",
            "/app/services",
            {"taking": "no"},
        )
        assert switched.status_code == 303
        assert "No (full)" in ben.get("/app/services").text
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann)
        found = ann.get(
            "/app/referrals/new",
            params={"case": case_id, "find_type": "supported-accommodation", "place": "footscray"},
        ).text
        assert "Eastside Housing Support" in found and "Eastside Counselling" not in found
        assert "not taking new referrals" in found
        assert re.search(rf'value="{service_id[1]}" disabled', found)
        by_postcode = ann.get("/app/referrals/new", params={"case": case_id, "place": "3020"}).text
        assert (
            "Eastside Counselling" in by_postcode and "Eastside Housing Support" not in by_postcode
        )
        # Another agency's switch: refused as a missing service.
        token = csrf_of(found)
        theirs = ann.post(
            f"/app/services/{service_id[1]}/capacity", data={"taking": "yes", "csrf": token}
        )
        missing = ann.post("/app/services/no-such/capacity", data={"taking": "yes", "csrf": token})
        assert theirs.status_code == missing.status_code == 404
    with sign_in(site, "ben@eastside.example") as ben:
        post_form(
            ben, f"/app/services/{service_id[1]}/capacity", "/app/services", {"taking": "yes"}
        )
    with sign_in(site, "ann@northside.example") as ann:
        page = ann.get("/app/referrals/new", params={"case": case_id, "place": "Footscray"}).text
        assert "not taking new referrals" not in page
        sent = ann.post(
            "/app/referrals/new",
            data={"csrf": csrf_of(page), "case": case_id, "service": service_id[1],
                  "reason": "Needs housing", "consent_now": "yes",
                  "consent_purpose": "Referral for housing"},
        )  # fmt: skip
        assert sent.status_code == 303, sent.text
        referral = ann.get(sent.headers["location"]).text
        assert "Eastside Housing" in referral and "AOD supported accommodation" in referral


def test_an_agency_can_require_a_second_factor(backend: Backend, site: str) -> None:
    import pyotp

    from tests.support.clock import EPOCH

    env = {"CASEBRIDGE_DATABASE_URL": backend.url}
    required = run_cli(["users", "require-totp", "--org", A], env)
    assert required.returncode == 0, required.stderr
    with httpx.Client(base_url=site, timeout=30) as http:
        answer = http.post(
            "/app/sign-in", data={"email": "ann@northside.example", "password": PASSWORD}
        )
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/app/sign-in/code")
        # The password alone opens nothing but the code page.
        assert http.get("/app/referrals").status_code == 303
        enrol = http.get("/app/sign-in/code")
        assert enrol.status_code == 200 and "<svg" in enrol.text
        secret = re.search(r'id="totp-key">([A-Z2-7]+)<', enrol.text)
        assert secret, enrol.text
        token = csrf_of(enrol.text)
        wrong = http.post("/app/sign-in/code", data={"code": "000000", "csrf": token})
        assert wrong.status_code == 401 and "not right" in wrong.text
        foreign = http.post(
            "/app/sign-in/code",
            data={"code": "000000", "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        # The server's clock is fixed (tests/support/clock.py): the code of that moment.
        code = pyotp.TOTP(secret[1]).at(EPOCH)
        right = http.post("/app/sign-in/code", data={"code": code, "csrf": token})
        assert right.status_code == 303 and right.headers["location"] == "/app/referrals"
        assert http.get("/app/referrals").status_code == 200
    # Next time the enrolled factor is asked for, and the key is not shown again.
    with httpx.Client(base_url=site, timeout=30) as http:
        http.post("/app/sign-in", data={"email": "ann@northside.example", "password": PASSWORD})
        page = http.get("/app/sign-in/code")
        assert "totp-key" not in page.text and "Your code" in page.text
        ok = http.post(
            "/app/sign-in/code",
            data={"code": pyotp.TOTP(secret[1]).at(EPOCH), "csrf": csrf_of(page.text)},
        )
        assert ok.status_code == 303
    # Another agency is not asked; a reset removes the factor.
    with sign_in(site, "ben@eastside.example") as ben:
        assert ben.get("/app/referrals").status_code == 200
    assert run_cli(["users", "reset-totp", "ann@northside.example"], env).returncode == 0
    assert run_cli(["users", "require-totp", "--org", A, "--off"], env).returncode == 0
    with sign_in(site, "ann@northside.example") as ann:
        assert ann.get("/app/referrals").status_code == 200


def test_a_referral_another_agency_holds_answers_as_a_missing_one(site: str) -> None:
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann)
        page = ann.get(f"/app/referrals/new?case={case_id}").text
        sent = ann.post(
            "/app/referrals/new",
            data={"csrf": csrf_of(page), "case": case_id, "to_agency": A,
                  "service_type": "counselling", "reason": "Needs support"},
        )  # fmt: skip
        assert sent.status_code == 303, sent.text
        task = sent.headers["location"].rsplit("/", 1)[-1]
        assert ann.get(f"/app/referrals/{task}").status_code == 200
    with sign_in(site, "ben@eastside.example") as ben:
        token = csrf_of(ben.get("/app/cases/new").text)
        for path in (
            "/app/referrals/{id}",
            "/app/referrals/{id}/accept",
            "/app/referrals/{id}/case",
        ):
            method = "GET" if path.endswith("{id}") else "POST"
            hidden = ben.request(method, path.format(id=task), data={"csrf": token})
            missing = ben.request(method, path.format(id="no-such"), data={"csrf": token})
            assert hidden.status_code == missing.status_code == 404, (path, hidden.status_code)
            assert hidden.text.replace(task, "X") == missing.text.replace("no-such", "X"), path


def _form_fields(html: str) -> dict[str, str]:
    """What a browser would send from a page's form as it stands: inputs' values, selected
    options and checked boxes (enough for the plan form)."""
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        fields[name[1]] = value[1] if value else ""
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        first = re.search(r'<option value="([^"]*)"', options)
        fields[name] = chosen[1] if chosen else (first[1] if first else "")
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        fields[name] = text
    return fields


def test_a_plan_is_reviewed_in_its_form_and_keeps_what_the_form_does_not_show(
    site: str, live: LiveServer
) -> None:
    with sign_in(site, "ann@northside.example") as ann:
        case_id = _open_case(ann)
        plan = {
            "title": "Housing first",
            "review_due": "2030-01-31",
            "needs": [{"key": "home", "description": "No stable housing"}],
            "goals": [
                {
                    "description": "Signed lease",
                    "addresses": ["home"],
                    "due": "2030-03-01",
                    "achievable_because": "A housing worker is assigned",
                }
            ],
            "actions": [
                {
                    "what": "Apply for social housing",
                    "how": "Online form",
                    "where": "Office",
                    "who": [
                        {"who": "Practitioner/ann", "responsibility": "lodges it"},
                        {"who": "Practitioner/ben", "responsibility": "writes a support letter"},
                    ],
                    "service_type": "supported-accommodation",
                    "sessions": 2,
                }
            ],
            "strengths": ["Keeps appointments"],
        }
        with httpx.Client(base_url=live.root, timeout=30) as api:
            made = api.post(
                f"/cases/{case_id}/careplans", json=plan, headers={"X-Casebridge-Agency": A}
            )
            assert made.status_code == 201, made.text
            plan_id = made.json()["id"]
            goal_id = made.json()["goals"][0]["id"]
            need_id = made.json()["needs"][0]["id"]

            edit = ann.get(f"/app/cases/{case_id}/plans/{plan_id}/edit")
            assert edit.status_code == 200 and "Review the care plan" in edit.text
            fields = _form_fields(edit.text)
            assert fields["goal_id_1"] == goal_id and fields["need_id_1"] == need_id
            assert fields["goal_need_1"] == "need-1"  # the goal still names its need
            fields |= {
                "goal_achievement_1": "achieved",
                "goal_status_1": "completed",
                "action_status_1": "completed",
                "action_how_1": "Online form, with the client",
                "action_what_2": "Set up rent payments",
                "status": "active",
            }
            # Someone else changes the plan first: the review is refused, nothing stored.
            other = api.get(
                f"/cases/{case_id}/careplans/{plan_id}", headers={"X-Casebridge-Agency": A}
            )
            changed = {**other.json(), "title": "Housing first (revised)"}
            put = api.put(
                f"/cases/{case_id}/careplans/{plan_id}",
                json=changed,
                headers={"X-Casebridge-Agency": A, "If-Match": other.headers["ETag"]},
            )
            assert put.status_code == 200, put.text
            stale = ann.post(f"/app/cases/{case_id}/plans/{plan_id}", data=fields)
            assert stale.status_code == 412
            assert "Someone changed this plan after you opened it" in stale.text
            kept = api.get(
                f"/cases/{case_id}/careplans/{plan_id}", headers={"X-Casebridge-Agency": A}
            )
            assert kept.json()["goals"][0].get("achievement") is None

            # Opened again, the review is saved.
            fields["version"] = _form_fields(
                ann.get(f"/app/cases/{case_id}/plans/{plan_id}/edit").text
            )["version"]
            fields["title"] = "Housing first (revised)"
            saved = ann.post(f"/app/cases/{case_id}/plans/{plan_id}", data=fields)
            assert saved.status_code == 303, saved.text
            now = api.get(
                f"/cases/{case_id}/careplans/{plan_id}", headers={"X-Casebridge-Agency": A}
            ).json()
        goal = now["goals"][0]
        assert goal["id"] == goal_id and goal["achievement"] == "achieved"
        assert goal["status"] == "completed"
        assert goal["achievable_because"] == "A housing worker is assigned"
        assert [n["id"] for n in now["needs"]] == [need_id]
        first, second = now["actions"]
        assert first["status"] == "completed" and first["how"] == "Online form, with the client"
        assert first["service_type"] == "supported-accommodation" and first["sessions"] == 2
        assert [w["who"] for w in first["who"]] == ["Practitioner/ann", "Practitioner/ben"]
        assert second["what"] == "Set up rent payments"
        case_page = ann.get(f"/app/cases/{case_id}").text
        assert "achieved" in case_page and "Set up rent payments" in case_page

    with sign_in(site, "ben@eastside.example") as ben:
        hidden = ben.get(f"/app/cases/{case_id}/plans/{plan_id}/edit")
        missing = ben.get(f"/app/cases/{case_id}/plans/no-such-plan/edit")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text


def test_a_referrals_attachments_open_only_through_its_packet(site: str, live: LiveServer) -> None:
    letter = "Dear Eastside, Alex needs stable housing."
    bundle = package(requester=A, owner=B)
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "urn:uuid:patient"},
        "date": "2026-01-05T10:00:00Z",
        "description": "Referral letter",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "title": "Referral letter",
                    "data": base64.b64encode(letter.encode()).decode(),
                }
            },
            {
                "attachment": {
                    "contentType": "text/html",
                    "title": "Page",
                    "data": base64.b64encode(b"<script>alert(1)</script>").decode(),
                }
            },
        ],
    }
    bundle["entry"].insert(
        0,
        {
            "fullUrl": "urn:uuid:letter",
            "resource": document,
            "request": {"method": "POST", "url": "DocumentReference"},
        },
    )
    request = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    request["resource"]["supportingInfo"].append({"reference": "urn:uuid:letter"})
    with httpx.Client(base_url=live.fhir, timeout=30) as fhir:
        sent = fhir.post("", json=bundle, headers={"X-Casebridge-Agency": A, **FHIR_JSON})
        assert sent.status_code == 200, sent.text
        locations = [e["response"]["location"] for e in sent.json()["entry"]]
        task_id = next(loc for loc in locations if loc.startswith("Task/")).split("/")[1]
        doc_id = next(loc for loc in locations if loc.startswith("DocumentReference/")).split("/")[
            1
        ]
        # A document of Ben's own agency that the referral does not carry.
        own = fhir.post(
            "/DocumentReference",
            json={k: v for k, v in document.items() if k not in ("subject", "content")}
            | {"content": document["content"][:1]},
            headers={"X-Casebridge-Agency": B, **FHIR_JSON},
        )
        assert own.status_code == 201, own.text
    with sign_in(site, "ben@eastside.example") as ben:
        packet = ben.get(f"/app/referrals/{task_id}")
        assert packet.status_code == 200
        link = f"/app/referrals/{task_id}/documents/{doc_id}/0"
        assert f'href="{link}"' in packet.text and "Open Referral letter" in packet.text
        opened = ben.get(link)
        assert opened.status_code == 200 and opened.text == letter
        assert opened.headers["content-type"].startswith("text/plain")
        assert "sandbox" in opened.headers["content-security-policy"]
        html = ben.get(f"/app/referrals/{task_id}/documents/{doc_id}/1")
        assert html.headers["content-type"] == "application/octet-stream"
        assert html.headers["content-disposition"].startswith("attachment")
        # Only through the packet: another document, another index, another referral
        # answer as a missing one does.
        missing = ben.get(f"/app/referrals/no-such/documents/{doc_id}/0")
        for other in (
            f"/app/referrals/{task_id}/documents/{own.json()['id']}/0",
            f"/app/referrals/{task_id}/documents/{doc_id}/7",
            f"/app/referrals/{task_id}/documents/no-such/0",
        ):
            answer = ben.get(other)
            assert (answer.status_code, answer.text) == (missing.status_code, missing.text), other
        assert missing.status_code == 404
