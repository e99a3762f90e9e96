"""Tokens (docs/decisions.md, "Tokens" and "The admin asks what the API asks"): a secret is
`svp_` and 240 random bits, of which only a SHA-256 is kept; a token may be limited to a
service that does not exist yet, so a pipeline can register it; and nobody hands out more
than they hold -- as a property over issuers and the grants they try."""

import base64
import hashlib
import io
import re

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal import tokens
from portal.auth import Principal
from portal.errors import Forbidden
from portal.models import ApiToken, Scope
from services.models import Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
SERVICES = ["web", "db", "cache"]


def test_a_token_secret_is_svp_and_240_random_bits_and_only_its_sha256_is_kept():
    secrets = []
    for i in range(20):
        out = io.StringIO()
        call_command("create_api_token", f"ci-{i}", "--scopes", "registry:read", stdout=out)
        secrets.append(out.getvalue().strip().splitlines()[-1])
    assert len(set(secrets)) == 20
    for secret in secrets:
        assert re.fullmatch(r"svp_[A-Za-z0-9_-]{40}", secret), secret
        assert len(base64.urlsafe_b64decode(secret[4:])) * 8 == 240
        row = ApiToken.objects.get(secret_hash=hashlib.sha256(secret.encode()).hexdigest())
        stored = str(ApiToken.objects.filter(pk=row.pk).values().get())
        assert secret not in stored and secret[4:] not in stored
        assert ApiClient(secret).call("GET", "/api/services").status_code == 200


def test_a_token_limited_to_a_service_registers_it_before_it_exists(make_token):
    TeamFactory(name="core")
    ServiceFactory(name="existing", team__name="core")
    limited = make_token(["registry:read", "registry:write"], services=["checkout"])
    pipeline = ApiClient(limited.secret)
    made = pipeline.call("PUT", "/api/services/checkout", {"team": "core"})
    assert made.status_code == 201, made.content
    assert pipeline.call("GET", "/api/services/checkout").status_code == 200
    assert pipeline.call("GET", "/api/services/existing").status_code == 404
    other = pipeline.call("PUT", "/api/services/elsewhere", {"team": "core"})
    assert other.status_code == 404  # outside its reach: as if there were nothing to see
    assert not Service.objects.filter(name="elsewhere").exists()
    assert [s["name"] for s in pipeline.call("GET", "/api/services").json()["items"]] == [
        "checkout"
    ]


@given(
    held=st.frozensets(st.sampled_from(Scope.values), min_size=1),
    reach=st.none() | st.frozensets(st.sampled_from(SERVICES)),
    asked=st.frozensets(st.sampled_from(Scope.values), min_size=1),
    limited_to=st.frozensets(st.sampled_from(SERVICES)),
)
@hypothesis_settings(max_examples=80, deadline=None)
def test_no_token_holds_a_scope_or_service_its_issuer_does_not(held, reach, asked, limited_to):
    issuer = Principal(kind="token", name="issuer", scopes=held, services=reach)
    with transaction.atomic():
        for name in SERVICES:
            ServiceFactory(name=name, team__name="core")
        try:
            issued = tokens.issue_token(
                "granted", sorted(asked), services=sorted(limited_to), issuer=issuer
            )
        except Forbidden:
            issued = None
        within_scopes = asked <= held
        within_reach = reach is None or (bool(limited_to) and limited_to <= reach)
        assert (issued is not None) == (within_scopes and within_reach)
        if issued is None:
            assert not ApiToken.objects.filter(name="granted").exists()
        else:
            token = ApiToken.objects.get(name="granted")
            assert set(token.scopes) <= held
            assert reach is None or (token.services and set(token.services) <= reach)
        transaction.set_rollback(True)
