import json

import pytest
from django.core.management import CommandError, call_command

from healthchecks.models import HealthCheck
from portal import tokens
from portal.models import ApiToken
from services import deployments
from services.models import Dependency, Service

pytestmark = pytest.mark.django_db
MANIFEST = "tests/fixtures/manifest.yaml"


def test_create_api_token_prints_the_secret_alone_on_the_last_line(capsys):
    call_command(
        "create_api_token",
        "deploy",
        "--scopes",
        "registry:read,registry:write",
        "--services",
        "web,api",
        "--expires-days",
        "30",
    )
    out = capsys.readouterr()
    secret = out.out.strip().splitlines()[-1]
    token = ApiToken.objects.get(name="deploy")
    assert tokens.find_token(secret) == token
    assert token.scopes == ["registry:read", "registry:write"]
    assert token.services == ["api", "web"]
    assert token.expires_at is not None
    assert secret not in out.err


def test_create_api_token_refuses_a_bad_scope():
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_token", "x", "--scopes", "registry:read,everything")
    assert not ApiToken.objects.exists()


def test_apply_manifest_reads_yaml_and_is_idempotent(capsys):
    call_command("apply_manifest", MANIFEST)
    first = json.loads(capsys.readouterr().out)
    assert first["created"] == ["payments", "auth", "ledger-db"]
    assert Dependency.objects.filter(service__name="payments").count() == 2
    call_command("apply_manifest", MANIFEST)
    assert json.loads(capsys.readouterr().out)["unchanged"] == ["payments", "auth", "ledger-db"]


def test_apply_manifest_reports_bad_files(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("services: [\n")
    with pytest.raises(CommandError, match="not valid YAML"):
        call_command("apply_manifest", str(bad_yaml))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("services:\n  - name: Bad_Name\n    team: core\n")
    with pytest.raises(CommandError, match=r"services\[0\]\.name"):
        call_command("apply_manifest", str(wrong))
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "teams: [{name: t}]\nservices:\n  - {name: a, team: t, dependencies: [b]}\n"
        "  - {name: b, team: t, dependencies: [a]}\n"
    )
    with pytest.raises(CommandError, match="dependency cycle: a -> b -> a"):
        call_command("apply_manifest", str(cycle))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("apply_manifest", str(tmp_path / "missing.yaml"))
    assert not Service.objects.exists()


def test_load_demo_is_idempotent(capsys, settings):
    settings.DEBUG = True
    call_command("load_demo")
    count = Service.objects.count()
    assert count >= 5
    assert Service.objects.filter(lifecycle_status="running").exists()
    assert HealthCheck.objects.filter(service__name="payments", kind="heartbeat").exists()
    assert HealthCheck.objects.get(service__name="notifications").target.endswith("/demo/down")
    payments = Service.objects.get(name="payments")
    assert payments.config_versions.count() == 2
    assert deployments.drift(payments)["state"] == "drifting"
    call_command("load_demo")
    assert Service.objects.count() == count
    assert "0 new" in capsys.readouterr().out
