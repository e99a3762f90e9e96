"""Alerts and notification channels: thin handlers over automation.alerts and .channels."""

from dataclasses import asdict

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from automation import alerts, channels, notes, rules, tryout
from automation.models import Alert, Delivery, DeliveryAttempt, Note, NotificationChannel, Rule
from automation.schemas import (
    AlertDetailOut,
    AlertPageOut,
    CancelIn,
    ChannelIn,
    ChannelOut,
    ChannelTestOut,
    DeliveryPageOut,
    NoteIn,
    NoteOut,
    RuleIn,
    RuleOut,
    WindowIn,
    WindowOut,
)
from healthchecks.status import Status as Health
from portal.auth import authorize
from portal.errors import Forbidden, NotFound, answers
from portal.fields import MAX_INT32, PathName, UrlBoolean, UrlInteger
from portal.models import Scope
from portal.responses import page_of
from services import maintenance
from services.models import MaintenanceWindow

router = Router(tags=["automation"])


class AlertFilters(Schema):
    open: UrlBoolean | None = None
    service: str | None = None
    limit: UrlInteger = Field(100, ge=1, le=500)
    offset: UrlInteger = Field(0, ge=0, le=MAX_INT32)


def _word(status: int) -> str:
    return "down" if status == Health.UNHEALTHY else Health(status).label


def _alert_out(alert: Alert, impacted: list[str]) -> dict:
    return {
        "id": alert.id,
        "service": alert.service.name,
        "status": _word(alert.status),
        "open": alert.resolved_at is None,
        "opened_at": alert.opened_at,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "cause": alert.cause,
        "root_cause": alert.root.service.name if alert.root_id else None,
        "impacted": impacted,
        "silenced": alert.silenced,
    }


def _visible(request: HttpRequest):
    principal = request.auth
    rows = Alert.objects.select_related("service", "root__service")
    if principal.services is not None:
        rows = rows.filter(service__name__in=principal.services)
    return rows


def _impacted(alert_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for root_id, name in (
        Alert.objects.filter(root_id__in=alert_ids)
        .order_by("service__name")
        .values_list("root_id", "service__name")
    ):
        found.setdefault(root_id, []).append(name)
    return found


@router.get("/alerts", response=AlertPageOut, summary="Alerts, newest first")
def list_alerts(request: HttpRequest, filters: Query[AlertFilters]):
    authorize(request, Scope.AUTOMATION_READ)
    rows = _visible(request)
    if filters.open is not None:
        rows = rows.filter(resolved_at__isnull=filters.open)
    if filters.service:
        rows = rows.filter(service__name=filters.service)
    return page_of(rows.order_by("-opened_at", "-id"), filters.limit, filters.offset, _alerts_out)


def _alerts_out(rows) -> list[dict]:
    page = list(rows)
    impacted = _impacted([a.id for a in page])
    return [_alert_out(a, impacted.get(a.id, [])) for a in page]


def _get(request: HttpRequest, alert_id: int) -> Alert:
    alert = None
    if 0 < alert_id <= 2**62:
        alert = _visible(request).filter(id=alert_id).first()
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    return alert


def _deliveries_out(rows) -> list[dict]:
    rows = rows.select_related("alert", "service", "rule").prefetch_related(
        Prefetch("attempt_rows", queryset=DeliveryAttempt.objects.order_by("number"))
    )
    return [
        {
            "id": d.id,
            "alert": d.alert_id,
            "service": d.service.name if d.service_id else None,
            "subject": d.subject,
            "rule": d.rule.name if d.rule_id else None,
            "channel": d.channel_name,
            "event": d.event,
            "state": d.state,
            "created_at": d.created_at,
            "not_before": d.not_before,
            "finished_at": d.finished_at,
            "detail": d.detail,
            "reminder": d.reminder,
            "escalation": d.escalation,
            "attempts": [
                {
                    "number": a.number,
                    "started_at": a.started_at,
                    "finished_at": a.finished_at,
                    "ok": a.ok,
                    "http_status": a.http_status,
                    "error": a.error,
                }
                for a in d.attempt_rows.all()
            ],
        }
        for d in rows
    ]


def _detail(alert: Alert) -> dict:
    body = _alert_out(alert, _impacted([alert.id]).get(alert.id, []))
    body["deliveries"] = _deliveries_out(alert.deliveries.all())
    body["notes"] = [_note_out(n) for n in alert.notes.all()]
    return body


def _note_out(note: Note) -> dict:
    return {
        "id": note.id,
        "alert": note.alert_id,
        "text": note.text,
        "public": note.public,
        "author": note.author,
        "created_at": note.created_at,
    }


@router.get("/alerts/{alert_id}", response=AlertDetailOut, summary="An alert and its deliveries")
def get_alert(request: HttpRequest, alert_id: UrlInteger):
    authorize(request, Scope.AUTOMATION_READ)
    return _detail(_get(request, alert_id))


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response=AlertDetailOut,
    summary="Acknowledge an alert (someone is on it); 409 if it already is",
    openapi_extra=answers({409: "the alert is acknowledged already, or resolved"}),
)
def acknowledge_alert(request: HttpRequest, alert_id: UrlInteger):
    actor = authorize(request, Scope.AUTOMATION_WRITE)
    alerts.acknowledge(_get(request, alert_id).id, actor)
    return _detail(_get(request, alert_id))


