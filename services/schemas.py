"""API shapes of the registry: what pipelines send (``*In``) and get back (``*Out``).

Input is strict: unknown keys are refused (a misspelt ``dependancies`` must not be silently
ignored), booleans must be JSON booleans, names must be DNS-label shaped.
"""

from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic import ConfigDict, StrictBool, StrictFloat, StrictStr

from portal.fields import (
    MAX_INT32,
    Integer,
    Name,
    PlainLine,
    PlainText,
    TagName,
    Url,
    UrlBoolean,
    UrlInteger,
)
from services.models import MAX_BAKE_SECONDS, DependencyKind, LifecycleStatus


class StrictSchema(Schema):
    # Defaults are given as ``Field(default=...)``: the type checker reads a default from that
    # keyword only (ninja's Schema is a dataclass_transform), and calls in code need it.
    model_config = ConfigDict(extra="forbid")


class DependencyIn(StrictSchema):
    service: Name
    kind: DependencyKind = DependencyKind.HARD


class TeamFieldsIn(StrictSchema):
    # Free text loses terminal escapes and control characters (portal.fields.PlainLine).
    display_name: PlainLine = Field(default="", max_length=200)
    description: PlainText = Field(default="", max_length=10_000)
    contact: PlainLine = Field(default="", max_length=200)


class TeamIn(TeamFieldsIn):
    name: Name


class DependencyKindIn(StrictSchema):
    kind: DependencyKind = DependencyKind.HARD


class ServiceFieldsIn(StrictSchema):
    """A service without its name. A field left out keeps its stored value (or its default,
    for a new service); a field given replaces it -- lists included."""

    display_name: PlainLine = Field(default="", max_length=200)
    description: PlainText = Field(default="", max_length=10_000)
    team: Name | None = Field(default=None, description="Required for a new service.")
    tags: list[TagName] = Field(default_factory=list, max_length=50)
    is_critical: StrictBool = False
    slo_target: StrictFloat | None = Field(
        default=None,
        ge=50,
        le=99.999,
        description="Availability objective over 30 days in percent (99.9); null: none. "
        "Its error budget's burn rate is predicted on /health/predictive.",
    )
    repository_url: Url = ""
    docs_url: Url = ""
    runbook_url: Url = ""
    deployed_version: StrictStr = Field(default="", max_length=100)
    config_validation_level: Literal["", "strict", "lenient", "off"] = Field(
        default="", description="Blank: the portal default (SERVICE_CONFIG_VALIDATION_LEVEL)."
    )
    deploy_bake_seconds: Integer = Field(
        default=0,
        ge=0,
        le=MAX_BAKE_SECONDS,
        description="Seconds a deployment's checks must hold usable after its report before "
        "its verification passes, when the report names no bake_seconds (0: one fresh usable "
        "round).",
    )
    on_failed_verification: Literal["none", "rollback_config"] = Field(
        default="none",
        description="rollback_config: when a deployment that names its config_version fails "
        "verification (and no hard dependency was down before it), restore the configuration "
        "version the last passed deployment carried, as a new version.",
    )
    dependencies: list[Name | DependencyIn] = Field(
        default_factory=list,
        max_length=500,
        description='A plain name is a hard dependency; {"service", "kind"} sets the kind.',
    )


class ServiceIn(ServiceFieldsIn):
    name: Name


class ServiceUpsertIn(ServiceFieldsIn):
    name: Name | None = Field(default=None, description="Optional; must match the path if given.")


class ManifestIn(StrictSchema):
    teams: list[TeamIn] = Field(default_factory=list, max_length=1000)
    services: list[ServiceIn] = Field(default_factory=list, max_length=10_000)


class TransitionIn(StrictSchema):
    to: LifecycleStatus
    reason: StrictStr = Field(default="", max_length=2000)
    force: StrictBool = Field(
        default=False,
        description="Move even though hard dependencies are not running (start) or hard "
        "dependents still run (stop); recorded in the audit log.",
    )


class DependencyOut(Schema):
    service: str
    kind: str


class LinksOut(Schema):
    repository: str
    docs: str
    runbook: str


class ServiceOut(Schema):
    name: str
    display_name: str
    description: str
    team: str
    tags: list[str]
    is_critical: bool
    slo_target: float | None
    links: LinksOut
    deployed_version: str
    config_validation_level: str
    deploy_bake_seconds: int
    on_failed_verification: str
    lifecycle_status: LifecycleStatus
    lifecycle_changed_at: datetime
    dependencies: list[DependencyOut]
    created_at: datetime
    updated_at: datetime


class ServicePageOut(Schema):
    items: list[ServiceOut]
    count: int
    limit: int
    offset: int


class UpsertOut(Schema):
    result: Literal["created", "updated", "unchanged"]
    changed_fields: list[str]
    service: ServiceOut


class ApplyTeamsOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class ApplyOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    teams: ApplyTeamsOut


class TeamOut(Schema):
    name: str
    display_name: str
    description: str
    contact: str
    service_count: int = 0


class TeamPageOut(Schema):
    items: list[TeamOut]
    count: int
    limit: int
    offset: int


class TransitionOut(Schema):
    from_status: str
    to_status: str
    reason: str
    actor: str
    created_at: datetime


class TransitionResultOut(Schema):
    service: str
    lifecycle_status: LifecycleStatus
    changed: bool
    allowed_next: list[LifecycleStatus]


class ImpactOut(Schema):
    service: str
    depth: int
    via: str
    effect: Literal["down", "degraded"]


class OrderOut(Schema):
    order: list[str]


