"""portalctl config: get, validate, set, diff and import against a live portal."""

import json

import pytest

from services.models import ConfigSchema, ConfigVersion
from tests.portalctl.conftest import write

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE = """
teams: [{name: shop}]
services:
  - name: checkout
    team: shop
    config:
      schema:
        required_fields: [currency, timeout]
        field_types: {currency: str, timeout: int}
        validation_rules: {timeout: {min: 1, max: 300}}
      values: {currency: EUR, timeout: 30}
"""


@pytest.fixture
def checkout(portalctl, tmp_path):
    """checkout with a schema and configuration version 1."""
    result = portalctl("apply", write(tmp_path / "checkout.yaml", SERVICE))
    assert result.exit_code == 0, result.output


def test_get_prints_the_document_as_json(portalctl, checkout):
    result = portalctl("config", "get", "checkout")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["version"], document["values"]) == (1, {"currency": "EUR", "timeout": 30})


def test_get_prints_a_dotenv_file_with_a_prefix(portalctl, checkout):
    result = portalctl("config", "get", "checkout", "--format", "env", "--prefix", "APP_")
    assert result.stdout == "APP_CURRENCY='EUR'\nAPP_TIMEOUT='30'\n"


def test_get_of_a_missing_version_exits_1(portalctl, checkout):
    result = portalctl("config", "get", "checkout", "--version", "7")
    assert result.exit_code == 1
    assert "no configuration version 7" in result.stderr


def test_validate_passes_and_fails_with_the_field_named(portalctl, checkout, tmp_path):
    good = portalctl(
        "config", "validate", "checkout", write(tmp_path / "ok.yaml", "currency: USD\ntimeout: 5")
    )
    assert good.exit_code == 0, good.output
    assert good.stdout.startswith("valid")
    bad = portalctl(
        "config",
        "validate",
        "checkout",
        write(tmp_path / "bad.json", '{"currency": "USD", "timeout": 0}'),
    )
    assert bad.exit_code == 1
    assert "values.timeout" in bad.stderr
    assert ConfigVersion.objects.count() == 1


def test_set_stores_the_next_version(portalctl, checkout, tmp_path):
    path = write(tmp_path / "v2.yaml", "currency: USD\ntimeout: 30")
    result = portalctl("config", "set", "checkout", path, "--base-version", 1, "--comment", "usd")
    assert result.exit_code == 0, result.output
    assert "stored version 2 of checkout" in result.stdout
    assert ConfigVersion.objects.get(version=2).comment == "usd"


def test_set_on_a_stale_base_exits_1_naming_the_current_version(portalctl, checkout, tmp_path):
    path = write(tmp_path / "v2.yaml", "currency: USD\ntimeout: 30")
    result = portalctl("config", "set", "checkout", path, "--base-version", 0)
    assert result.exit_code == 1
    assert "stale_version" in result.stderr
    assert "current version: 1" in result.stderr
    assert ConfigVersion.objects.count() == 1


def test_set_without_a_base_version_is_bad_usage(portalctl, checkout, tmp_path):
    result = portalctl("config", "set", "checkout", write(tmp_path / "v.yaml", "timeout: 1"))
    assert result.exit_code == 2
    assert "--base-version" in result.stderr


def test_diff_lists_what_changed(portalctl, checkout, tmp_path):
    path = write(tmp_path / "v2.yaml", "currency: USD\ntimeout: 30")
    portalctl("config", "set", "checkout", path, "--base-version", 1)
    result = portalctl("config", "diff", "checkout", 1, 2)
    assert result.exit_code == 0, result.output
    assert "~ currency: 'EUR' -> 'USD'" in result.stdout
    assert "timeout" not in result.stdout


ENV_FILE = """\
# the legacy service's settings
export LEGACY_RAG_DATABASE_URL='postgres://rag:s3cret@db:5432/rag'
LEGACY_API_TIMEOUT=30
LEGACY_MAX_RETRIES="3"
LEGACY_ENABLE_CACHING=true
LEGACY_RATIO=0.25
LEGACY_LOG_LEVEL=INFO  # as before
OTHER_THING=ignored
"""


def test_import_proposes_a_schema_and_stores_typed_values(portalctl, checkout, tmp_path):
    path = write(tmp_path / "legacy.env", ENV_FILE)
    portalctl(
        "apply",
        write(tmp_path / "l.yaml", "teams: [{name: shop}]\nservices: [{name: legacy, team: shop}]"),
    )
    result = portalctl(
        "config", "import", "legacy", path, "--prefix", "LEGACY_", "--schema-from-env"
    )
    assert result.exit_code == 0, result.output
    assert "schema proposed from the values: version 1" in result.stdout
    assert "LEGACY_API_TIMEOUT" in result.stdout and "integer" in result.stdout
    version = ConfigVersion.objects.get(service__name="legacy")
    assert version.valid is True and version.secret_paths == [["rag_database_url"]]
    shown = json.loads(portalctl("config", "get", "legacy").stdout)["values"]
    assert shown == {
        "api_timeout": 30,
        "enable_caching": True,
        "log_level": "INFO",
        "max_retries": 3,
        "ratio": 0.25,
        "rag_database_url": "********",
    }
    schema = ConfigSchema.objects.get(service__name="legacy").schema
    assert schema["properties"]["api_timeout"] == {"type": "integer"}


def test_import_coerces_by_the_current_schema_and_names_a_bad_value(portalctl, checkout):
    ok = portalctl(
        "config", "import", "checkout", "-", "--json", input="CURRENCY=007\nTIMEOUT=45\n"
    )
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert body["types"] == {"currency": "string", "timeout": "integer"}  # "007" stays text
    assert body["version"] == 2 and body["stored"] is True
    bad = portalctl("config", "import", "checkout", "-", input="CURRENCY=EUR\nTIMEOUT=soon\n")
    assert bad.exit_code == 1
    assert "values.timeout: not an integer" in bad.stderr


def test_import_reads_the_environment_with_a_prefix(portalctl, checkout):
    env = {"SHOP_CURRENCY": "CHF", "SHOP_TIMEOUT": "12"}
    result = portalctl(
        "config", "import", "checkout", "--prefix", "SHOP_", "--base-version", 1, env=env
    )
    assert result.exit_code == 0, result.output
    current = json.loads(portalctl("config", "get", "checkout").stdout)
    assert current["values"] == {"currency": "CHF", "timeout": 12}


def test_import_dry_run_stores_nothing(portalctl, checkout):
    result = portalctl(
        "config",
        "import",
        "checkout",
        "-",
        "--dry-run",
        "--json",
        input="CURRENCY=GBP\nTIMEOUT=9\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stored"] is False
    assert ConfigVersion.objects.count() == 1


def test_import_without_a_file_or_a_prefix_is_bad_usage(portalctl, checkout):
    assert portalctl("config", "import", "checkout").exit_code == 2
