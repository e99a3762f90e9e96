"""Sign-in through an OpenID Connect provider, end to end against a real one (the suite's
provider, tests/oidc_provider.py, a process of its own): the authorization request, the
callback's checks, the account, its role and teams from the groups, each refusal a page and a
security event, logout at the provider. Django's test client drives the portal; the
provider's redirects are followed over HTTP."""

import html
import re
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User

from portal.models import AuditEntry, OidcIdentity, SecurityEvent
from services.models import Team
from tests.system.oidc import CLIENT_ID, oidc, provider, sign_in

__all__ = ["oidc", "provider"]
pytestmark = [pytest.mark.processes, pytest.mark.django_db]


def role_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def team_names(user) -> set[str]:
    return set(Team.objects.filter(members=user).values_list("name", flat=True))


def refusals(reason: str) -> int:
    return SecurityEvent.objects.filter(kind="sign_in_refused", detail__reason=reason).count()


def test_the_login_page_links_to_the_provider_and_the_link_starts_the_code_flow_with_pkce(
    client, oidc
):
    page = client.get("/accounts/login/?next=/map/")
    assert 'href="/accounts/login/oidc/?next=%2Fmap%2F"' in page.content.decode()
    answer = client.get("/accounts/login/oidc/?next=/map/")
    assert answer.status_code == 302
    target = urlsplit(answer["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.url}/authorize"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["response_type"] == "code"
    assert "openid" in query["scope"].split()
    assert query["client_id"] == CLIENT_ID
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # a SHA-256, base64url without padding
    assert query["state"] and query["nonce"]
    assert query["redirect_uri"] == "http://testserver/accounts/login/oidc/callback/"


def test_a_first_sign_in_makes_the_account_with_the_role_and_teams_of_the_groups(client, oidc):
    Team.objects.create(name="payments")
    Team.objects.create(name="search")
    oidc.person("dana", ["portal-ops", "payments-engineers", "team-search", "team-nope"])
    page = sign_in(client, next_url="/map/")
    assert page.status_code == 200 and page.request["PATH_INFO"] == "/map/"
    dana = User.objects.get(username="dana")
    assert role_names(dana) == {"operator"} and dana.is_staff and not dana.has_usable_password()
    assert team_names(dana) == {"payments", "search"}  # team-nope: no such team, not made
    identity = OidcIdentity.objects.get(user=dana)
    assert (identity.issuer, identity.subject) == (oidc.url, "sub-dana")
    actions = list(AuditEntry.objects.order_by("id").values_list("actor", "action", "target"))
    assert actions == [
        ("system:sign-in", "user.create", "dana"),
        ("system:sign-in", "user.roles", "dana"),
        ("system:sign-in", "team.members", "payments"),
        ("system:sign-in", "team.members", "search"),
    ]
    token = oidc.log()["token"][-1]
    assert token["code_verifier"] and token["grant_type"] == "authorization_code"


def test_a_group_removed_at_the_provider_takes_the_role_and_team_at_the_next_sign_in(client, oidc):
    Team.objects.create(name="payments")
    oidc.person("dana", ["portal-admins", "portal-ops", "team-payments"])
    sign_in(client)
    dana = User.objects.get(username="dana")
    assert role_names(dana) == {"admin", "operator"} and team_names(dana) == {"payments"}
    oidc.person("dana", ["portal-ops"])
    sign_in(client)
    assert role_names(dana) == {"operator"} and team_names(dana) == set()
    roles = AuditEntry.objects.filter(action="user.roles").order_by("id").last()
    assert roles.changes == {"added": [], "removed": ["admin"]}
    left = AuditEntry.objects.filter(action="team.members").order_by("id").last()
    assert (left.target, left.changes) == ("payments", {"joined": [], "left": ["dana"]})


def test_someone_in_no_mapped_group_gets_the_no_access_page_and_no_account(client, oidc):
    oidc.person("erin", ["everyone", "team-payments"])
    page = sign_in(client)
    assert page.status_code == 403
    text = page.content.decode()
    assert "No access to this portal" in text and "none of your groups" in text
    assert not User.objects.filter(username="erin").exists()
    assert refusals("no_access") == 1
    assert client.get("/").status_code == 302  # not signed in


def test_losing_every_mapped_group_ends_the_access_and_the_other_sessions(client, oidc):
    Team.objects.create(name="payments")
    oidc.person("dana", ["portal-ops", "team-payments"])
    sign_in(client)
    assert client.get("/").status_code == 200
    oidc.person("dana", ["everyone"])
    other = type(client)()
    assert sign_in(other).status_code == 403
    dana = User.objects.get(username="dana")
    assert role_names(dana) == set() and team_names(dana) == set() and not dana.is_staff
    assert client.get("/").status_code == 302  # the first browser's session ended too


def test_the_account_is_found_by_issuer_and_subject_not_by_name(client, oidc):
    oidc.person("dana", ["portal-readers"], sub="s-1")
    sign_in(client)
    oidc.person("dana-renamed", ["portal-readers"], sub="s-1")
    sign_in(client)
    assert list(User.objects.values_list("username", flat=True)) == ["dana"]


def test_a_name_a_local_account_has_is_refused_not_taken_over(client, oidc):
    User.objects.create_user("Admin", password="a long local password")
    oidc.person("admin", ["portal-admins"], sub="someone-else")
    page = sign_in(client)
    assert page.status_code == 403
    said = "An account named 'admin' exists in this portal already"
    assert said in html.unescape(page.content.decode())
    assert not OidcIdentity.objects.exists() and refusals("username_taken") == 1


def test_an_account_switched_off_stays_off_whatever_the_groups(client, oidc):
    sign_in(client)
    User.objects.filter(username="dana").update(is_active=False)
    page = sign_in(type(client)())
    assert page.status_code == 403 and "switched off" in page.content.decode()


def test_switching_an_account_off_ends_its_sessions_at_their_next_request(client, oidc):
    sign_in(client)
    assert client.get("/").status_code == 200
    User.objects.filter(username="dana").update(is_active=False)
    assert client.get("/").status_code == 302


def test_a_new_signing_key_at_the_provider_is_fetched_when_a_token_names_it(client, oidc):
    sign_in(client)  # the portal holds the provider's keys now
    oidc.control(rotate_key=True)
    other = type(client)()
    assert sign_in(other).status_code == 200
    assert other.get("/").status_code == 200


@pytest.mark.parametrize(
    ("misbehave", "reason", "said"),
    [
        ("forged_signature", "signature", "not signed with its keys"),
        ("expired", "expired", "has expired"),
        ("wrong_audience", "audience", "made for another application"),
        ("wrong_nonce", "nonce", "made for another sign-in"),
        ("wrong_issuer", "issuer", "comes from another issuer"),
    ],
)
def test_an_id_token_that_fails_a_check_is_refused_with_a_page_and_an_event(
    client, oidc, misbehave, reason, said
):
    oidc.control(misbehave=misbehave)
    page = sign_in(client)
    assert page.status_code == 403
    text = html.unescape(page.content.decode())
    assert said in text and "Traceback" not in text
    assert refusals(reason) == 1
    assert not User.objects.exists()
    assert client.get("/").status_code == 302


def test_a_sign_in_the_provider_refused_is_a_page_saying_so(client, oidc):
    started = client.get("/accounts/login/oidc/")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    query = f"error=access_denied&error_description=The+user+cancelled&state={state}"
    page = client.get(f"/accounts/login/oidc/callback/?{query}")
    assert page.status_code == 403
    assert "did not sign you in: The user cancelled" in page.content.decode()
    assert refusals("provider") == 1


def test_a_next_page_on_another_site_is_not_followed(client, oidc):
    page = sign_in(client, next_url="https://elsewhere.example/")
    assert page.status_code == 200 and page.request["PATH_INFO"] == "/"


def test_a_replayed_answer_is_refused_once_its_state_is_used(client, oidc):
    to_provider = client.get("/accounts/login/oidc/")
    hop = requests.get(to_provider["Location"], allow_redirects=False, timeout=5)
    callback = urlsplit(hop.headers["Location"])
    path = f"{callback.path}?{callback.query}"
    assert client.get(path).status_code == 302  # signed in
    replay = client.get(path)
    assert replay.status_code == 400
    assert "used already" in replay.content.decode()
    assert refusals("state") == 1
    stranger = type(client)().get(path)  # another browser, which never started it
    assert stranger.status_code == 400


def test_logout_ends_the_session_at_the_provider_too(client, oidc):
    sign_in(client)
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 200
    found = re.search(r'id="provider-logout" href="([^"]+)"', answer.content.decode())
    location = html.unescape(found.group(1))
    assert f'content="0; url={found.group(1)}"' in answer.content.decode()
    target = urlsplit(location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.url}/end_session"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["post_logout_redirect_uri"] == "http://testserver/accounts/login/"
    assert query["id_token_hint"].count(".") == 2 and query["client_id"] == CLIENT_ID
    assert client.get("/").status_code == 302
    hop = requests.get(location, allow_redirects=False, timeout=5)
    assert hop.headers["Location"].startswith("http://testserver/accounts/login/?state=")
    assert oidc.log()["end_session"][-1]["id_token_hint"] == query["id_token_hint"]


def test_the_admins_log_out_ends_the_session_at_the_provider_too(client, oidc):
    oidc.person("dana", ["portal-admins"])
    sign_in(client)
    answer = client.post("/admin/logout/")
    assert answer.status_code == 200 and b'id="provider-logout"' in answer.content
    assert client.get("/admin/").status_code == 302


def test_without_an_end_session_endpoint_logout_is_the_portals_own(client, oidc):
    oidc.control(end_session=False)
    from portal import oidc as client_module

    client_module._clients.clear()  # the discovery document is read again
    sign_in(client)
    answer = client.post("/accounts/logout/")
    assert answer["Location"] == "/accounts/login/"


def test_a_provider_that_never_answers_is_a_503_page_within_oidc_timeout(client, oidc, settings):
    with socket.socket() as silent:  # accepts connections (the backlog), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.OIDC_ISSUER = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.OIDC_TIMEOUT = 1.0
        started = time.monotonic()
        page = client.get("/accounts/login/oidc/")
        elapsed = time.monotonic() - started
    assert page.status_code == 503 and 1 <= elapsed < 3
    assert "cannot be reached just now" in page.content.decode()


def test_a_discovery_document_naming_another_issuer_is_refused(client, oidc, settings):
    settings.OIDC_ISSUER = oidc.url + "/"  # the same document, which names it without the slash
    page = client.get("/accounts/login/oidc/")
    assert page.status_code == 503
    assert "names the issuer" in html.unescape(page.content.decode())
    assert refusals("misconfigured") == 1


def test_an_unreachable_provider_is_a_clear_page(client, oidc, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # discard: nothing listens
    page = client.get("/accounts/login/oidc/")
    assert page.status_code == 503
    assert "cannot be reached just now" in page.content.decode()
