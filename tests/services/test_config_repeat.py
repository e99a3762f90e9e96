"""Configuration versions store the effective document (docs/decisions.md): writing the same
content again stores nothing -- 200, `"changed": false`, the same version -- so a pipeline
can repeat itself. "The same" is the effective document: a value sent equal to the schema's
default is the version that left it out. Through the API as a pipeline stores a
configuration."""

import pytest

from portal.models import AuditEntry
from services.models import ConfigVersion
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/services/legacy/config"


def test_the_same_content_again_stores_nothing_and_says_so(make_token):
    ServiceFactory(name="legacy")
    pipeline = ApiClient(make_token(["config:read", "config:write"]).secret)
    assert pipeline.call("PUT", f"{URL}/schema", SEED_SCHEMA).status_code == 201
    first = pipeline.call("POST", URL, {"values": {"api_timeout": 10}, "base_version": 0})
    assert first.status_code == 201 and first.json()["version"] == 1
    versions, audited = ConfigVersion.objects.count(), AuditEntry.objects.count()
    for values in ({"api_timeout": 10}, {"api_timeout": 10, "max_retries": 3}):  # 3: default
        again = pipeline.call("POST", URL, {"values": values, "base_version": 1})
        assert again.status_code == 200, again.content
        assert again.json()["changed"] is False and again.json()["version"] == 1
    assert ConfigVersion.objects.count() == versions
    assert AuditEntry.objects.count() == audited
