"""Predictions: trouble that is coming, from the history already recorded.

Simple, honest maths, each a pure function tested on series with known answers:

- **latency trend**: a check's response time heading for its degraded threshold. The
  per-minute mean latency of the last PREDICT_WINDOW_MINUTES is fitted with Theil-Sen (the
  median of the slopes between every pair of points: robust to the odd slow probe); if the
  line crosses the threshold within PREDICT_HORIZON_HOURS, the prediction says when. Its
  confidence is the share of point pairs whose slope agrees that latency rises.
- **TLS expiry**: a certificate the last probe saw expiring within 21 days.
- **flapping**: a check that changed status at least FLAP_CHANGES times in the last hour.
- **error budget burn**: a service with an SLO target (``Service.slo_target``, percent over
  30 days) whose failures eat its error budget fast, by the multi-window, multi-burn-rate
  alerts of the SRE workbook: the burn rate (error ratio over budget) over a long and a short
  window both above 14.4 (1 h, 5 min), 6 (6 h, 30 min) or 3 (24 h, 2 h). The short window
  makes it disappear soon after the failures stop. ``expected_at``: when the 30-day budget
  left runs out at the long window's rate -- said only once the service has been watched for
  BUDGET_JUDGED_AFTER (a tenth of the window, 3 days): before, its burn is reported, but how
  much of the budget is spent is "too early to say", never "already spent".

``refresh`` recomputes them all (beat, every minute) and replaces the stored set, so a
prediction disappears when its trend does; ``GET /health/predictive`` reads what is stored.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

from django.db import transaction
from django.db.models import Avg, Count, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from healthchecks.models import CheckResult, CheckState, HealthCheck, Prediction, StatusChange
from healthchecks.reads import history
from healthchecks.status import NOT_OBSERVATIONS, Status
from portal import heartbeats
from portal.models import Heartbeat
from services.models import Service

WINDOW_MINUTES = 60
MIN_POINTS = 6  # minutes with results before a trend is believed
HORIZON_HOURS = 24.0
MIN_CONFIDENCE = 0.7
TLS_DAYS = 21
FLAP_CHANGES = 4
# (long window, short window, burn rate both must exceed): the SRE workbook's table for a
# 30-day objective (2 % of the budget in an hour, 5 % in six hours, 10 % in a day).
BURN_ALERTS = (
    (timedelta(hours=1), timedelta(minutes=5), 14.4),
    (timedelta(hours=6), timedelta(minutes=30), 6.0),
    (timedelta(hours=24), timedelta(hours=2), 3.0),
)
SLO_PERIOD = timedelta(days=30)
# How long a service must have been watched before its budget's remainder is judged: a new
# service's first bad hour is a burn to report, not a month's budget "already spent".
BUDGET_JUDGED_AFTER = max(SLO_PERIOD / 10, timedelta(days=1))
MINUTE = timedelta(minutes=1)
HEARTBEAT = "predictions"  # the portal's heartbeat row that says when they were computed


@dataclass(frozen=True)
class Fit:
    slope: float  # units of y per unit of x
    intercept: float
    agreement: float  # share of pairwise slopes with the fit's sign


def theil_sen(points: list[tuple[float, float]]) -> Fit | None:
    """The Theil-Sen line through ``points`` (x, y); None with fewer than two distinct x."""
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    ]
    if not slopes:
        return None
    slope = median(slopes)
    intercept = median(y - slope * x for x, y in points)
    sign = 1 if slope > 0 else -1 if slope < 0 else 0
    agreement = sum(1 for s in slopes if (s > 0) - (s < 0) == sign) / len(slopes)
    return Fit(slope, intercept, agreement)


@dataclass
class Forecast:
    kind: str
    message: str
    expected_at: datetime | None
    confidence: float
    evidence: dict = field(default_factory=dict)


def latency_forecast(
    points: list[tuple[float, float]], threshold_ms: float, now: datetime
) -> Forecast | None:
    """``points``: (minutes before now, negative; mean latency ms). A forecast when the
    fitted line rises, is still under the threshold now, and crosses it within the horizon."""
    if len(points) < MIN_POINTS:
        return None
    # Most checks hold steady: when the later half is not slower than the earlier (medians,
    # so one slow probe decides nothing) there is no rise to fit -- and no O(n^2) fit to pay.
    ys = [y for _, y in sorted(points)]
    if median(ys[len(ys) // 2 :]) <= median(ys[: len(ys) // 2]):
        return None
    fit = theil_sen(points)
    if fit is None or fit.slope <= 0 or fit.agreement < MIN_CONFIDENCE:
        return None
    level_now = fit.intercept  # x = 0 is now
    if level_now >= threshold_ms:
        return None  # already there: that is the status, not a prediction
    minutes = (threshold_ms - level_now) / fit.slope
    if minutes > HORIZON_HOURS * 60:
        return None
    when = now + timedelta(minutes=minutes)
    return Forecast(
        kind="latency_trend",
        message=(
            f"response time rising {fit.slope:.1f} ms a minute, {level_now:.0f} ms now: "
            f"reaches the {threshold_ms:.0f} ms threshold in about {_span(minutes)}"
        ),
        expected_at=when,
        confidence=round(fit.agreement, 2),
        evidence={
            "points": len(points),
            "slope_ms_per_minute": round(fit.slope, 3),
            "latency_now_ms": round(level_now, 1),
            "threshold_ms": threshold_ms,
            "method": "Theil-Sen over per-minute means",
        },
    )


def tls_forecast(days_left: float | None, now: datetime) -> Forecast | None:
    if days_left is None or days_left > TLS_DAYS:
        return None
    if days_left < 0:
        return None  # expired: the check already says so
    return Forecast(
        kind="tls_expiry",
        message=f"TLS certificate expires in {days_left:.0f} days",
        expected_at=now + timedelta(days=days_left),
        confidence=1.0,
        evidence={"days_left": days_left, "warn_within_days": TLS_DAYS},
    )


def flap_forecast(changes: int, now: datetime) -> Forecast | None:
    if changes < FLAP_CHANGES:
        return None
    return Forecast(
        kind="flapping",
        message=f"changed status {changes} times in the last hour",
        expected_at=None,
        confidence=round(min(1.0, changes / (2 * FLAP_CHANGES)), 2),
        evidence={"changes_last_hour": changes, "flapping_from": FLAP_CHANGES},
    )


def burn_forecast(
    target_percent: float,
    windows: dict[timedelta, tuple[int, int]],
    budget_used: float,
    now: datetime,
    watched: timedelta = SLO_PERIOD,
) -> Forecast | None:
    """``windows``: (failures, results) over each window of BURN_ALERTS; ``budget_used``:
    the share of the 30-day error budget spent already (may exceed 1); ``watched``: how
    long the service has results. A forecast when a long and its short window both burn
    faster than their rate; what is left of the budget is judged only once ``watched``
    reaches BUDGET_JUDGED_AFTER (pure)."""
    budget = 1 - target_percent / 100
    if budget <= 0:
        return None

    def rate(window: timedelta) -> float | None:
        failures, count = windows.get(window, (0, 0))
        return None if not count else failures / count / budget

    for long, short, threshold in BURN_ALERTS:
        long_rate, short_rate = rate(long), rate(short)
        if long_rate is None or short_rate is None:
            continue
        if long_rate <= threshold or short_rate <= threshold:
            continue
        left = max(0.0, 1 - budget_used)
        # At long_rate, the whole budget lasts SLO_PERIOD / long_rate.
        exhausted_in = SLO_PERIOD * (left / long_rate)
        judged = watched >= BUDGET_JUDGED_AFTER
        if not judged:
            remainder = (
                f"watched for {_span(watched / MINUTE)} only, too early to say how much of it "
                f"is spent (judged after {_span(BUDGET_JUDGED_AFTER / MINUTE)}); at this rate "
                f"a whole budget lasts about {_span(SLO_PERIOD / long_rate / MINUTE)}"
            )
        elif left:
            remainder = f"{left:.0%} of it left, gone in about {_span(exhausted_in / MINUTE)}"
        else:
            remainder = "already spent"
        return Forecast(
            kind="error_budget_burn",
            message=(
                f"error budget of the {target_percent:g} % objective burning {long_rate:.1f}x "
                f"over {_window(long)} ({short_rate:.1f}x over {_window(short)}): {remainder}"
            ),
            expected_at=now + exhausted_in if judged else None,
            confidence=round(min(1.0, windows[short][1] / 20), 2),
            evidence={
                "slo_target_percent": target_percent,
                "burn_rate_long": round(long_rate, 2),
                "burn_rate_short": round(short_rate, 2),
                "windows": [_window(long), _window(short)],
                "threshold": threshold,
                "budget_used": round(budget_used, 4),
                "budget_judged": judged,
                "watched_hours": round(watched / timedelta(hours=1), 1),
                "method": "multi-window multi-burn-rate (SRE workbook)",
            },
        )
    return None


def _window(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def _span(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 72 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def _minute_means(since: datetime, check_ids: list[int]) -> dict[int, list[tuple[datetime, float]]]:
    rows = (
        CheckResult.objects.filter(at__gte=since, health_check_id__in=check_ids)
        .exclude(error_code__in=NOT_OBSERVATIONS)
        .exclude(status=Status.UNHEALTHY)  # a failure's time says nothing of latency
        .annotate(minute=Trunc("at", "minute"))
        .values("health_check_id", "minute")
        .annotate(mean=Avg("response_us"))
    )
    series: dict[int, list] = defaultdict(list)
    for row in rows:
        series[row["health_check_id"]].append((row["minute"], row["mean"] / 1000))
    return series


def _burn_inputs(now: datetime) -> dict[int, tuple[float, dict, float, timedelta]]:
    """Per service with an SLO target: (target, {window: (failures, results)}, budget used,
    how long it has been watched),
    from its critical checks (all its checks when none is critical) -- one grouped query over
    the raw results of the longest window, and the 30-day uptime from the rollups."""
    targets = dict(
        HealthCheck.objects.filter(enabled=True, service__slo_target__isnull=False)
        .values_list("service_id", "service__slo_target")
        .distinct()
    )
    if not targets:
        return {}
    counted: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    rows = HealthCheck.objects.filter(enabled=True, service_id__in=targets)
    for service_id, check_id, critical in rows.values_list("service_id", "id", "is_critical"):
        counted[service_id].append((check_id, critical))
    check_service = {}
    for service_id, pairs in counted.items():
        chosen = [c for c, critical in pairs if critical] or [c for c, _ in pairs]
        check_service.update(dict.fromkeys(chosen, service_id))
    spans = sorted({w for alert in BURN_ALERTS for w in alert[:2]})
    aggregates = {}
    for i, span in enumerate(spans):
        since = Q(at__gte=now - span)
        aggregates[f"n{i}"] = Count("at", filter=since)
        aggregates[f"f{i}"] = Count("at", filter=since & Q(status=Status.UNHEALTHY))
    per_check = (
        CheckResult.objects.filter(
            health_check_id__in=list(check_service), at__gte=now - spans[-1], at__lte=now
        )
        .exclude(error_code__in=NOT_OBSERVATIONS)
        .values("health_check_id")
        .annotate(**aggregates)
    )
    windows: dict[int, dict] = defaultdict(lambda: {s: (0, 0) for s in spans})
    for row in per_check:
        service_windows = windows[check_service[row["health_check_id"]]]
        for i, span in enumerate(spans):
            failures, count = service_windows[span]
            service_windows[span] = (failures + row[f"f{i}"], count + row[f"n{i}"])
    found = {}
    for service_id, service_windows in windows.items():
        target = targets[service_id]
        chosen = [c for c, s in check_service.items() if s == service_id]
        month = history.uptime(chosen, now)["30d"]
        # The rollups lag the raw results by up to an hour: a young service is judged on
        # whichever saw more.
        day_failures, day_count = service_windows[spans[-1]]
        if month["results"] >= day_count and month["uptime"] is not None:
            ratio = 1 - month["uptime"]
        else:
            ratio = day_failures / day_count if day_count else 0.0
        # The budget is the objective's share of the whole 30 days: a service watched for an
        # hour has spent (its failure ratio) x (an hour / 30 days) of it, not its ratio.
        first = history.first_result_at(chosen, now - SLO_PERIOD)
        watched = min(now - first, SLO_PERIOD) if first else timedelta(0)
        used = ratio * (watched / SLO_PERIOD) / (1 - target / 100)
        found[service_id] = (target, service_windows, used, watched)
    return found


def forecasts(now=None) -> list[tuple[HealthCheck | None, Service, Forecast]]:
    """Every prediction for every enabled check, and every service with an SLO, now."""
    now = now or timezone.now()
    checks = {c.id: c for c in HealthCheck.objects.filter(enabled=True).select_related("service")}
    found: list[tuple[HealthCheck | None, Service, Forecast]] = []
    with_threshold = [i for i, c in checks.items() if c.latency_threshold_ms]
    since = now - timedelta(minutes=WINDOW_MINUTES)
    for check_id, series in _minute_means(since, with_threshold).items():
        # Each mean stands for the middle of its minute.
        points = [((at - now).total_seconds() + 30) / 60 for at, _ in series]
        points = [(x, ms) for x, (_, ms) in zip(points, series, strict=True)]
        check = checks[check_id]
        if forecast := latency_forecast(points, check.latency_threshold_ms, now):
            found.append((check, check.service, forecast))
    for check_id, outcome in CheckState.objects.filter(
        health_check_id__in=list(checks), last_outcome__metrics__has_key="tls_days_left"
    ).values_list("health_check_id", "last_outcome"):
        if forecast := tls_forecast(outcome["metrics"]["tls_days_left"], now):
            found.append((checks[check_id], checks[check_id].service, forecast))
    flaps = (
        StatusChange.objects.filter(at__gte=now - timedelta(hours=1), health_check__isnull=False)
        .values("health_check_id")
        .annotate(n=Count("id"))
        .filter(n__gte=FLAP_CHANGES)
    )
    for row in flaps:
        check = checks.get(row["health_check_id"])
        if check is not None and (forecast := flap_forecast(row["n"], now)):
            found.append((check, check.service, forecast))
    burning = _burn_inputs(now)
    services = {s.id: s for s in Service.objects.filter(id__in=list(burning))}
    for service_id, (target, windows, used, watched) in burning.items():
        if forecast := burn_forecast(target, windows, used, now, watched):
            found.append((None, services[service_id], forecast))
    return found


def refresh(now=None) -> int:
    """Replace the stored predictions with the current ones; returns how many there are."""
    now = now or timezone.now()
    rows = [
        Prediction(
            health_check=check,
            service=service,
            kind=f.kind,
            message=f.message,
            expected_at=f.expected_at,
            confidence=f.confidence,
            evidence=f.evidence,
            generated_at=now,
        )
        for check, service, f in forecasts(now)
    ]
    with transaction.atomic():
        Prediction.objects.all().delete()
        Prediction.objects.bulk_create(rows)
        heartbeats.beat(HEARTBEAT, predictions=len(rows))  # when, even when there are none
    return len(rows)


def document() -> dict:
    """The body of GET /health/predictive."""
    rows = list(
        Prediction.objects.select_related("service", "health_check").order_by(
            "expected_at", "service__name", "health_check__name"
        )
    )
    generated = Heartbeat.objects.filter(name=HEARTBEAT).values_list("seen_at", flat=True).first()
    return {
        "generated_at": generated.isoformat() if generated else None,
        "predictions": [
            {
                "service": p.service.name,
                "check": p.health_check.name if p.health_check_id else None,
                "kind": p.kind,
                "message": p.message,
                "expected_at": p.expected_at.isoformat() if p.expected_at else None,
                "confidence": p.confidence,
                "evidence": p.evidence,
            }
            for p in rows
        ],
    }
