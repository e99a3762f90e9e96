"""The service page and the wall screen in a real browser: charts drawn with data, the
runbook of an unhealthy service, links between pages, all under the enforced CSP (no
console error, no violation). With PORTAL_SCREENSHOTS=<dir> the main pages are saved there
as PNG (the README shows the same pages as `make run` draws them: docs/screenshots/)."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.utils import timezone
from playwright.sync_api import expect

from checklists import routines
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.reads import history
from healthchecks.status import Status
from services.models import Service
from tests.factories import make_check
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test
SHOTS = os.environ.get("PORTAL_SCREENSHOTS")


def shoot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(registry_data):
    """Checks with two hours of results; auth fails for the last twenty minutes."""
    checks = {
        name: make_check(Service.objects.get(name=name), name="http", is_critical=True)
        for name in ("auth", "payments", "ledger-db", "gateway")
    }
    now = timezone.now()
    rows = []
    for minutes in range(120, 0, -1):
        at = now - timedelta(minutes=minutes)
        for name, check in checks.items():
            failing = name == "auth" and minutes <= 20
            status = Status.UNHEALTHY if failing else Status.HEALTHY
            errors = ["connection refused"] if failing else []
            ms = 40 + (minutes % 7) * 3 + (60 if name == "payments" else 0)
            outcome = ProbeOutcome(status, response_ms=ms, errors=errors)
            rows.append(recording.Result(check.pk, at, at, outcome))
    for start in range(0, len(rows), 200):
        recording.record(rows[start : start + 200])
    history.rollup_hours(now - timedelta(hours=3), now)
    return checks


def test_an_unhealthy_services_page_explains_it_with_charts_and_a_runbook(page, user, watched):
    log_in(page, "carol", path="/services/auth/")
    expect(page.locator(".service-head .badge.health")).to_have_text("unhealthy")
    expect(page.locator("#runbook")).to_contain_text("Service recovery")
    expect(page.locator("#runbook")).to_contain_text("connection refused")
    expect(page.locator("svg.timeline rect.st-unhealthy")).not_to_have_count(0)
    expect(page.locator("svg.latency polyline")).to_have_count(1)
    expect(page.locator("svg.bars rect")).to_have_count(90)
    # Impact: gateway and payments need auth hard.
    expect(page.locator("#dependencies")).to_contain_text("gateway")
    shoot(page, "service-page")
    page.get_by_role("link", name="7d", exact=True).click()
    expect(page.locator(".ranges a[aria-current]")).to_have_text("7d")
    page.locator("#dependencies").get_by_role("link", name="payments").first.click()
    expect(page).to_have_url("/services/payments/")
    expect(page.locator("h1 .name")).to_have_text("payments")


def test_each_deployment_is_a_mark_with_its_version_on_the_charts(page, user, watched):
    """Issue 21, item 5: a regression is seen beside the release that brought it -- the
    release of payments just reported is a mark on both charts, its version written on the
    response-time chart and its verdict in the mark's title; the deployment list says it."""
    from healthchecks.engine import verification
    from portal.auth import system_actor
    from services import deployments

    deployments.report(
        "payments", version="2024.12.1", status="succeeded", config_version=None,
        config_hash="", link="", actor=system_actor("ci"),
    )  # fmt: skip
    verification.verify_pending(timezone.now())  # no result since: still pending
    log_in(page, "carol", path="/services/payments/")
    expect(page.locator("svg.timeline line.release")).to_have_count(1)
    expect(page.locator("svg.latency line.release")).to_have_count(1)
    expect(page.locator("svg.latency text.release-label")).to_have_text("2024.12.1")
    expect(page.locator("svg.latency line.release title")).to_contain_text(
        "deployment 2024.12.1 at "
    )
    expect(page.locator("svg.latency line.release title")).to_contain_text("verification pending")
    expect(page.locator(".verification-pending")).to_have_text("verification pending")


def test_the_wall_shows_only_problems_and_the_overview_links_each_service(page, user, watched):
    routines.install(apps)
    log_in(page, "carol")
    shoot(page, "overview")
    expect(page.locator("tr[data-service=auth] .strip i.x")).not_to_have_count(0)
    page.goto("/wall/")
    expect(page.locator(".wall-item")).to_contain_text(["auth"])
    expect(page.locator(".wall-list")).not_to_contain_text("ledger-db")
    shoot(page, "wall")
    page.goto("/maintenance/")
    expect(page.locator("[data-run=daily]")).to_contain_text("Review health check metrics")
    expect(page.locator("[data-run=daily]")).to_contain_text("auth / http")  # evidence
    shoot(page, "maintenance")


def test_the_map_highlights_what_a_failure_takes_down(page, user, watched):
    log_in(page, "carol", path="/map/")
    node = page.locator("g.node[data-name=auth]")
    expect(node.locator("rect")).to_have_class("st-unhealthy")
    node.click()
    expect(page.locator("g.node[data-name=gateway]")).to_have_class("node impact-down")
    expect(page.locator("g.node[data-name=ledger-db]")).to_have_class("node dim")
    expect(page.locator("#map-impact")).to_contain_text("If auth fails: 2 down (")
    shoot(page, "map")
    node.click()  # again: cleared
    expect(page.locator("#map-impact")).to_have_text("")


@pytest.mark.parametrize("path", ["/", "/services/auth/", "/maintenance/", "/map/", "/wall/"])
def test_pages_fit_a_phone_and_follow_a_dark_scheme(browser, live_server, user, watched, path):
    """At 390 px wide nothing pushes the page sideways (wide tables and the map scroll in
    their own box), and a dark colour scheme gets a dark page."""
    routines.install(apps)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 800}, color_scheme="dark"
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        log_in(page, "carol", path=path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 391
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background in ("rgb(20, 23, 29)",), background
    finally:
        context.close()
    assert problems == []
