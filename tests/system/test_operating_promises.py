"""What docs/operating.md promises whoever runs the portal, on the paths they take: the
documented dump and restore (pg_dump, pg_restore, `migrate --check`) keeping everything but
the raw week, `migrate` without a statement timeout, what losing the keys costs and what it
does not (tokens survive), /health/ and /metrics over plain HTTP behind the HTTPS redirect,
sessions in PostgreSQL, /metrics without Redis, history that pruning never touches, and a
central portal's check reading a location portal's answer."""

import asyncio
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.db.models.signals import pre_migrate
from django.test import Client
from django.utils import timezone

from healthchecks.engine import counters
from healthchecks.models import CheckResult, Incident, ResultDetail, StatusChange
from healthchecks.probes import make_spec, probe
from healthchecks.reads import history
from healthchecks.status import ErrorCode, Status
from portal import encryption
from portal.database.base import DatabaseWrapper
from portal.egress import NetworkPolicy
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, make_check
from tests.healthchecks.test_health_views import record

ROOT = Path(settings.BASE_DIR)
GUIDE = (ROOT / "docs" / "operating.md").read_text()


def fenced_after(marker: str) -> str:
    """The first fenced block after ``marker`` in the guide."""
    found = re.search(re.escape(marker) + r".*?```\w*\n(.*?)```", GUIDE, re.S)
    assert found, f"docs/operating.md has no code block after {marker!r}"
    return found.group(1)


def url_of(name: str) -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{name}"


