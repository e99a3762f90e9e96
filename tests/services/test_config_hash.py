"""The content hash of a configuration is keyed from SECRET_KEY (docs/decisions.md, "Secrets
in configurations"): whoever reads a version's hash (config:read, the deployments a pipeline
reports) cannot test guesses of a secret against it offline, because it is no plain digest of
the document. Equal documents still have equal hashes -- drift and deployments compare them --
and another SECRET_KEY gives other hashes. As a property over secrets and values, through the
API."""

import hashlib
import json

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal import encryption, tokens
from portal.auth import system_actor
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
SCHEMA = {
    "properties": {
        "password": {"type": "string", "writeOnly": True},
        "host": {"type": "string"},
        "port": {"type": "integer"},
    }
}
# Text PostgreSQL can store (no NUL, no lone surrogates).
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


def plain_digests(document: dict) -> set[str]:
    """What an unkeyed hash of the document could be: SHA-256 of its usual serialisations."""
    forms = [
        json.dumps(document, sort_keys=True, separators=(",", ":")),
        json.dumps(document, sort_keys=True),
        json.dumps(document),
    ]
    return {hashlib.sha256(f.encode()).hexdigest() for f in forms}


def store(client: ApiClient, service: str, values: dict) -> str:
    url = f"/api/services/{service}/config"
    assert client.call("PUT", f"{url}/schema", SCHEMA).status_code == 201
    answer = client.call("POST", url, {"values": values, "base_version": 0})
    assert answer.status_code == 201, answer.content
    return client.call("GET", url).json()["hash"]


@given(secret=TEXT.filter(bool), host=TEXT, port=st.integers(1, 65535))
@hypothesis_settings(max_examples=30, deadline=None)
def test_the_content_hash_is_keyed_by_the_secret_key(secret, host, port):
    values = {"password": secret, "host": host, "port": port}
    with transaction.atomic():
        TeamFactory(name="core")
        for name in ("one", "two", "three"):
            ServiceFactory(name=name, team__name="core")
        issued = tokens.issue_token(
            "owner", ["config:read", "config:write"], issuer=system_actor("test")
        )
        client = ApiClient(issued.secret)
        first = store(client, "one", values)
        assert first not in plain_digests(values)
        assert store(client, "two", values) == first  # equal documents, equal hashes
        try:
            with override_settings(SECRET_KEY="another key " + "k" * 50):
                encryption.reset_keys()
                assert store(client, "three", values) != first
        finally:
            encryption.reset_keys()
        transaction.set_rollback(True)
