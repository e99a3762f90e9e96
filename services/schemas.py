"""API shapes of the registry: what pipelines send (``*In``) and get back (``*Out``).

Input is strict: unknown keys are refused (a misspelt ``dependancies`` must not be silently
ignored), booleans must be JSON booleans, names must be DNS-label shaped.
"""

import re
from datetime import datetime
from typing import Annotated, Literal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from ninja import Field, Schema
from pydantic import AfterValidator, ConfigDict, StrictBool, StrictStr
from pydantic_core import PydanticCustomError

from services.models import NAME_HELP, NAME_PATTERN, TAG_PATTERN, DependencyKind, LifecycleStatus

_NAME_RE = re.compile(NAME_PATTERN)
_TAG_RE = re.compile(TAG_PATTERN)
_url_validator = URLValidator(schemes=["http", "https"])


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise PydanticCustomError("name", f"{value!r} is not a valid name: {NAME_HELP}")
    return value


def _check_tag(value: str) -> str:
    if not _TAG_RE.match(value):
        raise PydanticCustomError(
            "tag", f"{value!r} is not a valid tag: up to 50 of a-z 0-9 . _ : / -"
        )
    return value


def _check_url(value: str) -> str:
    if value:
        try:
            _url_validator(value)
        except DjangoValidationError:
            raise PydanticCustomError("url", f"{value!r} is not an http(s) URL") from None
    return value


Name = Annotated[StrictStr, AfterValidator(_check_name)]
TagName = Annotated[StrictStr, AfterValidator(_check_tag)]
Url = Annotated[StrictStr, Field(max_length=500), AfterValidator(_check_url)]


class StrictSchema(Schema):
    model_config = ConfigDict(extra="forbid")


class DependencyIn(StrictSchema):
    service: Name
    kind: DependencyKind = DependencyKind.HARD


class TeamFieldsIn(StrictSchema):
    display_name: StrictStr = Field("", max_length=200)
    description: StrictStr = Field("", max_length=10_000)
    contact: StrictStr = Field("", max_length=200)


class TeamIn(TeamFieldsIn):
    name: Name


class DependencyKindIn(StrictSchema):
    kind: DependencyKind = DependencyKind.HARD


class ServiceFieldsIn(StrictSchema):
    """A service without its name. A field left out keeps its stored value (or its default,
    for a new service); a field given replaces it -- lists included."""

    display_name: StrictStr = Field("", max_length=200)
    description: StrictStr = Field("", max_length=10_000)
    team: Name | None = Field(None, description="Required for a new service.")
    tags: list[TagName] = Field(default_factory=list, max_length=50)
    is_critical: StrictBool = False
    repository_url: Url = ""
    docs_url: Url = ""
    runbook_url: Url = ""
    deployed_version: StrictStr = Field("", max_length=100)
    dependencies: list[Name | DependencyIn] = Field(
        default_factory=list,
        max_length=500,
        description='A plain name is a hard dependency; {"service", "kind"} sets the kind.',
    )


class ServiceIn(ServiceFieldsIn):
    name: Name


class ServiceUpsertIn(ServiceFieldsIn):
    name: Name | None = Field(None, description="Optional; must match the path if given.")


class ManifestIn(StrictSchema):
    teams: list[TeamIn] = Field(default_factory=list, max_length=1000)
    services: list[ServiceIn] = Field(default_factory=list, max_length=10_000)


class TransitionIn(StrictSchema):
    to: LifecycleStatus
    reason: StrictStr = Field("", max_length=2000)


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
    links: LinksOut
    deployed_version: str
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


class ServiceFilter(Schema):
    """One filter for the API list and the overview page."""

    team: Name | None = None
    tag: TagName | None = None
    status: LifecycleStatus | None = None
    critical: bool | None = None
    q: str | None = Field(None, max_length=100, description="Part of the name or display name.")


class PageParams(Schema):
    limit: int = Field(settings.API_PAGE_SIZE, ge=1, le=settings.API_PAGE_SIZE_MAX)
    offset: int = Field(0, ge=0)
