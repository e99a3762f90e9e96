"""docs/operating.md, "Upgrades and migrations": a probe worker rolled out (SIGTERM) finishes
the batch it is running before it exits -- its result recorded, nothing probed twice -- with
a real Celery worker and a target that takes its time."""

import os
import signal
import subprocess
import time

import pytest
from django.utils import timezone
from werkzeug import Response

from healthchecks import tasks
from healthchecks.models import CheckResult, CheckState
from healthchecks.status import Status
from tests.factories import ServiceFactory, make_check
from tests.healthchecks.servers import wait_for
from tests.system.test_worker import children_of, threaded_server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_worker_told_to_stop_finishes_its_running_batch_first(start_worker, threaded_server):  # noqa: F811
    calls = []

    def slow(request):
        calls.append(time.monotonic())
        time.sleep(3)  # the rollout's SIGTERM arrives in the middle
        return Response("finally")

    threaded_server.expect_request("/slow").respond_with_handler(slow)
    check = make_check(
        ServiceFactory(),
        name="slow",
        target=threaded_server.url_for("/slow"),
        timeout=20,
        interval=60,
    )
    worker = start_worker(["probes"])
    assert wait_for(lambda: children_of(worker.pid), timeout=30)
    tasks.probe_batch.apply_async(args=[[(check.pk, timezone.now().isoformat())]])
    assert wait_for(lambda: calls, timeout=30)
    os.kill(worker.pid, signal.SIGTERM)  # what Kubernetes and compose send first
    try:
        code = worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop within 30 s of SIGTERM")
    assert code == 0
    assert CheckResult.objects.filter(health_check=check).count() == 1
    assert CheckState.objects.get(health_check=check).status == Status.HEALTHY
    assert len(calls) == 1
