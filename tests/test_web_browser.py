"""The web app in a real browser (Debian's Chromium through Playwright) against the real
server, on SQLite and PostgreSQL (issue 20): two agencies' workers sign in; one opens a
case and refers the client with consent; the other sees it arrive without a reload,
accepts, opens a case, records a note and an assessment, and completes with an outcome;
the first sees the loop closed. Also: the referral form done with the keyboard alone.

Screenshots of each main page go to tests/artifacts/web/ (not committed). Without
/usr/bin/chromium the tests skip, unless CASEBRIDGE_REQUIRE_BROWSER=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Backend, server_with
from tests.support.server import LiveServer
from tests.support.web import PASSWORD, two_agencies

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "web"
A, B = "Organization/northside", "Organization/eastside"

REQUIRED = os.environ.get("CASEBRIDGE_REQUIRE_BROWSER") == "1"
if not CHROMIUM.exists():
    if REQUIRED:
        pytest.fail("Chromium is required (apt-get install chromium)", pytrace=False)
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
try:
    from playwright import sync_api
except ImportError:
    if REQUIRED:
        pytest.fail("Playwright is required (the dev extra installs it)", pytrace=False)
    pytest.skip("Playwright is not installed (the dev extra)", allow_module_level=True)

# The machines are shared and CI runs two workers beside the browser: wait longer than
# Playwright's default 5 s before calling a page wrong.
sync_api.expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def patient_server(backend: Backend) -> Iterator[LiveServer]:
    """The server the browser drives, with the default settings."""
    server = server_with(backend)
    yield server
    server.stop()


@pytest.fixture
def site(patient_server: LiveServer, backend: Backend) -> Iterator[str]:
    live = patient_server
    backend.truncate()
    two_agencies(live.fhir, backend)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield live.root


def _signed_in(browser: Any, site: str, email: str) -> Any:
    context = browser.new_context(base_url=site, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto("/app/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/app/referrals$"))
    return page


def _axe() -> str | None:
    """axe-core's source (make test fetches it; CI requires it)."""
    path = os.environ.get("CASEBRIDGE_AXE") or str(
        Path(__file__).resolve().parents[1] / ".cache" / "axe" / "package" / "axe.min.js"
    )
    if Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    if os.environ.get("CASEBRIDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"axe-core is required at {path} (make axe)", pytrace=False)
    return None


AXE = _axe()
FOUND: list[str] = []


def _shot(page: Any, name: str, backend: Backend) -> None:
    """A screenshot of the page, and its WCAG 2.1 A/AA problems as axe-core finds them
    (run through the browser's devtools protocol: the pages' CSP allows no injected
    script, and rightly)."""
    page.wait_for_load_state("load")  # the pictures too
    page.screenshot(path=str(ARTIFACTS / f"{name}-{backend.name}.png"), full_page=True)
    if AXE is None:
        return
    page.evaluate(AXE)
    violations = page.evaluate(
        """async () => (await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a",
        "wcag21aa"]})).violations.map(v => `${v.id}: ${v.help} (${v.nodes.length}) `
        + v.nodes.slice(0, 2).map(n => n.target.join(" ")).join(", "))"""
    )
    FOUND.extend(f"{name}: {v}" for v in violations)


def test_a_referral_from_one_agency_to_another_and_back(
    browser: Any, site: str, backend: Backend
) -> None:
    FOUND.clear()
    first = browser.new_context(base_url=site).new_page()
    first.goto("/app/sign-in")
    _shot(first, "sign-in", backend)
    first.context.close()
    ann = _signed_in(browser, site, "ann@northside.example")
    ben = _signed_in(browser, site, "ben@eastside.example")
    expect = sync_api.expect
    expect(ben.locator("#inbox")).to_contain_text("No referrals")
    _shot(ben, "inbox-empty", backend)
    # Ben's agency lists its housing service in the directory.
    ben.get_by_role("link", name="Our services").click()
    ben.get_by_label("Name").fill("Eastside Housing Support")
    ben.get_by_label("Type").select_option("supported-accommodation")
    ben.get_by_label("Suburb or town").fill("Footscray")
    ben.get_by_label("Postcode").fill("3011")
    ben.get_by_role("button", name="Add the service").click()
    expect(ben.locator("main table")).to_contain_text("Eastside Housing Support")
    _shot(ben, "services", backend)
    ben.get_by_role("link", name="Referrals", exact=True).click()

    # Ann opens a case for a new client.
    ann.get_by_role("link", name="New case").click()
    ann.get_by_label("Given names").fill("Alex")
    ann.get_by_label("Family name").fill("Rivera")
    ann.get_by_label("Date of birth").fill("1988-04-02")
    ann.get_by_label("Model of practice").select_option("strengths-based")
    _shot(ann, "case-new", backend)
    ann.get_by_role("button", name="Open the case").click()
    expect(ann.get_by_role("heading", level=1)).to_have_text("Alex Rivera")
    case_url = ann.url

    # Alex's people: a sister and the AA group (the ecomap's and genogram's).
    ann.get_by_text("Add a person or an informal system").click()
    ann.get_by_label("Name", exact=True).fill("Jo Rivera")
    ann.get_by_label("Relationship (a person)").select_option("SIS")
    ann.get_by_label("Gender (a person)").select_option("female")
    ann.get_by_label("The tie feels").select_option("strong")
    ann.get_by_role("button", name="Add", exact=True).click()
    ann.get_by_text("Add a person or an informal system").click()
    ann.get_by_label("Name", exact=True).fill("Tuesday AA group")
    ann.get_by_label("Who or what").select_option("self-help")
    ann.get_by_label("Support flows").select_option("to-client")
    ann.get_by_role("button", name="Add", exact=True).click()
    expect(ann.locator("#supports")).to_contain_text("Jo Rivera — sister, strong tie")
    expect(ann.locator("#supports")).to_contain_text("Tuesday AA group")

    # Ann writes the plan; what it lacks is shown as she types.
    ann.get_by_role("link", name="Write a care plan").click()
    checks = ann.locator("#plan-checks")
    expect(checks).to_contain_text("no goals")
    ann.get_by_label("Title").fill("Housing")
    ann.get_by_label("Need 1").fill("No stable housing")
    ann.get_by_label("What will change (specific)").first.fill("Be a better person overall")
    expect(checks).to_contain_text("is not SMART")
    goal = ann.get_by_label("What will change (specific)").first
    goal.fill("Move into a stable rental flat near work")
    ann.get_by_label("Measured by").first.fill("Nights housed per week")
    ann.get_by_label("Target").first.fill("7")
    ann.get_by_label("By", exact=True).first.fill("2026-06-30")
    ann.get_by_label("Addresses").first.select_option("need-1")
    ann.get_by_label("The client set this goal").first.check()
    ann.get_by_label("The client's strengths (one per line)").fill("Keeps appointments")
    ann.get_by_label("What", exact=True).first.fill("Apply for social housing")
    ann.get_by_label("How", exact=True).first.fill("Client completes, worker lodges")
    ann.get_by_label("Where", exact=True).first.fill("Housing office")
    ann.get_by_label("From", exact=True).first.fill("2026-01-12")
    ann.get_by_label("To", exact=True).first.fill("2026-02-12")
    ann.get_by_label("Who", exact=True).first.select_option("Practitioner/ann")
    ann.get_by_label("Is responsible for").first.fill("lodges the form")
    expect(checks).not_to_contain_text("is not SMART")
    _shot(ann, "plan-new", backend)
    ann.get_by_role("button", name="Save the plan").click()
    expect(ann.locator("main")).to_contain_text("Move into a stable rental flat near work")

    # ... and refers Alex to Eastside with Alex's consent, for the plan.
    ann.get_by_role("link", name="Make a referral for this client").click()
    ann.get_by_label("Type of service").select_option("supported-accommodation")
    ann.get_by_label("Suburb, town or postcode").fill("footscray")
    ann.get_by_role("button", name="Find").click()
    ann.get_by_label(re.compile("Eastside Housing Support")).check()
    ann.get_by_label("Why (what the client needs)").fill("Couch surfing; needs stable housing")
    ann.get_by_label("The client consents now").check()
    ann.get_by_label("What the client agreed to").fill("Referral for housing support")
    ann.get_by_label("The care plan this serves").select_option(label="Housing")
    _shot(ann, "referral-new", backend)
    ann.get_by_role("button", name="Send the referral").click()
    expect(ann.locator("#referral-status")).to_have_text("new")
    referral_url = ann.url

    # Ben's inbox shows it without a reload (server-sent events).
    expect(ben.locator("#inbox")).to_contain_text("Alex Rivera", timeout=30_000)
    expect(ben.locator("#inbox")).to_contain_text("Northside Community Health")
    expect(ben.locator("#inbox")).to_contain_text("AOD supported accommodation")  # the service
    _shot(ben, "inbox", backend)
    ben.locator("#inbox").get_by_role("link", name="Alex Rivera").click()
    expect(ben.locator("#referral-status")).to_have_text("new")
    expect(ben.get_by_text("Referral for housing support")).to_be_visible()
    _shot(ben, "referral-packet", backend)
    ben.get_by_role("button", name="Accept").click()
    expect(ben.locator("#referral-status")).to_have_text("accepted")
    ben.get_by_role("button", name="Start the service").click()
    expect(ben.locator("#referral-status")).to_have_text("in progress")

    # Ben works with Alex in his own case: a note and a PHQ-9 that scores as he answers.
    ben.get_by_role("button", name="Open a case for Alex Rivera").click()
    expect(ben.get_by_role("heading", level=1)).to_have_text("Alex Rivera")
    ben_case = ben.url
    ben.get_by_label("Note", exact=True).fill("First visit; viewed a flat.")
    ben.get_by_label("Contact").select_option("home-visit")
    ben.get_by_label("Minutes").fill("50")
    ben.get_by_role("button", name="Add the note").click()
    expect(ben.locator("#notes")).to_contain_text("First visit; viewed a flat.")
    ben.get_by_text("Record PHQ-9 (depression)").click()
    form = ben.locator("#form-phq9")
    for item in range(1, 10):
        form.locator(f"input[name=item_{item}][value='1']").check()
    expect(form.locator("output[name=total]")).to_have_text("9")
    expect(form.locator(".risk-note")).to_be_visible()  # item 9 above 0
    _shot(ben, "assessment-form", backend)
    form.get_by_role("button", name="Save PHQ-9").click()
    expect(ben.locator("#assessments table")).to_contain_text("mild depression")
    expect(ben.locator(".alert").first).to_contain_text("hurting yourself")
    _shot(ben, "case", backend)

    # Ben completes the referral with what was done.
    ben.goto(referral_url.replace(site, ""))
    ben.get_by_label("What was done (the outcome)").fill("Signed a six-month lease")
    ben.get_by_label("Move into a stable rental flat near work").check()
    ben.get_by_role("button", name="Complete").click()
    expect(ben.locator("#referral-status")).to_have_text("completed")

    # Ann sees the loop closed.
    ann.goto(referral_url.replace(site, ""))
    expect(ann.locator("#referral-status")).to_have_text("completed")
    expect(ann.locator("#outcome")).to_contain_text("Signed a six-month lease")
    _shot(ann, "referral-closed", backend)
    ann.goto(case_url.replace(site, ""))
    expect(ann.locator("main")).to_contain_text("Move into a stable rental flat near work")
    expect(ann.locator("main")).to_contain_text("achieved")
    # Ann reviews the plan with Alex: the action is done.
    ann.get_by_role("link", name="Review “Housing” with the client").click()
    expect(ann.get_by_label("Progress").first).to_have_value("achieved")
    ann.get_by_label("Action is").first.select_option("completed")
    _shot(ann, "plan-review", backend)
    ann.get_by_role("button", name="Save the review").click()
    expect(ann.locator("#plan-title")).to_be_visible()
    expect(ann.locator("section[aria-labelledby=plan-title] table")).to_contain_text("completed")
    ann.get_by_role("link", name="Referrals", exact=True).click()
    expect(ann.locator("#outbox")).to_contain_text("completed")
    ann.get_by_role("link", name="My caseload").click()
    expect(ann.locator("main")).to_contain_text("Alex Rivera")
    _shot(ann, "caseload", backend)
    ann.get_by_role("link", name="Team report").click()
    _shot(ann, "report", backend)

    _shot(ann, "referrals", backend)
    assert FOUND == [], "\n".join(FOUND)

    # Ben never sees Ann's case; its page answers as a missing one.
    hidden = ben.goto(case_url.replace(site, ""))
    assert hidden is not None and hidden.status == 404
    assert ben_case != case_url
    for page in (ann, ben):
        page.context.close()


def test_the_referral_form_with_the_keyboard_alone(browser: Any, site: str) -> None:
    ann = _signed_in(browser, site, "ann@northside.example")
    expect = sync_api.expect
    ann.goto("/app/cases/new")
    ann.get_by_label("Given names").focus()
    ann.keyboard.type("Sam")
    ann.keyboard.press("Tab")
    ann.keyboard.type("Ng")
    ann.get_by_role("button", name="Open the case").focus()
    ann.keyboard.press("Enter")
    expect(ann.get_by_role("heading", level=1)).to_have_text("Sam Ng")
    ann.get_by_role("link", name="Make a referral for this client").focus()
    ann.keyboard.press("Enter")
    ann.wait_for_url(re.compile(r".*/app/referrals/new\?case=.*"))
    # From the first field to the button with Tab, choosing with the arrow keys.
    ann.get_by_label("Refer to").focus()
    ann.keyboard.press("ArrowDown")  # Eastside Housing
    ann.keyboard.press("Tab")  # Service (counselling chosen)
    ann.keyboard.press("Tab")  # Why
    ann.keyboard.type("Needs counselling")
    ann.keyboard.press("Tab")  # How soon
    ann.keyboard.press("Tab")  # consent now
    ann.keyboard.press("Space")
    ann.keyboard.press("Tab")
    ann.keyboard.type("Referral for counselling")
    ann.keyboard.press("Tab")  # sensitive (left unticked)
    ann.keyboard.press("Tab")  # the button
    focused = ann.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Send the referral"
    ann.keyboard.press("Enter")
    expect(ann.locator("#referral-status")).to_have_text("new")
    ann.context.close()
