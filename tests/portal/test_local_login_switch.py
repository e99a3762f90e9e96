"""LOCAL_LOGIN switches the username/password sign-in off (the provider's link alone), and
without OIDC_ISSUER the login page is what it always was."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def oidc_only(settings):
    settings.OIDC_ISSUER = "https://id.example.invalid"
    settings.OIDC_CLIENT_ID = "portal"
    settings.LOCAL_LOGIN = False


@pytest.fixture
def olga(db):
    return User.objects.create_user("olga", password="a long password")


def test_off_the_form_is_not_shown_only_the_providers_link(client, oidc_only):
    html = client.get("/accounts/login/?next=/map/").content.decode()
    assert 'href="/accounts/login/oidc/?next=%2Fmap%2F"' in html
    assert 'name="password"' not in html and 'name="username"' not in html


def test_off_a_password_sent_anyway_is_refused_with_a_page(client, oidc_only, olga):
    answer = client.post("/accounts/login/", {"username": "olga", "password": "a long password"})
    assert answer.status_code == 403
    assert "username and password is switched off" in answer.content.decode()
    assert "_auth_user_id" not in client.session
    assert not Client().login(username="olga", password="a long password")


def test_off_the_admins_login_form_sends_to_the_login_page(client, oidc_only):
    answer = client.get("/admin/login/?next=/admin/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def test_on_beside_the_provider_both_ways_are_offered_and_the_form_works(client, settings, olga):
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "https://id.example.invalid", "portal"
    html = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/login/oidc/"' in html and 'name="password"' in html
    answer = client.post("/accounts/login/", {"username": "olga", "password": "a long password"})
    assert answer.status_code == 302 and "_auth_user_id" in client.session
    assert client.get("/admin/login/").status_code in (200, 302)


def test_without_an_issuer_nothing_changes(client, olga):
    html = client.get("/accounts/login/").content.decode()
    assert "/accounts/login/oidc/" not in html and 'name="password"' in html
    assert client.get("/accounts/login/oidc/").status_code == 404
    assert client.get("/accounts/login/oidc/callback/?code=x&state=y").status_code == 404
    assert client.login(username="olga", password="a long password")
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"


def test_off_a_session_a_password_opened_before_the_switch_ends(client, settings, olga):
    """Switched off, a session signed in with a password while it was on still worked --
    the admin pages included -- until its timeouts (14 days): the provider was not the only
    way in (found in issue 26's breaking trial)."""
    settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "https://id.example.invalid", "portal"
    answer = client.post("/accounts/login/", {"username": "olga", "password": "a long password"})
    assert answer.status_code == 302 and client.get("/").status_code == 200
    settings.LOCAL_LOGIN = False
    ended = client.get("/admin/")
    assert ended.status_code == 302 and ended["Location"].startswith("/admin/login/")
    assert "_auth_user_id" not in client.session
    page = client.get("/accounts/login/").content.decode()
    assert "opened with a password" in page and "switched off here now" in page


def test_off_a_session_signed_in_through_the_provider_goes_on(client, oidc_only, olga):
    client.force_login(olga)
    session = client.session
    session["oidc"] = {"id_token": "x.y.z", "issuer": "https://id.example.invalid"}
    session.save()
    assert client.get("/").status_code == 200
