"""The pages a responder uses (issue 22, item 7), in Chromium: the overview on a 390 px phone is
a card per service (name, health with its reason, who acknowledged it, last check) with
nothing to scroll sideways; the wall's overall status is large enough to read across a room; a
fresh outage fills the service page's default range; times are shown in the viewer's time
zone with UTC on hover, and in UTC when JavaScript is off."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from automation import alerts, notes
from automation.models import Alert
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from services.models import Service
from tests.factories import make_check
from tests.system.browser.conftest import _CSP_LISTENER, TIMEOUT_MS
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test
ZONE = "Asia/Kolkata"  # UTC+05:30 all year: a shift no test machine's clock hides


@pytest.fixture
def open_page(browser, live_server, page_problems):
    """A page in a context of one's own (viewport, time zone, JavaScript), watched for
    console errors and CSP violations as the ``page`` fixture's."""
    contexts = []

    def make(**options):
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(_CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        page.on("console", page_problems.on_console)
        page.on("pageerror", page_problems.on_page_error)
        return page

    yield make
    for context in contexts:
        context.close()


def record(check, status, at, errors=()):
    outcome = ProbeOutcome(status, response_ms=40, errors=list(errors))
    recording.record([recording.Result(check.pk, at, at, outcome)])


@pytest.fixture
def outage(registry_data):
    """Every running service checked each minute for two hours, auth down for the last five:
    each result recorded at its own moment (time-machine), as the engine would have, so the
    services' status changes carry their real times."""
    now = timezone.now()
    # Registered before the history below (a page draws a service's time from its creation).
    Service.objects.update(created_at=now - timedelta(hours=3))
    checks = {
        name: make_check(Service.objects.get(name=name), name="http", is_critical=True, interval=60)
        for name in ("auth", "payments", "ledger-db", "gateway")
    }
    for minutes in range(120, -1, -1):
        at = now - timedelta(minutes=minutes)
        with time_machine.travel(at, tick=False):
            for name, check in checks.items():
                if name == "auth" and minutes <= 5:
                    record(check, Status.UNHEALTHY, at, ["HTTP 503 (expected 2xx/3xx)"])
                else:
                    record(check, Status.HEALTHY, at)
    return checks


def test_the_overview_on_a_phone_is_a_card_per_service_with_nothing_to_scroll(
    open_page, user, outage
):
    alerts.process_status_changes()  # auth's alert opens, and someone is on it
    alerts.acknowledge(Alert.objects.get(service__name="auth").id, system_actor("on-call"))
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    log_in(page, "carol")
    auth = page.locator("tr[data-service=auth]")
    expect(auth).to_be_visible()
    assert auth.evaluate("e => getComputedStyle(e).display") == "grid"  # a card, not a row
    # On the card: the name, the health with its reason, the last check -- and no other column.
    expect(auth.locator(".col-service")).to_contain_text("auth")
    expect(auth.locator(".col-health .badge.health")).to_have_text("unhealthy")
    expect(auth.locator(".col-health")).to_contain_text("critical check failing: http")
    expect(auth.locator(".col-health .ack")).to_be_visible()
    expect(auth.locator(".col-health .ack")).to_contain_text("acknowledged by")
    expect(auth.locator(".col-last")).to_be_visible()
    expect(auth.locator(".col-last time")).to_have_count(1)
    for hidden in ("team", "strip", "uptime", "p95", "lifecycle", "version", "deps", "tags"):
        expect(auth.locator(f".col-{hidden}")).to_be_hidden()
    card = auth.bounding_box()
    assert card["x"] >= 0 and card["x"] + card["width"] <= 390
    # Nothing wider than the screen: neither the page nor the table scrolls sideways.
    widths = page.evaluate(
        """() => {
          const root = document.documentElement, table = document.querySelector("table.overview");
          return [root.scrollWidth, root.clientWidth, table.scrollWidth, table.clientWidth];
        }"""
    )
    assert widths[0] <= widths[1] and widths[2] <= widths[3], widths


def test_the_overview_on_a_desktop_keeps_its_table(page, user, outage):
    log_in(page, "carol")
    auth = page.locator("tr[data-service=auth]")
    assert auth.evaluate("e => getComputedStyle(e).display") == "table-row"
    expect(auth.locator("td")).to_have_count(12)
    expect(page.locator("table.overview thead th").first).to_be_visible()


def test_the_walls_overall_status_is_readable_across_a_room(page, user, outage):
    log_in(page, "carol", path="/wall/")
    overall = page.locator(".wall-overall > .badge.health")
    expect(overall).to_have_text("degraded")  # auth is down, payments (critical) degraded by it
    size = float(overall.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
    body = float(page.evaluate("getComputedStyle(document.body).fontSize").removesuffix("px"))
    assert size >= 100, size  # 9 % of 1280 px: about 115 px (it was 12.8 px)
    assert size >= 4 * body, (size, body)


def test_a_fresh_outage_fills_the_service_pages_default_range(page, user, outage):
    """Five minutes down of the last hour -- the default range -- is a band a twelfth of the
    chart wide; in a 24-hour range it was a sliver of a 288th."""
    log_in(page, "carol", path="/services/auth/")
    expect(page.locator(".ranges a[aria-current]")).to_have_text("1h")
    chart = page.locator("svg.timeline")
    total = chart.evaluate("e => e.viewBox.baseVal.width")
    bad = page.locator("svg.timeline rect.st-unhealthy")
    expect(bad).not_to_have_count(0)
    width = sum(r.evaluate("e => e.width.baseVal.value") for r in bad.all())
    assert width / total >= 1 / 20, (width, total)


def local(moment: str, pattern: str) -> str:
    at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return at.astimezone(ZoneInfo(ZONE)).strftime(pattern)


def test_times_are_shown_in_the_viewers_time_zone_with_utc_on_hover(open_page, user, outage):
    page = open_page(viewport={"width": 1280, "height": 800}, timezone_id=ZONE)
    log_in(page, "carol", path="/services/auth/")
    since = page.locator(".service-head time")
    expect(since).to_have_attribute("data-localized", "")
    moment = since.get_attribute("datetime")
    utc = datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(UTC)
    expect(since).to_have_text(f"{local(moment, '%Y-%m-%d %H:%M:%S')} GMT+5:30")
    expect(since).to_have_attribute("title", f"{utc:%Y-%m-%d %H:%M:%S} UTC")
    # Every moment on the page, the checks' last results among them.
    last = page.locator("#checks time").first
    expect(last).to_have_attribute(
        "title",
        f"{last.get_attribute('datetime')[:10]} {last.get_attribute('datetime')[11:19]} UTC",
    )
    # The overview's rows and its "updated", also once htmx has swapped the table anew.
    page.goto("/")
    updated = page.locator(".overall .updated time")
    expect(updated).to_have_text(f"{local(updated.get_attribute('datetime'), '%H:%M:%S')} GMT+5:30")
    page.evaluate("htmx.trigger('#service-table', 'refresh')")
    page.wait_for_timeout(500)
    for element in page.locator("#service-table time").all():
        expect(element).to_have_attribute("data-localized", "")
        assert element.inner_text().endswith("GMT+5:30")
        assert element.get_attribute("title").endswith(" UTC")


def test_without_javascript_times_read_utc(open_page, user, outage):
    page = open_page(
        viewport={"width": 1280, "height": 800}, timezone_id=ZONE, java_script_enabled=False
    )
    log_in(page, "carol", path="/services/auth/")
    since = page.locator(".service-head time")
    moment = since.get_attribute("datetime")
    utc = datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(UTC)
    expect(since).to_have_text(f"{utc:%Y-%m-%d %H:%M:%S} UTC")


def test_a_long_unbroken_note_scrolls_nothing_sideways(open_page, user, outage):
    """Found in the breaking trial: a note of 5,000 characters without a space (a pasted
    log line, a URL) made the service page 49,000 px wide, and the status page too when
    the note was public; it wraps inside the timeline and the incident's updates."""
    alerts.process_status_changes()
    auth = Alert.objects.get(service__name="auth")
    notes.add_note(auth.id, system_actor("on-call"), "x" * 5000, public=True)
    page = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    log_in(page, "carol", path="/services/auth/")
    for path, note in (("/services/auth/", ".tl-note .note-text"), ("/status/", "li.update")):
        page.goto(path)
        expect(page.locator(note)).to_have_count(1)
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (path, widths)
