"""A deployment's verification outlives the portal's engine (issue 21, "Bad input and
faults"): beat and the worker killed in the middle of a bake and started again, the
verification resumes from the database and reaches its verdict, on real processes."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from portal.auth import system_actor
from services import deployments
from services.models import Deployment
from tests.conftest import database_url
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUEUES = ["dispatch", "probes", "celery"]


@pytest.fixture
def start_beat(tmp_path):
    started = []

    def start() -> subprocess.Popen:
        env = {**os.environ, "DEBUG": "true", "DATABASE_URL": database_url()}
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel=WARNING",
             "-s", str(tmp_path / f"beat-{len(started)}"), "--pidfile="],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        started.append(beat)
        return beat

    yield start
    for beat in started:
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait()


def killed(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # no goodbye: a node lost
    process.wait()


def verdict(deployment: Deployment, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployment.refresh_from_db()
        if deployment.verification_state != "pending":
            return deployment.verification_state
        time.sleep(0.2)
    return deployment.verification_state


def test_a_verification_resumes_after_the_engine_is_killed_mid_bake(
    http_servers, start_worker, start_beat
):
    with http_servers.borrow() as target:
        target.expect_request("/healthz").respond_with_data("ok")
        web = ServiceFactory(name="web")
        make_check(web, name="http", interval=120, target=target.url_for("/healthz"))
        worker, beat = start_worker(QUEUES), start_beat()
        deployment, _ = deployments.report(
            "web", version="2", status="succeeded", config_version=None, config_hash="",
            link="", actor=system_actor("ci"), bake_seconds=6,
        )  # fmt: skip
        time.sleep(3)  # inside the bake: the first fresh result is in, no verdict yet
        assert verdict(deployment, 0) == "pending"
        killed(beat)
        killed(worker)
        time.sleep(5)  # the bake ends while nothing runs
        assert verdict(deployment, 0) == "pending"
        start_worker(QUEUES)
        start_beat()
        assert verdict(deployment, 60) == "passed", deployment.verification_reason
        assert deployment.verification_reason.endswith("held for 6 s")