@router.post(
    "/alerts/{alert_id}/notes",
    response={201: NoteOut},
    summary="Add a note to an alert (an incident update)",
    description="Who may acknowledge the alert may add notes, open or resolved. `public` "
    "notes of an ongoing incident show on the status page. Audited as alert.note.",
)
def add_note(request: HttpRequest, alert_id: UrlInteger, payload: NoteIn):
    actor = authorize(request, Scope.AUTOMATION_WRITE)
    note = notes.add_note(_get(request, alert_id).id, actor, payload.text, payload.public)
    return Status(201, _note_out(note))


def _channel_out(channel: NotificationChannel) -> dict:
    return {
        "name": channel.name,
        "url": channel.url_shown,
        "teams": channel.teams,
        "events": channel.events,
        "remind_every_minutes": channel.remind_every_minutes,
        "created_at": channel.created_at,
        "updated_at": channel.updated_at,
    }


def _everywhere(request: HttpRequest, scope: str, what: str = "notification channels"):
    """Channels (and rules) serve every service: a token limited to some services may not
    change them. The refusal names what was refused."""
    principal = authorize(request, scope)
    if scope == Scope.AUTOMATION_WRITE and principal.services is not None:
        raise Forbidden(f"a token limited to some services cannot change {what}")
    return principal


@router.get("/notification-channels", response=list[ChannelOut])
def list_channels(request: HttpRequest):
    _everywhere(request, Scope.AUTOMATION_READ)
    return [_channel_out(c) for c in NotificationChannel.objects.order_by("name")]


@router.get("/notification-channels/{name}", response=ChannelOut)
def get_channel(request: HttpRequest, name: str):
    _everywhere(request, Scope.AUTOMATION_READ)
    channel = NotificationChannel.objects.filter(name=name).first()
    if channel is None:
        raise NotFound(f"no notification channel named {name!r}")
    return _channel_out(channel)


@router.put(
    "/notification-channels/{name}",
    response={200: ChannelOut, 201: ChannelOut},
    summary="Create or replace a notification channel",
    description="The URL must be one apprise understands, and where it names a host, one the "
    "network policy allows (422 otherwise, nothing stored).",
)
def put_channel(request: HttpRequest, name: PathName, payload: ChannelIn):
    actor = _everywhere(request, Scope.AUTOMATION_WRITE)
    data = channels.ChannelIn(
        url=payload.url,
        teams=list(payload.teams),
        events=[str(e) for e in payload.events],
        remind_every_minutes=payload.remind_every_minutes,
    )
    channel, created = channels.put_channel(name, data, actor)
    return Status(201 if created else 200, _channel_out(channel))


@router.post(
    "/notification-channels/{name}/test",
    response=ChannelTestOut,
    summary="Send a test message to a channel now, and say how it went",
    description="Titled [TEST] Portal test message from <you>; sent as every notification is "
    "(the network policy, the egress guard, a recorded delivery and attempt), once, at once. "
    "200 whether the receiver took it or not (`ok`); who may change the channel may test it.",
)
def test_channel(request: HttpRequest, name: str):
    actor = _everywhere(request, Scope.AUTOMATION_WRITE)
    return asdict(tryout.send_test_message(name, actor))


