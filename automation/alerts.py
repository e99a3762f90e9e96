"""Alerts from the health engine's status changes, with dependency-aware suppression.

The engine writes a StatusChange row for every change of a service's status (an outbox).
``process_status_changes`` consumes them once: it claims unprocessed rows under a
transaction-level lock (so two automation workers never act on the same change, nor on
neighbouring ones out of order), and reconciles alerts with the services' *current* status.
Acting on the state rather than on each event makes a duplicate or late change harmless.

Suppression: a service that is not healthy while a chain of hard dependencies leads to one
that is down is folded into the root cause's alert (the deepest down service on that path;
the chain may pass services that are only degraded by it). Only alerts of
their own are notified; the root's notification lists the services it impacts. Folded
services are still checked and their history recorded: this decides notifications only.

Maintenance: a service in a maintenance window (its health reads MAINTENANCE) opens no alert,
and one it had stays open and silent until the window ends; a service whose trouble leads to
a hard dependency in maintenance is silenced the same way. When the window ends and the
service is still not healthy, it is announced then.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from automation import notes, rules
from automation.models import Alert, Delivery, DeliveryState, Event, NotificationChannel
from healthchecks.models import ServiceHealth, StatusChange
from healthchecks.status import Status
from portal import audit
from portal.errors import Conflict, NotFound
from portal.models import Scope
from services.lifecycle import NOT_WATCHED
from services.models import Dependency, DependencyKind, Service

BAD = (Status.DEGRADED, Status.UNHEALTHY)
EVENT_OF = {Status.UNHEALTHY: Event.DOWN, Status.DEGRADED: Event.DEGRADED}
# Any constant both workers agree on: the advisory lock serialising the outbox's readers.
_OUTBOX_LOCK = 0x5EC0A1E7


@dataclass
class Processed:
    changes: int = 0
    opened: int = 0
    resolved: int = 0
    notifications: int = 0
    busy: bool = False  # another worker held the outbox


def process_status_changes(limit: int = 10_000, now=None) -> Processed:
    """Consume up to ``limit`` service status changes and bring the alerts up to date."""
    now = now or timezone.now()
    with transaction.atomic():
        if not outbox_lock():
            return Processed(busy=True)
        claimed = list(
            StatusChange.objects.select_for_update(skip_locked=True)
            .filter(processed_at=None, health_check=None)
            .order_by("id")
            .values_list("id", "service_id")[:limit]
        )
        if not claimed:
            # No change, but an alert nobody was told of (no channel wanted it when it
            # opened) is announced as soon as one does.
            if _unannounced().exists():
                return reconcile(set(), now)
            return Processed()
        StatusChange.objects.filter(id__in=[i for i, _ in claimed]).update(processed_at=now)
        outcome = reconcile({service_id for _, service_id in claimed}, now)
        outcome.changes = len(claimed)
        return outcome


def _unannounced():
    return Alert.objects.filter(
        resolved_at=None, root=None, silenced="", notified_status__lt=models.F("status")
    )


def outbox_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite: one writer at a time anyway (the embedded mode's one worker)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_OUTBOX_LOCK])
        return cursor.fetchone()[0]


def roots_of(
    service_id: int, down_dependencies: dict[int, list[int]], can_be_root: set[int] | None = None
) -> set[int]:
    """The root causes of a service's trouble: following hard dependencies that are not
    healthy (down, in maintenance, or degraded -- a service degraded *because* its own hard
    dependency is down passes the trouble on), the ones at the end of the chain that are
    down or in maintenance (``can_be_root``; None: any). Pure; the graph is acyclic, a
    visited set guards anyway. Empty when no chain ends at a service that is down."""
    roots: set[int] = set()
    seen: set[int] = set()
    stack = list(down_dependencies.get(service_id, ()))
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        above = down_dependencies.get(node, ())
        if above:
            stack.extend(above)
        elif can_be_root is None or node in can_be_root:
            roots.add(node)
    return roots


@dataclass
class _View:
    """What reconcile reads: statuses, and the hard-dependency edges onto services that are
    not healthy, with which of those are down or in maintenance (root causes)."""

    health: dict[int, tuple[int, str]] = field(default_factory=dict)
    maintenance_since: dict[int, datetime] = field(default_factory=dict)
    down_dependencies: dict[int, list[int]] = field(default_factory=dict)
    can_be_root: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    stopped: dict[int, str] = field(default_factory=dict)  # not watched: id -> lifecycle

    def roots(self, service_id: int) -> set[int]:
        return roots_of(service_id, self.down_dependencies, self.can_be_root)


def _read(service_ids: set[int]) -> _View:
    view = _View()
    for service_id, depends_on_id, status in Dependency.objects.filter(
        kind=DependencyKind.HARD,
        depends_on__health__status__in=[Status.UNHEALTHY, Status.MAINTENANCE, Status.DEGRADED],
    ).values_list("service_id", "depends_on_id", "depends_on__health__status"):
        view.down_dependencies.setdefault(service_id, []).append(depends_on_id)
        if status != Status.DEGRADED:
            view.can_be_root.add(depends_on_id)
    wanted = set(service_ids)
    for service_id in service_ids:
        wanted |= view.roots(service_id)
    for service_id, status, reason, since in ServiceHealth.objects.filter(
        service_id__in=wanted
    ).values_list("service_id", "status", "reason", "since"):
        view.health[service_id] = (status, reason)
        if status == Status.MAINTENANCE:
            view.maintenance_since[service_id] = since
    for service_id, name, lifecycle in Service.objects.filter(id__in=wanted).values_list(
        "id", "name", "lifecycle_status"
    ):
        view.names[service_id] = name
        if lifecycle in NOT_WATCHED:
            view.stopped[service_id] = lifecycle
    return view


def reconcile(service_ids: Iterable[int], now=None) -> Processed:
    """Open, update, fold and resolve alerts so they match the services' current status,
    and queue the notifications that follow -- in a few statements whatever the number of
    services (a shared dependency going down moves thousands at once). Runs inside the
    caller's transaction."""
    now = now or timezone.now()
    outcome = Processed()
    open_alerts = {
        a.service_id: a for a in Alert.objects.select_for_update().filter(resolved_at=None)
    }
    view = _read(set(service_ids) | set(open_alerts))
    announced = _announced_ids([a.id for a in open_alerts.values()])
    alerts: dict[int, Alert] = {}
    new, changed, resolved, stopped = [], [], [], []
    for service_id in sorted(view.health.keys() | open_alerts.keys()):
        status, reason = view.health.get(service_id, (Status.UNKNOWN, ""))
        alert = open_alerts.get(service_id)
        if service_id in view.stopped:
            if alert is not None:  # stopped on purpose: closed, nobody told it "recovered"
                alert.resolved_at = now
                alert.silenced = f"resolved: the service was {view.stopped[service_id]}"
                stopped.append(alert)
            continue
        if status == Status.MAINTENANCE:
            continue  # no new alert; an open one waits, silent, for the window to end
        if status not in BAD:
            if alert is not None:
                alert.resolved_at = now
                resolved.append(alert)
            continue
        if alert is None:
            alert = Alert(service_id=service_id, status=status, cause=reason, opened_at=now)
            new.append(alert)
        elif (alert.status, alert.cause) != (status, reason):
            alert.status, alert.cause = status, reason
            changed.append(alert)
        alerts[service_id] = alert
    Alert.objects.bulk_create(new)
    Alert.objects.bulk_update(changed, ["status", "cause"], batch_size=500)
    outcome.opened = len(new)
    _resolve(resolved, announced, now)
    _resolve_stopped(stopped)
    outcome.resolved = len(resolved) + len(stopped)
    _fold(alerts, view, announced)
    to_announce = [
        a
        for a in alerts.values()
        if a.root_id is None and not a.silenced and a.status > a.notified_status
    ]
    told = []
    for alert in to_announce:
        queued = _queue(alert, EVENT_OF[alert.status], now)
        if queued:  # no channel wants it yet: announced when one does (see below)
            outcome.notifications += queued
            alert.notified_status = alert.status
            told.append(alert)
    Alert.objects.bulk_update(told, ["notified_status"], batch_size=500)
    return outcome


