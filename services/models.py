from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.fields import name_validator, tag_validator


class Team(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    contact = models.CharField(max_length=200, blank=True, help_text="E-mail or chat channel.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="teams",
        help_text="People of the team: its operators change its services, configs and checks.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True, validators=[tag_validator])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LifecycleStatus(models.TextChoices):
    REGISTERED = "registered"
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


# A bake longer than a day is a release process of its own, not a verification.
MAX_BAKE_SECONDS = 86_400


class OnFailedVerification(models.TextChoices):
    NONE = "none"
    ROLLBACK_CONFIG = "rollback_config"


class Service(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    tags = models.ManyToManyField(Tag, blank=True, related_name="services")
    is_critical = models.BooleanField(default=False)
    # An availability objective in percent over 30 days (99.9), or none: the error budget
    # the predictor watches burn (healthchecks.reads.predict).
    slo_target = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(50.0), MaxValueValidator(99.999)],
        help_text="Availability objective over 30 days, in percent (e.g. 99.9); blank: none.",
    )
    repository_url = models.URLField(max_length=500, blank=True)
    docs_url = models.URLField(max_length=500, blank=True)
    runbook_url = models.URLField(max_length=500, blank=True)
    deployed_version = models.CharField(max_length=100, blank=True)
    lifecycle_status = models.CharField(
        max_length=16,
        choices=LifecycleStatus.choices,
        default=LifecycleStatus.REGISTERED,
        db_index=True,
        editable=False,  # changed only through services.lifecycle, which records why
    )
    lifecycle_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    config_validation_level = models.CharField(
        max_length=8,
        blank=True,
        choices=[("strict", "strict"), ("lenient", "lenient"), ("off", "off")],
        help_text="Blank: the portal default (SERVICE_CONFIG_VALIDATION_LEVEL).",
    )
    # How long a reported deployment's checks must hold after it when the report names no
    # bake time (healthchecks.engine.verification).
    deploy_bake_seconds = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_BAKE_SECONDS)],
        help_text="Seconds a deployment's checks must hold healthy when its report names no "
        "bake time (0: one fresh healthy round).",
    )
    # What a failed verification of a deployment that names its configuration version does:
    # rollback_config restores the configuration the last passed deployment carried.
    on_failed_verification = models.CharField(
        max_length=16,
        choices=OnFailedVerification.choices,
        default=OnFailedVerification.NONE,
        help_text="rollback_config: when a deployment that names its configuration version "
        "fails verification, restore the configuration the last passed deployment carried.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Its page (the admin's "view on site" leads there)."""
        return reverse("pages:service", args=[self.name])

    @property
    def title(self) -> str:
        return self.display_name or self.name


class DependencyKind(models.TextChoices):
    HARD = "hard", "Hard (cannot work without it)"
    SOFT = "soft", "Soft (works degraded without it)"


class Dependency(models.Model):
    """``service`` needs ``depends_on``. Acyclic: services.graph refuses a cycle."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(
        # PROTECT: a service others need cannot vanish from under them (the API says who).
        Service,
        on_delete=models.PROTECT,
        related_name="dependent_links",
    )
    kind = models.CharField(
        max_length=8, choices=DependencyKind.choices, default=DependencyKind.HARD
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "dependencies"
        constraints = [
            models.UniqueConstraint(fields=["service", "depends_on"], name="dependency_unique"),
            models.CheckConstraint(
                condition=~models.Q(service=models.F("depends_on")), name="dependency_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name} -> {self.depends_on.name} ({self.kind})"


class LifecycleTransition(models.Model):
    """One recorded change of a service's lifecycle status, with its reason and actor."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=LifecycleStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=LifecycleStatus.choices)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "-created_at"], name="transition_by_service")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class ValidationLevel(models.TextChoices):
    STRICT = "strict", "Strict: refuse any violation"
    LENIENT = "lenient", "Lenient: store, mark invalid, warn"
    OFF = "off", "Off: store without checking"


class ConfigSchema(models.Model):
    """One immutable version of a service's configuration schema (JSON Schema 2020-12)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="config_schemas")
    version = models.PositiveIntegerField()
    schema = models.JSONField(help_text="Normalised JSON Schema (draft 2020-12).")
    source_format = models.CharField(max_length=16, default="jsonschema")
    source = models.JSONField(help_text="The document as it was sent (JSON Schema or seed form).")
    secret_paths = models.JSONField(default=list, help_text="Paths of writeOnly (secret) fields.")
    author = models.CharField(max_length=200)
    comment = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["service", "version"], name="config_schema_version")
        ]

    def __str__(self) -> str:
        return f"{self.service.name} schema v{self.version}"


class ConfigVersion(models.Model):
    """One immutable, numbered version of a service's configuration.

    ``values`` is the effective document (schema defaults merged in) with every secret
    leaf replaced by its Fernet token; ``secret_paths`` says which leaves those are, so the
    version can be read even after the schema changes.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="config_versions")
    version = models.PositiveIntegerField()
    values = models.JSONField()
    secret_paths = models.JSONField(default=list)
    # RESTRICT, not PROTECT: a schema cannot be deleted while versions use it, except
    # together with them (deleting the service deletes both).
    schema = models.ForeignKey(
        ConfigSchema, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    validation_level = models.CharField(max_length=8, choices=ValidationLevel.choices)
    valid = models.BooleanField(null=True, help_text="Null: stored without validation.")
    issues = models.JSONField(default=dict, blank=True, help_text="Field path -> reason.")
    content_hash = models.CharField(max_length=64, help_text="Keyed hash of the plaintext.")
    author = models.CharField(max_length=200)
    comment = models.CharField(max_length=500, blank=True)
    rolled_back_from = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["service", "version"], name="config_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.service.name} config v{self.version}"


class DeploymentStatus(models.TextChoices):
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class VerificationState(models.TextChoices):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class Deployment(models.Model):
    """A deployment a pipeline reported: which build and which configuration it applied, and
    the verdict on it, judged on results recorded after the report
    (healthchecks.engine.verification; blank for a report of a failed or rolled-back
    rollout, which has nothing to verify)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    version = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices)
    config_version = models.PositiveIntegerField(null=True, blank=True)
    config_hash = models.CharField(max_length=64, blank=True)
    link = models.URLField(max_length=500, blank=True)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    bake_seconds = models.PositiveIntegerField(default=0)
    verification_state = models.CharField(
        max_length=8, blank=True, choices=VerificationState.choices
    )
    verification_finished_at = models.DateTimeField(null=True, blank=True)
    verification_reason = models.TextField(blank=True)
    # [{"check", "status", "at", "error"}]: the results the verdict rests on.
    verification_evidence = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "-created_at"], name="deployment_by_service"),
            # The dispatcher asks every second whether anything waits for a verdict.
            models.Index(
                fields=["created_at"],
                condition=models.Q(verification_state="pending"),
                name="deployment_verifying",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name} {self.version} {self.status}"


class MaintenanceWindow(models.Model):
    """Planned work on some services (listed, or every service of a team) between two times,
    once or recurring (an RFC 5545 RRULE in a time zone: starts_at..ends_at is then the first
    occurrence). During it their derived health reads MAINTENANCE and nobody is paged for them.
    Cancelled, a window is kept (and listed as cancelled); so is a cancelled occurrence."""

    services = models.ManyToManyField(Service, blank=True, related_name="maintenance_windows")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    rrule = models.CharField(
        max_length=500,
        blank=True,
        help_text="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU: the window recurs, starts_at and "
        "ends_at being its first occurrence. Empty: once.",
    )
    tz = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA time zone whose local time the rule keeps (02:00 stays 02:00 across DST).",
    )
    # A recurring window: when its last occurrence ends (services.recurrence.plan), so "which
    # windows may be open now" is one indexed query before the rule is asked.
    series_ends_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Starts (UTC, ISO 8601) of the occurrences cancelled one by one, like an EXDATE list.
    cancelled_occurrences = models.JSONField(default=list, blank=True, editable=False)
    cancelled_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancelled_by = models.CharField(max_length=200, blank=True, editable=False)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="window_by_time")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="window_ends_after"
            ),
            models.CheckConstraint(
                condition=models.Q(rrule="", series_ends_at__isnull=True)
                | (~models.Q(rrule="") & models.Q(series_ends_at__gte=models.F("ends_at"))),
                name="window_series_ends",
            ),
        ]

    def __str__(self) -> str:
        return f"maintenance {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%H:%M}: {self.reason}"