@router.delete("/notification-channels/{name}", response={204: None})
def delete_channel(request: HttpRequest, name: str):
    actor = _everywhere(request, Scope.AUTOMATION_WRITE)
    channels.delete_channel(name, actor)
    return HttpResponse(status=204)


def _window_out(window: MaintenanceWindow, now) -> dict:
    return {
        **maintenance.describe(window),
        "starts_at": window.starts_at,
        "ends_at": window.ends_at,
        "series_ends_at": window.series_ends_at,
        "cancelled_at": window.cancelled_at,
        "cancelled_occurrences": sorted(maintenance.cancelled_starts(window)),
        "open": maintenance.current_occurrence(window, now) is not None,
        "state": maintenance.state(window, now),
        "next_occurrences": [
            {"starts_at": o.starts_at, "ends_at": o.ends_at, "cancelled": o.cancelled}
            for o in maintenance.next_occurrences(window, now)
        ],
    }


def _windows_visible(request: HttpRequest):
    rows = MaintenanceWindow.objects.select_related("team").prefetch_related("services")
    principal = request.auth
    if principal.services is not None:
        rows = rows.filter(services__name__in=principal.services).distinct()
    return rows


@router.post(
    "/maintenance-windows",
    response={201: WindowOut},
    summary="Plan maintenance: the services read maintenance and nobody is paged for them",
    description="At least one of `services` and `team` (every service of the team). A token "
    "limited to services may name only those, and no team.",
)
def create_window(request: HttpRequest, payload: WindowIn):
    actor = authorize(request, Scope.AUTOMATION_WRITE)
    if actor.services is not None:
        outside = sorted(n for n in payload.services if not actor.may_act_on(n))
        if payload.team or outside or not payload.services:
            raise Forbidden(
                "a token limited to services may plan maintenance of those only, not a team's"
                + (f" (outside it: {', '.join(outside)})" if outside else "")
            )
    data = maintenance.WindowIn(
        services=list(payload.services),
        team=payload.team,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        reason=payload.reason,
        rrule=payload.rrule or "",
        tz=payload.tz,
    )
    window = maintenance.create_window(data, actor)
    return Status(201, _window_out(window, timezone.now()))


@router.get("/maintenance-windows", response=list[WindowOut])
def list_windows(request: HttpRequest, open: UrlBoolean | None = None):
    """Cancelled windows are listed too (state cancelled). ``open=true``: those open now."""
    authorize(request, Scope.AUTOMATION_READ)
    now = timezone.now()
    rows = _windows_visible(request).order_by("-starts_at", "-id")
    if open is True:
        rows = rows.filter(id__in=[w.id for w in maintenance.open_windows(now)])
    listed = [_window_out(w, now) for w in rows[:500]]
    return [w for w in listed if open is None or w["open"] is open]


def _window(request: HttpRequest, window_id: int) -> MaintenanceWindow:
    found = (
        _windows_visible(request).filter(id=window_id).first()
        if 0 < window_id <= MAX_INT32
        else None
    )
    if found is None:
        raise NotFound(f"no maintenance window {window_id}")
    return found


@router.get("/maintenance-windows/{window_id}", response=WindowOut)
def get_window(request: HttpRequest, window_id: UrlInteger):
    authorize(request, Scope.AUTOMATION_READ)
    return _window_out(_window(request, window_id), timezone.now())


def _may_cancel(actor, window: MaintenanceWindow) -> None:
    if actor.services is not None and (
        window.team_id
        or not all(actor.may_act_on(n) for n in window.services.values_list("name", flat=True))
    ):
        raise Forbidden("this window covers services outside the token")


@router.delete(
    "/maintenance-windows/{window_id}",
    response={204: None},
    summary="Cancel a maintenance window (every occurrence of a recurring one)",
    openapi_extra=answers({409: "already_cancelled: the window was cancelled before"}),
    description="The window is kept and listed as cancelled (state cancelled); its services "
    "leave maintenance now. 409 already_cancelled the second time.",
)
def delete_window(request: HttpRequest, window_id: UrlInteger):
    actor = authorize(request, Scope.AUTOMATION_WRITE)
    window = _window(request, window_id)
    _may_cancel(actor, window)
    maintenance.cancel_window(window.id, actor)
    return HttpResponse(status=204)