def _fold(alerts: dict[int, Alert], view: _View, announced: set[int]) -> None:
    """Point each alert at its root cause's alert, or silence it for a root cause in
    maintenance, or neither. An alert folded or silenced before anyone heard of it drops
    what was queued; if it is ever on its own again, it is announced then."""
    moved, dropped = [], {}
    for service_id, alert in alerts.items():
        roots = view.roots(service_id)
        with_alerts = roots & alerts.keys()
        root = alerts[min(with_alerts, key=view.names.__getitem__)] if with_alerts else None
        # Trouble that began before the dependency's maintenance is not the maintenance's.
        resting = sorted(
            view.names[r]
            for r in roots
            if r in view.maintenance_since and view.maintenance_since[r] <= alert.opened_at
        )
        silenced = "" if root or not resting else f"upstream maintenance: {', '.join(resting)}"
        root_id = root.id if root is not None else None
        if (alert.root_id, alert.silenced) == (root_id, silenced):
            continue
        alert.root, alert.silenced = root, silenced
        quiet = root is not None or silenced
        if quiet and alert.id not in announced:
            why = f"folded into the alert of {view.names[root.service_id]}" if root else silenced
            dropped.setdefault(why, []).append(alert.id)
            alert.notified_status = Status.UNKNOWN
        moved.append(alert)
    Alert.objects.bulk_update(moved, ["root", "silenced", "notified_status"], batch_size=500)
    for why, ids in dropped.items():
        _skip_pending(ids, why)


