"""The overview's live refresh in a real browser, as the README ("Pages") says: every 15 s,
held while the tab is hidden (no request nobody reads), and caught up at once when it is
shown again. The page's clock is the test's: time passes when the test says so."""

from django.utils import timezone
from playwright.sync_api import expect

from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from services.models import Service
from tests.factories import make_check
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test

HIDE = """hidden => {
    Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
    Object.defineProperty(document, "visibilityState",
                          {value: hidden ? "hidden" : "visible", configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def record(check, status: Status) -> None:
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(status, errors=["x"]))])


def test_the_overview_polls_every_15_s_holds_while_hidden_and_catches_up(page, user, registry_data):
    auth = make_check(Service.objects.get(name="auth"), name="http", is_critical=True)
    record(auth, Status.HEALTHY)
    page.clock.install()
    log_in(page, "carol")
    badge = page.locator("tr[data-service=auth] .badge.health")
    expect(badge).to_have_text("healthy")
    polls: list[str] = []
    page.on(
        "request",
        lambda r: polls.append(r.url) if r.headers.get("hx-request") == "true" else None,
    )

    page.clock.run_for(14_000)
    assert polls == []  # not before 15 s
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.clock.run_for(2_000)
    assert len(polls) == 1

    page.evaluate(HIDE, True)  # the tab goes to the background
    record(auth, Status.UNHEALTHY)
    page.clock.run_for(60_000)  # four polls' worth of time
    page.wait_for_timeout(300)  # (a request would have been sent by now)
    assert len(polls) == 1  # none while hidden
    expect(badge).to_have_text("healthy")  # the page still shows what it last read

    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.evaluate(HIDE, False)  # shown again: at once, without waiting for the timer
    assert len(polls) == 2
    expect(badge).to_have_text("unhealthy")
