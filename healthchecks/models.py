"""Checks, their current state, the raw result history, rollups, status changes, incidents.

Hot paths shape these tables: the dispatcher claims due checks from ``CheckSchedule``, a
narrow table of its own; workers insert compact raw results (a composite key, no id, no JSON)
and update ``CheckState``; so ``HealthCheck`` rows change only when someone edits a check, and
the health reads that go through them never wade through dead row versions. Pages read
``ServiceHealth``, precomputed whenever a status changes.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthchecks.status import ErrorCode, Status
from portal.fields import NAME_HELP, name_validator
from services.models import Service


def default_interval() -> int:
    return settings.HEALTH_CHECK_INTERVAL


class HealthCheck(models.Model):
    # A 4-byte key: every raw result row carries it, and rows must stay small.
    id = models.AutoField(primary_key=True)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=63, validators=[name_validator], help_text=NAME_HELP)
    # One of the kinds in healthchecks.probes.kinds (validated there, not by choices here:
    # a new kind needs no migration).
    kind = models.CharField(max_length=16)
    target = models.CharField(max_length=1000, blank=True)
    interval = models.PositiveIntegerField(default=default_interval, help_text="Seconds.")
    timeout = models.FloatField(default=5.0, help_text="Seconds, at most the interval.")
    retries = models.PositiveSmallIntegerField(
        default=0, help_text="Consecutive failures tolerated before the check is unhealthy."
    )
    latency_threshold_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Slower than this: degraded."
    )
    is_critical = models.BooleanField(
        default=True, help_text="Failing makes the service unhealthy (else degraded)."
    )
    enabled = models.BooleanField(default=True)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="HTTP: method, expected_status, verify_tls, max_body_bytes, max_redirects; "
        "heartbeat: grace.",
    )
    secrets = models.TextField(
        blank=True, editable=False, help_text="Encrypted JSON: HTTP headers, password."
    )
    heartbeat_token = models.CharField(
        max_length=43, null=True, blank=True, unique=True, editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["service", "name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "name"], name="check_name_per_service")
        ]

    def __str__(self) -> str:
        return f"{self.service.name} / {self.name}"


class CheckSchedule(models.Model):
    """When an enabled check is next due; a disabled check has no row.

    Apart from ``HealthCheck`` because every claim rewrites it: at a thousand claims a second,
    rewriting the checks' own rows left tens of thousands of dead versions between two
    vacuums in that table and in each of its indexes, and every health read goes through
    that table. This one is two columns wide and only the dispatcher reads it.
    """

    health_check = models.OneToOneField(
        HealthCheck, primary_key=True, on_delete=models.CASCADE, related_name="schedule"
    )
    next_due_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The dispatcher's one query: due checks in due order.
            models.Index(fields=["next_due_at"], name="schedule_due"),
        ]

    def __str__(self) -> str:
        return f"check {self.health_check_id} due {self.next_due_at:%Y-%m-%d %H:%M:%S}"


class CheckState(models.Model):
    """The current state of one check, updated after every result."""

    health_check = models.OneToOneField(
        HealthCheck, primary_key=True, on_delete=models.CASCADE, related_name="state"
    )
    status = models.SmallIntegerField(choices=Status.choices, default=Status.UNKNOWN)
    raw_status = models.SmallIntegerField(choices=Status.choices, default=Status.UNKNOWN)
    consecutive_failures = models.PositiveIntegerField(default=0)
    status_since = models.DateTimeField(default=timezone.now)
    last_due_at = models.DateTimeField(null=True, blank=True)
    last_result_at = models.DateTimeField(null=True, blank=True)
    last_response_us = models.PositiveIntegerField(null=True, blank=True)
    last_error_code = models.SmallIntegerField(choices=ErrorCode.choices, default=ErrorCode.NONE)
    last_outcome = models.JSONField(
        default=dict, blank=True, help_text="errors, warnings, details, metrics"
    )
    last_ping_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.health_check_id}: {Status(self.status).label}"


class CheckResult(models.Model):
    """One raw result, as small as it can be: about 50 bytes of row plus its key."""

    # Columns in this order pack without alignment padding (8, 4, 4, 2, 2, 2 bytes). The
    # key's index serves "history of one check"; a BRIN index on ``at`` (migration 0002)
    # serves time ranges across checks at almost no size.
    pk = models.CompositePrimaryKey("health_check_id", "at")
    at = models.DateTimeField(help_text="The due time this result answers.")
    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    response_us = models.IntegerField(default=0)
    status = models.SmallIntegerField(choices=Status.choices)
    error_code = models.SmallIntegerField(choices=ErrorCode.choices, default=ErrorCode.NONE)
    # Four bytes: the row keeps its size (it was padded to eight bytes), and a slot minutes
    # late is recorded as such rather than capped at 32.767 s.
    lag_ms = models.IntegerField(default=0, help_text="Probe start minus due time.")

    def __str__(self) -> str:
        return f"{self.health_check_id}@{self.at:%H:%M:%S} {Status(self.status).label}"


class ResultDetail(models.Model):
    """Errors, warnings, details and metrics of a result that was not plainly healthy."""

    pk = models.CompositePrimaryKey("health_check_id", "at")
    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    at = models.DateTimeField()
    outcome = models.JSONField()

    def __str__(self) -> str:
        return f"{self.health_check_id}@{self.at:%H:%M:%S}"


class CheckRollup(models.Model):
    """Counts over one hour or one day, kept long after the raw results are pruned."""

    HOUR, DAY = 1, 2
    pk = models.CompositePrimaryKey("health_check_id", "granularity", "start")
    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    granularity = models.SmallIntegerField(choices=[(HOUR, "hour"), (DAY, "day")])
    start = models.DateTimeField()
    count = models.IntegerField()
    failures = models.IntegerField()
    degraded = models.IntegerField()
    latency_sum_us = models.BigIntegerField()
    latency_max_us = models.IntegerField()
    # Counts per latency bucket (healthchecks.reads.history.BUCKETS): percentiles merge exactly
    # across hours and days, at the buckets' resolution.
    histogram = models.JSONField()

    def __str__(self) -> str:
        return f"{self.health_check_id} {self.get_granularity_display()} {self.start:%Y-%m-%d %H}h"


class ServiceHealth(models.Model):
    """A service's derived status, recomputed whenever one of its inputs changes."""

    service = models.OneToOneField(
        Service, primary_key=True, on_delete=models.CASCADE, related_name="health"
    )
    status = models.SmallIntegerField(choices=Status.choices, default=Status.UNKNOWN)
    since = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.service.name}: {Status(self.status).label}"


