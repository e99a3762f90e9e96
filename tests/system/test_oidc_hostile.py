"""Sign-in through the identity provider against what an attacker, a broken provider and a
failing network send (issue 26's breaking trial): each is a page saying what happened -- a
400, 403 or 503, never a 500 -- and an account is never made or given where it should not
be. The suite's provider (tests/oidc_provider.py, a process of its own) misbehaves on
request; Django's test client drives the portal."""

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User

from portal import oidc as client_module
from portal.models import OidcIdentity, SecurityEvent
from tests.system.oidc import follow, oidc, provider, sign_in

__all__ = ["oidc", "provider"]
pytestmark = [pytest.mark.processes, pytest.mark.django_db]


@pytest.fixture
def fresh(oidc):
    """The provider as the test sets it, read afresh: discovery and keys not kept from the
    tests before; the provider's failures undone after."""
    client_module._clients.clear()
    yield oidc
    oidc.control(fail={}, discovery_without=[], jwks_body=None, token_extra={})
    client_module._clients.clear()


def said(page) -> str:
    return html.unescape(page.content.decode())


def refusals(reason: str) -> int:
    return SecurityEvent.objects.filter(kind="sign_in_refused", detail__reason=reason).count()


def callback_of(client, next_url: str = "") -> str:
    """A sign-in started in this browser and approved at the provider: the callback's path
    and query, not yet followed."""
    started = client.get("/accounts/login/oidc/" + (f"?next={next_url}" if next_url else ""))
    hop = requests.get(started["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(hop.headers["Location"])
    return f"{back.path}?{back.query}"


@pytest.mark.parametrize(
    ("step", "how"),
    [
        ("discovery", "html"),
        ("discovery", "error"),
        ("discovery", "not_an_object"),
        ("jwks", "html"),
        ("jwks", "error"),
        ("jwks", "not_an_object"),
        ("token", "html"),
        ("token", "error"),
        ("token", "not_an_object"),
    ],
)
def test_a_provider_answering_something_else_at_any_step_is_a_page(client, fresh, step, how):
    """A proxy's HTML sign-in page, a 500, JSON that is no object: at discovery (the start),
    the keys or the token endpoint (the callback). JSON that is no object at discovery and at
    the keys answered 500."""
    fresh.control(fail={step: how})
    page = sign_in(client)
    assert page.status_code in (403, 503), (step, how)
    assert "Not signed in" in said(page) and "Traceback" not in said(page)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 403), ({"keys": "x"}, 403), ({"keys": [1]}, 403), ({"keys": []}, 403)],
)
def test_keys_that_are_no_key_set_are_a_page(client, fresh, body, status):
    """{} (no "keys") answered 500."""
    fresh.control(jwks_body=body)
    page = sign_in(client)
    assert page.status_code == status and "Not signed in" in said(page)


def test_keys_in_another_shape_are_fetched_again_once_the_provider_is_mended(client, fresh):
    """A JWKS that is a JSON array was kept: every sign-in after it answered 500 until the
    portal restarted, however the provider was mended."""
    fresh.control(fail={"jwks": "not_an_object"})
    assert sign_in(client).status_code == 403
    fresh.control(fail={})
    assert sign_in(type(client)()).status_code == 200


@pytest.mark.parametrize("entry", ["jwks_uri", "authorization_endpoint", "token_endpoint"])
def test_a_discovery_document_missing_an_endpoint_is_a_503_page_naming_it(client, fresh, entry):
    """No jwks_uri (at the callback) and no authorization_endpoint (at the start) answered
    500; no token_endpoint said the provider could not be reached ('Invalid URL None')."""
    fresh.control(discovery_without=[entry])
    page = sign_in(client)
    assert page.status_code == 503
    assert f"misconfigured: the discovery document names no {entry}" in said(page)
    assert refusals("misconfigured") == 1


def test_a_discovery_document_refused_is_read_again_at_the_next_sign_in(client, fresh):
    """The document refused was kept for the process's life: the provider mended, sign-in
    still said misconfigured until a restart."""
    fresh.control(discovery_without=["issuer"])
    assert sign_in(client).status_code == 503
    fresh.control(discovery_without=[])
    assert sign_in(client).status_code == 200


