"""portalctl against a live portal: pytest-django's ``live_server`` on 127.0.0.1, real HTTP,
real PostgreSQL; nothing of the portal is mocked.

Commands run in this process through click's runner (``portalctl`` fixture), or as the
installed console script in a subprocess (test_pipeline.py). Health comes from the real
engine probing real local HTTP servers (``prober``): what a probe worker does.
"""

import threading

import pytest
from click.testing import CliRunner
from django.db import connection
from django.utils import timezone

from healthchecks.engine import batches, scheduling, verification
from healthchecks.models import HealthCheck
from portalctl.cli import cli

SCOPES = ["registry:read", "registry:write", "config:read", "config:write"]


@pytest.fixture
def token(make_token) -> str:
    return make_token(SCOPES).secret


@pytest.fixture
def portalctl(live_server, token):
    """Run a command against the live portal; the result has exit_code, stdout, stderr."""

    def run(*args, input=None, env=None):
        environ = {"PORTAL_URL": live_server.url, "PORTAL_TOKEN": token, **(env or {})}
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=environ)

    return run


@pytest.fixture
def prober(transactional_db):
    """Start a probe worker in a thread: every 0.2 s it probes every enabled check through
    the engine (real requests, real recording) and, as the dispatcher does each tick, judges
    the deployments waiting for a verdict, until the test ends."""
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                verification.verify_pending(timezone.now())
                due = timezone.now().isoformat()
                ids = HealthCheck.objects.filter(enabled=True).values_list("pk", flat=True)
                if ids:
                    batches.run_batch([(pk, due) for pk in ids])
                stop.wait(0.2)
        finally:
            connection.close()

    worker = threading.Thread(target=loop, daemon=True)
    yield worker.start
    stop.set()
    if worker.is_alive():
        worker.join(timeout=30)


@pytest.fixture
def scheduled_prober(transactional_db):
    """A probe worker that keeps the checks' schedules, as beat's dispatcher and a worker
    do: every 0.2 s it judges the deployments waiting for a verdict, claims the checks due
    (scheduling.claim_due) and probes them through the engine, until the test ends."""
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                now = timezone.now()
                verification.verify_pending(now)
                claims = scheduling.claim_due(now, now, 100)
                if claims:
                    batches.run_batch([(c.check_id, c.due_at.isoformat()) for c in claims])
                stop.wait(0.2)
        finally:
            connection.close()

    worker = threading.Thread(target=loop, daemon=True)
    yield worker.start
    stop.set()
    if worker.is_alive():
        worker.join(timeout=30)


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)
