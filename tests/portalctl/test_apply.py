"""portalctl apply: manifests (with their services' configuration) against a live portal."""

import json

import pytest

from portal.models import AuditEntry
from services.models import ConfigSchema, ConfigVersion, Service
from tests.portalctl.conftest import write

pytestmark = pytest.mark.django_db(transaction=True)

MANIFEST = """
teams: [{name: shop}]
services:
  - name: checkout
    team: shop
    dependencies: [accounts]
  - name: accounts
    team: shop
"""

WITH_CONFIG = """
teams: [{name: shop}]
services:
  - name: checkout
    team: shop
    config:
      schema:
        required_fields: [currency, timeout]
        field_types: {currency: str, timeout: int, db_password: str}
        optional_fields: [db_password]
        secret_fields: [db_password]
        validation_rules: {timeout: {min: 1, max: 300}}
      values: {currency: EUR, timeout: 30, db_password: hunter2}
  - name: accounts
    team: shop
"""


def test_it_creates_then_reports_unchanged_then_updated(portalctl, tmp_path):
    path = write(tmp_path / "m.yaml", MANIFEST)
    first = portalctl("apply", path)
    assert first.exit_code == 0, first.output
    assert "created: checkout, accounts" in first.stdout
    again = portalctl("apply", path)
    assert "unchanged: checkout, accounts" in again.stdout
    critical = MANIFEST.replace("dependencies: [accounts]", "is_critical: true")
    changed = write(tmp_path / "m2.yaml", critical)
    third = portalctl("apply", changed, "--json")
    assert json.loads(third.stdout)["updated"] == ["checkout"]


def test_it_reads_json_from_stdin_and_merges_files(portalctl, tmp_path):
    teams = write(tmp_path / "teams.json", '{"teams": [{"name": "shop"}]}')
    services = '{"services": [{"name": "cart", "team": "shop"}]}'
    result = portalctl("apply", teams, "-", "--json", input=services)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] == ["cart"]


def test_a_dry_run_shows_the_plan_and_stores_nothing(portalctl, tmp_path):
    result = portalctl("apply", "--dry-run", write(tmp_path / "m.yaml", WITH_CONFIG))
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout
    assert "created: checkout, accounts" in result.stdout
    assert "config checkout: schema v1 (changed), version 1 (stored)" in result.stdout
    assert not Service.objects.exists()
    assert not ConfigSchema.objects.exists()
    assert not AuditEntry.objects.filter(target_type="service").exists()


def test_a_refused_manifest_exits_1_with_the_portals_message_and_request_id(portalctl, tmp_path):
    path = write(tmp_path / "m.yaml", "services: [{name: lonely, team: nowhere}]")
    result = portalctl("apply", path)
    assert result.exit_code == 1
    assert "the portal refused (HTTP 422" in result.stderr
    assert "services[0].team" in result.stderr
    assert "request id: " in result.stderr
    assert not Service.objects.exists()


def test_a_manifest_stores_each_services_schema_and_values(portalctl, tmp_path):
    result = portalctl("apply", write(tmp_path / "m.yaml", WITH_CONFIG), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["config"]["checkout"] == {
        "schema_version": 1,
        "schema_changed": True,
        "version": 1,
        "changed": True,
    }
    version = ConfigVersion.objects.get(service__name="checkout")
    assert version.values["timeout"] == 30 and version.values["db_password"] != "hunter2"
    again = json.loads(portalctl("apply", write(tmp_path / "m.yaml", WITH_CONFIG), "--json").stdout)
    assert again["unchanged"] == ["checkout", "accounts"]
    assert again["config"]["checkout"]["changed"] is False


def test_a_bad_config_refuses_the_whole_manifest_naming_the_field(portalctl, tmp_path):
    bad = WITH_CONFIG.replace("timeout: 30", "timeout: 3000")
    result = portalctl("apply", write(tmp_path / "m.yaml", bad), "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["status"] == 422
    assert list(error["fields"]) == ["services[0].config.values.timeout"]
    assert error["request_id"]
    assert not Service.objects.exists() and not ConfigSchema.objects.exists()


def test_a_bad_schema_is_named_by_its_place_in_the_manifest(portalctl, tmp_path):
    bad = WITH_CONFIG.replace("timeout: int,", "timeout: integer-ish,")
    result = portalctl("apply", write(tmp_path / "m.yaml", bad))
    assert result.exit_code == 1
    assert "services[0].config.schema.field_types.timeout" in result.stderr
    assert not Service.objects.exists()


def test_a_config_in_a_manifest_needs_the_config_write_scope(portalctl, tmp_path, make_token):
    registry_only = make_token(["registry:read", "registry:write"]).secret
    path = write(tmp_path / "m.yaml", WITH_CONFIG)
    result = portalctl("apply", path, env={"PORTAL_TOKEN": registry_only})
    assert result.exit_code == 1
    assert "config:write" in result.stderr
    assert (
        portalctl(
            "apply", write(tmp_path / "n.yaml", MANIFEST), env={"PORTAL_TOKEN": registry_only}
        ).exit_code
        == 0
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["apply"], {}, "Missing argument"),
        (["apply", "/nonexistent.yaml"], {}, "cannot read"),
        (["apply", "m.yaml"], {"PORTAL_URL": ""}, "no portal address"),
        (["apply", "m.yaml"], {"PORTAL_TOKEN": ""}, "no token"),
        (["apply", "-"], {}, "not valid YAML"),
        (["deploy", "svc"], {}, "--version"),
        (["nosuch"], {}, "No such command"),
    ],
)
def test_bad_usage_exits_2(portalctl, tmp_path, monkeypatch, args, env, says):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "m.yaml", MANIFEST)
    result = portalctl(*args, env=env, input="services: [\n")
    assert result.exit_code == 2, result.output
    assert says in result.stderr
