"""Celery tasks of health: thin wrappers over the engine (scheduling, batches), history and
predictions, and the stress signal."""

import time
from datetime import timedelta

import structlog
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone

from healthchecks.engine import (
    batches,
    capacity,
    counters,
    recording,
    scheduling,
    service_health,
    verification,
)
from healthchecks.reads import history, predict
from healthchecks.watch import stress
from portal import heartbeats

log = structlog.get_logger(__name__)


@shared_task(ignore_result=True, expires=10)
def dispatch_due_checks() -> int:
    """Beat sends this every HEALTH_DISPATCH_SECONDS. Expired copies are dropped: a
    backlog of dispatches after an outage must not pile up (one run claims everything)."""
    started = timezone.now()
    # Verdicts first: a verification's checks it brings forward are claimed in this run.
    verification.verify_pending(started)
    budget = capacity.budget_for_run(settings.HEALTH_DISPATCH_SECONDS)
    done = scheduling.dispatch(
        started,
        settings.HEALTH_DISPATCH_LOOKAHEAD,
        settings.HEALTH_BATCH_SIZE,
        send=lambda batch: probe_batch.apply_async(args=[batch], kwargs={"sent_at": time.time()}),
        budget=budget,
    )
    if done.skipped:
        recording.record_skipped(done.skipped, timezone.now())
        counters.count("checks:skipped", len(done.skipped))
    capacity.report_run(due=done.claimed, sent=done.sent, skipped=len(done.skipped))
    heartbeats.beat(
        "dispatcher",
        claimed=done.claimed,
        sent=done.sent,
        skipped=len(done.skipped),
        budget=budget,
        took_ms=round((timezone.now() - started).total_seconds() * 1000, 1),
    )
    counters.count("dispatched", done.sent)
    return done.sent


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
    # Within the broker's visibility timeout (portal.settings), so a batch still running is
    # never handed to a second worker.
    soft_time_limit=settings.HEALTH_BATCH_SECONDS_MAX,
    time_limit=settings.HEALTH_BATCH_SECONDS_MAX + 10,
)
def probe_batch(items: list, sent_at: float | None = None) -> dict:
    """Probe and record one batch of (check id, due time) pairs. Idempotent: a rerun
    (redelivery after a crash, or a retry) skips what was already recorded."""
    queued_ms = round((time.time() - sent_at) * 1000) if sent_at else None
    cpu = time.process_time()
    stats = {**batches.run_batch(items), "queued_ms": queued_ms}
    capacity.report_batch({}, time.process_time() - cpu)  # its counts went as it recorded
    heartbeats.beat("worker", **stats)
    log.info("probe batch", **stats)
    return stats


@shared_task(ignore_result=True, acks_late=False)
def adapt_rate_limits() -> float:
    """Beat, every 15 s: the rate limiter's factor follows the portal's stress."""
    return stress.adapt()


@shared_task(ignore_result=True, acks_late=False)
def apply_maintenance_windows() -> int:
    """Beat, every 15 s: services whose maintenance window opened or closed since."""
    with transaction.atomic():
        return service_health.apply_maintenance_windows()


@shared_task(ignore_result=True, acks_late=False)
def refresh_predictions() -> int:
    """Beat, every minute: /health/predictive's set, recomputed from the history."""
    return predict.refresh()


@shared_task(ignore_result=True, acks_late=False)
def roll_up_history() -> dict:
    now = timezone.now()
    hours = history.rollup_hours(now - timedelta(hours=2))
    days = history.rollup_days(now - timedelta(days=1))
    return {"hours": hours, "days": days}


@shared_task(ignore_result=True, acks_late=False)
def prune_history() -> dict:
    deleted = history.prune()
    log.info("pruned history", **deleted)
    return deleted


@shared_task(ignore_result=True, expires=60, acks_late=False)
def vacuum_hot_tables() -> list[str]:
    return scheduling.vacuum_hot_tables()