@router.post(
    "/maintenance-windows/{window_id}/cancel",
    response={200: WindowOut},
    summary="Cancel one occurrence of a recurring window, or the whole window",
    openapi_extra=answers({409: "already_cancelled: the window or that occurrence was"}),
    description="`occurrence`: the start of the occurrence to cancel (one of the window's, not "
    "ended; an open one ends now); left out, the whole window, as DELETE. Kept and listed as "
    "cancelled. 409 already_cancelled when it was.",
)
def cancel_window(request: HttpRequest, window_id: UrlInteger, payload: CancelIn):
    actor = authorize(request, Scope.AUTOMATION_WRITE)
    window = _window(request, window_id)
    _may_cancel(actor, window)
    window = maintenance.cancel_window(window.id, actor, payload.occurrence)
    return Status(200, _window_out(window, timezone.now()))


def _rule_out(rule: Rule) -> dict:
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "condition": rule.condition,
        "scope": rule.scope,
        "actions": rule.actions,
        "escalation": rule.escalation,
        "escalate_after_minutes": rule.escalate_after_minutes,
        "cooldown_seconds": rule.cooldown_seconds,
        "enabled": rule.enabled,
        "updated_at": rule.updated_at,
    }


@router.get("/automation/rules", response=list[RuleOut])
def list_rules(request: HttpRequest):
    _everywhere(request, Scope.AUTOMATION_READ)
    return [_rule_out(r) for r in Rule.objects.order_by("name")]


@router.get("/automation/rules/{name}", response=RuleOut)
def get_rule(request: HttpRequest, name: str):
    _everywhere(request, Scope.AUTOMATION_READ)
    rule = Rule.objects.filter(name=name).first()
    if rule is None:
        raise NotFound(f"no rule named {name!r}")
    return _rule_out(rule)


@router.put(
    "/automation/rules/{name}",
    response={200: RuleOut, 201: RuleOut},
    summary="Create or replace a rule: a trigger, a scope, actions, a cooldown, escalation",
    description="Webhook headers are kept encrypted and shown by name only; a webhook URL the "
    "network policy refuses, a channel or service that does not exist, or an unknown body "
    "placeholder is a 422 naming the field.",
)
def put_rule(request: HttpRequest, name: PathName, payload: RuleIn):
    actor = _everywhere(request, Scope.AUTOMATION_WRITE, "rules")
    data = rules.RuleIn(
        trigger=str(payload.trigger),
        condition=payload.condition.model_dump(exclude_none=True),
        scope=payload.scope.model_dump(exclude_defaults=True),
        actions=[a.model_dump(mode="json", exclude_none=True) for a in payload.actions],
        escalation=[a.model_dump(mode="json", exclude_none=True) for a in payload.escalation],
        escalate_after_minutes=payload.escalate_after_minutes,
        cooldown_seconds=payload.cooldown_seconds,
        enabled=payload.enabled,
    )
    rule, created = rules.put_rule(name, data, actor)
    return Status(201 if created else 200, _rule_out(rule))


class DeliveryFilters(Schema):
    rule: str | None = None
    service: str | None = None
    limit: UrlInteger = Field(100, ge=1, le=500)
    offset: UrlInteger = Field(0, ge=0, le=MAX_INT32)


@router.get(
    "/automation/deliveries",
    response=DeliveryPageOut,
    summary="Deliveries, newest first: notifications and rule actions, with their attempts",
    description="Alert deliveries are also on their alert; a check trigger's actions (no "
    "alert) are read here.",
)
def list_deliveries(request: HttpRequest, filters: Query[DeliveryFilters]):
    authorize(request, Scope.AUTOMATION_READ)
    rows = Delivery.objects.all()
    if request.auth.services is not None:
        rows = rows.filter(service__name__in=request.auth.services)
    if filters.rule:
        rows = rows.filter(rule__name=filters.rule)
    if filters.service:
        rows = rows.filter(service__name=filters.service)
    ordered = rows.order_by("-created_at", "-id")
    return page_of(ordered, filters.limit, filters.offset, _deliveries_out)


@router.delete("/automation/rules/{name}", response={204: None})
def delete_rule(request: HttpRequest, name: str):
    actor = _everywhere(request, Scope.AUTOMATION_WRITE, "rules")
    rules.delete_rule(name, actor)
    return HttpResponse(status=204)
