"""A real Celery worker process, on the real broker (Redis) and the test database."""

import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.db import connection

from portal import tasks
from portal.models import Heartbeat

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def worker_queue():
    if not settings.REDIS_URL:
        pytest.fail("the worker test needs REDIS_URL (make test sets it)")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": database_url()}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            queue,
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield queue
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def test_a_task_runs_in_a_real_worker(worker_queue):
    result = tasks.record_heartbeat.apply_async(args=["test-worker"], queue=worker_queue)
    seen_at = result.get(timeout=60)
    row = Heartbeat.objects.get(name="test-worker")
    assert row.seen_at.isoformat() == seen_at


def test_the_task_is_a_plain_function_too():
    seen_at = tasks.record_heartbeat("in-process")
    assert Heartbeat.objects.get(name="in-process").seen_at.isoformat() == seen_at
