"""Each role in the admin, in a real browser: a viewer reads, an operator edits services and
configurations, an admin makes a token."""

import re

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from portal.models import ApiToken
from services.models import ConfigVersion, Service
from tests.system.browser.support import PASSWORD, browser_test, log_in

pytestmark = [*browser_test, pytest.mark.usefixtures("role_groups")]


def staff(username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", PASSWORD)
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def payments(registry_data) -> Service:
    return Service.objects.get(name="payments")


def test_a_viewer_reads_services_and_configurations_but_has_no_save(page, payments):
    staff("vera", "viewer")
    log_in(page, "vera", path="/admin/")
    expect(page.get_by_role("link", name="Services", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="API tokens")).to_have_count(0)
    page.goto(f"/admin/services/service/{payments.pk}/change/")
    expect(page.get_by_role("heading", name=re.compile("View service"))).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    page.goto(f"/admin/services/service/{payments.pk}/config/")
    expect(page.locator("#config-read-only")).to_be_visible()
    expect(page.get_by_role("button", name="Save a new version")).to_have_count(0)


def test_an_operator_edits_a_service_and_its_configuration(page, page_problems, payments):
    payments.team.members.add(staff("olga", "operator"))
    log_in(page, "olga", path=f"/admin/services/service/{payments.pk}/change/")
    page.get_by_label("Description").fill("Takes the money")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert Service.objects.get(name="payments").description == "Takes the money"
    page.goto(f"/admin/services/service/{payments.pk}/config/")
    page.get_by_label("Other values (JSON object)").fill('{"timeout": 5}')
    with page.expect_navigation():
        page.get_by_role("button", name="Save a new version").click()
    expect(page.locator(".messagelist")).to_have_text("Saved configuration version 1.")
    assert ConfigVersion.objects.get().author == "user:olga"
    page.goto("/admin/portal/apitoken/add/")
    expect(page.get_by_role("heading", name="403")).to_be_visible()
    assert [p for p in page_problems.take() if "403 (Forbidden)" not in p] == []


def test_an_admin_makes_a_token_and_sees_its_secret_once(page, registry_data):
    staff("ada", "admin")
    log_in(page, "ada", path="/admin/portal/apitoken/add/")
    page.get_by_label("Name").fill("deploy")
    page.get_by_label("Read the registry").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    message = page.locator(".messagelist .warning")
    expect(message).to_contain_text("The secret of token 'deploy' is svp_")
    assert ApiToken.objects.get(name="deploy").scopes == ["registry:read"]
