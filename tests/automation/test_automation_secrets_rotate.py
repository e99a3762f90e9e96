"""Rules act through deliveries (docs/decisions.md): a webhook's headers are secrets, encrypted
in the rule in one column registered for key rotation, as a channel's URL is. Rotating the
keys (`manage.py rotate_config_secrets`) re-encrypts both; with the old key gone the rule's
webhook is still called with its header and the channel still reaches its receiver -- through
the real engine, the automation, a webhook server and an apprise receiver."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from automation.models import NotificationChannel, Rule
from portal import encryption
from tests.automation.conftest import channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True)]


def use_keys(settings, *keys: bytes) -> None:
    settings.CONFIG_ENCRYPTION_KEYS = [key.decode() for key in keys]
    encryption.reset_keys()


def test_rule_and_channel_secrets_are_rotated_and_still_work(
    settings, db_estate, webhook, receiver, automation
):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    use_keys(settings, old)
    channel("ops", receiver.url)
    rule = {
        "trigger": "down",
        "scope": {"services": ["db"]},
        "actions": [{"type": "webhook", "url": webhook.url, "headers": {"X-Token": "s3cret"}}],
    }
    assert automation.call("put", "/api/automation/rules/restart-db", rule).status_code == 201
    sealed = (Rule.objects.get().secrets, NotificationChannel.objects.get().url)

    use_keys(settings, new, old)
    out = io.StringIO()
    call_command("rotate_config_secrets", stdout=out)
    assert "automation.Rule.secrets: re-encrypted 1 row(s)." in out.getvalue()
    assert "automation.NotificationChannel.url: re-encrypted 1 row(s)." in out.getvalue()
    assert (Rule.objects.get().secrets, NotificationChannel.objects.get().url) != sealed

    use_keys(settings, new)  # the old key is gone
    db_estate.down("db")
    process()
    send_later()
    (call,) = webhook.calls
    assert call["headers"]["X-Token"] == "s3cret"
    assert receiver.titles() == ["[DOWN] db"]
