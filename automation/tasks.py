"""The automation queue's tasks: thin over automation.alerts and automation.notify."""

import structlog
from celery import shared_task

from automation import alerts, notify, reminders, rules, triggers

log = structlog.get_logger(__name__)


# Acknowledged on receipt, like the health side's housekeeping: the work lives in the database
# (the outbox, leased deliveries), and beat sends the next run within seconds, so a run lost
# with its worker costs nothing -- redelivered late, it would only repeat one.
@shared_task(ignore_result=True, acks_late=False)
def process_status_changes() -> None:
    """Beat, every AUTOMATION_SECONDS: the health engine's new status changes into alerts,
    check conditions into the rules they set off, alerts nobody acknowledged in time
    escalated and reminded of, then whatever became due is sent (a delivery that waits for
    its group is sent by a later run)."""
    outcome = alerts.process_status_changes()
    if outcome.changes:
        log.info(
            "status changes processed",
            changes=outcome.changes,
            opened=outcome.opened,
            resolved=outcome.resolved,
            notifications=outcome.notifications,
        )
    if fired := triggers.evaluate():
        log.info("check triggers fired", deliveries=fired)
    if escalated := rules.escalate_due():
        log.info("alerts escalated", deliveries=escalated)
    if reminded := reminders.queue_due():
        log.info("alerts reminded of", deliveries=reminded)
    send_due_deliveries.delay()


@shared_task(ignore_result=True, acks_late=False)
def send_due_deliveries() -> None:
    while notify.send_due():
        pass
