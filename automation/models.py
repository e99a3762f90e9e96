"""Alerts, the channels they are told through, and the record of every delivery."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from healthchecks.status import Status
from portal.fields import name_validator
from services.models import Service


class Event(models.TextChoices):
    """What a notification announces (a channel subscribes to some of them)."""

    DOWN = "down", "down"
    DEGRADED = "degraded", "degraded"
    RECOVERED = "recovered", "recovered"
    DEPLOYMENT_STARTED = "deployment_started", "deployment started"
    DEPLOYMENT_PASSED = "deployment_passed", "deployment passed verification"
    DEPLOYMENT_FAILED = "deployment_failed", "deployment failed verification"


# What a channel hears when it names no events: its services' alerts. Deployment events are
# asked for by name.
ALERT_EVENTS = (Event.DOWN, Event.DEGRADED, Event.RECOVERED)
DEPLOYMENT_EVENTS = (Event.DEPLOYMENT_STARTED, Event.DEPLOYMENT_PASSED, Event.DEPLOYMENT_FAILED)


class Trigger(models.TextChoices):
    """What sets a rule off: an alert event of a service, or a condition of one of its checks
    (automation.triggers), which holds from when it is first seen until it clears."""

    DOWN = "down", "service down"
    DEGRADED = "degraded", "service degraded"
    RECOVERED = "recovered", "service recovered"
    CHECK_FAILING = "check_failing", "a check failed N times in a row"
    HEARTBEAT_MISSED = "heartbeat_missed", "a heartbeat did not come"
    PREDICTION = "prediction", "a prediction was raised"
    DEPLOYMENT_STARTED = "deployment_started", "a deployment was reported"
    DEPLOYMENT_PASSED = "deployment_passed", "a deployment passed verification"
    DEPLOYMENT_FAILED = "deployment_failed", "a deployment failed verification"


CHECK_TRIGGERS = (Trigger.CHECK_FAILING, Trigger.HEARTBEAT_MISSED, Trigger.PREDICTION)
# A delivery announces an alert event, a rule's trigger, or -- to one channel, on a person's
# request -- a test message (automation.tryout).
TEST_EVENT = "test"
DELIVERY_EVENTS = [*Trigger.choices, (TEST_EVENT, "a channel's test message")]
# A channel's reminders: every minute at the most often, every week at the least.
REMIND_EVERY_MINUTES = (1, 10_080)
DEPLOYMENT_TRIGGERS = (
    Trigger.DEPLOYMENT_STARTED,
    Trigger.DEPLOYMENT_PASSED,
    Trigger.DEPLOYMENT_FAILED,
)


class Alert(models.Model):
    """A service is not healthy. One open alert per service. An alert whose service is down
    because a hard dependency is has ``root`` set: it is folded into the root cause's alert,
    which alone is notified and lists it among the impacted services."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="alerts")
    status = models.SmallIntegerField(choices=Status.choices)
    cause = models.TextField(blank=True)
    root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="impacted"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Why nobody is told of it now, when the reason is not a root cause's alert: a hard
    # dependency in maintenance.
    silenced = models.CharField(max_length=300, blank=True)
    # The status last announced (0: nothing yet): a root that worsens is announced again.
    notified_status = models.SmallIntegerField(choices=Status.choices, default=Status.UNKNOWN)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=models.Q(resolved_at=None),
                name="one_open_alert_per_service",
            )
        ]
        indexes = [models.Index(fields=["service", "-opened_at"], name="alert_by_service")]

    def __str__(self) -> str:
        return f"{self.service} {Status(self.status).label} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class NotificationChannel(models.Model):
    """Where notifications go: an apprise URL (stored encrypted: it holds credentials),
    for some teams' services (none: every team) and some events."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    url = models.TextField(help_text="Encrypted apprise URL.")
    url_shown = models.CharField(max_length=300, help_text="The URL with its secrets masked.")
    teams = models.JSONField(default=list, blank=True)
    events = models.JSONField(default=list)
    # An alert it was told of and nobody acknowledged is sent again this often (null: never).
    remind_every_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(REMIND_EVERY_MINUTES[0]),
            MaxValueValidator(REMIND_EVERY_MINUTES[1]),
        ],
        help_text="Send an unacknowledged alert again this often (minutes); empty: never.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryState(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    SENT = "sent", "sent"
    RETRYING = "retrying", "waiting to retry"
    FAILED = "failed", "failed (gave up)"
    SKIPPED = "skipped", "skipped"


class Delivery(models.Model):
    """One notification of one alert event to one channel (or one rule action), sent by the
    automation queue: retried with backoff, never lost (a row until it is sent, given up or
    skipped). A check trigger's actions have no alert: ``subject`` says what set them off."""

    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    service = models.ForeignKey(
        Service, null=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    subject = models.JSONField(
        null=True, blank=True, help_text="A check trigger's check, message and since."
    )
    channel = models.ForeignKey(
        NotificationChannel, null=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    channel_name = models.CharField(max_length=63, help_text="The channel, or rule:action.")
    event = models.CharField(max_length=20, choices=DELIVERY_EVENTS)
    # What is sent: a kind of action (automation.actions): "notify" tells ``channel``; the
    # others run ``action``, the rule's action as it was when queued, secrets apart.
    kind = models.CharField(max_length=20, default="notify")
    rule = models.ForeignKey(
        "Rule", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    action = models.JSONField(null=True, blank=True)
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    not_before = models.DateTimeField(default=timezone.now)
    # A claimed delivery belongs to its sender until then; after it (a worker died
    # mid-send) another sender takes it again.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True, help_text="Why it was skipped or gave up.")
    # A recovery notice names the services that were folded into the alert when it resolved
    # (by the time it is sent they have been reconciled on their own).
    impacted = models.JSONField(null=True, blank=True)
    # n of "[REMINDER n]": the alert sent again to its channel (automation.reminders); 0: not
    # a reminder.
    reminder = models.PositiveIntegerField(default=0)
    # A rule's escalation: after how long, and who its first actions told (the message says).
    escalation = models.JSONField(
        null=True, blank=True, help_text="An escalation: after how long, who was told first."
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["not_before"],
                condition=models.Q(state__in=["pending", "retrying", "sending"]),
                name="delivery_due",
            )
        ]
        constraints = [
            # Two ticks at once never queue the same reminder twice.
            models.UniqueConstraint(
                fields=["alert", "channel", "reminder"],
                condition=models.Q(reminder__gt=0),
                name="one_delivery_per_reminder",
            )
        ]

    def __str__(self) -> str:
        about = self.service.name if self.service_id else f"alert {self.alert_id}"
        return f"{self.event} of {about} to {self.channel_name}: {self.state}"


class DeliveryAttempt(models.Model):
    """One call to a receiver: when, how long, and what came back."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_row_per_attempt")
        ]

    def __str__(self) -> str:
        return (
            f"attempt {self.number} of delivery {self.delivery_id}: {'ok' if self.ok else 'failed'}"
        )


class Rule(models.Model):
    """When a service in scope turns down / degraded / recovers, or one of its checks meets
    a condition (``condition``: {"failures": N} or {"kinds": [...]}), run these actions
    (notify a channel, call a webhook, move the lifecycle); at most once per service per
    cooldown; if the alert (or the check's condition) is still there, unacknowledged,
    ``escalate_after_minutes`` later, run the escalation actions too. Actions' webhook
    headers are secrets: kept encrypted apart."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    condition = models.JSONField(default=dict, blank=True)
    scope = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=list)
    escalation = models.JSONField(default=list, blank=True)
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    cooldown_seconds = models.PositiveIntegerField(default=300)
    secrets = models.TextField(blank=True, help_text="Encrypted webhook headers, by action.")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # Who last wrote it: its actions run with their rights, as they are when it acts
    # (automation.authors.acting_as). Empty: the portal itself.
    written_by = models.CharField(max_length=200, blank=True)
    written_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    written_by_token = models.ForeignKey(
        "portal.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RuleFiring(models.Model):
    """A rule ran for an alert or a check's condition (or escalated it): the cooldown and
    escalation read these. A check condition's firing stays open (``cleared_at`` null) while
    the condition holds, so it fires once per episode, not once per evaluation."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="firings")
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="firings"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    health_check = models.ForeignKey(
        "healthchecks.HealthCheck",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    # A check condition's episode, as a key for the one-open-firing constraint:
    # "check:<id>/<prediction kind or nothing>", or "service/<kind>" for a prediction of the
    # whole service. Read back from its own columns, never parsed: health_check and
    # condition_kind.
    subject = models.CharField(max_length=80, blank=True)
    condition_kind = models.CharField(max_length=40, blank=True)
    escalation = models.BooleanField(default=False)
    at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["rule", "service", "-at"], name="firing_by_rule")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "service", "subject"],
                condition=models.Q(cleared_at=None, escalation=False, alert=None),
                name="one_open_firing_per_condition",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} for {self.service.name} at {self.at:%H:%M:%S}"


class Note(models.Model):
    """A person's word on an alert: what they found, what they do (an incident update).
    ``public`` notes of an ongoing incident show on the status page; the others only to
    people logged in. Written through automation.notes, audited."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    text = models.TextField()
    public = models.BooleanField(default=False)
    author = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.id} on alert {self.alert_id} by {self.author}"
