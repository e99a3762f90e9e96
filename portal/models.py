from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    """What an API token may do. Session users get scopes from their role (portal.auth)."""

    REGISTRY_READ = "registry:read", "Read the registry"
    REGISTRY_WRITE = "registry:write", "Change the registry"
    CONFIG_READ = "config:read", "Read configurations (secrets masked)"
    CONFIG_WRITE = "config:write", "Change configurations"
    CONFIG_SECRETS = "config:secrets", "Read secret configuration values"
    HEALTH_WRITE = "health:write", "Change checks, run them, report heartbeats"
    AUTOMATION_READ = "automation:read", "Read alerts and notification channels"
    AUTOMATION_WRITE = "automation:write", "Acknowledge alerts, change notification channels"
    CHECKLISTS_WRITE = "checklists:write", "Tick and sign off maintenance checklists"
    AUDIT_READ = "audit:read", "Read the security events"
    CHANGES_READ = "changes:read", "Read the audit log: who changed what"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A credential for pipelines and scripts.

    The secret is shown once when the token is made; only its SHA-256 is stored. The secret
    has 240 random bits, so a fast hash is enough: nothing can be guessed from the digest.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise it.")
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list, help_text="List of scopes, e.g. registry:read.")
    services = models.JSONField(
        default=list,
        blank=True,
        help_text="Service names this token may act on; empty means every service.",
    )
    teams = models.JSONField(
        default=list,
        blank=True,
        help_text="Team names: the token also acts on their services, and may change those "
        "teams. Empty with no services: every service.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True, help_text="Untick to revoke.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class AuditEntry(models.Model):
    """Who changed what, when, from where. Written by portal.audit.record; never edited."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=200, help_text="user:<name>, token:<name> or system")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target = models.CharField(max_length=200, db_index=True)
    changes = models.JSONField(default=dict, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target_type}:{self.target}"


class AuditTeam(models.Model):
    """A team that owned an audit entry's object when the entry was written (a service's
    team -- its old and new one when it moved --, a window's, a channel's teams...): what
    the audit trail filters by team. An entry whose object no team owns has none. Written
    with the entry by portal.audit, from what the apps registered (portal.audit.register_teams)."""

    entry = models.ForeignKey(AuditEntry, on_delete=models.CASCADE, related_name="teams")
    team = models.CharField(max_length=63)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "team"], name="one_row_per_entry_and_team")
        ]
        # The team filter: a team's entries, found by the index, newest (highest id) first.
        indexes = [models.Index(fields=["team", "entry"], name="audit_team_entries")]

    def __str__(self) -> str:
        return self.team


class SecurityEvent(models.Model):
    """Something a security reviewer wants to see (the seed's ``security_context``: who,
    from where, what, and how it ended): failed and throttled logins, bad tokens, refusals,
    rate-limit hits, secret reads, tokens made and revoked. Written by portal.security;
    append-only, beside the audit log (which records changes).

    A refusal repeated by the same caller from the same address within a minute is one row
    that counts (``count``, first seen ``at``, ``last_at``; the first request's operation and
    detail): a flood is a number, not a flood of rows. ``tally`` names that row."""

    class Kind(models.TextChoices):
        LOGIN_FAILED = "login_failed", "login failed"
        LOGIN_THROTTLED = "login_throttled", "login refused: too many failures"
        TOKEN_INVALID = "token_invalid", "unknown bearer token"
        TOKEN_EXPIRED = "token_expired", "expired bearer token"
        PERMISSION_DENIED = "permission_denied", "permission denied"
        RATE_LIMITED = "rate_limited", "rate limit hit"
        SECRET_READ = "secret_read", "secrets read"
        TOKEN_CREATED = "token_created", "token created"
        TOKEN_REVOKED = "token_revoked", "token revoked"
        SIGN_IN_REFUSED = "sign_in_refused", "sign-in through the identity provider refused"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=24, choices=Kind.choices, db_index=True)
    who = models.CharField(max_length=200, help_text="The principal, or the name tried.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    operation = models.CharField(max_length=300, help_text="What was asked: method and path.")
    outcome = models.CharField(max_length=16, help_text="refused or allowed")
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    count = models.PositiveIntegerField(default=1, help_text="Times seen, from at to last_at.")
    last_at = models.DateTimeField(default=timezone.now, help_text="Last seen.")
    # Which counted row a repeat adds to (kind, address, caller, minute; a digest); none for
    # the events that are one row each (secret reads, tokens made and revoked).
    tally = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.get_kind_display()}: {self.who} {self.operation} ({self.outcome}){times}"


class OidcIdentity(models.Model):
    """A person as the identity provider knows them: its issuer and their subject (``sub``),
    which the provider never changes nor gives to anyone else -- unlike a user name or an
    e-mail address. A sign-in finds its account by these alone (portal.directory)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    signed_in_at = models.DateTimeField(null=True, blank=True, help_text="Last sign-in.")
    groups = models.JSONField(
        default=list, blank=True, help_text="The groups the provider named at the last sign-in."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique")
        ]
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class Heartbeat(models.Model):
    """Last time a background component proved it was alive (beat, workers, dispatcher)."""

    name = models.CharField(max_length=100, primary_key=True)
    seen_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
