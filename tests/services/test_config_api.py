"""The configuration API as a pipeline uses it."""

import logging
import subprocess
import threading

import pytest
from django.db import connection

from portal.auth import system_actor
from portal.errors import Conflict
from services import configs
from services.models import ConfigSchema, ConfigVersion
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory, seed_schema_with_secret

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-pa55word!"


@pytest.fixture
def svc():
    ServiceFactory(name="legacy-service")
    return "/api/services/legacy-service/config"


@pytest.fixture
def pipeline(make_token):
    return ApiClient(
        make_token(["config:read", "config:write", "registry:read", "registry:write"]).secret
    )


@pytest.fixture
def vault(make_token):
    return ApiClient(make_token(["config:read", "config:secrets"]).secret)


def with_secret_schema(pipeline, svc):
    schema = seed_schema_with_secret()
    assert pipeline.call("PUT", f"{svc}/schema", schema).status_code == 201


def test_the_seed_schema_and_config_through_the_api(pipeline, svc):
    res = pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    assert res.status_code == 201
    assert res.json()["version"] == 1 and res.json()["source_format"] == "seed"
    assert pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA).status_code == 200  # unchanged
    res = pipeline.call(
        "POST", svc, {"values": {"api_timeout": 45}, "base_version": 0, "comment": "initial"}
    )
    assert res.status_code == 201
    assert res.json()["version"] == 1 and res.json()["valid"] is True
    body = pipeline.call("GET", svc).json()
    assert body["version"] == 1 and body["valid"] is True
    assert body["values"]["api_timeout"] == 45 and body["values"]["log_level"] == "INFO"
    schema = pipeline.call("GET", f"{svc}/schema").json()
    assert schema["schema"]["properties"]["api_timeout"]["maximum"] == 300
    assert schema["source"] == SEED_SCHEMA


def test_a_bad_value_is_422_naming_the_field_and_stores_nothing(pipeline, svc):
    pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    res = pipeline.call(
        "POST",
        svc,
        {"values": {"api_timeout": 0, "log_level": "LOUD", "colour": "red"}, "base_version": 0},
    )
    assert res.status_code == 422
    fields = res.json()["error"]["fields"]
    assert set(fields) == {"values.api_timeout", "values.log_level", "values.colour"}
    assert not ConfigVersion.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"values": [], "base_version": 0}, "values"),
        ({"values": {}, "base_version": -1}, "base_version"),
        ({"values": {}}, "base_version"),
        ({"values": {}, "base_version": 0, "extra": 1}, "extra"),
    ],
)
def test_a_malformed_write_is_422(pipeline, svc, body, field):
    res = pipeline.call("POST", svc, body)
    assert res.status_code == 422 and field in res.json()["error"]["fields"]


def test_bad_schemas_are_422_with_where(pipeline, svc):
    res = pipeline.call("PUT", f"{svc}/schema", {"field_types": {"port": "integer"}})
    assert res.status_code == 422
    assert "field_types.port" in res.json()["error"]["fields"]
    res = pipeline.call(
        "PUT", f"{svc}/schema", {"type": "object", "properties": {"a": {"type": 5}}}
    )
    assert res.status_code == 422 and "properties.a.type" in res.json()["error"]["fields"]
    assert not ConfigSchema.objects.exists()


def test_unknown_service_and_missing_versions_are_404(pipeline, svc):
    assert pipeline.call("GET", "/api/services/ghost/config").status_code == 404
    assert (
        pipeline.call(
            "POST", "/api/services/ghost/config", {"values": {}, "base_version": 0}
        ).status_code
        == 404
    )
    pipeline.call("POST", svc, {"values": {"a": 1}, "base_version": 0})
    assert pipeline.call("GET", f"{svc}?version=7").status_code == 404
    res = pipeline.call("POST", f"{svc}/rollback", {"to_version": 7})
    assert res.status_code == 404 and res.json()["error"]["code"] == "no_such_version"


