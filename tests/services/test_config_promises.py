"""What the README's "Configuration" promises beyond test_config_api.py, through the API: a
schema's earlier versions are read back with `?version=N`, normalised and as sent; a secret
is shown only to a caller holding `config:secrets`, and every such read -- JSON or env -- is
audited, while a masked read is not."""

import pytest

from portal.models import AuditEntry, SecurityEvent
from services import configs
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory, seed_schema_with_secret

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
SECRET = "pa55-w0rd-for-the-ledger"
URL = "/api/services/legacy/config"


@pytest.fixture
def pipeline(make_token):
    ServiceFactory(name="legacy")
    return ApiClient(make_token(["config:read", "config:write"], name="pipeline").secret)


def test_a_schemas_earlier_version_is_read_back_normalised_and_as_sent(pipeline):
    assert pipeline.call("PUT", f"{URL}/schema", SEED_SCHEMA).status_code == 201
    second = {"type": "object", "properties": {"port": {"type": "integer"}}}
    assert pipeline.call("PUT", f"{URL}/schema", second).status_code == 201
    current = pipeline.call("GET", f"{URL}/schema").json()
    assert current["version"] == 2 and current["source"] == second
    first = pipeline.call("GET", f"{URL}/schema?version=1").json()
    assert first["version"] == 1 and first["source_format"] == "seed"
    assert first["source"] == SEED_SCHEMA  # as sent
    assert first["schema"]["properties"]["api_timeout"]["maximum"] == 300  # normalised
    assert pipeline.call("GET", f"{URL}/schema?version=3").status_code == 404


def test_every_read_of_a_secret_is_audited_and_a_masked_read_is_not(pipeline, make_token):
    assert pipeline.call("PUT", f"{URL}/schema", seed_schema_with_secret()).status_code == 201
    values = {"rag_database_url": "sqlite:///x", "api_timeout": 5, "db_password": SECRET}
    stored = pipeline.call("POST", URL, {"values": values, "base_version": 0})
    assert stored.status_code == 201
    reads = lambda: AuditEntry.objects.filter(action="config.secrets_read").count()  # noqa: E731

    masked = pipeline.call("GET", URL)
    assert masked.json()["values"]["db_password"] == configs.MASK
    assert SECRET not in pipeline.call("GET", f"{URL}?format=env").content.decode()
    assert reads() == 0

    vault = ApiClient(make_token(["config:read", "config:secrets"], name="vault").secret)
    assert vault.call("GET", URL).json()["values"]["db_password"] == SECRET
    assert f"DB_PASSWORD='{SECRET}'" in vault.call("GET", f"{URL}?format=env").content.decode()
    assert reads() == 2
    assert set(
        AuditEntry.objects.filter(action="config.secrets_read").values_list("actor", flat=True)
    ) == {"token:vault"}
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SECRET_READ).count() >= 1
