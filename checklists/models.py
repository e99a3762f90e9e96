"""Checklist templates (the routines, editable in the admin), their runs per period, and every
tick and untick as a record."""

from django.db import models
from django.utils import timezone

from portal.fields import name_validator


class Period(models.TextChoices):
    DAILY = "daily", "daily"
    WEEKLY = "weekly", "weekly"
    MONTHLY = "monthly", "monthly"
    QUARTERLY = "quarterly", "quarterly"
    SERVICE = "service", "per service, started when needed"


class Verify(models.TextChoices):
    """An item the portal checks itself when a service's checklist starts (checklists.verify)."""

    NONE = "", "ticked by a person"
    DEPENDENCIES = "dependencies_healthy", "every hard dependency usable"
    CHECKS = "checks_healthy", "every check of the service healthy"
    CONFIG = "config_valid", "the current configuration valid against its schema"


class Evidence(models.TextChoices):
    """What the portal knows that answers an item (checklists.evidence)."""

    NONE = "", "none"
    HEALTH = "health", "services not healthy now"
    FAILING_CHECKS = "failing_checks", "failing and flapping checks"
    SLOW_CHECKS = "slow_checks", "slowest checks of the day"
    PREDICTIONS = "predictions", "predictions standing now"
    DRIFT = "drift", "services whose configuration drifts"
    DEPENDENCIES = "dependencies", "services with an unhealthy hard dependency"


class ChecklistTemplate(models.Model):
    """A routine: its items, done once per period."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    title = models.CharField(max_length=200)
    period = models.CharField(max_length=10, choices=Period.choices)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"],
                condition=~models.Q(period="service"),
                name="one_routine_per_period",
            )
        ]

    def __str__(self) -> str:
        return self.title


class ChecklistItem(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    section = models.CharField(max_length=100, blank=True)
    text = models.CharField(max_length=300)
    position = models.PositiveSmallIntegerField(default=0)
    evidence = models.CharField(max_length=20, choices=Evidence.choices, blank=True)
    verify = models.CharField(max_length=24, choices=Verify.choices, blank=True)

    class Meta:
        ordering = ["template", "position", "id"]

    def __str__(self) -> str:
        return f"{self.template.name}: {self.text}"


class ChecklistRun(models.Model):
    """One period's pass through a routine (today, this ISO week, this month, this quarter),
    or one pass of a per-service checklist for ``service`` (started on a day, by someone)."""

    template = models.ForeignKey(ChecklistTemplate, on_delete=models.PROTECT, related_name="runs")
    service = models.ForeignKey(
        "services.Service",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="checklist_runs",
    )
    started_by = models.CharField(max_length=200, blank=True)
    period_start = models.DateField()
    period_end = models.DateField(help_text="The last day of the period.")
    label = models.CharField(max_length=20, help_text="2026-12-02, 2026-W49, 2026-12, 2026-Q4")
    created_at = models.DateTimeField(default=timezone.now)
    signed_off_by = models.CharField(max_length=200, blank=True)
    signed_off_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "template__position"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "period_start"],
                condition=models.Q(service=None),
                name="one_run_per_period",
            )
        ]

    def __str__(self) -> str:
        if self.service is not None:  # no query when there is none
            return f"{self.template.title} of {self.service.name}, {self.label}"
        return f"{self.template.title} {self.label}"


class Tick(models.Model):
    """An item ticked or unticked in a run, by whom and when (append-only: the latest per
    item is its state; the earlier ones are its history)."""

    run = models.ForeignKey(ChecklistRun, on_delete=models.CASCADE, related_name="ticks")
    item = models.ForeignKey(ChecklistItem, on_delete=models.PROTECT, related_name="ticks")
    done = models.BooleanField()
    note = models.CharField(max_length=1000, blank=True)
    by = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "item", "-at", "-id"]
        indexes = [models.Index(fields=["run", "item", "-at"], name="tick_latest")]

    def __str__(self) -> str:
        return f"{'ticked' if self.done else 'unticked'} {self.item} by {self.by}"
