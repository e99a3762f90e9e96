"""A real Celery worker process, on the real broker (Redis) and the test database."""

import uuid

import pytest

from portal import tasks
from portal.models import Heartbeat

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_queue(start_worker):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    start_worker([queue])
    return queue


def test_a_task_runs_in_a_real_worker(worker_queue):
    result = tasks.record_heartbeat.apply_async(args=["test-worker"], queue=worker_queue)
    seen_at = result.get(timeout=60)
    row = Heartbeat.objects.get(name="test-worker")
    assert row.seen_at.isoformat() == seen_at


def test_the_task_is_a_plain_function_too():
    seen_at = tasks.record_heartbeat("in-process")
    assert Heartbeat.objects.get(name="in-process").seen_at.isoformat() == seen_at
