"""Runs of the routines: which period a day falls in, the run of a period (made on first
need), ticking and unticking (recorded, audited), signing off, and what is overdue.

Periods are calendar ones in the portal's time zone: a day, an ISO week (Monday first), a
month, a quarter. A run is complete when every item's latest tick says done; it can then be
signed off. The previous period's run left without a sign-off is overdue.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from checklists import verify
from checklists.models import ChecklistItem, ChecklistRun, ChecklistTemplate, Period, Tick
from portal import audit
from portal.auth import check_ownership
from portal.errors import Conflict, InvalidInput, NotFound
from services.models import Service


@dataclass(frozen=True)
class Bounds:
    start: date
    end: date  # the period's last day
    label: str


def period_of(period: str, day: date) -> Bounds:
    """The period of kind ``period`` that ``day`` falls in (pure)."""
    if period == Period.DAILY:
        return Bounds(day, day, day.isoformat())
    if period == Period.WEEKLY:
        start = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return Bounds(start, start + timedelta(days=6), f"{year}-W{week:02d}")
    if period == Period.MONTHLY:
        start = day.replace(day=1)
        return Bounds(start, _next_month(start) - timedelta(days=1), f"{day:%Y-%m}")
    if period == Period.QUARTERLY:
        first_month = 3 * ((day.month - 1) // 3) + 1
        start = day.replace(month=first_month, day=1)
        end = _next_month(_next_month(_next_month(start))) - timedelta(days=1)
        return Bounds(start, end, f"{day.year}-Q{(first_month - 1) // 3 + 1}")
    raise ValueError(f"unknown period {period!r}")


def _next_month(first: date) -> date:
    return (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )


def today() -> date:
    return timezone.localdate()


def run_for(template: ChecklistTemplate, day: date | None = None) -> ChecklistRun:
    """The run of the period ``day`` (today) falls in, made if it does not exist yet (two
    people opening the page at once make one)."""
    bounds = period_of(template.period, day or today())
    run = ChecklistRun.objects.filter(template=template, period_start=bounds.start).first()
    if run is not None:
        return run
    try:
        with transaction.atomic():
            return ChecklistRun.objects.create(
                template=template,
                period_start=bounds.start,
                period_end=bounds.end,
                label=bounds.label,
            )
    except IntegrityError:
        return ChecklistRun.objects.get(template=template, period_start=bounds.start)


def current_runs(day: date | None = None) -> list[ChecklistRun]:
    return [run_for(t, day) for t in periodic()]


def periodic():
    return ChecklistTemplate.objects.exclude(period=Period.SERVICE)


PORTAL = "portal"  # who ticks what the portal verified itself


def start_for_service(template_name: str, service_name: str, actor) -> ChecklistRun:
    """Start a per-service checklist (pre-migration, post-migration validation): the items
    the portal can verify are answered from live data at once, with their evidence."""
    template = ChecklistTemplate.objects.filter(name=template_name, period=Period.SERVICE).first()
    if template is None:
        names = ", ".join(
            ChecklistTemplate.objects.filter(period=Period.SERVICE).values_list("name", flat=True)
        )
        raise InvalidInput(
            "no such checklist",
            fields={"template": f"no per-service checklist {template_name!r}; use {names}"},
        )
    service = Service.objects.filter(name=service_name).first()
    if service is None:
        raise NotFound(f"no service named {service_name!r}")
    check_ownership(actor, [service.name])  # a service's checklist is its team's
    day = today()
    with transaction.atomic():
        run = ChecklistRun.objects.create(
            template=template,
            service=service,
            period_start=day,
            period_end=day,
            label=f"{timezone.localtime():%Y-%m-%d %H:%M}",
            started_by=str(actor)[:200],
        )
        ticks = []
        for item in template.items.exclude(verify=""):
            ok, found = verify.CHECKS[item.verify](service)
            ticks.append(Tick(run=run, item=item, done=ok, note=found[:1000], by=PORTAL))
        Tick.objects.bulk_create(ticks)
        audit.record(
            actor,
            "checklist.start",
            "checklist",
            f"{template.name} {service.name}",
            {"verified": {t.item.text: t.done for t in ticks}},
            service=service.name,
        )
    return run


@dataclass
class ItemState:
    item: ChecklistItem
    tick: Tick | None  # the latest, if any
    evidence: object = None  # checklists.evidence.Found, when the page shows it

    @property
    def done(self) -> bool:
        return self.tick is not None and self.tick.done


def states(run: ChecklistRun) -> list[ItemState]:
    """Each item of the run's routine with its latest tick, in order (two queries)."""
    latest: dict[int, Tick] = {}
    for tick in Tick.objects.filter(run=run).order_by("item_id", "-at", "-id"):
        latest.setdefault(tick.item_id, tick)
    return [ItemState(i, latest.get(i.id)) for i in run.template.items.all()]


