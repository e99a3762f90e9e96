"""The portal watches itself: the service 'backend', evaluated live."""

import pytest
from django.core.management import call_command

from healthchecks.models import HealthCheck
from portal import heartbeats
from services.models import Service

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def alive():
    for name in ("dispatcher", "worker", "beat"):
        heartbeats.beat(name)


def test_register_self_is_idempotent():
    call_command("register_self")
    call_command("register_self")
    backend = Service.objects.get(name="backend")
    assert backend.is_critical and backend.team.name == "portal"
    assert sorted(HealthCheck.objects.filter(service=backend).values_list("name", flat=True)) == [
        "capacity",
        "database",
        "redis",
        "scheduler",
        "workers",
    ]


def test_backend_is_healthy_when_everything_runs(client, alive):
    call_command("register_self")
    res = client.get("/health/service/backend")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "healthy", body
    assert {c["name"]: c["status"] for c in body["checks"]} == {
        "database": "healthy",
        "redis": "healthy",
        "workers": "healthy",
        "scheduler": "healthy",
        "capacity": "healthy",
    }


def test_without_the_scheduler_the_portal_is_degraded_but_ready(client):
    heartbeats.beat("worker")
    body = client.get("/health/service/backend").json()
    assert body["status"] == "degraded"
    assert any("dispatcher" in e for e in body["errors"])
    assert client.get("/health/service/backend").status_code == 200


def test_redis_down_degrades_the_portal_and_health_reads_go_on(client, alive, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    res = client.get("/health/service/backend")
    assert res.status_code == 200 and res.json()["status"] == "degraded"
    assert any("redis" in e for e in res.json()["errors"])
    assert client.get("/health/services").status_code == 200
    assert client.get("/health/metrics").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_python_checks_give_back_their_database_connections(settings):
    """They run in the prober's threads, which live on: a connection kept by each drained the
    process's pool (4) and the next checks failed waiting for one."""
    import asyncio

    from django.db import connections

    from healthchecks.probes import Prober, make_spec

    heartbeats.beat("worker")
    specs = [
        make_spec(i, "python", "healthchecks.watch.builtin.workers", timeout=5) for i in range(24)
    ]

    async def run_all():
        async with Prober() as prober:  # at once: every thread of the executor takes a turn
            return await asyncio.gather(*(prober.probe(spec) for spec in specs))

    outcomes = asyncio.run(run_all())
    assert [o.errors for o in outcomes if o.status != 1] == []
    assert settings.DB_POOL_SIZE == 4
    connections.close_all()