@pytest.mark.parametrize(
    ("id_token", "said_"),
    [
        (["a", "list"], "not in the shape"),  # answered 500
        (5, "not a valid ID token"),
        ("garbage", "not a valid ID token"),
        ("WzFd.WzFd.AAAA", "not a valid ID token"),
    ],
)
def test_an_id_token_that_is_no_jwt_is_a_page(client, fresh, id_token, said_):
    fresh.control(token_extra={"id_token": id_token})
    page = sign_in(client)
    assert page.status_code == 403 and said_ in said(page)


@pytest.mark.parametrize(
    ("misbehave", "said_"),
    [
        ("alg_none", "not a valid ID token"),
        ("hs256_public_key", "not a valid ID token"),
        ("no_audience", "made for another application"),
        ("audiences", "made for another application"),
    ],
)
def test_an_unsigned_token_a_key_confusion_and_a_missing_or_shared_audience_are_refused(
    client, fresh, misbehave, said_
):
    fresh.control(misbehave=misbehave)
    page = sign_in(client)
    assert page.status_code == 403 and said_ in said(page)
    assert not User.objects.exists()


def test_without_the_providers_list_of_algorithms_none_and_hs256_stay_refused(client, fresh):
    fresh.control(discovery_without=["id_token_signing_alg_values_supported"])
    for misbehave in ("alg_none", "hs256_public_key"):
        fresh.control(misbehave=misbehave)
        assert sign_in(type(client)()).status_code == 403, misbehave
    assert not User.objects.exists()


def test_an_error_answer_for_a_sign_in_never_started_here_is_the_state_page(client, fresh):
    """The provider's error answer was read before the state: anyone's link put their own
    words on the portal's page ('The identity provider did not sign you in: <anything>')."""
    words = "Your account is locked, call +1 555 0100"
    query = f"error=access_denied&error_description={words}&state=made-up"
    page = client.get(f"/accounts/login/oidc/callback/?{query}")
    assert page.status_code == 400 and words not in said(page)
    assert refusals("state") == 1 and refusals("provider") == 0


def test_an_error_answer_for_a_sign_in_started_here_is_quoted_and_ends_it(client, fresh):
    started = client.get("/accounts/login/oidc/")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    query = f"error=access_denied&error_description=Cancelled&state={state}"
    path = f"/accounts/login/oidc/callback/?{query}"
    page = client.get(path)
    assert page.status_code == 403 and "did not sign you in: Cancelled" in said(page)
    assert client.get(path).status_code == 400  # its state is used up


def test_two_tabs_signing_in_at_once_each_land_where_they_asked(client, fresh):
    """The page to go to was the browser's, not the sign-in's: the first tab to finish went
    where the last one started had asked."""
    first, second = callback_of(client, "/map/"), callback_of(client, "/audit/")
    assert client.get(first)["Location"] == "/map/"
    assert client.get(second)["Location"] == "/audit/"
    assert client.get(first).status_code == 400  # each answer still good once


@pytest.mark.parametrize(
    "claims",
    [
        {"preferred_username": "ａｄｍｉｎ"},  # noqa: RUF001 -- full-width: answered 500
        {"preferred_username": "ᴬdmin"},  # became the account 'Admin' beside 'admin'
        {"preferred_username": "ad\u200bmin"},  # a zero-width space: a look-alike
        {"preferred_username": " admin\u00a0"},
    ],
)
def test_a_name_that_reads_as_an_accounts_is_refused(client, fresh, claims):
    User.objects.create_user("admin", password="a long local password")
    fresh.control(claims={"sub": "someone", "groups": ["portal-admins"], **claims})
    page = sign_in(client)
    assert page.status_code == 403 and "exists in this portal already" in said(page)
    assert list(User.objects.values_list("username", flat=True)) == ["admin"]
    assert not OidcIdentity.objects.exists()