def run(command: list[str] | str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def migrate_check(database: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PORTAL_ENV_FILE": "", "DEBUG": "true", "DATABASE_URL": url_of(database)}
    return run([sys.executable, "manage.py", "migrate", "--check"], cwd=ROOT, env=env)


@pytest.fixture
def spare_database():
    """An empty database beside the test database, dropped afterwards."""
    name = f"{connection.settings_dict['NAME']}_restored"
    admin = url_of("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def an_old_failure_episode(now):
    """A check with raw results, a detail row, rollups, status changes and an incident."""
    check = make_check(ServiceFactory(name="payments"), name="http")
    CheckResult.objects.bulk_create(
        CheckResult(
            health_check=check,
            at=now - timedelta(minutes=i),
            status=Status.HEALTHY if i % 10 else Status.UNHEALTHY,
        )
        for i in range(60)
    )
    ResultDetail.objects.create(health_check=check, at=now, outcome={"errors": ["HTTP 500"]})
    history.rollup_hours(now - timedelta(hours=2))
    StatusChange.objects.create(
        service=check.service,
        health_check=check,
        from_status=Status.HEALTHY,
        to_status=Status.UNHEALTHY,
        at=now - timedelta(days=500),
        cause="HTTP 500",
    )
    Incident.objects.create(
        service=check.service,
        opened_at=now - timedelta(days=500),
        closed_at=now - timedelta(days=499),
        worst_status=Status.UNHEALTHY,
        cause="HTTP 500",
    )
    return check


def counts(url: str) -> dict[str, int]:
    tables = [
        "services_service",
        "healthchecks_checkresult",
        "healthchecks_resultdetail",
        "healthchecks_checkrollup",
        "healthchecks_statuschange",
        "healthchecks_incident",
    ]
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_the_small_dump_restores_everything_but_the_raw_week(tmp_path, spare_database):
    """The guide's smaller nightly dump, run as written, restored into an empty database as
    step 2 says: the raw results and their details are gone, the rollups, status changes
    and incidents are there; `migrate --check` exits 1 on the empty database and 0 on the
    restored one (step 6)."""
    an_old_failure_episode(timezone.now())
    source = url_of(connection.settings_dict["NAME"])
    before = counts(source)
    assert min(before.values()) > 0, before

    dump = run(
        ["bash", "-c", fenced_after("A smaller nightly dump")],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": source},
    )
    assert dump.returncode == 0, dump.stderr
    assert migrate_check(spare_database).returncode == 1  # unapplied: all of them
    restore = fenced_after("2. Restore into an empty database")
    pg_restore = next(line for line in restore.splitlines() if "pg_restore" in line).split()
    pg_restore = [a for a in pg_restore if not a.startswith("--role=")]  # no role "portal" here
    pg_restore[pg_restore.index('--dbname="$DATABASE_URL"')] = f"--dbname={url_of(spare_database)}"
    pg_restore[-1] = "portal-small.dump"
    restored = run(pg_restore, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr

    after = counts(url_of(spare_database))
    assert after == {
        **before,
        "healthchecks_checkresult": 0,
        "healthchecks_resultdetail": 0,
    }
    checked = migrate_check(spare_database)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.postgresql
@pytest.mark.django_db
def test_migrate_runs_without_the_statement_timeout():
    """The guide: "`migrate` runs without the statement timeout" (a long table rewrite is
    not cancelled half-way); every other session has one."""
    seen = []

    def show(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            seen.append(cursor.fetchone()[0])

    other = DatabaseWrapper(connection.settings_dict, "other")  # a session as any process opens
    try:
        with other.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == f"{round(settings.DB_STATEMENT_TIMEOUT)}s"
    finally:
        other.close()
        other.close_pool()
    pre_migrate.connect(show, dispatch_uid="test-statement-timeout")  # after the portal's
    try:
        call_command("migrate", verbosity=0)
    finally:
        pre_migrate.disconnect(dispatch_uid="test-statement-timeout")
    assert seen and set(seen) == {"0"}


SCHEMA = {
    "type": "object",
    "properties": {
        "host": {"type": "string"},
        "password": {"type": "string", "writeOnly": True},
    },
}


@pytest.mark.django_db
def test_without_the_keys_tokens_work_secrets_do_not_and_sessions_end(settings, make_token):
    """The guide's Backup: restored without SECRET_KEY and CONFIG_ENCRYPTION_KEYS, the
    database still works, but a configuration holding a secret can be neither read nor
    written (500 `secret_unreadable`), content hashes change (the same values stored again
    are a new version, and the service drifts until deployed again) and every session ends;
    API tokens are plain SHA-256 hashes and survive."""
    scopes = ["registry:read", "registry:write", "config:read", "config:write", "config:secrets"]
    owner = ApiClient(make_token(scopes).secret)
    ServiceFactory(name="payments")
    ServiceFactory(name="plain")
    assert owner.call("PUT", "/api/services/payments/config/schema", SCHEMA).status_code in (
        200,
        201,
    )
    secret = {"host": "db1", "password": "hunter2-long"}
    for name, values in (("payments", secret), ("plain", {"host": "db1"})):
        stored = owner.call(
            "POST", f"/api/services/{name}/config", {"values": values, "base_version": 0}
        )
        assert stored.status_code == 201, stored.content
        deployed = owner.call(
            "POST",
            f"/api/services/{name}/deployments",
            {"version": "1", "status": "succeeded", "config_version": 1},
        )
        assert deployed.status_code == 201, deployed.content
    User.objects.create_user("vera", password="a long pass phrase")
    person = Client()
    login = {"username": "vera", "password": "a long pass phrase"}
    assert person.post("/accounts/login/", login).status_code == 302
    assert person.get("/").status_code == 200

    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 50
    settings.CONFIG_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    encryption.reset_keys()

    assert owner.call("GET", "/api/services").status_code == 200  # the token survives
    assert person.get("/").status_code == 302  # the session ended: to the login page
    for method, body in (("GET", None), ("POST", {"values": secret, "base_version": 1})):
        refused = owner.call(method, "/api/services/payments/config", body)
        assert refused.status_code == 500, (method, refused.content)
        assert refused.json()["error"]["code"] == "secret_unreadable"
        assert "restore the key it was encrypted with" in refused.json()["error"]["message"]

    def drift() -> str:
        return owner.call("GET", "/api/services/plain/config/drift").json()["state"]

    assert drift() == "in_sync"  # stored hashes compare as they were
    again = owner.call(
        "POST", "/api/services/plain/config", {"values": {"host": "db1"}, "base_version": 1}
    )
    assert (again.status_code, again.json()["version"]) == (201, 2)  # the hash moved
    assert drift() == "drifting"
    owner.call(
        "POST",
        "/api/services/plain/deployments",
        {"version": "2", "status": "succeeded", "config_version": 2},
    )
    assert drift() == "in_sync"


@pytest.mark.django_db
def test_health_and_metrics_answer_plain_http_behind_the_https_redirect(settings):
    settings.SECURE_SSL_REDIRECT = True
    plain = Client()  # a new client builds the middleware with the setting on
    ServiceFactory(name="payments")
    for path in ("/health/", "/health/services", "/health/service/payments", "/metrics"):
        assert plain.get(path).status_code in (200, 503), path
    for path in ("/", "/api/services", "/status/", "/admin/"):
        moved = plain.get(path)
        assert moved.status_code == 301 and moved["Location"].startswith("https://"), path


@pytest.mark.django_db
def test_sessions_are_kept_in_postgresql():
    User.objects.create_user("vera", password="a long pass phrase")
    person = Client()
    login = {"username": "vera", "password": "a long pass phrase"}
    assert person.post("/accounts/login/", login).status_code == 302
    key = person.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.get(session_key=key).get_decoded()["_auth_user_id"]


@pytest.mark.django_db
def test_without_redis_metrics_keep_the_statuses_and_lose_the_counters(client, settings):
    """The guide's "What Redis holds": counters live in Redis (missing while it is down),
    statuses and heartbeats in PostgreSQL (still there)."""
    check = make_check(ServiceFactory(name="payments"), name="http")
    record(check, Status.HEALTHY)
    counters.observe_batch(["healthy"], [0.004], [0.002])
    with_redis = client.get("/metrics").content.decode()
    assert 'portal_checks_total{status="healthy"} 1.0' in with_redis
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    counters.redis_client.cache_clear()  # as a process that starts while Redis is down
    try:
        without = client.get("/metrics")
    finally:
        counters.redis_client.cache_clear()
    assert without.status_code == 200
    text = without.content.decode()
    assert 'portal_service_status{service="payments"} 1.0' in text
    assert "portal_heartbeat_age_seconds" in text
    assert "portal_checks_total" not in text and "portal_probe_" not in text


@pytest.mark.django_db
def test_status_changes_and_incidents_are_never_pruned(settings):
    """Pruning keeps them however old, past every retention."""
    now = timezone.now()
    check = an_old_failure_episode(now)
    CheckResult.objects.filter(health_check=check).update(at=F("at") - timedelta(days=30))
    deleted = history.prune(now + timedelta(days=settings.HEALTH_DAILY_RETENTION_DAYS + 1))
    assert deleted["results"] == 60 and not CheckResult.objects.exists()
    assert StatusChange.objects.filter(health_check=check).count() == 1
    assert Incident.objects.filter(service=check.service).count() == 1


def probe_location(url: str, **options):
    spec = make_spec(1, "http", url, timeout=5.0, **options)
    return asyncio.run(probe(spec, NetworkPolicy.from_settings()))


@pytest.mark.django_db(transaction=True)
def test_a_central_check_reads_a_location_portals_answer_and_its_sub_checks(live_server):
    """The guide's several probe locations: the central portal's HTTP check on a location
    portal's /health/service/<name> -- 200 usable, 503 not, and with an Accept:
    application/health+json header among its headers the location's sub-checks kept."""
    check = make_check(ServiceFactory(name="payments"), name="http")
    record(check, Status.HEALTHY, ms=12)
    url = f"{live_server.url}/health/service/payments"
    plain = probe_location(url)
    assert plain.status == Status.HEALTHY, plain
    negotiated = probe_location(url, headers={"Accept": "application/health+json"})
    assert negotiated.status == Status.HEALTHY, negotiated
    assert negotiated.details["checks"]["http:responseTime"][0]["observedValue"] == 12

    record(check, Status.UNHEALTHY, errors=["HTTP 500"])
    down = probe_location(url, headers={"Accept": "application/health+json"})
    assert (down.status, down.error_code) == (Status.UNHEALTHY, ErrorCode.HTTP_STATUS), down
    assert down.details["checks"]["http:responseTime"][0]["status"] == "fail"
    assert "http:responseTime: fail: HTTP 500" in down.errors, down.errors
    assert probe_location(url).status == Status.UNHEALTHY