class StatusChange(models.Model):
    """A check's or a service's status changed (the outbox the automation app reads)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="status_changes")
    health_check = models.ForeignKey(
        HealthCheck, null=True, blank=True, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.SmallIntegerField(choices=Status.choices)
    to_status = models.SmallIntegerField(choices=Status.choices)
    at = models.DateTimeField(default=timezone.now)
    cause = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["service", "-at"], name="change_by_service"),
            # The automation's outbox: service changes not yet acted on.
            models.Index(
                fields=["id"],
                condition=models.Q(processed_at=None, health_check=None),
                name="change_unprocessed",
            ),
        ]

    def __str__(self) -> str:
        return f"{Status(self.from_status).label} -> {Status(self.to_status).label}"


class Incident(models.Model):
    """A period during which a service was not healthy."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="incidents")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    worst_status = models.SmallIntegerField(choices=Status.choices)
    cause = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=models.Q(closed_at=None),
                name="one_open_incident_per_service",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.name} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self):
        return (self.closed_at or timezone.now()) - self.opened_at


class Prediction(models.Model):
    """Trouble that is coming (healthchecks.reads.predict): the whole set is replaced every
    minute, so a prediction lasts as long as its trend."""

    # Null: a prediction of the whole service (its error budget).
    health_check = models.ForeignKey(
        HealthCheck, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="predictions")
    kind = models.CharField(max_length=30)
    message = models.CharField(max_length=300)
    expected_at = models.DateTimeField(null=True, blank=True)
    confidence = models.FloatField()
    evidence = models.JSONField(default=dict)
    generated_at = models.DateTimeField()

    class Meta:
        ordering = ["expected_at"]

    def __str__(self) -> str:
        check = self.health_check  # no query when there is none
        about = f"{self.service.name} / {check.name}" if check is not None else ""
        return f"{about or self.service.name}: {self.kind}"
