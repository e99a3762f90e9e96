"""Sign-in through the identity provider in Chromium (the suite's provider, a process of its
own): the login page's link, the provider, back signed in with the role and teams of the
groups; logout ends the session at the provider too -- all under the enforced CSP."""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from services.models import Team
from tests.system.browser.support import browser_test
from tests.system.oidc import oidc, provider

__all__ = ["oidc", "provider"]
pytestmark = [*browser_test, pytest.mark.processes, pytest.mark.usefixtures("role_groups")]


def test_a_person_signs_in_through_the_provider_and_lands_with_their_role_and_teams(
    page, live_server, oidc, registry_data
):
    oidc.person("dana", ["portal-ops", "team-core", "everyone"])
    page.goto("/map/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/map/$"))
    with page.expect_navigation(url=re.compile(r"/map/$")):
        page.get_by_role("link", name="Sign in with your organisation's account").click()
    expect(page.locator(".topbar .who")).to_have_text("dana")
    expect(page.get_by_role("link", name="Admin")).to_be_visible()
    dana = User.objects.get(username="dana")
    assert set(dana.groups.values_list("name", flat=True)) == {"operator"}
    assert set(Team.objects.filter(members=dana).values_list("name", flat=True)) == {"core"}
    authorize = oidc.log()["authorize"][-1]
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["redirect_uri"] == f"{live_server.url}/accounts/login/oidc/callback/"

    with page.expect_navigation(url=re.compile(r"/accounts/login/\?state=")):
        page.get_by_role("button", name="Log out").click()
    ended = oidc.log()["end_session"]
    assert len(ended) == 1 and ended[0]["post_logout_redirect_uri"].startswith(live_server.url)
    page.goto("/map/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_someone_in_no_mapped_group_sees_the_no_access_page(page, page_problems, oidc):
    oidc.person("erin", ["everyone"])
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Sign in with your organisation's account").click()
    expect(page.get_by_role("heading", name="No access to this portal")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("none of your groups")
    seen = page_problems.take()  # the page's status, which the browser reports: expected
    assert len(seen) == 1 and "status of 403" in seen[0] and "/oidc/callback/" in seen[0]
