"""Version 0 is the schema's defaults (docs/decisions.md): `?version=0` answers them, marked
``defaults_only``, however many versions were stored since -- through the API."""

import pytest

from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory

pytestmark = pytest.mark.django_db
URL = "/api/services/legacy/config"
DEFAULTS = {
    "rag_database_url": "sqlite:///app.db",
    "api_timeout": 30,
    "max_retries": 3,
    "enable_caching": True,
    "log_level": "INFO",
}


def test_version_0_is_the_schemas_defaults_even_after_versions_exist(make_token):
    ServiceFactory(name="legacy")
    client = ApiClient(make_token(["config:read", "config:write"]).secret)
    assert client.call("PUT", f"{URL}/schema", SEED_SCHEMA).status_code == 201
    stored = {"values": {"api_timeout": 5, "log_level": "DEBUG"}, "base_version": 0}
    assert client.call("POST", URL, stored).status_code == 201
    current = client.call("GET", URL).json()
    assert current["version"] == 1 and current["defaults_only"] is False
    assert current["values"]["api_timeout"] == 5
    zero = client.call("GET", f"{URL}?version=0")
    assert zero.status_code == 200
    assert zero.json()["version"] == 0 and zero.json()["defaults_only"] is True
    assert zero.json()["values"] == DEFAULTS