def _resolve(resolved: list[Alert], announced: set[int], now) -> None:
    Alert.objects.bulk_update(resolved, ["resolved_at"], batch_size=500)
    _skip_pending([a.id for a in resolved], "recovered before it was announced")
    for alert in resolved:
        if alert.id in announced:
            _queue(alert, Event.RECOVERED, now)


def _resolve_stopped(alerts: list[Alert]) -> None:
    """Alerts of services stopped on purpose (lifecycle.NOT_WATCHED): resolved, their reason
    kept in ``silenced``, no recovery notice (nothing recovered) and nothing still queued sent
    -- as healthchecks.io's pausing a check sends nothing."""
    Alert.objects.bulk_update(alerts, ["resolved_at", "silenced"], batch_size=500)
    for why, ids in _grouped(alerts).items():
        _skip_pending(ids, why)


def _grouped(alerts: list[Alert]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for alert in alerts:
        found.setdefault(alert.silenced, []).append(alert.id)
    return found


def _announced_ids(alert_ids: list[int]) -> set[int]:
    """Alerts some channel has been told of (or is being told of right now)."""
    return set(
        Delivery.objects.filter(
            alert_id__in=alert_ids, state__in=[DeliveryState.SENT, DeliveryState.SENDING]
        ).values_list("alert_id", flat=True)
    )


def _skip_pending(alert_ids: list[int], why: str) -> None:
    if alert_ids:
        Delivery.objects.filter(
            alert_id__in=alert_ids,
            state__in=[DeliveryState.PENDING, DeliveryState.RETRYING],
            event__in=[Event.DOWN, Event.DEGRADED],
        ).update(state=DeliveryState.SKIPPED, detail=why, finished_at=timezone.now())


def _queue(alert: Alert, event: str, now) -> int:
    """One delivery per channel that wants this event for this service's team. Openings
    wait AUTOMATION_GROUP_SECONDS, so that the dependents a root cause takes down with it
    (their own checks may fail first) are folded in before anyone is told."""
    team = Service.objects.filter(id=alert.service_id).values_list("team__name", flat=True)[0]
    # The wait counts from the alert's opening: one announced late (no channel wanted it
    # then, or a window kept it silent) goes as soon as it may.
    waited = (now - alert.opened_at).total_seconds()
    group = max(0.0, settings.AUTOMATION_GROUP_SECONDS - waited)
    wait = 0 if event == Event.RECOVERED else group
    rows = [
        Delivery(
            alert=alert,
            channel=channel,
            channel_name=channel.name,
            service_id=alert.service_id,
            event=event,
            created_at=now,
            not_before=now + timedelta(seconds=wait),
        )
        for channel in NotificationChannel.objects.all()
        if event in channel.events and (not channel.teams or team in channel.teams)
    ]
    if event == Event.RECOVERED:
        impacted = sorted(alert.impacted.values_list("service__name", flat=True))
        for row in rows:
            row.impacted = impacted
    Delivery.objects.bulk_create(rows)
    return len(rows) + rules.fire(alert, event, now, now + timedelta(seconds=wait))


def acknowledge(alert_id: int, actor, note: str = "") -> Alert:
    """Someone is on it: recorded (who, when) and audited. Acknowledging twice is a 409.
    ``note`` (optional) becomes the alert's note, written with the acknowledgement or not
    at all."""
    text = notes.clean_text(note, "note") if note.strip() else ""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update().select_related("service").filter(id=alert_id).first()
        )
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        if alert.resolved_at is not None:
            raise Conflict(
                f"alert {alert_id} was resolved at {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        if alert.acknowledged_at is not None:
            raise Conflict(
                f"alert {alert_id} was acknowledged by {alert.acknowledged_by} "
                f"at {alert.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        alert.acknowledged_at, alert.acknowledged_by = timezone.now(), str(actor)[:200]
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
        audit.record(actor, "alert.acknowledge", "alert", f"{alert.service.name}#{alert.id}")
        if text:
            notes.write(alert, actor, text, public=False)
    return alert


def refusal_to_act(principal, service: str) -> str:
    """Why ``principal`` may not acknowledge this service's alerts or add notes to them (""
    when it may): the API's rule -- automation:write, the service within its reach. No team
    owns an alert: whoever is on call says they are on it (docs/decisions.md, issue 12)."""
    if not principal.has_scope(Scope.AUTOMATION_WRITE):
        return (
            f"{principal} may read this alert but not act on it: acknowledging and adding "
            "notes need automation:write (operators and admins)"
        )
    if not principal.may_act_on(service):
        return f"{principal} may not act on the service {service!r}"
    return ""
