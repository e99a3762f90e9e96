from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from portal import tokens
from portal.auth import system_actor
from portal.errors import InvalidInput
from portal.models import ApiToken

ISSUER = system_actor("tests")
pytestmark = pytest.mark.django_db


def test_it_stores_only_the_hash_of_the_secret():
    issued = tokens.issue_token("deploy", ["registry:read"], issuer=ISSUER)
    row = ApiToken.objects.get(name="deploy")
    assert issued.secret.startswith("svp_") and len(issued.secret) >= 40
    assert issued.secret not in (row.secret_hash, row.prefix)
    assert row.secret_hash == tokens.hash_secret(issued.secret)
    assert issued.secret.startswith(row.prefix)
    assert tokens.find_token(issued.secret) == row


def test_it_refuses_unknown_scopes_and_duplicate_names():
    with pytest.raises(InvalidInput) as caught:
        tokens.issue_token("x", ["registry:read", "root"], issuer=ISSUER)
    assert "root" in caught.value.fields["scopes"]
    with pytest.raises(InvalidInput):
        tokens.issue_token("y", [], issuer=ISSUER)
    tokens.issue_token("z", ["registry:read"], issuer=ISSUER)
    with pytest.raises(InvalidInput) as caught:
        tokens.issue_token("z", ["registry:read"], issuer=ISSUER)
    assert "name" in caught.value.fields


def test_a_wrong_or_revoked_secret_finds_nothing():
    issued = tokens.issue_token("deploy", ["registry:read"], issuer=ISSUER)
    assert tokens.find_token(issued.secret + "x") is None
    assert tokens.find_token("not-a-token") is None
    ApiToken.objects.filter(name="deploy").update(is_active=False)
    assert tokens.find_token(issued.secret) is None


def test_it_knows_when_it_expires():
    issued = tokens.issue_token(
        "short", ["registry:read"], expires_in=timedelta(days=1), issuer=ISSUER
    )
    assert not issued.token.is_expired()
    assert issued.token.is_expired(timezone.now() + timedelta(days=2))


def test_last_use_is_written_at_most_once_a_minute():
    token = tokens.issue_token("deploy", ["registry:read"], issuer=ISSUER).token
    with time_machine.travel("2026-01-01 10:00:00+00:00", tick=False):
        tokens.touch(token)
        first = ApiToken.objects.get(pk=token.pk).last_used_at
    with time_machine.travel("2026-01-01 10:00:30+00:00", tick=False):
        tokens.touch(token)
        assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    with time_machine.travel("2026-01-01 10:01:01+00:00", tick=False):
        tokens.touch(token)
        assert ApiToken.objects.get(pk=token.pk).last_used_at > first
