"""Accessibility in a real browser (issue 28, item 11): axe-core, vendored beside this file
(vendor/README.md), runs over the portal's pages as `make run`'s demo draws them, as a viewer,
an operator and an admin (with the audit pages their roles open), in the light and the dark
colour scheme; a finding of impact serious or critical fails the test, each one listed. The
keyboard alone works: the first Tab lands on the skip link, which leads to the page's main
landmark; an operator ticks a checklist item with the keyboard and keeps the focus on that
item's control while a live region says what changed; the overview's filters say how many
services they found."""

import hashlib
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from checklists import routines
from checklists.models import ChecklistRun
from healthchecks.engine import recording
from healthchecks.models import HealthCheck
from healthchecks.probes import ProbeOutcome
from healthchecks.reads import history
from healthchecks.status import Status
from portal import security
from portal.auth import system_actor
from services import maintenance
from services.models import Service
from tests.system.browser.support import browser_test, log_in

pytestmark = [*browser_test, pytest.mark.usefixtures("role_groups")]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
# The npm package's own record of the file (sri-history.json), as base64 there.
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
FAILING_IMPACTS = ("serious", "critical")
# The pages a person reaches from the top bar, and the pages those lead to.
PAGES = [
    "/",
    "/wall/",
    "/services/payments/",
    "/services/notifications/",
    "/map/",
    "/status/",
    "/config/drift",
    "/maintenance/",
    "/maintenance/history/",
    "/maintenance/runs/{daily}/",
]
# And the pages a role reaches beyond those: the audit log (operators and admins), the
# security events beside it (admins).
ROLE_PAGES = {"operator": ["/audit/"], "admin": ["/audit/", "/audit/security/"]}
# What the demo's checks answer here (no worker runs them): every health the legend names
# shows up somewhere but maintenance, which the legend and the map's key draw all the same.
RESULTS = {
    "postgres-main": Status.HEALTHY,
    "redis-cache": Status.HEALTHY,
    "auth": Status.HEALTHY,
    "ledger": Status.DEGRADED,
    "payments": Status.HEALTHY,
    "notifications": Status.UNHEALTHY,
    "api-gateway": Status.HEALTHY,
}


@pytest.fixture
def demo(settings, live_server):
    """`make run`'s demo: its services, checks with two hours of results, its logins (made
    with DEBUG on, as `make run` has it), and the seed's routines."""
    settings.DEBUG = True
    call_command("load_demo", base_url=live_server.url, stdout=io.StringIO())
    settings.DEBUG = False
    now = timezone.now()
    rows = []
    for check in HealthCheck.objects.select_related("service"):
        status = RESULTS.get(check.service.name, Status.HEALTHY)
        errors = ["connection refused"] if status == Status.UNHEALTHY else []
        for minutes in range(120, 0, -1):
            at = now - timedelta(minutes=minutes)
            outcome = ProbeOutcome(status, response_ms=40 + minutes % 9, errors=errors)
            rows.append(recording.Result(check.pk, at, at, outcome))
    recording.record(rows)
    history.rollup_hours(now - timedelta(hours=3), now)
    routines.install(apps)
    # /maintenance/'s windows: a recurring one with a cancelled occurrence (the operator, of
    # payments, gets its cancel buttons) and a cancelled one-off window.
    service = Service.objects.filter(team__name="payments").order_by("name").first().name
    start, actor = (now + timedelta(days=1)).replace(microsecond=0), system_actor("tests")
    weekly = maintenance.create_window(
        maintenance.WindowIn([service], None, start, start + timedelta(hours=1), "patching",
                             "FREQ=WEEKLY", "Europe/Berlin"), actor)  # fmt: skip
    maintenance.cancel_window(weekly.id, actor, start + timedelta(weeks=1))
    once = maintenance.create_window(
        maintenance.WindowIn([service], None, start, start + timedelta(hours=2), "disk"), actor
    )
    maintenance.cancel_window(once.id, actor)
    # The audit log has the demo's own entries; the security events one of each outcome.
    security.record(security.Kind.LOGIN_FAILED, "mallory", "POST /accounts/login/", "refused")
    security.record(security.Kind.SECRET_READ, "user:admin", "GET /api/x", "allowed")


def axe_findings(page) -> list[dict]:
    """Run axe-core over the page as it stands; its violations, each with where it was found."""
    page.evaluate("() => {\n" + AXE.read_text() + "\n}")
    return page.evaluate(
        """async () => {
            const results = await window.axe.run(document, {resultTypes: ["violations"]});
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ") + " -- " + n.failureSummary),
            }));
        }"""
    )


def failing(findings: list[dict], where: str) -> list[str]:
    return [
        f"{where}: {f['impact']} {f['id']} ({f['help']}): " + "; ".join(f["nodes"])
        for f in findings
        if f["impact"] in FAILING_IMPACTS
    ]


