"""API shapes of checks and health documents."""

from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from ninja import Field, Schema
from pydantic import ConfigDict, StrictBool, StrictStr, field_validator

from healthchecks.models import CheckKind
from portal.fields import Name


class CheckFieldsIn(Schema):
    """A check without its name. Times are seconds. Fields left out keep their stored
    values (new checks get the defaults)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: CheckKind
    target: StrictStr = Field("", max_length=1000)
    interval: int = Field(default_factory=lambda: settings.HEALTH_CHECK_INTERVAL, ge=1, le=86_400)
    timeout: float = Field(
        5.0,
        gt=0,
        le=settings.HEALTH_CHECK_TIMEOUT_MAX,
        description="Seconds for the whole probe, at most the interval and 60.",
    )
    retries: int = Field(0, ge=0, le=100)
    latency_threshold_ms: int | None = Field(None, ge=1, le=600_000)
    critical: StrictBool = True
    enabled: StrictBool = True
    # HTTP
    method: Literal["GET", "HEAD"] = "GET"
    expected_status: list[int] = Field(default_factory=list, max_length=50)
    headers: dict[str, StrictStr] = Field(default_factory=dict, description="Kept encrypted.")
    verify_tls: StrictBool = True
    max_body_bytes: int = Field(65_536, ge=0, le=10_485_760)
    max_redirects: int = Field(5, ge=0, le=20)
    # PostgreSQL / Redis
    password: StrictStr = Field("", max_length=500, description="Kept encrypted.")
    # Heartbeat
    grace: int = Field(0, ge=0, le=86_400, description="Extra seconds before a missed beat.")

    @field_validator("expected_status")
    @classmethod
    def _status_codes(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return sorted(set(codes))

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not name or any(c in name for c in ":\r\n ") or "\n" in value or "\r" in value:
                raise ValueError(f"bad header {name!r}")
        return headers


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
