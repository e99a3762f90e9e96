"""The maintenance pages: the maintenance windows (recurring ones with their next occurrences,
cancelled ones marked; cancelling a window or one occurrence), and the checklists -- today's,
this week's, this month's and this quarter's runs with live evidence, ticking (HTMX, no
reload), signing off, and the runs of the past. Thin over services.maintenance,
checklists.runs and checklists.evidence."""

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from checklists import evidence, runs
from checklists.models import ChecklistRun, ChecklistTemplate, Period
from portal.auth import check_ownership, request_principal
from portal.errors import Forbidden, NotFound, PortalError
from portal.htmx import is_partial
from portal.models import Scope
from services import maintenance as windows
from services.models import MaintenanceWindow, Service


def _may_tick(request, run: ChecklistRun | None = None) -> bool:
    """Operators tick routines; a service's checklist only its team's operators."""
    principal = request_principal(request)
    if run is not None and run.service is not None and not principal.may_change(run.service.name):
        return False
    return principal.has_scope(Scope.CHECKLISTS_WRITE)


def _startable_services(request) -> list[str]:
    """The services whose checklists this person may start: their teams' (admins: all)."""
    names = Service.objects.order_by("name").values_list("name", flat=True)
    owned = request_principal(request).owned_services
    return list(names if owned is None else names.filter(name__in=owned))


def _run_context(run: ChecklistRun, found: dict) -> dict:
    items = runs.states(run)
    sections: dict[str, list] = {}
    for state in items:
        state.evidence = found.get(state.item.evidence)
        sections.setdefault(state.item.section, []).append(state)
    done = sum(1 for s in items if s.done)
    return {"run": run, "sections": sections, "done": done, "total": len(items)}


def _evidence_for(run_list: list[ChecklistRun]) -> dict:
    kinds = {i.evidence for r in run_list for i in r.template.items.all() if i.evidence}
    return evidence.evidence_for(kinds)


def _owns(principal, window: MaintenanceWindow) -> bool:
    try:
        services = [s.name for s in window.services.all()]
        check_ownership(principal, services, [window.team.name] if window.team else [])
    except PortalError:
        return False
    return True


def _windows(request) -> list[dict]:
    """The windows to list, each with its next occurrences and whether this person may
    cancel it (automation:write, and the window covers only what their teams own)."""
    principal, now = request_principal(request), timezone.now()
    may_write = principal.has_scope(Scope.AUTOMATION_WRITE)
    rows = windows.listing(now)
    for row in rows:
        window = row["window"]
        row["duration"] = window.ends_at - window.starts_at
        row["may_cancel"] = may_write and row["state"] != "cancelled" and _owns(principal, window)
        opened = windows.current_occurrence(window, now)
        row["open_start"] = opened.starts_at if opened else None
    return rows


@login_required
@require_GET
def maintenance(request):
    current = runs.current_runs()
    found = _evidence_for(current)
    service_runs = [
        {"run": r, "done": d, "total": t}
        for r in runs.service_runs()
        for d, t in [runs.progress(r)]
    ]
    context = {
        "runs": [_run_context(r, found) for r in current],
        "overdue": runs.overdue(),
        "may_tick": _may_tick(request),
        "service_runs": service_runs,
        "service_templates": ChecklistTemplate.objects.filter(period=Period.SERVICE),
        "services": _startable_services(request),
        "windows": _windows(request),
    }
    return render(request, "pages/maintenance.html", context)


@login_required
@require_POST
def cancel_window(request, window_id: int):
    """Cancel a maintenance window, or one occurrence of it (``occurrence``: its start, as the
    page gives it), through services.maintenance like the API."""
    principal = request_principal(request)
    if not principal.has_scope(Scope.AUTOMATION_WRITE):
        raise PermissionDenied("cancelling maintenance needs automation:write (operators)")
    back = HttpResponseRedirect(reverse("pages:maintenance") + "#maintenance-windows")
    raw = request.POST.get("occurrence", "").strip()
    try:
        occurrence = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        occurrence = None
    if raw and (occurrence is None or timezone.is_naive(occurrence)):
        messages.error(request, "Not cancelled: the occurrence is a time with its zone.")
        return back
    try:
        window = windows.cancel_window(window_id, principal, occurrence)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PortalError as exc:
        said = "; ".join(f"{field} {reason}" for field, reason in exc.fields.items())
        messages.error(request, f"Not cancelled: {said or exc.message}")
        return back
    if occurrence is None:
        messages.success(request, f"Maintenance window #{window.id} cancelled.")
    else:
        messages.success(
            request, f"The occurrence of #{window.id} at {occurrence:%Y-%m-%d %H:%M %Z} cancelled."
        )
    return back


@login_required
@require_POST
def start_service_checklist(request):
    """Start a per-service checklist (the service page's button will post here too)."""
    if not _may_tick(request):
        raise PermissionDenied("starting checklists needs checklists:write (operators)")
    try:
        run = runs.start_for_service(
            request.POST.get("template", ""),
            request.POST.get("service", ""),
            request_principal(request),
        )
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except PortalError as exc:
        messages.error(request, f"Not started: {exc.message} {' '.join(exc.fields.values())}")
        return HttpResponseRedirect(reverse("pages:maintenance"))
    return HttpResponseRedirect(reverse("pages:checklist_run", args=[run.id]))


@login_required
@require_GET
def run_detail(request, run_id: int):
    run = get_object_or_404(ChecklistRun.objects.select_related("template", "service"), id=run_id)
    is_current = run.period_end >= runs.today()
    found = _evidence_for([run]) if is_current else {}
    context = {
        "runs": [_run_context(run, found)],
        "overdue": [],
        "may_tick": _may_tick(request, run),
        "single": True,
    }
    return render(request, "pages/maintenance.html", context)


@login_required
@require_POST
def tick(request, run_id: int, item_id: int):
    """Tick (done=1) or untick (done=0) one item, with an optional note."""
    if not _may_tick(request):
        raise PermissionDenied("ticking checklists needs checklists:write (operators)")
    done = request.POST.get("done") == "1"
    try:
        state = runs.tick(
            run_id, item_id, done, request.POST.get("note", "").strip(), request_principal(request)
        )
    except PortalError as exc:
        return render(
            request,
            "pages/maintenance.html#tick-error",
            {"message": exc.message},
            status=exc.status,
        )
    if not is_partial(request):
        return HttpResponseRedirect(reverse("pages:checklist_run", args=[run_id]))
    run = ChecklistRun.objects.select_related("template").get(id=run_id)
    state.evidence = evidence.evidence_for({state.item.evidence} - {""}).get(state.item.evidence)
    # The run's count follows too (an out-of-band swap beside the item).
    context = {"state": state, "run": run, "may_tick": True, "progress": runs.progress(run)}
    return render(request, "pages/maintenance.html#item", context)


@login_required
@require_POST
def sign_off(request, run_id: int):
    if not _may_tick(request):
        raise PermissionDenied("signing off checklists needs checklists:write (operators)")
    try:
        run = runs.sign_off(run_id, request_principal(request))
        messages.success(request, f"{run} signed off.")
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except PortalError as exc:
        messages.error(request, f"Not signed off: {exc.message}")
    return HttpResponseRedirect(reverse("pages:checklist_run", args=[run_id]))


@login_required
@require_GET
def history(request):
    rows = []
    for run in runs.past_runs():
        done, total = runs.progress(run)
        rows.append({"run": run, "done": done, "total": total})
    return render(request, "pages/maintenance_history.html", {"rows": rows})