def test_the_vendored_axe_is_the_npm_packages_file():
    """The copy under vendor/ is axe-core's own axe.min.js, whole: its version in the licence
    header, its digest the one the package publishes (sri-history.json)."""
    source = AXE.read_bytes()
    assert source.startswith(f"/*! axe v{AXE_VERSION}\n".encode())
    assert b"Mozilla Public" in source[:600]
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256


@pytest.mark.parametrize(
    ("username", "scheme"),
    [("viewer", "light"), ("operator", "light"), ("operator", "dark"), ("admin", "dark")],
)
def test_no_page_has_a_serious_or_critical_axe_finding(page, demo, username, scheme):
    page.emulate_media(color_scheme=scheme)
    page.goto("/accounts/login/")
    problems = failing(axe_findings(page), "/accounts/login/")
    log_in(page, username, username)
    page.goto("/maintenance/")  # the current runs are made on first view
    daily = ChecklistRun.objects.get(template__name="daily", service=None).id
    for path in PAGES + ROLE_PAGES.get(username, []):
        path = path.format(daily=daily)
        answer = page.goto(path)
        assert answer.status == 200, path
        problems += failing(axe_findings(page), path)
    assert not problems, f"axe-core {AXE_VERSION} as {username} ({scheme}):\n" + "\n".join(problems)


def focused(page) -> dict:
    """What has the keyboard's focus: its tag, id, accessible text and where it is drawn."""
    return page.evaluate(
        """() => {
            const e = document.activeElement;
            const box = e.getBoundingClientRect();
            return {tag: e.tagName.toLowerCase(), id: e.id, text: e.textContent.trim(),
                    top: box.top, height: box.height,
                    outline: getComputedStyle(e).outlineStyle};
        }"""
    )


def test_the_first_tab_reaches_a_visible_skip_link_that_leads_to_the_content(page, demo):
    log_in(page, "viewer", "viewer", path="/maintenance/")
    page.keyboard.press("Tab")
    link = focused(page)
    assert (link["tag"], link["text"]) == ("a", "Skip to content")
    assert link["top"] >= 0 and link["height"] > 0, link  # drawn on screen once focused
    assert link["outline"] != "none", link  # with a focus ring
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "content"  # the main landmark
    page.keyboard.press("Tab")  # the next stop is the page's own first link, not the top bar
    assert focused(page)["text"] == "Past runs"
    # Before the skip link is focused it is not drawn on the page.
    page.goto("/")
    box = page.get_by_role("link", name="Skip to content").bounding_box()
    assert box["y"] + box["height"] <= 0, box


def test_an_operator_ticks_by_keyboard_and_keeps_the_focus_on_that_items_control(page, demo):
    log_in(page, "operator", "operator", path="/maintenance/")
    daily = page.locator("[data-run=daily]")
    item = "Check system health dashboard"
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("role", "status")
    expect(announcer).to_be_empty()
    page.get_by_label(f"Note for {item}").focus()
    page.keyboard.type("all green on the wall")
    page.keyboard.press("Tab")
    expect(daily.get_by_role("button", name=f"Tick: {item}", exact=True)).to_be_focused()
    expect(daily.get_by_role("img", name="not ticked")).to_have_count(8)
    page.keyboard.press("Enter")

    untick = daily.get_by_role("button", name=f"Untick: {item}", exact=True)
    expect(untick).to_be_focused()  # the swapped-in control of the same item, not the body
    expect(announcer).to_have_text(re.compile(rf"^Ticked: {item}\. Daily .*: 1 of 8 done\.$"))
    row = daily.locator("li.item", has_text=item)
    expect(row.get_by_role("img", name="ticked", exact=True)).to_be_visible()
    expect(daily.locator(".progress")).to_have_text("1/8 done")

    page.keyboard.press("Space")  # and back
    expect(daily.get_by_role("button", name=f"Tick: {item}", exact=True)).to_be_focused()
    expect(announcer).to_have_text(re.compile(rf"^Unticked: {item}\. .*: 0 of 8 done\.$"))
    expect(row.get_by_role("img", name="not ticked", exact=True)).to_be_visible()


def test_the_overviews_filters_say_how_many_services_they_found(page, demo):
    log_in(page, "viewer", "viewer")
    announcer = page.locator("#announcer")
    expect(announcer).to_be_empty()
    page.get_by_label("Search by name").focus()
    page.keyboard.type("ledger")
    expect(announcer).to_have_text("1 service matches.")
    expect(page.get_by_label("Search by name")).to_be_focused()  # typing goes on
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    expect(announcer).to_have_text("8 services match.")
    page.get_by_label("Team").select_option("platform")
    expect(announcer).to_have_text("4 services match.")
    # The table's own refresh (every 15 s) swaps it again and says nothing.
    page.evaluate("document.getElementById('announcer').textContent = ''")
    page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("htmx:afterSettle", resolve, {once: true});
            window.htmx.trigger(document.getElementById("service-table"), "refresh");
        })"""
    )
    expect(page.locator("#service-count")).to_have_text("4")
    expect(announcer).to_be_empty()