def test_before_any_version_the_schema_defaults_are_version_0(pipeline, svc):
    """As the seed's config manager does: a service with nothing stored gets its schema's
    defaults, marked as such."""
    res = pipeline.call("GET", svc)
    assert res.status_code == 200
    assert res.json()["version"] == 0 and res.json()["defaults_only"] is True
    assert res.json()["values"] == {} and res.json()["valid"] is None
    pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    document = pipeline.call("GET", svc).json()
    assert document["values"] == {
        "rag_database_url": "sqlite:///app.db",
        "api_timeout": 30,
        "max_retries": 3,
        "enable_caching": True,
        "log_level": "INFO",
    }
    assert document["valid"] is True and document["schema_version"] == 1
    env = pipeline.call("GET", f"{svc}?format=env")
    assert env["X-Config-Version"] == "0" and "API_TIMEOUT='30'" in env.content.decode()
    pipeline.call("POST", svc, {"values": {"api_timeout": 5}, "base_version": 0})
    assert pipeline.call("GET", svc).json()["version"] == 1
    assert pipeline.call("GET", f"{svc}?version=0").json()["defaults_only"] is True


def test_the_env_format_lists_keys_in_sorted_order(pipeline, svc):
    """jsonb keeps keys in its own order (shorter first): the file must not depend on it."""
    values = {"timeout": 30, "currency": "EUR", "db": {"port": 5432, "host": "x"}}
    pipeline.call("POST", svc, {"values": values, "base_version": 0})
    text = pipeline.call("GET", f"{svc}?format=env").content.decode()
    assert text.splitlines() == ["CURRENCY='EUR'", "DB_HOST='x'", "DB_PORT='5432'", "TIMEOUT='30'"]


def test_validate_needs_no_base_version_but_checks_one_given(pipeline, svc):
    pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    res = pipeline.call("POST", f"{svc}/validate", {"values": {"api_timeout": 5}})
    assert res.status_code == 200 and res.json()["valid"] is True
    assert not ConfigVersion.objects.exists()
    stale = pipeline.call("POST", f"{svc}/validate", {"values": {}, "base_version": 3})
    assert stale.status_code == 409
    assert pipeline.call("POST", svc, {"values": {}}).status_code == 422  # storing needs it


def test_a_version_stored_at_level_off_is_judged_once_checking_is_back(pipeline, svc, settings):
    pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    settings.SERVICE_CONFIG_VALIDATION_LEVEL = "off"
    stored = pipeline.call("POST", svc, {"values": {"api_timeout": "soon"}, "base_version": 0})
    assert stored.status_code == 201 and stored.json()["valid"] is None
    assert pipeline.call("GET", svc).json()["valid"] is None  # still off: not judged
    settings.SERVICE_CONFIG_VALIDATION_LEVEL = "strict"
    document = pipeline.call("GET", svc).json()
    assert document["valid"] is False
    assert "values.api_timeout" in document["issues"]


def test_an_oversized_document_is_413(pipeline, svc, settings):
    settings.CONFIG_MAX_BYTES = 1024
    res = pipeline.call("POST", svc, {"values": {"blob": "x" * 2000}, "base_version": 0})
    assert res.status_code == 413 and res.json()["error"]["limit"] == 1024
    assert not ConfigVersion.objects.exists()


def test_a_stale_write_is_409_with_the_current_version(pipeline, svc):
    pipeline.call("POST", svc, {"values": {"a": 1}, "base_version": 0})
    pipeline.call("POST", svc, {"values": {"a": 2}, "base_version": 1})
    res = pipeline.call("POST", svc, {"values": {"a": 3}, "base_version": 1})
    assert res.status_code == 409
    error = res.json()["error"]
    assert error["code"] == "stale_version" and error["current_version"] == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_edits_from_one_base_one_wins_one_gets_409():
    ServiceFactory(name="race")
    barrier, results = threading.Barrier(2), []

    def edit(value):
        barrier.wait()
        try:
            configs.publish("race", {"who": value}, 0, system_actor(value))
            results.append("won")
        except Conflict as exc:
            results.append(exc.extra["current_version"])
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [1, "won"]
    assert ConfigVersion.objects.filter(service__name="race").count() == 1


def test_validate_is_a_dry_run(pipeline, svc):
    pipeline.call("PUT", f"{svc}/schema", SEED_SCHEMA)
    ok = pipeline.call("POST", f"{svc}/validate", {"values": {"api_timeout": 5}, "base_version": 0})
    assert ok.status_code == 200 and ok.json()["valid"] is True and not ok.json()["stored"]
    bad = pipeline.call(
        "POST", f"{svc}/validate", {"values": {"api_timeout": 999}, "base_version": 0}
    )
    assert bad.status_code == 422 and "values.api_timeout" in bad.json()["error"]["fields"]
    assert not ConfigVersion.objects.exists()


