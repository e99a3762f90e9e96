"""API shapes of checks and health documents.

A check's fields are the ones every kind has, plus the options of every kind of check
(healthchecks.probes.kinds), each with its own constraints, defaults and descriptions: a new
kind brings its options with it.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.conf import settings
from ninja import Field, Schema
from pydantic import ConfigDict, StrictBool, StrictFloat, StrictStr, create_model

from healthchecks.probes import KINDS
from portal.fields import Integer, Name

CheckKind = StrEnum("CheckKind", {name.upper(): name for name in KINDS})


class CommonCheckFields(Schema):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: CheckKind
    target: StrictStr = Field("", max_length=1000)
    interval: Integer = Field(
        default_factory=lambda: settings.HEALTH_CHECK_INTERVAL, ge=1, le=86_400
    )
    timeout: StrictFloat = Field(
        5.0,
        gt=0,
        le=settings.HEALTH_CHECK_TIMEOUT_MAX,
        description="Seconds for the whole probe, at most the interval and 60.",
    )
    retries: Integer = Field(0, ge=0, le=100)
    latency_threshold_ms: Integer | None = Field(None, ge=1, le=600_000)
    critical: StrictBool = True
    enabled: StrictBool = True


def _options_of_every_kind() -> dict[str, tuple]:
    """The option fields of all kinds, in the registry's order; kinds that share an option
    (a password) share its definition."""
    fields: dict[str, tuple] = {}
    for kind in KINDS.values():
        for name, info in (kind.options.model_fields if kind.options else {}).items():
            fields.setdefault(name, (info.annotation, info))
    return fields


CheckFieldsIn = create_model(
    "CheckFieldsIn",
    __base__=CommonCheckFields,
    __doc__="A check without its name. Times are seconds. Fields left out keep their stored "
    "values (new checks get the defaults).",
    **_options_of_every_kind(),
)


class CheckIn(CheckFieldsIn):
    name: Name


class CheckOut(Schema):
    name: str
    kind: str
    target: str
    interval: int
    timeout: float
    retries: int
    latency_threshold_ms: int | None
    critical: bool
    enabled: bool
    options: dict[str, Any]
    has_secrets: bool
    heartbeat_url: str | None = Field(
        description="A heartbeat's ping URL (a credential): shown only to callers who may "
        "write the check (health:write); null otherwise."
    )
    status: str
    status_since: datetime | None
    consecutive_failures: int
    last_result_at: datetime | None
    last_response_ms: float | None
    last_outcome: dict[str, Any]
    next_due_at: datetime | None  # None while the check is disabled
