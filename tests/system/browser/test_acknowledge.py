"""Acknowledging in a real browser (issue 22, item 1), under the enforced CSP: an operator
acknowledges from the service page with a note, a viewer sees the alert and no button; a
notification's link, followed while logged out, leads through the login form back to its
confirm page, whose button acknowledges as the person who logged in."""

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import expect

from automation import notify
from automation.models import Alert, Event, Note
from healthchecks.models import Incident, ServiceHealth
from healthchecks.status import Status
from portal.models import AuditEntry
from services.models import Service
from tests.system.browser.support import PASSWORD, browser_test, log_in

pytestmark = [*browser_test, pytest.mark.usefixtures("role_groups")]


def person(username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def auth_down(registry_data) -> Alert:
    """auth is down and its alert open; olga operates core (auth's team), vic views."""
    auth = Service.objects.get(name="auth")
    ServiceHealth.objects.update_or_create(
        service=auth,
        defaults={"status": Status.UNHEALTHY, "reason": "critical check failing: http"},
    )
    Incident.objects.create(  # as the engine opens one with the alert
        service=auth, opened_at=timezone.now(), worst_status=Status.UNHEALTHY, cause="opened"
    )
    auth.team.members.add(person("olga", "operator"))
    person("vic", "viewer")
    return Alert.objects.create(service=auth, status=Status.UNHEALTHY, cause="opened")


def test_an_operator_acknowledges_from_the_service_page_and_a_viewer_has_no_button(
    browser, live_server, page, auth_down
):
    log_in(page, "vic", path="/services/auth/")
    expect(page.locator("#alert-timeline")).to_contain_text("opened: down")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("button", name="Add note")).to_have_count(0)

    operator = browser.new_context(base_url=live_server.url).new_page()
    log_in(operator, "olga", path="/services/auth/")
    operator.get_by_label("Note (optional)").fill("restarting auth <now>")
    with operator.expect_navigation():
        operator.get_by_role("button", name="Acknowledge").click()
    expect(operator.locator(".messages")).to_contain_text("Acknowledged the alert of auth.")
    expect(operator.locator(".notice.bad")).to_contain_text("acknowledged by user:olga")
    timeline = operator.locator("#alert-timeline")
    expect(timeline.locator(".tl-acknowledged")).to_contain_text("user:olga")
    expect(timeline.locator(".tl-note")).to_contain_text("restarting auth <now>")
    expect(operator.get_by_role("button", name="Acknowledge")).to_have_count(0)
    operator.get_by_label("Add a note").fill("it was the certificate")
    operator.get_by_label("public: shown on the status page").check()
    with operator.expect_navigation():
        operator.get_by_role("button", name="Add note").click()
    expect(timeline.locator(".tl-note")).to_have_count(2)
    operator.context.close()
    alert = Alert.objects.get(id=auth_down.id)
    assert alert.acknowledged_by == "user:olga"
    assert [(n.text, n.public) for n in Note.objects.order_by("id")] == [
        ("restarting auth <now>", False),
        ("it was the certificate", True),
    ]
    page.goto("/status/")
    expect(page.locator("#incidents")).to_contain_text("it was the certificate")
    expect(page.locator("#incidents")).not_to_contain_text("restarting auth")


def test_a_notifications_link_leads_through_the_login_to_the_confirm_page(
    page, page_problems, live_server, auth_down, settings
):
    settings.PORTAL_BASE_URL = live_server.url
    message = notify.compose(
        Alert.objects.select_related("service").get(id=auth_down.id), Event.DOWN, [], timezone.now()
    )
    (line,) = [x for x in message.body.splitlines() if x.startswith("Acknowledge")]
    link = line.split(": ", 1)[1]
    assert link.startswith(f"{live_server.url}/alerts/{auth_down.id}/ack/")

    log_in(page, "olga", path=link)  # logged out: the login form, then back to the link
    expect(page).to_have_url(link)
    expect(page.locator("#ack-confirm")).to_contain_text("You are acknowledging as olga")
    assert Alert.objects.get(id=auth_down.id).acknowledged_at is None  # opening is not acting
    page.get_by_label("Note (optional)").fill("on it from the chat")
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge").click()
    expect(page).to_have_url(f"{live_server.url}/services/auth/")
    expect(page.locator(".messages")).to_contain_text("Acknowledged the alert of auth.")
    assert Alert.objects.get(id=auth_down.id).acknowledged_by == "user:olga"
    assert AuditEntry.objects.filter(action="alert.acknowledge", actor="user:olga").exists()

    page.goto(link)  # used up now
    expect(page.locator("#ack-refused")).to_contain_text("already acknowledged by user:olga")
    assert [p for p in page_problems.take() if "409 (Conflict)" not in p] == []
