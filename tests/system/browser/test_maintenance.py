"""The maintenance checklists in a real browser: an operator ticks a daily item without a
reload and finds it ticked, by whom and when, after one; a viewer gets no tick buttons."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from checklists import routines
from tests.system.browser.support import PASSWORD, browser_test, log_in

pytestmark = [*browser_test, pytest.mark.usefixtures("role_groups")]


def person(name: str, role: str) -> User:
    user = User.objects.create_user(name, f"{name}@example.invalid", PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


def test_an_operator_ticks_a_daily_item_without_a_reload(page):
    routines.install(apps)
    person("olga", "operator")
    log_in(page, "olga", path="/maintenance/")
    item = page.locator("[data-run=daily]")
    row = item.locator("li.item", has_text="Check system health dashboard")
    page.evaluate("window.__loaded = true")  # gone if the page reloads
    row.get_by_label("Note for Check system health dashboard").fill("all green on the wall")
    row.get_by_role("button", name="Tick").click()
    row = item.locator("li.item", has_text="Check system health dashboard")
    expect(row.locator(".who")).to_contain_text("ticked by user:olga")
    expect(row.get_by_role("button", name="Untick")).to_be_visible()
    expect(item.locator(".progress")).to_have_text("1/8 done")  # the count follows
    assert page.evaluate("window.__loaded") is True  # swapped in place, no navigation
    page.reload()
    row = page.locator("[data-run=daily] li.item", has_text="Check system health dashboard")
    expect(row.locator(".who")).to_contain_text("all green on the wall")
    expect(row).to_have_class("item done")


def test_a_viewer_reads_the_checklists_without_tick_buttons(page):
    routines.install(apps)
    person("vera", "viewer")
    log_in(page, "vera", path="/maintenance/")
    expect(page.locator("[data-run=quarterly]")).to_contain_text("Plan improvements")
    expect(page.get_by_role("button", name="Tick")).to_have_count(0)
