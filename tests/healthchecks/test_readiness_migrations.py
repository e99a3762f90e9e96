"""Readiness (``/health/service/backend``) says not ready while a migration of this code is
not applied to the database: the pods of a release that start before its migrations ran take
no traffic (issue 23). The look at the migrations is kept for a few seconds per process, so
probing readiness every few seconds costs no more than before."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from healthchecks.watch import builtin
from portal import heartbeats

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def alive():
    for name in ("dispatcher", "worker", "beat"):
        heartbeats.beat(name)
    builtin.forget_migrations_seen()
    yield
    builtin.forget_migrations_seen()


def a_leaf_migration() -> tuple[str, str]:
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    return next((app, name) for app, name in sorted(leaves) if app == "healthchecks")


def test_a_migration_not_applied_makes_the_portal_not_ready_and_says_which(client, alive):
    call_command("register_self")
    assert client.get("/health/service/backend").status_code == 200
    app, name = a_leaf_migration()
    MigrationRecorder(connection).record_unapplied(app, name)
    builtin.forget_migrations_seen()

    res = client.get("/health/service/backend")
    assert res.status_code == 503
    body = res.json()
    database = next(c for c in body["checks"] if c["name"] == "database")
    assert database["status"] == "unhealthy"
    assert database["details"]["unapplied_migrations"] == [f"{app}.{name}"]
    assert any(f"1 migration(s) not applied: {app}.{name}" in e for e in body["errors"]), body
    assert any("manage.py upgrade" in e for e in body["errors"])
    assert not any("database: database:" in e for e in body["errors"]), body  # named once

    MigrationRecorder(connection).record_applied(app, name)
    builtin.forget_migrations_seen()
    assert client.get("/health/service/backend").status_code == 200


def test_the_look_at_the_migrations_is_kept_for_a_few_seconds(alive, django_assert_num_queries):
    assert builtin.unapplied_migrations() == []
    with django_assert_num_queries(0):
        for _ in range(20):
            assert builtin.unapplied_migrations() == []
    assert 0 < builtin.MIGRATIONS_CACHE_SECONDS <= 10
    # Past it, the database is read again.
    builtin._migrations_seen = (builtin._migrations_seen[0] - 11, [])
    app, name = a_leaf_migration()
    MigrationRecorder(connection).record_unapplied(app, name)
    assert builtin.unapplied_migrations() == [f"{app}.{name}"]
