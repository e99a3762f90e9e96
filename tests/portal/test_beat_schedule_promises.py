"""How often beat sets things off, and on which queue they run, as the README says: the
dispatcher every second, predictions every minute, the automation every AUTOMATION_SECONDS
(2 s) on its own queue -- so a receiver that hangs holds up no probe -- read from the Celery
app the worker and beat load (its schedule and its router), not from the settings module."""

import pytest

from portal.celery import app

SCHEDULE = app.conf.beat_schedule


def every(task: str) -> float:
    (entry,) = [e for e in SCHEDULE.values() if e["task"] == task]
    return float(entry["schedule"])


def queue_of(task: str) -> str:
    return app.amqp.router.route({}, task)["queue"].name


def test_beat_runs_the_dispatcher_every_second_on_its_own_queue():
    assert every("healthchecks.tasks.dispatch_due_checks") == 1.0
    assert queue_of("healthchecks.tasks.dispatch_due_checks") == "dispatch"
    assert queue_of("healthchecks.tasks.probe_batch") == "probes"


def test_predictions_are_recomputed_every_minute():
    assert every("healthchecks.tasks.refresh_predictions") == 60.0


@pytest.mark.parametrize(
    "task", ["automation.tasks.process_status_changes", "automation.tasks.send_due_deliveries"]
)
def test_the_automation_runs_every_2_seconds_on_the_automation_queue_only(task):
    assert every("automation.tasks.process_status_changes") == 2.0
    assert queue_of(task) == "automation"
