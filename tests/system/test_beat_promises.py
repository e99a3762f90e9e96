"""What the README says beat does, and how its health is known, on real processes:

- "Maintenance checklists": each routine's run of the current period is made by beat every
  10 minutes, so a period nobody opened is on record -- the schedule, and the task run by a
  real Celery worker;
- "Rate limits": the factor follows the stress every 15 s (beat's schedule);
- "Running it for real": beat's health check is ``manage.py check_heartbeat beat``, which
  passes only when beat's heartbeat task has been run by a worker in the last two minutes --
  the command run as the compose file runs it, its exit status read.
"""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import yaml
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from checklists import routines
from checklists import tasks as checklist_tasks
from checklists.models import ChecklistRun
from portal import tasks
from portal.models import Heartbeat
from tests.conftest import database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_beat_runs_the_runs_every_10_minutes_and_the_rate_limits_every_15_s():
    schedule = {e["task"]: e["schedule"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["checklists.tasks.open_current_runs"] == 10 * 60
    assert schedule["healthchecks.tasks.adapt_rate_limits"] == 15
    assert schedule["portal.tasks.record_heartbeat"] == settings.BEAT_HEARTBEAT_SECONDS == 30


@pytest.fixture
def worker_queue(start_worker):
    queue = "beat-promises"
    start_worker([queue])
    return queue


def test_a_worker_running_beats_task_puts_every_current_period_on_record(worker_queue):
    routines.install(apps)  # what the migration installs (a flush between tests removes it)
    assert not ChecklistRun.objects.exists()  # nobody opened /maintenance/
    checklist_tasks.open_current_runs.apply_async(queue=worker_queue)  # keeps no result
    deadline = time.monotonic() + 60
    while ChecklistRun.objects.count() < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    periods = sorted(ChecklistRun.objects.values_list("template__period", flat=True))
    assert periods == ["daily", "monthly", "quarterly", "weekly"]


def manage(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def beats_health_check() -> list[str]:
    """The command of beat's health check in docker-compose.yml, from ``manage.py`` on."""
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    test = compose["services"]["beat"]["healthcheck"]["test"]
    return test[test.index("manage.py") + 1 :]


def test_beats_health_check_passes_only_after_a_heartbeat_in_the_last_two_minutes(
    worker_queue,
):
    command = beats_health_check()
    assert command[:2] == ["check_heartbeat", "beat"]
    assert manage(*command).returncode == 1  # no heartbeat yet
    assert manage("check_heartbeat", "beat").returncode == 1  # the default is the same
    tasks.record_heartbeat.apply_async(args=["beat"], queue=worker_queue).get(timeout=60)
    assert manage(*command).returncode == 0
    # The age is set again before each command: a loaded machine took over 5 s to start
    # one, and a heartbeat 110 s old was 122 s old by the second (found in a CI run).
    for age, status in ((105, 0), (125, 1)):
        for check in (command, ["check_heartbeat", "beat"]):  # the second: the default, 120 s
            Heartbeat.objects.filter(name="beat").update(
                seen_at=timezone.now() - timedelta(seconds=age)
            )
            assert manage(*check).returncode == status, (age, check)
