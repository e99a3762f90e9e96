"""Configuration versions: validation levels, concurrency, secrets, diff, rollback, drift."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from portal import encryption
from portal.auth import system_actor
from portal.errors import Conflict, InvalidInput, Misconfigured, NotFound
from portal.models import AuditEntry
from services import configs, deployments
from services.models import ConfigVersion
from tests.factories import SEED_SCHEMA, ServiceFactory

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")
SECRET_SCHEMA = {
    "type": "object",
    "required": ["host"],
    "properties": {
        "host": {"type": "string"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5432},
        "password": {"type": "string", "writeOnly": True, "minLength": 8},
        "replicas": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "host": {"type": "string"},
                    "token": {"type": "string", "writeOnly": True},
                },
            },
        },
    },
}


@pytest.fixture
def legacy():
    ServiceFactory(name="legacy-service")
    configs.put_schema("legacy-service", SEED_SCHEMA, ACTOR)
    return "legacy-service"


@pytest.fixture
def db_service():
    ServiceFactory(name="db")
    configs.put_schema("db", SECRET_SCHEMA, ACTOR)
    return "db"


def test_the_seed_config_is_stored_with_defaults_merged(legacy):
    outcome = configs.publish(legacy, {"api_timeout": 60}, 0, ACTOR, comment="first")
    assert outcome.stored and outcome.version.version == 1
    doc = configs.read(legacy, None, reveal_secrets=False, actor=ACTOR)
    assert doc["values"] == {
        "rag_database_url": "sqlite:///app.db",
        "api_timeout": 60,
        "max_retries": 3,
        "enable_caching": True,
        "log_level": "INFO",
    }
    assert doc["valid"] is True and doc["version"] == 1 and doc["comment"] == "first"
    assert doc["author"] == "system:test" and len(doc["hash"]) == 64


@pytest.mark.parametrize(
    ("values", "field", "reason"),
    [
        ({"api_timeout": "60"}, "values.api_timeout", "is not of type 'integer'"),
        ({"api_timeout": 500}, "values.api_timeout", "maximum of 300"),
        ({"log_level": "TRACE"}, "values.log_level", "is not one of"),
        ({"unknown_knob": 1}, "values.unknown_knob", "unknown field"),
        ({"max_retries": -1}, "values.max_retries", "minimum of 0"),
    ],
)
def test_strict_refuses_each_violation_with_the_field(legacy, values, field, reason):
    with pytest.raises(InvalidInput) as caught:
        configs.publish(legacy, values, 0, ACTOR)
    assert reason in caught.value.fields[field]
    assert not ConfigVersion.objects.exists()


def test_a_missing_required_field_without_default_is_named():
    ServiceFactory(name="api")
    configs.put_schema(
        "api",
        {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}},
        ACTOR,
    )
    with pytest.raises(InvalidInput) as caught:
        configs.publish("api", {}, 0, ACTOR)
    assert caught.value.fields == {"values.url": "required field missing"}


def test_lenient_stores_marks_invalid_and_warns(legacy, settings):
    settings.SERVICE_CONFIG_VALIDATION_LEVEL = "lenient"
    outcome = configs.publish(legacy, {"api_timeout": 0}, 0, ACTOR)
    assert outcome.stored and outcome.validation.valid is False
    assert "values.api_timeout" in outcome.validation.issues
    doc = configs.read(legacy, None, reveal_secrets=False, actor=ACTOR)
    assert doc["valid"] is False and "values.api_timeout" in doc["issues"]


def test_off_stores_without_checking_and_a_service_can_override_the_level(legacy):
    configs.get_service(legacy).__class__.objects.filter(name=legacy).update(
        config_validation_level="off"
    )
    outcome = configs.publish(legacy, {"api_timeout": "not a number"}, 0, ACTOR)
    assert outcome.stored and outcome.validation.valid is None and outcome.level == "off"


def test_a_stale_base_version_is_refused_with_the_current_number(legacy):
    configs.publish(legacy, {"api_timeout": 10}, 0, ACTOR)
    configs.publish(legacy, {"api_timeout": 20}, 1, ACTOR)
    with pytest.raises(Conflict) as caught:
        configs.publish(legacy, {"api_timeout": 30}, 1, ACTOR)
    assert caught.value.code == "stale_version"
    assert caught.value.extra["current_version"] == 2
    assert ConfigVersion.objects.count() == 2


def test_the_same_content_again_stores_nothing(legacy):
    configs.publish(legacy, {"api_timeout": 10}, 0, ACTOR)
    again = configs.publish(legacy, {"api_timeout": 10, "max_retries": 3}, 1, ACTOR)
    assert not again.changed and not again.stored and again.version.version == 1


def test_secrets_are_encrypted_at_rest_and_masked_on_read(db_service):
    configs.publish(
        db_service,
        {
            "host": "db1",
            "password": "hunter2-long",
            "replicas": [{"host": "r1", "token": "tok-abc-123"}],
        },
        0,
        ACTOR,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT values::text FROM services_configversion")
        stored = cursor.fetchone()[0]
    assert "hunter2-long" not in stored and "tok-abc-123" not in stored and "db1" in stored
    masked = configs.read(db_service, None, reveal_secrets=False, actor=ACTOR)
    assert masked["values"]["password"] == configs.MASK
    assert masked["values"]["replicas"] == [{"host": "r1", "token": configs.MASK}]
    assert masked["secrets_masked"] is True
    assert not AuditEntry.objects.filter(action="config.secrets_read").exists()
    clear = configs.read(db_service, None, reveal_secrets=True, actor=ACTOR)
    assert clear["values"]["password"] == "hunter2-long"
    assert clear["values"]["replicas"][0]["token"] == "tok-abc-123"
    assert AuditEntry.objects.filter(action="config.secrets_read", target="db").count() == 1


def test_a_masked_secret_sent_back_keeps_the_stored_one(db_service):
    configs.publish(db_service, {"host": "db1", "password": "hunter2-long"}, 0, ACTOR)
    masked = configs.read(db_service, None, reveal_secrets=False, actor=ACTOR)["values"]
    outcome = configs.publish(db_service, {**masked, "host": "db2"}, 1, ACTOR)
    assert outcome.version.version == 2
    assert configs.reveal(outcome.version)["password"] == "hunter2-long"


def test_a_mask_with_no_stored_secret_is_refused(db_service):
    with pytest.raises(InvalidInput) as caught:
        configs.publish(db_service, {"host": "db1", "password": configs.MASK}, 0, ACTOR)
    assert "values.password" in caught.value.fields


def test_validation_errors_never_quote_a_secret(db_service):
    with pytest.raises(InvalidInput) as caught:
        configs.publish(db_service, {"host": "db1", "password": "short"}, 0, ACTOR)
    reason = caught.value.fields["values.password"]
    assert "short" not in reason and "minLength" in reason


def test_diff_names_added_removed_changed_and_hides_secrets(db_service):
    configs.publish(db_service, {"host": "db1", "password": "hunter2-long"}, 0, ACTOR)
    configs.publish(
        db_service,
        {"host": "db2", "port": 6432, "password": "other-secret", "replicas": []},
        1,
        ACTOR,
    )
    result = configs.diff(db_service, 1, 2)
    assert result["added"] == [{"path": "replicas", "value": []}]
    assert result["removed"] == []
    assert {"path": "password", "secret": True} in result["changed"]
    assert {"path": "host", "old": "db1", "new": "db2"} in result["changed"]
    assert {"path": "port", "old": 5432, "new": 6432} in result["changed"]
    assert "hunter2" not in json.dumps(result) and "other-secret" not in json.dumps(result)


def test_diff_of_nested_objects_is_by_leaf():
    old = {"db": {"host": "a", "port": 1}, "gone": True}
    new = {"db": {"host": "b", "port": 1, "ssl": True}}
    result = configs.diff_documents(old, new, [])
    assert result == {
        "added": [{"path": "db.ssl", "value": True}],
        "removed": [{"path": "gone", "value": True}],
        "changed": [{"path": "db.host", "old": "a", "new": "b"}],
    }


def test_rollback_makes_a_new_version_equal_to_an_old_one(db_service):
    configs.publish(db_service, {"host": "db1", "password": "hunter2-long"}, 0, ACTOR)
    configs.publish(db_service, {"host": "db2", "password": "other-secret"}, 1, ACTOR)
    outcome = configs.rollback(db_service, 1, ACTOR)
    assert outcome.version.version == 3 and outcome.version.rolled_back_from == 1
    assert configs.reveal(outcome.version) == configs.reveal(ConfigVersion.objects.get(version=1))
    assert outcome.version.content_hash == ConfigVersion.objects.get(version=1).content_hash
    assert AuditEntry.objects.filter(action="config.rollback").count() == 1
    with pytest.raises(NotFound):
        configs.rollback(db_service, 9, ACTOR)
    with pytest.raises(Conflict):
        configs.rollback(db_service, 1, ACTOR, base_version=2)


def test_a_new_schema_says_whether_the_current_config_still_passes(legacy):
    configs.publish(legacy, {"api_timeout": 200}, 0, ACTOR)
    tighter = {
        **SEED_SCHEMA,
        "validation_rules": {
            **SEED_SCHEMA["validation_rules"],
            "api_timeout": {"min": 1, "max": 100},
        },
    }
    report = configs.put_schema(legacy, tighter, ACTOR)
    assert report["version"] == 2 and report["changed"]
    assert report["current_config"]["valid"] is False
    assert "values.api_timeout" in report["current_config"]["issues"]
    doc = configs.read(legacy, None, reveal_secrets=False, actor=ACTOR)
    assert doc["valid"] is False and doc["current_schema_version"] == 2
    same = configs.put_schema(legacy, tighter, ACTOR)
    assert not same["changed"] and same["version"] == 2


def test_drift_compares_the_deployed_configuration_with_the_current_one(legacy):
    configs.publish(legacy, {"api_timeout": 10}, 0, ACTOR)
    service = configs.get_service(legacy)
    assert deployments.drift(service)["state"] == "unknown"
    deployments.report(
        legacy,
        version="1.0",
        status="succeeded",
        config_version=1,
        config_hash="",
        link="",
        actor=ACTOR,
    )
    assert deployments.drift(service)["state"] == "in_sync"
    assert deployments.drifting_services() == []
    configs.publish(legacy, {"api_timeout": 20}, 1, ACTOR)
    state = deployments.drift(service)
    assert state["drifting"] and state["applied_version"] == 1 and state["current_version"] == 2
    assert [r["service"] for r in deployments.drifting_services()] == [legacy]
    configs.rollback(legacy, 1, ACTOR)  # identical content again: no drift
    assert deployments.drift(service)["state"] == "in_sync"
    service.refresh_from_db()
    assert service.deployed_version == "1.0"


def test_a_deployment_naming_an_unknown_config_version_is_refused(legacy):
    with pytest.raises(InvalidInput) as caught:
        deployments.report(
            legacy,
            version="1.0",
            status="succeeded",
            config_version=4,
            config_hash="",
            link="",
            actor=ACTOR,
        )
    assert "config_version" in caught.value.fields


def test_keys_rotate_without_losing_secrets(db_service, settings):
    configs.publish(db_service, {"host": "db1", "password": "hunter2-long"}, 0, ACTOR)
    old_token = ConfigVersion.objects.get().values["password"]
    new_key = Fernet.generate_key()
    settings.CONFIG_ENCRYPTION_KEYS = [new_key.decode()]
    encryption.reset_keys()
    try:
        call_command("rotate_config_secrets", stdout=io.StringIO())
        version = ConfigVersion.objects.get()
        assert version.values["password"] != old_token
        # now readable with the new key alone
        assert (
            json.loads(Fernet(new_key).decrypt(version.values["password"].encode()))
            == "hunter2-long"
        )
        assert configs.reveal(version)["password"] == "hunter2-long"
    finally:
        settings.CONFIG_ENCRYPTION_KEYS = []
        encryption.reset_keys()


def test_a_secret_under_a_lost_key_is_a_clear_server_error(db_service, settings):
    configs.publish(db_service, {"host": "db1", "password": "hunter2-long"}, 0, ACTOR)
    settings.SECRET_KEY = "another-secret-key-than-the-one-the-secret-was-encrypted-with-0123"
    encryption.reset_keys()
    with pytest.raises(Misconfigured) as caught:
        configs.read(db_service, None, reveal_secrets=True, actor=ACTOR)
    assert caught.value.code == "secret_unreadable" and caught.value.status == 500


def test_a_masked_read_written_back_after_the_schema_stopped_calling_it_secret_keeps_it():
    """A reader without config:secrets reads the mask and writes it back: once the schema no
    longer marked the leaf secret, the mask itself was stored, "********" in clear, and the
    secret lost (issue 19's breaking trial)."""
    ServiceFactory(name="shop")
    n = {"type": "integer"}
    secret = {
        "type": "object",
        "properties": {"token": {"type": "string", "writeOnly": True}, "n": n},
    }
    configs.put_schema("shop", secret, ACTOR)
    configs.publish("shop", {"token": "s3cret-value", "n": 1}, 0, ACTOR)
    plain = {"type": "object", "properties": {"token": {"type": "string"}, "n": n}}
    configs.put_schema("shop", plain, ACTOR)
    read = configs.read("shop", None, reveal_secrets=False, actor=ACTOR)["values"]
    assert read["token"] == configs.MASK
    configs.publish("shop", {**read, "n": 2}, 1, ACTOR)
    latest = ConfigVersion.objects.get(service__name="shop", version=2)
    assert configs.reveal(latest) == {"token": "s3cret-value", "n": 2}
    assert "s3cret-value" not in json.dumps(latest.values)  # still encrypted at rest
    # A real value sent for the leaf the schema no longer calls secret is stored as the
    # schema now says: in clear.
    configs.publish("shop", {"token": "plain-now", "n": 2}, 2, ACTOR)
    assert ConfigVersion.objects.get(service__name="shop", version=3).values["token"] == "plain-now"
