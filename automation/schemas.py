"""API shapes of alerts, deliveries and notification channels."""

from datetime import datetime
from enum import StrEnum
from functools import reduce
from operator import or_
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import ConfigDict, StrictBool, StrictStr

from automation.actions import ACTIONS
from automation.models import ALERT_EVENTS, REMIND_EVERY_MINUTES, Event, Trigger
from portal.fields import AwareMoment, Integer, Name

EventName = StrEnum("EventName", {e.name: e.value for e in Event})
TriggerName = StrEnum("TriggerName", {t.name: t.value for t in Trigger})
PredictionKind = Literal["latency_trend", "error_budget_burn", "tls_expiry", "flapping"]


class AttemptOut(Schema):
    number: int
    started_at: datetime
    finished_at: datetime
    ok: bool
    http_status: int | None
    error: str


class DeliveryOut(Schema):
    id: int
    alert: int | None = Field(description="Null for a check trigger's action.")
    service: str | None
    subject: dict | None = Field(
        description="A check trigger's check, message, since and (predictions) kind."
    )
    rule: str | None
    channel: str
    event: str
    state: str
    created_at: datetime
    not_before: datetime
    finished_at: datetime | None
    detail: str
    reminder: int = Field(description="n of a [REMINDER n]; 0: not a reminder.")
    escalation: dict | None = Field(
        description="A rule's escalation: the rule, after how long, who was told first."
    )
    attempts: list[AttemptOut]


class AlertOut(Schema):
    id: int
    service: str
    status: str = Field(description="down (unhealthy) or degraded, as last seen")
    open: bool
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str
    resolved_at: datetime | None
    cause: str
    root_cause: str | None = Field(
        description="The service whose failure this alert is folded into (null: its own)."
    )
    impacted: list[str] = Field(description="Services whose alerts are folded into this one.")
    silenced: str = Field(description="Why nobody is told of it now (upstream maintenance).")


class NoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(
        min_length=1,
        max_length=5000,
        description="Plain text, 1 to 5,000 characters (control characters and terminal "
        "escapes are taken out); escaped wherever it is shown.",
    )
    public: StrictBool = Field(
        False, description="Shown on the status page while the incident lasts."
    )


class NoteOut(Schema):
    id: int
    alert: int
    text: str
    public: bool
    author: str
    created_at: datetime


class AlertDetailOut(AlertOut):
    deliveries: list[DeliveryOut]
    notes: list[NoteOut] = Field(description="Incident updates, oldest first.")


class AlertPageOut(Schema):
    items: list[AlertOut]
    count: int
    limit: int
    offset: int


class DeliveryPageOut(Schema):
    items: list[DeliveryOut]
    count: int
    limit: int
    offset: int


class ChannelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(
        min_length=1,
        max_length=2000,
        description="An apprise URL (json://host/path, slack://..., mailto://..., ntfy://...). "
        "Stored encrypted; shown back masked.",
    )
    teams: list[Name] = Field(
        default_factory=list, max_length=200, description="Empty: the services of every team."
    )
    events: list[EventName] = Field(
        default_factory=lambda: [e.value for e in ALERT_EVENTS],
        min_length=1,
        max_length=len(Event),
        description="Left out: the alert events (down, degraded, recovered); the deployment "
        "events (deployment_started, deployment_passed, deployment_failed) by name.",
    )
    remind_every_minutes: Integer | None = Field(
        None,
        ge=REMIND_EVERY_MINUTES[0],
        le=REMIND_EVERY_MINUTES[1],
        description="An alert this channel was told of, still open and nobody acknowledged it: "
        "sent again this often, titled [REMINDER n], until acknowledged or resolved (never "
        "while silenced or in maintenance). Null or left out: no reminders.",
    )


class ChannelOut(Schema):
    name: str
    url: str = Field(description="The URL with its secrets masked.")
    teams: list[str]
    events: list[str]
    remind_every_minutes: int | None
    created_at: datetime
    updated_at: datetime


class ChannelTestOut(Schema):
    ok: bool = Field(description="The receiver took the test message.")
    http_status: int | None = Field(description="What the receiver answered, if it was said.")
    error: str | None = Field(
        description="Why it failed (null when ok), without the channel's secrets."
    )
    duration_ms: int
    delivery: int = Field(description="The delivery recorded (GET /api/automation/deliveries).")


