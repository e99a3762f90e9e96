"""Live evidence beside a checklist item: what the portal already knows that answers it.

Each reader returns at most ``LIMIT`` rows (what and why) and how many there are in all; an
empty list is evidence too ("nothing drifts"). Reads go through the domain apps' models and
reads, never a page's.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F, Sum
from django.utils import timezone

from checklists.models import Evidence
from healthchecks.models import CheckRollup, CheckState, Prediction, ServiceHealth
from healthchecks.status import ErrorCode, Status
from services import deployments
from services.models import Dependency, DependencyKind

LIMIT = 10


@dataclass(frozen=True)
class Row:
    name: str
    detail: str
    service: str = ""


@dataclass(frozen=True)
class Found:
    rows: list[Row]
    total: int
    empty: str  # what it means when there is nothing


def _found(rows: list[Row], empty: str) -> Found:
    return Found(rows[:LIMIT], len(rows), empty)


def _about(prediction: Prediction) -> str:
    """What a prediction is about: its check, or its whole service (an error budget)."""
    check, service = prediction.health_check, prediction.service.name
    return f"{service} / {check.name}" if check is not None else service


def unhealthy_services() -> Found:
    rows = ServiceHealth.objects.exclude(status=Status.HEALTHY).select_related("service")
    return _found(
        [
            Row(
                h.service.name,
                f"{Status(h.status).label}: {h.reason or 'no reason given'}",
                h.service.name,
            )
            for h in rows.order_by("-status", "service__name")
        ],
        "every service is healthy",
    )


def failing_checks() -> Found:
    rows = [
        Row(
            f"{s.health_check.service.name} / {s.health_check.name}",
            f"failing {s.consecutive_failures} in a row: "
            + ((s.last_outcome or {}).get("errors") or [ErrorCode(s.last_error_code).label])[0],
            s.health_check.service.name,
        )
        for s in CheckState.objects.filter(status=Status.UNHEALTHY, health_check__enabled=True)
        .select_related("health_check__service")
        .order_by("health_check__service__name", "health_check__name")
    ]
    rows += [
        Row(_about(p), p.message, p.service.name)
        for p in Prediction.objects.filter(kind="flapping").select_related(
            "service", "health_check"
        )
    ]
    return _found(rows, "no check is failing or flapping")


def slowest_checks() -> Found:
    """Mean response time since midnight, from the hourly rollups (slowest first)."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        CheckRollup.objects.filter(
            granularity=CheckRollup.HOUR, start__gte=midnight - timedelta(hours=1)
        )
        .values("health_check__service__name", "health_check__name")
        .annotate(total=Sum("latency_sum_us"), count=Sum("count"))
        .filter(count__gt=0)
        .annotate(mean=F("total") / F("count"))
        .order_by("-mean")[:LIMIT]
    )
    return _found(
        [
            Row(
                f"{r['health_check__service__name']} / {r['health_check__name']}",
                f"{r['mean'] / 1000:.0f} ms mean over {r['count']} results today",
                r["health_check__service__name"],
            )
            for r in rows
        ],
        "no results rolled up today yet",
    )


def standing_predictions() -> Found:
    rows = Prediction.objects.select_related("service", "health_check").order_by("expected_at")
    return _found(
        [
            Row(
                _about(p),
                f"{p.kind}: {p.message}",
                p.service.name,
            )
            for p in rows
        ],
        "nothing is predicted",
    )


def drifting() -> Found:
    return _found(
        [
            Row(
                d["service"],
                f"deployed with config v{d['applied_version'] or '?'}, "
                f"current is v{d['current_version']}",
                d["service"],
            )
            for d in deployments.drifting_services()
        ],
        "no service's configuration drifts",
    )


def broken_dependencies() -> Found:
    rows = (
        Dependency.objects.filter(
            kind=DependencyKind.HARD, depends_on__health__status=Status.UNHEALTHY
        )
        .select_related("service", "depends_on")
        .order_by("service__name", "depends_on__name")
    )
    return _found(
        [
            Row(d.service.name, f"needs {d.depends_on.name}, which is unhealthy", d.service.name)
            for d in rows
        ],
        "every hard dependency is healthy",
    )


READERS: dict[str, Callable[[], Found]] = {
    Evidence.HEALTH: unhealthy_services,
    Evidence.FAILING_CHECKS: failing_checks,
    Evidence.SLOW_CHECKS: slowest_checks,
    Evidence.PREDICTIONS: standing_predictions,
    Evidence.DRIFT: drifting,
    Evidence.DEPENDENCIES: broken_dependencies,
}


def evidence_for(kinds: set[str]) -> dict[str, Found]:
    """Each kind read once, however many items ask for it."""
    return {kind: READERS[kind]() for kind in kinds if kind in READERS}