def progress(run: ChecklistRun) -> tuple[int, int]:
    found = states(run)
    return sum(1 for s in found if s.done), len(found)


def _locked_run(run_id: int, actor) -> ChecklistRun:
    """The run, its row locked for the rest of the transaction (one writer at a time), if
    ``actor`` may change it."""
    run = (
        ChecklistRun.objects.select_for_update(of=("self",))
        .select_related("template", "service")
        .filter(id=run_id)
        .first()
    )
    if run is None:
        raise NotFound(f"no checklist run {run_id}")
    if run.service is not None:
        check_ownership(actor, [run.service.name])
    return run


def tick(run_id: int, item_id: int, done: bool, note: str, actor) -> ItemState:
    """Tick (or untick) an item of a run, recorded and audited. A signed-off run is closed."""
    if len(note) > 1000:
        raise InvalidInput("the tick was not saved", fields={"note": "at most 1000 characters"})
    with transaction.atomic():
        run = _locked_run(run_id, actor)
        item = ChecklistItem.objects.filter(id=item_id, template_id=run.template_id).first()
        if item is None:
            raise NotFound(f"no item {item_id} in {run}")
        if run.signed_off_at is not None:
            raise Conflict(f"{run} was signed off by {run.signed_off_by}: it is closed")
        row = Tick.objects.create(run=run, item=item, done=done, note=note, by=str(actor)[:200])
        audit.record(
            actor,
            "checklist.tick" if done else "checklist.untick",
            "checklist",
            f"{run.template.name} {run.label}",
            {"item": item.text, "note": note},
            service=run.service.name if run.service is not None else None,
        )
    return ItemState(item, row)


def sign_off(run_id: int, actor) -> ChecklistRun:
    """Someone vouches the run is done: every item must be ticked."""
    with transaction.atomic():
        run = _locked_run(run_id, actor)
        if run.signed_off_at is not None:
            raise Conflict(f"{run} was signed off already by {run.signed_off_by}")
        done, total = progress(run)
        if done < total:
            raise Conflict(f"{total - done} of {total} items are not ticked yet")
        run.signed_off_by, run.signed_off_at = str(actor)[:200], timezone.now()
        run.save(update_fields=["signed_off_by", "signed_off_at"])
        audit.record(
            actor,
            "checklist.sign_off",
            "checklist",
            f"{run.template.name} {run.label}",
            service=run.service.name if run.service is not None else None,
        )
    return run


def overdue(day: date | None = None) -> list[ChecklistRun]:
    """Each routine's run of the previous period, when it ended without being signed off
    (beat opens every period's run, so a period nobody worked through is one too). Two
    queries: the overview shows this on every refresh."""
    day = day or today()
    previous = Q(pk__in=[])
    for template in periodic():
        current = period_of(template.period, day)
        start = period_of(template.period, current.start - timedelta(days=1)).start
        previous |= Q(template=template, period_start=start)
    return list(
        ChecklistRun.objects.filter(previous, service=None, signed_off_at=None)
        .select_related("template")
        .order_by("template__position")
    )


def past_runs(limit: int = 200):
    """Periodic runs whose period is over, and every per-service run, newest first."""
    ended = Q(service=None, period_end__lt=today()) | Q(service__isnull=False)
    return (
        ChecklistRun.objects.select_related("template", "service")
        .filter(ended)
        .order_by("-period_start", "-created_at", "template__position")[:limit]
    )


def service_runs(limit: int = 20):
    return (
        ChecklistRun.objects.select_related("template", "service")
        .filter(service__isnull=False)
        .order_by("-created_at")[:limit]
    )