class WindowIn(Schema):
    model_config = ConfigDict(extra="forbid")

    services: list[Name] = Field(default_factory=list, max_length=1000)
    team: Name | None = None
    starts_at: AwareMoment = Field(
        description="With a time zone (Z or +hh:mm). A recurring window: its first occurrence's "
        "start, which the rule must produce."
    )
    ends_at: AwareMoment = Field(
        description="A recurring window: its first occurrence's end; every occurrence lasts as "
        "long (elapsed time)."
    )
    reason: StrictStr = Field("", max_length=500)
    rrule: StrictStr | None = Field(
        None,
        max_length=500,
        description="An RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=SU): the window recurs. At most "
        "one occurrence a minute, occurrences never overlap, UNTIL (UTC) or COUNT within 10 "
        "years of the first start; without either the series ends 10 years after it; at most "
        "10,000 occurrences. Null or left out: the window happens once.",
    )
    tz: StrictStr = Field(
        "UTC",
        max_length=64,
        description="The IANA time zone whose local time the rule keeps (02:00 Europe/Berlin "
        "stays 02:00 across DST; a local time that does not exist is read with the offset from "
        "before the gap, a repeated one is the first).",
    )


class OccurrenceOut(Schema):
    starts_at: datetime
    ends_at: datetime
    cancelled: bool


class WindowOut(Schema):
    id: int
    services: list[str]
    team: str | None
    starts_at: datetime = Field(description="A recurring window: its first occurrence's start.")
    ends_at: datetime = Field(description="A recurring window: its first occurrence's end.")
    reason: str
    rrule: str | None = Field(description="The RRULE (normalised); null: the window is one-off.")
    tz: str
    series_ends_at: datetime | None = Field(
        description="A recurring window: when its last occurrence ends."
    )
    created_by: str
    open: bool = Field(description="The window is open now: its services read maintenance.")
    state: Literal["open", "planned", "ended", "cancelled"]
    next_occurrences: list[OccurrenceOut] = Field(
        description="The next 5 occurrences not ended (the open one first), cancelled ones "
        "marked; a one-off window's own span until it ends; none once cancelled."
    )
    cancelled_at: datetime | None
    cancelled_by: str
    cancelled_occurrences: list[datetime] = Field(
        description="Starts of the occurrences cancelled one by one."
    )


class CancelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    occurrence: AwareMoment | None = Field(
        None,
        description="The start of the one occurrence to cancel (as next_occurrences gives it). "
        "Null or left out: the whole window, every occurrence.",
    )


# An action's options, one schema per kind, from the kinds' registry (automation.actions).
Action = Annotated[
    reduce(or_, [kind.options for kind in ACTIONS.values()]), Field(discriminator="type")
]


class RuleScope(Schema):
    model_config = ConfigDict(extra="forbid")

    services: list[Name] = Field(default_factory=list, max_length=1000)
    team: Name | None = None
    tag: StrictStr | None = Field(None, max_length=50)
    critical_only: StrictBool = False


class RuleCondition(Schema):
    model_config = ConfigDict(extra="forbid")

    failures: Integer | None = Field(
        None, ge=1, le=1000, description="check_failing: this many failures in a row (default 3)."
    )
    kinds: list[PredictionKind] | None = Field(
        None, max_length=4, description="prediction: only these kinds (default: any)."
    )


class RuleIn(Schema):
    model_config = ConfigDict(extra="forbid")

    trigger: TriggerName = Field(
        description="A service's alert event (down, degraded, recovered) or a condition of one "
        "of its checks (check_failing, heartbeat_missed, prediction), fired once per episode."
    )
    condition: RuleCondition = Field(default_factory=RuleCondition)
    scope: RuleScope = Field(default_factory=RuleScope, description="Empty: every service.")
    actions: list[Action] = Field(min_length=1, max_length=10)
    escalation: list[Action] = Field(default_factory=list, max_length=10)
    escalate_after_minutes: Integer | None = Field(None, ge=1, le=10_080)
    cooldown_seconds: Integer = Field(300, ge=0, le=86_400)
    enabled: StrictBool = True


class RuleOut(Schema):
    name: str
    trigger: str
    condition: dict
    scope: dict
    actions: list[dict]
    escalation: list[dict]
    escalate_after_minutes: int | None
    cooldown_seconds: int
    enabled: bool
    updated_at: datetime