def test_a_secret_never_appears_in_output_or_logs(pipeline, vault, svc, caplog):
    caplog.set_level(logging.DEBUG)
    with_secret_schema(pipeline, svc)
    res = pipeline.call(
        "POST", svc, {"values": {"api_timeout": 5, "db_password": SECRET}, "base_version": 0}
    )
    assert res.status_code == 201
    for path in (
        "",
        "?format=env",
        "/versions/1",
        "/diff?from_version=1&to_version=1",
        "/versions",
    ):
        out = pipeline.call("GET", f"{svc}{path}")
        assert out.status_code == 200, path
        assert SECRET not in out.content.decode(), path
    pipeline.call(
        "POST", svc, {"values": {"api_timeout": 6, "db_password": "x"}, "base_version": 1}
    )
    assert SECRET not in pipeline.call("GET", f"{svc}/diff").content.decode()
    assert pipeline.call("GET", svc).json()["values"]["db_password"] == configs.MASK
    assert vault.call("GET", f"{svc}?version=1").json()["values"]["db_password"] == SECRET
    everything_logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in everything_logged


def test_a_pipeline_sources_the_env_format_in_a_shell(pipeline, vault, svc, tmp_path):
    with_secret_schema(pipeline, svc)
    tricky = 'it\'s $(touch pwned) `x` "q"\nline2'
    schema = {
        "type": "object",
        "properties": {
            "rag_database_url": {"type": "string"},
            "db_password": {"type": "string", "writeOnly": True},
            "nested": {"type": "object"},
            "tricky": {"type": "string"},
        },
    }
    pipeline.call("PUT", f"{svc}/schema", schema)
    pipeline.call(
        "POST",
        svc,
        {
            "values": {
                "rag_database_url": "postgres://x",
                "db_password": SECRET,
                "tricky": tricky,
                "nested": {"port": 5432, "flags": ["a", "b"], "on": True},
            },
            "base_version": 0,
        },
    )
    masked = pipeline.call("GET", f"{svc}?format=env")
    assert masked["Content-Type"].startswith("text/plain")
    assert masked["X-Config-Version"] == "1"
    assert "DB_PASSWORD omitted" in masked.content.decode()
    revealed = vault.call("GET", f"{svc}?format=env&prefix=APP_")
    env_file = tmp_path / "config.env"
    env_file.write_bytes(revealed.content)
    script = (
        'set -a; . "$1"; printf "%s\\n---\\n" "$APP_RAG_DATABASE_URL" "$APP_DB_PASSWORD" '
        '"$APP_TRICKY" "$APP_NESTED_PORT" "$APP_NESTED_FLAGS" "$APP_NESTED_ON"'
    )
    out = subprocess.run(
        ["bash", "-c", script, "sh", str(env_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split("\n---\n")[:6] == ["postgres://x", SECRET, tricky, "5432", '["a","b"]', "true"]
    assert not (tmp_path / "pwned").exists()


def test_rollback_and_diff_through_the_api(pipeline, svc):
    pipeline.call("POST", svc, {"values": {"a": 1, "b": {"c": 2}}, "base_version": 0})
    pipeline.call("POST", svc, {"values": {"a": 1, "b": {"c": 3}, "d": 4}, "base_version": 1})
    diff = pipeline.call("GET", f"{svc}/diff").json()
    assert diff["from_version"] == 1 and diff["to_version"] == 2
    assert diff["changed"] == [{"path": "b.c", "old": 2, "new": 3, "secret": False, "value": None}]
    assert [a["path"] for a in diff["added"]] == ["d"]
    res = pipeline.call("POST", f"{svc}/rollback", {"to_version": 1})
    assert res.status_code == 201 and res.json()["version"] == 3
    assert pipeline.call("GET", svc).json()["values"] == {"a": 1, "b": {"c": 2}}
    versions = pipeline.call("GET", f"{svc}/versions").json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["rolled_back_from"] == 1


def test_deployments_and_drift(pipeline, svc):
    pipeline.call("POST", svc, {"values": {"a": 1}, "base_version": 0})
    res = pipeline.call(
        "POST",
        "/api/services/legacy-service/deployments",
        {"version": "2.0.1", "config_version": 1, "link": "https://ci.example/run/1"},
    )
    assert res.status_code == 201 and res.json()["config_hash"]
    drift = pipeline.call("GET", f"{svc}/drift").json()
    assert drift["state"] == "in_sync"
    pipeline.call("POST", svc, {"values": {"a": 2}, "base_version": 1})
    drift = pipeline.call("GET", f"{svc}/drift").json()
    assert drift["drifting"] and drift["applied_version"] == 1 and drift["current_version"] == 2
    listing = pipeline.call("GET", "/api/config/drift").json()
    assert [d["service"] for d in listing] == ["legacy-service"]
    assert (
        pipeline.call("GET", "/api/services/legacy-service").json()["deployed_version"] == "2.0.1"
    )
    deploys = pipeline.call("GET", "/api/services/legacy-service/deployments").json()
    assert deploys[0]["link"] == "https://ci.example/run/1"
    bad = pipeline.call(
        "POST", "/api/services/legacy-service/deployments", {"version": "", "status": "exploded"}
    )
    assert bad.status_code == 422 and {"version", "status"} <= set(bad.json()["error"]["fields"])


def test_config_scopes_are_enforced(make_token, svc):
    reader = ApiClient(make_token(["config:read"]).secret)
    assert reader.call("POST", svc, {"values": {}, "base_version": 0}).status_code == 403
    assert reader.call("PUT", f"{svc}/schema", SEED_SCHEMA).status_code == 403
    registry_only = ApiClient(make_token(["registry:read"]).secret)
    assert registry_only.call("GET", svc).status_code == 403


def test_a_missing_field_is_named_once_when_an_unknown_one_is_there_too(pipeline, svc):
    """A stranger's trial: with an unknown key beside them, each missing required field was
    reported twice ("required field missing; required field missing")."""
    schema = {
        "required_fields": ["currency", "timeout"],
        "optional_fields": ["log_level"],
        "field_types": {"currency": "str", "timeout": "int", "log_level": "str"},
        "field_defaults": {"log_level": "INFO"},
        "validation_rules": {"timeout": {"min": 1, "max": 300}},
    }
    assert pipeline.call("PUT", f"{svc}/schema", schema).status_code == 201
    answer = pipeline.call("POST", f"{svc}/validate", {"values": {"a": 1}}).json()
    fields = answer["error"]["fields"]
    assert fields["values.currency"] == "required field missing"
    assert fields["values.timeout"] == "required field missing"


# --- Importing dotenv text: dialects (issue 28, item 6) -------------------------------------

DOCKER_STYLE = 'LEGACY_FLAGS=["a","b"]\nLEGACY_NAME=hello world  # note\n'


def test_a_docker_style_file_is_read_as_docker_reads_it(pipeline, svc):
    """`LEGACY_FLAGS=["a","b"]` was stored as the string `[a,b]` (shell quoting), where
    python-dotenv and `docker --env-file` read `["a","b"]`. Plain KEY=value text is read as
    docker reads it by default now, and the answer says so."""
    res = pipeline.call("POST", f"{svc}/import", {"dotenv": DOCKER_STYLE, "prefix": "LEGACY_"})
    assert res.status_code == 201, res.json()
    body = res.json()
    assert body["dialect"] == "docker"
    assert body["types"] == {"flags": "array", "name": "string"}
    assert ConfigVersion.objects.get().values == {
        "flags": ["a", "b"],
        "name": "hello world  # note",
    }
    # What other readers would take otherwise is named: no value in it (it may be a secret).
    assert body["parse_warnings"] == [
        {
            "key": "LEGACY_NAME",
            "line": 2,
            "reason": "' #' and what follows are part of the value (docker reads a line "
            "literally; a shell or compose would drop them as a comment)",
        }
    ]


def test_the_shell_dialect_warns_of_each_value_it_changed(pipeline, svc):
    res = pipeline.call(
        "POST", f"{svc}/import", {"dotenv": DOCKER_STYLE, "prefix": "LEGACY_", "dialect": "shell"}
    )
    assert res.status_code == 201, res.json()
    body = res.json()
    assert body["dialect"] == "shell"
    assert ConfigVersion.objects.get().values == {"flags": "[a,b]", "name": "hello world"}
    reasons = {(w["key"], w["line"]): w["reason"] for w in body["parse_warnings"]}
    assert reasons == {
        ("LEGACY_FLAGS", 1): "quotes inside the value were removed (shell quoting); import "
        "with dialect docker to keep them as written",
        ("LEGACY_NAME", 2): "text after ' #' was dropped as a comment (shell rules)",
    }


def test_auto_reads_the_portals_own_export_as_shell_without_warnings(pipeline, vault, svc):
    """The portal's `?format=env` quotes every value the shell way: `auto` sees the quotes
    and reads it back to the same document, with nothing to warn of."""
    values = {"flags": ["a", "b"], "quote": "it's $HOME", "note": "a # b", "n": 3}
    assert pipeline.call("POST", svc, {"values": values, "base_version": 0}).status_code == 201
    exported = vault.call("GET", f"{svc}?format=env").content.decode()
    assert 'FLAGS=\'["a","b"]\'' in exported
    res = pipeline.call("POST", f"{svc}/import", {"dotenv": exported, "dry_run": True})
    assert res.status_code == 200, res.json()
    assert (res.json()["dialect"], res.json()["parse_warnings"]) == ("shell", [])
    assert res.json()["changed"] is False  # the same document as version 1


ALONE = (
    "a name alone: docker takes its value from the environment docker runs in, which an "
    "import does not have; write KEY=value"
)


@pytest.mark.parametrize(
    ("dotenv", "dialect", "fields"),
    [
        ("A=1\nLEGACY_FLAGS\n", "docker", {"dotenv:2": ALONE}),
        ("A=1\nLEGACY_FLAGS\n", "auto", {"dotenv:2": ALONE}),
        ("A =1\n", "docker", {"dotenv:1": "space before '=': docker reads KEY=value as written"}),
        ("export A=1\n", "docker", {"dotenv:1": "not a KEY=value line"}),
        ("A='open\n", "shell", {"dotenv:1": "unterminated ' quote (to the end of the file)"}),
    ],
)
def test_a_line_the_dialect_cannot_read_is_422_naming_it(pipeline, svc, dotenv, dialect, fields):
    res = pipeline.call("POST", f"{svc}/import", {"dotenv": dotenv, "dialect": dialect})
    assert res.status_code == 422
    assert res.json()["error"]["fields"] == fields
    assert not ConfigVersion.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dotenv": "A=1\n", "dialect": "compose"}, "dialect"),
        ({"env": {"A": "1"}, "dialect": "docker"}, "dialect"),
    ],
)
def test_a_dialect_that_is_not_one_or_without_dotenv_is_422(pipeline, svc, body, field):
    res = pipeline.call("POST", f"{svc}/import", body)
    assert res.status_code == 422
    assert field in res.json()["error"]["fields"]


def test_a_deployment_report_is_refused_with_its_reason_and_stores_nothing(
    pipeline, svc, make_token
):
    """Issue 21's bad input: an unknown service 404; a configuration version that does not
    exist 422 naming it; a bake out of range 422 naming it; a token limited to other
    services 404 for the report and for reading one; an unknown deployment id 404."""
    from services.models import Deployment

    ServiceFactory(name="other")
    deployments = "/api/services/legacy-service/deployments"
    missing = pipeline.call("POST", "/api/services/nope/deployments", {"version": "1"})
    assert missing.status_code == 404
    unknown = pipeline.call("POST", deployments, {"version": "1", "config_version": 9})
    assert unknown.status_code == 422
    assert "no configuration version 9" in unknown.json()["error"]["fields"]["config_version"]
    for bake in (-1, 86_401, "5", 1.5):
        bad = pipeline.call("POST", deployments, {"version": "1", "bake_seconds": bake})
        assert bad.status_code == 422, bake
        assert "bake_seconds" in bad.json()["error"]["fields"], bake
    for body, field in (
        ({"version": "\x1b[31m"}, "version"),  # nothing left once escapes are out
        ({"version": "1", "config_hash": "ZZZ not a hash"}, "config_hash"),
    ):
        bad = pipeline.call("POST", deployments, body)
        assert bad.status_code == 422 and field in bad.json()["error"]["fields"], body
    assert not Deployment.objects.exists()
    made = pipeline.call("POST", deployments, {"version": "1", "bake_seconds": 30})
    assert made.status_code == 201
    body = made.json()
    assert body["bake_seconds"] == 30 and body["verification"]["state"] == "pending"
    one = pipeline.call("GET", f"{deployments}/{body['id']}")
    assert one.status_code == 200 and one.json()["id"] == body["id"]
    assert pipeline.call("GET", f"{deployments}/{body['id'] + 1000}").status_code == 404
    again = pipeline.call("POST", deployments, {"version": "1\x1b[0m", "status": "succeeded"})
    assert (again.status_code, again.json()["id"]) == (200, body["id"])  # the same version

    elsewhere = ApiClient(
        make_token(["registry:read", "registry:write"], services=["other"]).secret
    )
    assert elsewhere.call("POST", deployments, {"version": "2"}).status_code == 404
    assert elsewhere.call("GET", f"{deployments}/{body['id']}").status_code == 404
    assert Deployment.objects.count() == 1