class DependentToStopOut(Schema):
    service: str
    kind: Literal["hard", "soft"] = Field(
        description="hard: a chain of hard dependencies leads to the service, which it cannot "
        "work without (the lifecycle refuses to stop the service while a direct one is "
        "starting, running or degraded: 409 `has_running_dependents`); soft: it goes on, "
        "degraded."
    )


class ShutdownOrderOut(OrderOut):
    order: list[str] = Field(
        description="The services in the order to stop them, dependents first; with "
        "`?service=x`, x and what it needs (x first)."
    )
    dependents: list[DependentToStopOut] = Field(
        description="With `?service=x`: every service that depends on x, directly or through "
        "others, in the order to stop them -- all of them before x (the first of `order`). "
        "Empty without `service` (`order` is then every service)."
    )


class ServiceFilter(Schema):
    """One filter for the API list and the overview page."""

    team: Name | None = None
    tag: TagName | None = None
    status: LifecycleStatus | None = None
    critical: UrlBoolean | None = None
    q: str | None = Field(
        default=None, max_length=100, description="Part of the name or display name."
    )


class PageParams(Schema):
    limit: UrlInteger = Field(default=settings.API_PAGE_SIZE, ge=1, le=settings.API_PAGE_SIZE_MAX)
    offset: UrlInteger = Field(default=0, ge=0, le=MAX_INT32)


# --- Configuration ---------------------------------------------------------------------------


class ConfigIn(StrictSchema):
    values: dict[str, Any]
    base_version: Integer = Field(
        ge=0, le=MAX_INT32, description="The version this edit started from; 0 for the first."
    )
    comment: StrictStr = Field(default="", max_length=500)


class ValidateIn(StrictSchema):
    values: dict[str, Any]
    base_version: Integer | None = Field(
        default=None,
        ge=0,
        le=MAX_INT32,
        description="Optional: given, a version that is no longer current answers 409.",
    )
    comment: StrictStr = Field(default="", max_length=500)


class RollbackIn(StrictSchema):
    to_version: Integer = Field(ge=1, le=MAX_INT32)
    base_version: Integer | None = Field(
        default=None, ge=0, le=MAX_INT32, description="Refuse if no longer current."
    )
    comment: StrictStr = Field(default="", max_length=500)


class ConfigOut(Schema):
    service: str
    version: int = Field(description="0: nothing stored yet, the values are the schema's defaults")
    defaults_only: bool = Field(description="True for version 0 (the schema's defaults)")
    values: dict[str, Any]
    valid: bool | None
    issues: dict[str, str]
    hash: str
    schema_version: int | None
    current_schema_version: int | None
    validation_level: str
    secret_paths: list[list[str]]
    secrets_masked: bool
    author: str
    comment: str
    rolled_back_from: int | None
    created_at: datetime | None


class PublishOut(Schema):
    service: str
    version: int | None
    changed: bool
    stored: bool
    valid: bool | None
    warnings: dict[str, str]
    validation_level: str
    hash: str


class ConfigVersionOut(Schema):
    version: int
    valid: bool | None
    hash: str
    schema_version: int | None
    validation_level: str
    author: str
    comment: str
    rolled_back_from: int | None
    created_at: datetime


class DiffEntryOut(Schema):
    path: str
    secret: bool = False
    value: Any = None
    old: Any = None
    new: Any = None


class DiffOut(Schema):
    service: str
    from_version: int
    to_version: int
    added: list[DiffEntryOut]
    removed: list[DiffEntryOut]
    changed: list[DiffEntryOut]


class SchemaPutOut(Schema):
    service: str
    version: int
    changed: bool
    source_format: str
    secret_paths: list[list[str]]
    current_config: dict[str, Any] | None


class SchemaOut(Schema):
    service: str
    version: int
    schema_: dict[str, Any] = Field(alias="schema")
    source_format: str
    source: dict[str, Any]
    secret_paths: list[list[str]]
    author: str
    comment: str
    created_at: datetime


class DeploymentIn(StrictSchema):
    # One line: control characters and escape sequences out, as every free text of the
    # registry (it reaches messages and terminals).
    version: PlainLine = Field(min_length=1, max_length=100)
    status: Literal["in_progress", "succeeded", "failed", "rolled_back"] = "succeeded"
    config_version: Integer | None = Field(default=None, ge=1, le=MAX_INT32)
    config_hash: StrictStr = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="A configuration's content hash (64 hex digits), as the API answers it.",
    )
    link: Url = ""
    bake_seconds: Integer | None = Field(
        default=None,
        ge=0,
        le=MAX_BAKE_SECONDS,
        description="Seconds the checks must hold usable after the report before the "
        "verification passes; left out: the service's deploy_bake_seconds (0: one fresh "
        "usable round).",
    )


class EvidenceOut(Schema):
    check: str
    status: str
    at: datetime | None
    error: str


class VerificationOut(Schema):
    state: Literal["pending", "passed", "failed"]
    started_at: datetime
    finished_at: datetime | None
    reason: str
    evidence: list[EvidenceOut]


class DeploymentOut(Schema):
    id: int
    service: str
    version: str
    status: str
    config_version: int | None
    config_hash: str
    link: str
    actor: str
    created_at: datetime
    bake_seconds: int
    verification: VerificationOut | None = Field(
        description="null: a report of a failed or rolled-back rollout, nothing to verify."
    )


class DriftOut(Schema):
    service: str
    state: Literal["in_sync", "drifting", "unknown"]
    drifting: bool
    current_version: int | None
    current_hash: str | None
    applied_version: int | None
    applied_hash: str | None
    deployment: dict[str, Any] | None


class DriftListItemOut(Schema):
    service: str
    deployed_version: str | None
    applied_version: int | None
    current_version: int | None
    applied_hash: str
    current_hash: str