@pytest.mark.parametrize(
    "claims",
    [
        {"preferred_username": "da\x00na"},
        {"email": "dana\x00@example.invalid"},
        {"given_name": "Da\x00na", "family_name": "\x00"},
        {"groups": ["portal-ops", "odd\x00group"]},
    ],
)
def test_a_nul_in_a_claim_is_taken_out_not_a_500(client, fresh, claims):
    """PostgreSQL keeps no NUL: each answered 500."""
    fresh.control(
        claims={"sub": "s-dana", "preferred_username": "dana", "groups": ["portal-ops"]} | claims
    )
    assert sign_in(client).status_code == 200
    dana = User.objects.get()
    assert dana.username == "dana" and "\x00" not in dana.email + dana.first_name
    assert OidcIdentity.objects.get().groups == ["portal-ops"]


@pytest.mark.parametrize("sub", ["s" * 256, "", "s\x00", "s\n1"])
def test_a_sub_past_255_characters_empty_or_with_control_characters_is_refused(client, fresh, sub):
    """A sub of 256 characters answered 500 (the identity's column); an empty one made an
    account every token with an empty sub would have signed in to."""
    fresh.control(claims={"sub": sub, "preferred_username": "dana", "groups": ["portal-ops"]})
    page = sign_in(client)
    assert page.status_code == 403 and "its sub is not 1 to 255" in said(page)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("groups", "let_in"),
    [("portal-ops", True), (None, False), ({"portal-ops": True}, False), ([["portal-ops"]], False)],
)
def test_a_groups_claim_of_one_name_is_that_group_and_of_another_shape_none(
    client, fresh, groups, let_in
):
    claims = {"sub": "s-erin", "preferred_username": "erin"}
    fresh.control(claims=claims | ({} if groups is None else {"groups": groups}))
    page = sign_in(client)
    assert page.status_code == (200 if let_in else 403)
    assert User.objects.filter(username="erin").exists() == let_in


def test_a_name_past_150_characters_is_cut_to_150(client, fresh):
    fresh.control(
        claims={"sub": "s-long", "preferred_username": "n" * 400, "groups": ["portal-ops"]}
    )
    assert sign_in(client).status_code == 200
    assert User.objects.get().username == "n" * 150


@pytest.mark.parametrize(
    "next_url",
    ["//evil.example/", "/\\evil.example/", "https:evil.example", "javascript:alert(1)"],
)
def test_a_next_page_off_site_is_not_followed(client, fresh, next_url):
    page = follow(client, client.get("/accounts/login/oidc/", {"next": next_url}))
    assert page.status_code == 200 and page.request["PATH_INFO"] == "/"


def test_a_slow_provider_is_a_503_page_within_oidc_timeout(client, fresh, settings):
    settings.OIDC_TIMEOUT = 1.0
    client_module._clients.clear()
    fresh.control(fail={"token": "slow"}, slow_seconds=3)
    page = sign_in(client)
    assert page.status_code == 503 and "cannot be reached just now" in said(page)
    assert re.search(r"timed out", said(page))


def test_a_role_taken_away_at_a_sign_in_is_gone_from_the_sessions_already_open(client, fresh):
    """Roles are read at each request: the admin's other browser loses the security tab as
    soon as a sign-in anywhere brings the groups in (the provider's change alone waits for
    that sign-in, as the README says)."""
    fresh.person("ada", ["portal-admins"])
    sign_in(client)
    assert client.get("/audit/security/").status_code == 200
    fresh.person("ada", ["portal-ops"])
    assert sign_in(type(client)()).status_code == 200
    assert client.get("/audit/security/").status_code == 403
    assert client.get("/audit/").status_code == 200


def test_the_same_sub_at_another_issuer_is_another_person(client, fresh):
    """An identity is the issuer's and the sub's together: a new provider (or one posing as
    it) naming a known sub does not get that person's account."""
    dana = User.objects.create_user("dana")
    old = "https://old-provider.example"
    OidcIdentity.objects.create(user=dana, issuer=old, subject="sub-dana")
    fresh.person("dana", ["portal-admins"])
    page = sign_in(client)
    assert page.status_code == 403 and "exists in this portal already" in said(page)
    assert OidcIdentity.objects.count() == 1 and not dana.groups.exists()


def test_a_huge_groups_claim_is_a_page(client, fresh):
    fresh.person("dana", [f"group-{i}" for i in range(20_000)] + ["portal-ops"])
    page = sign_in(client)
    assert page.status_code == 403 and "not a valid ID token" in said(page)
