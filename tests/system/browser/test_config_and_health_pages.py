"""The configuration editor in the admin, the drift page and the overview's health column,
in a real browser."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from services import configs, deployments
from services.models import ConfigVersion, Service
from tests.factories import make_check, seed_schema_with_secret
from tests.system.browser.support import browser_test, log_in

pytestmark = browser_test
ACTOR = system_actor("browser-tests")
SCHEMA = seed_schema_with_secret()


@pytest.fixture
def config_page(registry_data) -> str:
    configs.put_schema("payments", SCHEMA, ACTOR)
    return f"/admin/services/service/{Service.objects.get(name='payments').pk}/config/"


def save(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Save a new version").click()


def test_the_admin_edits_a_configuration_through_its_schema_form(page, superuser, config_page):
    log_in(page, "root", path=config_page)
    expect(page.get_by_text("No configuration yet.")).to_be_visible()
    expect(page.get_by_label("log_level")).to_have_js_property("tagName", "SELECT")
    expect(page.get_by_label("db_password")).to_have_attribute("type", "password")

    # Out of range: refused, the reason on its field, nothing stored.
    page.get_by_label("api_timeout").fill("400")
    page.get_by_label("db_password").fill("topsecret-1")
    save(page)
    row = page.locator(".form-row.errors")
    expect(row).to_have_count(1)
    expect(row.locator("label")).to_have_text(re.compile("api_timeout"))
    expect(row.locator(".errorlist")).to_contain_text("300")
    assert not ConfigVersion.objects.exists()

    page.get_by_label("api_timeout").fill("45")
    page.get_by_label("log_level").select_option("DEBUG")
    page.get_by_label("db_password").fill("topsecret-1")
    page.get_by_label("Comment").fill("first from the browser")
    save(page)
    expect(page.locator(".messagelist")).to_have_text("Saved configuration version 1.")
    history = page.locator("#config-history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("first from the browser")
    # The secret comes back masked, never in clear, and the mask sent back keeps it.
    expect(page.get_by_label("db_password")).to_have_value(configs.MASK)
    assert "topsecret-1" not in page.content()
    page.get_by_label("api_timeout").fill("60")
    save(page)
    expect(page.locator(".messagelist")).to_have_text("Saved configuration version 2.")
    latest = ConfigVersion.objects.get(version=2)
    assert configs.reveal(latest)["db_password"] == "topsecret-1"
    assert configs.reveal(latest)["api_timeout"] == 60

    # The history's diff shows what changed, without secret values.
    page.get_by_role("link", name="2", exact=True).click()
    diff = page.locator(".field-diff_with_previous")
    expect(diff).to_contain_text("~ api_timeout: 45 -> 60")
    assert "topsecret-1" not in page.content()


def test_a_stale_form_is_refused_in_the_browser(page, superuser, config_page):
    log_in(page, "root", path=config_page)
    page.get_by_label("api_timeout").fill("45")
    save(page)
    # A second editor opened the same version and saves first.
    other = page.context.new_page()
    other.goto(config_page)
    other.get_by_label("api_timeout").fill("50")
    with other.expect_navigation():
        other.get_by_role("button", name="Save a new version").click()
    expect(other.locator(".messagelist")).to_have_text("Saved configuration version 2.")
    # The first editor's form is now based on a version that is no longer current.
    page.get_by_label("api_timeout").fill("55")
    save(page)
    expect(page.locator(".errorlist.nonfield")).to_contain_text("no longer current")
    assert ConfigVersion.objects.count() == 2


# Every type the form shows, stored against its default where it has one.
EVERY_TYPE = {
    "type": "object",
    "properties": {
        "on": {"type": "boolean", "default": False},
        "off": {"type": "boolean", "default": True},
        "label": {"type": "string", "default": "something"},
        "nickname": {"type": ["string", "null"]},
        "size": {"type": "integer", "enum": [1, 2, 3], "default": 2},
        "db": {"type": "object", "properties": {"port": {"type": "integer"}}},
        "hosts": {"type": "array", "items": {"type": "string"}},
        "ratio": {"type": "number"},
        "greeting": {"type": "string"},
        "max_retries": {"type": "integer", "default": 3},
        "token": {"type": "string", "writeOnly": True},
    },
}
EVERY_VALUE = {
    "on": True, "off": False, "label": "", "nickname": None, "size": 3,
    "db": {"port": 5432, "pool": 4}, "hosts": ["a", "b"], "ratio": 1e-07,
    "greeting": "Grüße, 世界", "max_retries": 3, "token": "s3cr3t", "undescribed": {"x": 1},
}  # fmt: skip


def test_a_form_saved_unchanged_changes_nothing_and_one_edit_changes_one_field(
    page, superuser, registry_data
):
    service = Service.objects.get(name="payments")
    service.config_validation_level = "lenient"
    service.save()
    configs.put_schema("payments", EVERY_TYPE, ACTOR)
    configs.publish("payments", EVERY_VALUE, 0, ACTOR)
    log_in(page, "root", path=f"/admin/services/service/{service.pk}/config/")
    expect(page.locator("[name=values__on]")).to_have_value("true")
    expect(page.locator("[name=values__off]")).to_have_value("false")
    expect(page.locator("[name=values__ratio]")).to_have_value("1e-07")
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("Nothing changed")
    assert ConfigVersion.objects.filter(service=service).count() == 1

    page.get_by_label("max_retries").fill("5")
    save(page)
    # (The schema is closed: the undescribed keys are kept, and reported, as before.)
    expect(page.locator(".messagelist")).to_contain_text("Saved version 2")
    assert configs.reveal(configs.current_version(service)) == {**EVERY_VALUE, "max_retries": 5}


def test_the_drift_page_lists_services_deployed_with_another_config(page, user, registry_data):
    configs.publish("payments", {"timeout": 5}, 0, ACTOR)
    deployments.report(
        "payments", version="1.4.3", status="succeeded", config_version=1, config_hash="",
        link="", actor=ACTOR,
    )  # fmt: skip
    configs.publish("payments", {"timeout": 9}, 1, ACTOR)
    configs.publish("auth", {"debug": False}, 0, ACTOR)
    deployments.report(
        "auth", version="2.0.0", status="succeeded", config_version=1, config_hash="",
        link="", actor=ACTOR,
    )  # fmt: skip
    log_in(page, "carol", path="/config/drift")
    rows = page.locator("table.services tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-service", "payments")
    expect(rows.first.locator("td")).to_have_text(["payments", "1.4.3", "v1", "v2"])

    configs.rollback("payments", 1, ACTOR)  # the current version equals the applied one
    page.reload()
    expect(page.locator(".empty")).to_have_text("No service drifts.")


def test_the_overview_shows_health_and_refreshes_it(page, user, registry_data):
    ledger = make_check(Service.objects.get(name="ledger-db"), name="http")
    auth = make_check(Service.objects.get(name="auth"), name="http")
    now = timezone.now()
    recording.record(
        [
            recording.Result(auth.pk, now, now, ProbeOutcome(Status.HEALTHY)),
            recording.Result(ledger.pk, now, now, ProbeOutcome(Status.HEALTHY)),
        ]
    )
    page.clock.install()  # the page's 15-second poll runs when the test says so
    log_in(page, "carol")
    row = page.locator("tr[data-service=ledger-db]")
    expect(row.locator(".badge.health")).to_have_text("healthy")
    expect(page.locator("tr[data-service=gateway] .badge.health")).to_have_text("unknown")
    expect(page.locator(".overall .badge")).to_have_text("healthy")  # unknown ones do not count

    # A failure recorded meanwhile shows up at the next poll, without reloading the page.
    page.evaluate("() => { window.__noReload = 'still here'; }")
    later = timezone.now()
    recording.record(
        [
            recording.Result(
                auth.pk, later, later, ProbeOutcome(Status.UNHEALTHY, errors=["refused"])
            )
        ]
    )
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.clock.run_for(16_000)
    expect(page.locator("tr[data-service=auth] .badge.health")).to_have_text("unhealthy")
    expect(page.locator("tr[data-service=auth] .reason")).to_have_text(
        "critical check failing: http"
    )
    # gateway depends hard on auth: at least degraded, and it says why.
    expect(page.locator("tr[data-service=gateway] .reason")).to_contain_text("auth")
    # auth is not a critical service: the estate is degraded, not unhealthy.
    expect(page.locator(".overall .badge")).to_have_text("degraded")
    assert page.evaluate("() => window.__noReload") == "still here"
