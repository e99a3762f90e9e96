"""Rotating the encryption keys covers every encrypted column (configuration secrets and
check credentials alike), and a secret no key can read fails only its own check."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from healthchecks import checks
from healthchecks.engine import batches
from healthchecks.models import CheckResult, CheckState, HealthCheck
from healthchecks.status import ErrorCode, Status
from portal import encryption
from portal.auth import system_actor
from services import configs
from services.models import ConfigVersion
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, make_check

ACTOR = system_actor("test")


def use_keys(settings, *keys: bytes) -> None:
    settings.CONFIG_ENCRYPTION_KEYS = [key.decode() for key in keys]
    encryption.reset_keys()


@pytest.mark.django_db
def test_rotation_re_encrypts_every_column_and_the_old_key_can_go(settings, make_token):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    use_keys(settings, old)
    ServiceFactory(name="pay")
    configs.put_schema("pay", {"properties": {"pw": {"type": "string", "writeOnly": True}}}, ACTOR)
    configs.publish("pay", {"pw": "hunter2-config"}, 0, ACTOR)
    ops = ApiClient(make_token(["health:write", "registry:read"]).secret)
    body = {"kind": "http", "target": "http://127.0.0.1:9/", "headers": {"X-Key": "hunter2-hdr"}}
    assert ops.call("PUT", "/api/services/pay/checks/http", body).status_code == 201

    use_keys(settings, new, old)
    out = io.StringIO()
    call_command("rotate_config_secrets", stdout=out)
    assert "services.ConfigVersion.values: re-encrypted 1 row(s)." in out.getvalue()
    assert "healthchecks.HealthCheck.secrets: re-encrypted 1 row(s)." in out.getvalue()

    use_keys(settings, new)  # the old key is gone
    assert configs.reveal(ConfigVersion.objects.get())["pw"] == "hunter2-config"
    check = HealthCheck.objects.get()
    assert checks.read_secrets(check) == {"headers": {"X-Key": "hunter2-hdr"}}
    assert "hunter2" not in check.secrets


@pytest.mark.django_db(transaction=True)
def test_a_secret_no_key_reads_fails_its_own_check_not_its_batch(settings, httpserver):
    httpserver.expect_request("/ok").respond_with_data("fine")
    service = ServiceFactory()
    good = make_check(service, name="good", target=httpserver.url_for("/ok"))
    lost = make_check(service, name="lost", target=httpserver.url_for("/ok"))
    stranger = Fernet(Fernet.generate_key())  # a key the portal does not have
    HealthCheck.objects.filter(pk=lost.pk).update(secrets=stranger.encrypt(b"{}").decode())
    due = timezone.now().isoformat()
    stats = batches.run_batch([(good.pk, due), (lost.pk, due)])
    assert stats["probed"] == 1 and stats["unreadable"] == 1
    assert CheckState.objects.get(health_check=good).status == Status.HEALTHY
    result = CheckResult.objects.get(health_check=lost)
    assert (result.status, result.error_code) == (Status.UNKNOWN, ErrorCode.INTERNAL)
    state = CheckState.objects.get(health_check=lost)
    assert "cannot be decrypted" in state.last_outcome["errors"][0]
