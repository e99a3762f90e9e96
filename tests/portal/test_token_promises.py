"""What the README ("Authentication and scopes") promises about API tokens, through the paths
people use: the secret is 240 random bits shown once; nobody grants a scope or a service they
do not hold (making a token, or revoking one, which needs the right to grant it); a token
limited to services and teams reaches either; and a secret is never logged -- whatever the
token, whatever the route, at debug level."""

import base64
import logging

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal import tokens
from portal.auth import Principal, Scope, system_actor
from portal.errors import Forbidden
from portal.models import ApiToken, AuditEntry, SecurityEvent
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
EVERY_SCOPE = sorted(Scope.values)
SERVICES = ["alpha", "beta", "gamma"]


def test_a_secret_is_240_random_bits_shown_once(capsys):
    call_command("create_api_token", "deploy", "--scopes", "registry:read")
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    secrets = [printed] + [tokens.new_secret() for _ in range(500)]
    for secret in secrets:
        body = secret.removeprefix(tokens.TOKEN_PREFIX)
        assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) * 8 == 240
    assert len(set(secrets)) == len(secrets)
    stored = ApiToken.objects.get(name="deploy")
    assert printed not in str(list(ApiToken.objects.values())) + str(
        list(AuditEntry.objects.values())
    )
    assert stored.secret_hash == tokens.hash_secret(printed)  # the SHA-256, and only it


@pytest.fixture
def estate():
    team = TeamFactory(name="core")
    for name in SERVICES:
        ServiceFactory(name=name, team=team)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    held=st.sets(st.sampled_from(EVERY_SCOPE)),
    wanted=st.sets(st.sampled_from(EVERY_SCOPE), min_size=1),
    reach=st.none() | st.sets(st.sampled_from(SERVICES)),
    asked=st.sets(st.sampled_from(SERVICES)),
)
def test_nobody_grants_a_scope_or_a_service_they_do_not_hold(estate, held, wanted, reach, asked):
    """Making a token (the admin and the command go through tokens.issue_token) and revoking
    one (POST /api/tokens/{name}/revoke) need the right to grant all it holds."""
    ApiToken.objects.all().delete()
    issuer = Principal(
        kind="token",
        name="issuer",
        scopes=frozenset(held),
        services=None if reach is None else frozenset(reach),
    )
    may_grant = wanted <= held and (reach is None or (asked and asked <= reach))
    try:
        tokens.issue_token("made", sorted(wanted), services=sorted(asked), issuer=issuer)
    except Forbidden as refused:
        assert not may_grant and set(refused.fields) <= {"scopes", "services"}
        assert not ApiToken.objects.filter(name="made").exists()  # nothing stored
    else:
        assert may_grant
    target = tokens.issue_token(
        "target", sorted(wanted), services=sorted(asked), issuer=system_actor("t")
    )
    caller = tokens.issue_token(
        "caller",
        sorted(held | {"audit:read"}),
        services=None if reach is None else sorted(reach),
        issuer=system_actor("t"),
    )
    if reach == set():  # a token limited to no service is no token anyone can make
        return
    answer = ApiClient(caller.secret).call("POST", "/api/tokens/target/revoke")
    revocable = wanted <= held | {"audit:read"} and (reach is None or (asked and asked <= reach))
    assert answer.status_code == (200 if revocable else 403), answer.content
    assert ApiToken.objects.get(pk=target.token.pk).is_active is not revocable


def test_a_token_limited_to_services_and_teams_reaches_either(make_token):
    search, payments = TeamFactory(name="search"), TeamFactory(name="payments")
    ServiceFactory(name="index", team=search)
    ServiceFactory(name="crawler", team=search)
    ServiceFactory(name="ledger", team=payments)
    ServiceFactory(name="billing", team=payments)
    token = make_token(["registry:read", "registry:write"], services=["ledger"], teams=["search"])
    api = ApiClient(token.secret)
    listed = sorted(s["name"] for s in api.call("GET", "/api/services").json()["items"])
    assert listed == ["crawler", "index", "ledger"]
    for name in ("index", "ledger"):  # by its team, by its name: changed alike
        assert api.call("PATCH", f"/api/services/{name}", {"description": "x"}).status_code == 200
    # (ledger was refused: "changes only what its teams own, not the team 'payments'", while
    # a check of ledger was accepted.) Moving a service out of its team is still refused.
    moved = api.call("PATCH", "/api/services/index", {"team": "payments"})
    assert moved.status_code == 403 and moved.json()["error"]["team"] == "payments"
    refused = api.call("PATCH", "/api/services/billing", {"description": "x"})
    assert refused.status_code == 404  # as if it did not exist
    assert refused.json()["error"]["message"] == "no service named 'billing'"


def rendered(records: list[logging.LogRecord]) -> str:
    """The records as the portal writes them (its JSON formatter), one a line."""
    formatter = logging.getLogger().handlers[0].formatter
    return "\n".join(formatter.format(record) for record in records)


ROUTES = st.sampled_from(
    [
        ("GET", "/api/services"),
        ("GET", "/api/tokens"),
        ("POST", "/api/services"),
        ("GET", "/api/services/ghost"),
        ("GET", "/health/services"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/api/no-such-operation"),
    ]
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["valid", "expired", "revoked", "unknown"]),
    route=ROUTES,
    tail=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
)
def test_a_token_secret_is_never_logged(caplog, make_token, kind, route, tail):
    """Whatever the token (valid, expired, revoked or no token's at all) and the route, at
    debug level: the secret is in no log line, no security event, no audit row."""
    from datetime import timedelta

    ApiToken.objects.all().delete()
    if kind == "unknown":
        secret = tokens.TOKEN_PREFIX + (tail + "x" * 40)[:40]
    else:
        expires = timedelta(seconds=-1) if kind == "expired" else None
        issued = make_token(["registry:read"], name="t", expires_in=expires)
        secret = issued.secret
        if kind == "revoked":
            tokens.revoke("t", issuer=system_actor("t"))
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        method, path = route
        answer = ApiClient(secret).call(method, path, {} if method == "POST" else None)
    lines = rendered(caplog.records)
    assert "portal.access" in lines  # the request was logged, at debug level
    assert secret not in lines
    assert secret[len(tokens.TOKEN_PREFIX) + 6 :] not in lines  # nor past its prefix
    assert secret not in str(list(SecurityEvent.objects.values()))
    assert secret not in str(list(AuditEntry.objects.values()))
    assert secret not in answer.content.decode(errors="replace")
