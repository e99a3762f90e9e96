"""The audit trail where people read it (issue 26): /audit/, the audit log -- who changed
what, filtered by who, what kind of change, object, team and time, each object linked where
it lives -- for operators and admins (changes:read), with its CSV export (the API's, with the
same filters); and /audit/security/, the security events beside it, for admins (audit:read).
Thin over portal.audit_trail and portal.security, which the API reads too."""

import json
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from pydantic import ValidationError

from automation.models import NotificationChannel
from pages.views import page_links, page_number
from portal import audit_trail, security
from portal.auth import request_principal
from portal.errors import PortalError
from portal.models import ApiToken, AuditEntry, AuditTeam, Scope, SecurityEvent
from portal.security_api import EventFilters
from services.models import MaintenanceWindow, Service, Team

PAGE_SIZE = 50
FILTERS = ["who", "action", "target_type", "target", "team", "since", "until"]
EVENT_FILTERS = ["kind", "who", "since"]


def _require(request, scope: str, why: str):
    principal = request_principal(request)
    if not principal.has_scope(scope):
        raise PermissionDenied(f"{why} needs {scope} ({principal} lacks it)")
    return principal


def _parsed(schema, query, names: list[str]):
    """The filters from the query string, or None and each bad one's reason (the page then
    lists nothing rather than more than was asked for)."""
    raw = {name: query[name] for name in names if query.get(name, "") != ""}
    try:
        return schema.model_validate(raw), raw, {}
    except ValidationError as exc:
        bad = {str(e["loc"][0]) if e["loc"] else "filters": e["msg"] for e in exc.errors()}
        return None, raw, bad


def _local(moment) -> str:
    """A datetime-local input's value (UTC, as the page reads it) of a moment."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


def _service_anchor(entry: AuditEntry) -> str:
    family = entry.action.split(".", 1)[0]
    return {"config": "#configuration", "deployment": "#configuration"}.get(
        family, "#lifecycle" if entry.action == "service.transition" else ""
    )


def _admin_link(user, model, pk) -> str | None:
    opts = model._meta
    if pk is None or not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return None
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])


def links(entries: list[AuditEntry], user) -> dict[int, str]:
    """Where each entry's object lives, while it does: a service (and its checks, alerts,
    configuration, deployments, checklists) on its page, a window on /maintenance/, a team,
    a channel, a token or a user on its admin page (for whom may view it there). A deleted
    object, or one that lives nowhere to read (a rule: the API), has no link."""

    def of(target_type: str, separator: str | None = None) -> set[str]:
        targets = {e.target for e in entries if e.target_type == target_type}
        return {t.split(separator, 1)[0] if separator else t for t in targets}

    services = set(
        Service.objects.filter(
            name__in=of("service") | of("check", "/") | {t.rsplit("#", 1)[0] for t in of("alert")}
        ).values_list("name", flat=True)
    )
    windows = {str(i) for i in MaintenanceWindow.objects.filter(
        id__in=[int(t) for t in of("maintenance_window") if t.isdigit()]
    ).values_list("id", flat=True)}  # fmt: skip
    pks = {
        "team": (Team, dict(Team.objects.filter(name__in=of("team")).values_list("name", "pk"))),
        "notification_channel": (
            NotificationChannel,
            dict(
                NotificationChannel.objects.filter(name__in=of("notification_channel")).values_list(
                    "name", "pk"
                )
            ),
        ),
        "token": (
            ApiToken,
            dict(ApiToken.objects.filter(name__in=of("token")).values_list("name", "pk")),
        ),
        "user": (
            get_user_model(),
            dict(
                get_user_model()
                .objects.filter(username__in=of("user"))
                .values_list("username", "pk")
            ),
        ),
    }
    found: dict[int, str] = {}
    for e in entries:
        url = None
        service = {"service": e.target, "check": e.target.split("/", 1)[0]}.get(e.target_type)
        if e.target_type == "alert":
            service = e.target.rsplit("#", 1)[0]
        if service in services:
            anchor = {"check": "#checks", "alert": "#alert-timeline"}.get(e.target_type)
            url = reverse("pages:service", args=[service]) + (anchor or _service_anchor(e))
        elif e.target_type == "maintenance_window" and e.target in windows:
            url = reverse("pages:maintenance") + f"#window-{e.target}"
        elif e.target_type == "checklist":
            url = reverse("pages:maintenance")
        elif e.target_type in pks:
            model, by_name = pks[e.target_type]
            url = _admin_link(user, model, by_name.get(e.target))
        if url:
            found[e.id] = url
    return found


def _rows(entries: list[AuditEntry], user) -> list[dict]:
    where = links(entries, user)
    rows = []
    for e in entries:
        document = audit_trail.document(e)
        changes = document["changes"]
        document["details"] = json.dumps(changes, indent=1, sort_keys=True, default=str)
        document["link"] = where.get(e.id)
        document["has_changes"] = bool(changes)
        rows.append(document)
    return rows


def _choices() -> dict:
    actions = list(
        AuditEntry.objects.order_by("action").values_list("action", flat=True).distinct()
    )
    families = sorted({a.split(".", 1)[0] for a in actions if "." in a})
    teams = set(Team.objects.values_list("name", flat=True))
    teams |= set(AuditTeam.objects.values_list("team", flat=True).distinct())
    return {
        "actions": actions,
        "families": families,
        "target_types": list(
            AuditEntry.objects.order_by("target_type")
            .values_list("target_type", flat=True)
            .distinct()
        ),
        "teams": sorted(teams),
    }


@login_required
@require_GET
def audit_log(request):
    principal = _require(request, Scope.CHANGES_READ, "reading the audit log")
    filters, raw, errors = _parsed(audit_trail.AuditFilters, request.GET, FILTERS)
    context = {
        "tab": "changes",
        "may_read_security": principal.has_scope(Scope.AUDIT_READ),
        "raw": raw,
        "since": _local(filters.since) if filters else raw.get("since", ""),
        "until": _local(filters.until) if filters else raw.get("until", ""),
        "filters": filters,
        "page_size": PAGE_SIZE,
        **_choices(),
    }
    found = None
    if filters is not None:
        try:
            found = audit_trail.search(filters)
        except PortalError as exc:
            errors = exc.fields or {"filters": exc.message}
    if found is not None:
        count = found.count()
        page = page_number(request.GET.get("page"), count, errors, PAGE_SIZE)
        shown = list(found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
        context |= {
            "count": count,
            "rows": _rows(shown, request.user),
            "pages": page_links(request, page, count, PAGE_SIZE),
            "export": "/api/audit?" + urlencode({**raw, "format": "csv"}),
        }
    context["filter_errors"] = errors
    return render(request, "pages/audit.html", context)


@login_required
@require_GET
def security_events(request):
    _require(request, Scope.AUDIT_READ, "reading the security events")
    filters, raw, errors = _parsed(EventFilters, request.GET, EVENT_FILTERS)
    context = {
        "tab": "security",
        "may_read_security": True,
        "raw": raw,
        "since": _local(filters.since) if filters else raw.get("since", ""),
        "kinds": SecurityEvent.Kind.choices,
        "page_size": PAGE_SIZE,
    }
    if filters is not None:
        found = security.events(filters.kind, filters.who, filters.since)
        count = found.count()
        page = page_number(request.GET.get("page"), count, errors, PAGE_SIZE)
        context |= {
            "count": count,
            "events": list(found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]),
            "pages": page_links(request, page, count, PAGE_SIZE),
        }
    context["filter_errors"] = errors
    return render(request, "pages/audit_security.html", context)
