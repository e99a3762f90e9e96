"""The Celery app. Its settings are the CELERY_* names in portal/settings.py."""

import os
from pathlib import Path

from celery import Celery
from celery.signals import celeryd_after_setup, setup_logging, worker_process_init
from django.conf import settings

from portal import gc_tuning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def keep_django_logging(**kwargs) -> None:
    """Connecting this signal stops Celery from replacing the JSON logging set up by Django."""


@worker_process_init.connect
def tune_gc(**kwargs) -> None:
    """Each pool process, once Django is loaded: see portal.gc_tuning."""
    gc_tuning.tune()


PROBE_QUEUE = "probes"


def probe_niceness(queues, niceness: int) -> int:
    """How much to lower a worker's CPU priority: probing is background work with a lag budget
    of hundreds of milliseconds, while the web processes on the same machine answer readiness
    probes and dashboards in milliseconds, so a worker that probes yields the CPU to them."""
    return niceness if PROBE_QUEUE in queues else 0


@celeryd_after_setup.connect
def lower_probe_priority(sender, instance, **kwargs) -> None:
    """Runs in the worker's main process before its pool forks: the children inherit it."""
    queues = instance.app.amqp.queues.consume_from
    increment = probe_niceness(queues, settings.HEALTH_PROBE_WORKER_NICENESS)
    if increment:
        os.nice(increment)


def ensure_broker_folders() -> None:
    """The filesystem transport (embedded mode) needs its folders to exist."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
    backend = app.conf.result_backend or ""
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
