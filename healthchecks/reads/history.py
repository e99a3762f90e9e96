"""History: rollups of raw results, pruning, uptime and latency percentiles.

Raw results are kept HEALTH_RAW_RETENTION_DAYS; hourly rollups longer, daily rollups
longest. Each rollup keeps a latency histogram over fixed buckets, so percentiles over any
window merge exactly (at bucket resolution) without the raw rows.
"""

import bisect
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import Trunc
from django.http import Http404
from django.utils import timezone

from healthchecks.models import CheckResult, CheckRollup, HealthCheck, ResultDetail
from healthchecks.reads.reports import check_status_counts, iso, status_counts
from healthchecks.status import NOT_OBSERVATIONS, Status
from services.models import Service

# Upper bounds of the latency buckets, in microseconds; the last bucket is open-ended.
BUCKETS = [
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
]
WINDOWS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}


class NoSuchCheck(LookupError):
    pass


class BadRange(ValueError):
    def __init__(self, message: str, fields: dict[str, str]):
        super().__init__(message)
        self.fields = fields


# --- Rollups ---------------------------------------------------------------------------------


def rollup_hours(since: datetime, until: datetime | None = None) -> int:
    """(Re)compute hourly rollups for every hour from ``since``'s hour; idempotent."""
    start = since.replace(minute=0, second=0, microsecond=0)
    # A missed slot or a result the checker could not vouch for counts neither for nor
    # against the target.
    raw = CheckResult.objects.filter(at__gte=start).exclude(error_code__in=NOT_OBSERVATIONS)
    if until is not None:
        raw = raw.filter(at__lt=until)
    bucket_counts = {
        f"b{i}": Count("at", filter=Q(response_us__lte=bound)) for i, bound in enumerate(BUCKETS)
    }
    rows = (
        raw.annotate(hour=Trunc("at", "hour", tzinfo=UTC))
        .values("health_check_id", "hour")
        .annotate(
            count=Count("at"),
            failures=Count("at", filter=Q(status=Status.UNHEALTHY)),
            degraded=Count("at", filter=Q(status=Status.DEGRADED)),
            lsum=Sum("response_us"),
            lmax=Max("response_us"),
            **bucket_counts,
        )
    )
    rollups = [
        CheckRollup(
            health_check_id=r["health_check_id"],
            granularity=CheckRollup.HOUR,
            start=r["hour"],
            count=r["count"],
            failures=r["failures"],
            degraded=r["degraded"],
            latency_sum_us=r["lsum"] or 0,
            latency_max_us=r["lmax"] or 0,
            histogram=_histogram(r),
        )
        for r in rows
    ]
    _upsert(rollups)
    return len(rollups)


def _histogram(row: dict) -> list[int]:
    """Per-bucket counts from cumulative "at most bound" counts."""
    cumulative = [row[f"b{i}"] for i in range(len(BUCKETS))] + [row["count"]]
    return [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]


def rollup_days(since: datetime) -> int:
    """Daily rollups from the hourly ones, for every day from ``since``'s day."""
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    merged: dict[tuple, dict] = {}
    hours = CheckRollup.objects.filter(granularity=CheckRollup.HOUR, start__gte=start)
    for hour in hours.iterator(chunk_size=5000):
        day = hour.start.replace(hour=0, minute=0, second=0, microsecond=0)
        acc = merged.setdefault(
            (hour.health_check_id, day),
            {
                "count": 0,
                "failures": 0,
                "degraded": 0,
                "lsum": 0,
                "lmax": 0,
                "hist": [0] * (len(BUCKETS) + 1),
            },
        )
        acc["count"] += hour.count
        acc["failures"] += hour.failures
        acc["degraded"] += hour.degraded
        acc["lsum"] += hour.latency_sum_us
        acc["lmax"] = max(acc["lmax"], hour.latency_max_us)
        acc["hist"] = [a + b for a, b in zip(acc["hist"], hour.histogram, strict=False)]
    _upsert(
        [
            CheckRollup(
                health_check_id=check_id,
                granularity=CheckRollup.DAY,
                start=day,
                count=a["count"],
                failures=a["failures"],
                degraded=a["degraded"],
                latency_sum_us=a["lsum"],
                latency_max_us=a["lmax"],
                histogram=a["hist"],
            )
            for (check_id, day), a in merged.items()
        ]
    )
    return len(merged)


def _upsert(rollups: list[CheckRollup]) -> None:
    CheckRollup.objects.bulk_create(
        rollups,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["health_check", "granularity", "start"],
        update_fields=[
            "count",
            "failures",
            "degraded",
            "latency_sum_us",
            "latency_max_us",
            "histogram",
        ],
    )


# --- Pruning ---------------------------------------------------------------------------------


def prune(now: datetime | None = None, chunk: int = 5000) -> dict[str, int]:
    """Delete what is past retention, a chunk per transaction, so no lock is held long."""
    now = now or timezone.now()
    raw_before = now - timedelta(days=settings.HEALTH_RAW_RETENTION_DAYS)
    deleted = {
        "results": _delete_in_chunks(CheckResult.objects.filter(at__lt=raw_before), chunk),
        "details": _delete_in_chunks(ResultDetail.objects.filter(at__lt=raw_before), chunk),
    }
    hourly_before = now - timedelta(days=settings.HEALTH_HOURLY_RETENTION_DAYS)
    daily_before = now - timedelta(days=settings.HEALTH_DAILY_RETENTION_DAYS)
    deleted["rollups"] = CheckRollup.objects.filter(
        Q(granularity=CheckRollup.HOUR, start__lt=hourly_before)
        | Q(granularity=CheckRollup.DAY, start__lt=daily_before)
    ).delete()[0]
    return deleted


def _delete_in_chunks(queryset, chunk: int) -> int:
    total = 0
    while True:
        with transaction.atomic():
            keys = list(queryset.values_list("health_check_id", "at")[:chunk])
            if not keys:
                return total
            total += queryset.model.objects.filter(pk__in=keys).delete()[0]


# --- Uptime and percentiles -----------------------------------------------------------------


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The bucket bound (ms) under which ``fraction`` of the results fall."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = fraction * total, 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            bound = BUCKETS[i] if i < len(BUCKETS) else BUCKETS[-1] * 2
            return bound / 1000
    return BUCKETS[-1] / 1000


def _granularity(span: timedelta) -> int:
    return CheckRollup.HOUR if span <= timedelta(days=7) else CheckRollup.DAY


def uptime(check_ids: list[int], now: datetime | None = None) -> dict[str, dict]:
    """Uptime (healthy or degraded over all results) and latency percentiles per window,
    summed over ``check_ids``, from the rollups: one query for all four windows."""
    now = now or timezone.now()
    oldest = {
        g: now - max(s for s in WINDOWS.values() if _granularity(s) == g)
        for g in (CheckRollup.HOUR, CheckRollup.DAY)
    }
    rows = list(
        CheckRollup.objects.filter(health_check_id__in=check_ids)
        .filter(
            Q(granularity=CheckRollup.HOUR, start__gte=oldest[CheckRollup.HOUR])
            | Q(granularity=CheckRollup.DAY, start__gte=oldest[CheckRollup.DAY])
        )
        .values_list("granularity", "start", "count", "failures", "histogram")
    )
    result = {}
    for name, span in WINDOWS.items():
        granularity, start = _granularity(span), now - span
        count = failures = 0
        histogram = [0] * (len(BUCKETS) + 1)
        for g, begins, n, failed, hist in rows:
            if g == granularity and begins >= start:
                count, failures = count + n, failures + failed
                histogram = [a + b for a, b in zip(histogram, hist, strict=False)]
        result[name] = {
            "uptime": None if not count else round(1 - failures / count, 6),
            "results": count,
            "latency_p50_ms": percentile(histogram, 0.50),
            "latency_p95_ms": percentile(histogram, 0.95),
            "latency_p99_ms": percentile(histogram, 0.99),
        }
    return result


def services_uptime(
    window: str = "90d", now: datetime | None = None, service_ids: list[int] | None = None
) -> dict[str, float | None]:
    """One window's uptime for every service (or those of ``service_ids``: a page's) in one
    grouped query (for dashboards)."""
    now = now or timezone.now()
    if service_ids is not None:
        return uptimes_of(service_ids, [window], now)[window]
    span = WINDOWS[window]
    rows = (
        CheckRollup.objects.filter(granularity=_granularity(span), start__gte=now - span)
        .values("health_check__service__name")
        .annotate(count=Sum("count"), failures=Sum("failures"))
    )
    return {
        r["health_check__service__name"]: round(1 - r["failures"] / r["count"], 6)
        for r in rows
        if r["count"]
    }


def uptimes_of(service_ids: list[int], windows: list[str], now: datetime) -> dict[str, dict]:
    """Window -> service name -> uptime, for a page's services, in two queries: their checks,
    then the rollups read through their key (health check, granularity, start) with one sum
    per window -- not a scan of every rollup joined to its service."""
    service_of = dict(
        HealthCheck.objects.filter(service_id__in=service_ids).values_list("id", "service__name")
    )
    sums = {}
    for window in windows:
        span = WINDOWS[window]
        within = Q(granularity=_granularity(span), start__gte=now - span)
        sums[f"n_{window}"] = Sum("count", filter=within, default=0)
        sums[f"f_{window}"] = Sum("failures", filter=within, default=0)
    oldest = now - max(WINDOWS[w] for w in windows)
    rows = (
        CheckRollup.objects.filter(health_check_id__in=list(service_of), start__gte=oldest)
        .values("health_check_id")
        .annotate(**sums)
    )
    totals = {w: defaultdict(lambda: [0, 0]) for w in windows}
    for row in rows:
        name = service_of[row["health_check_id"]]
        for window in windows:
            totals[window][name][0] += row[f"n_{window}"]
            totals[window][name][1] += row[f"f_{window}"]
    return {
        window: {n: round(1 - f / c, 6) for n, (c, f) in by_name.items() if c}
        for window, by_name in totals.items()
    }


def daily_uptime(check_ids: list[int], days: int = 90, now: datetime | None = None) -> list[dict]:
    """One entry per day, oldest first: uptime over the checks' results of that (UTC) day,
    from the daily rollups, or the hourly ones for days not rolled up by day yet."""
    now = now or timezone.now()
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day: dict = {}
    for granularity in (CheckRollup.HOUR, CheckRollup.DAY):  # days overwrite hours
        sums: dict = defaultdict(lambda: [0, 0])
        rows = CheckRollup.objects.filter(
            health_check_id__in=check_ids, granularity=granularity, start__gte=first
        ).values_list("start", "count", "failures")
        for start, count, failures in rows:
            day = start.astimezone(UTC).date()
            sums[day][0] += count
            sums[day][1] += failures
        per_day.update(sums)
    out = []
    for i in range(days):
        day = (first + timedelta(days=i)).date()
        count, failures = per_day.get(day, (0, 0))
        out.append(
            {
                "day": day,
                "results": count,
                "uptime": round(1 - failures / count, 6) if count else None,
            }
        )
    return out


def first_result_at(check_ids: list[int], since: datetime) -> datetime | None:
    """When the earliest result of these checks since ``since`` was taken (from the rollups,
    which outlive the raw results, else the raw results)."""
    rolled = CheckRollup.objects.filter(health_check_id__in=check_ids, start__gte=since).aggregate(
        first=Min("start")
    )["first"]
    raw = CheckResult.objects.filter(health_check_id__in=check_ids, at__gte=since).aggregate(
        first=Min("at")
    )["first"]
    return min((t for t in (rolled, raw) if t is not None), default=None)


def services_latency_p95(
    now: datetime | None = None, service_ids: list[int] | None = None
) -> dict[int, float | None]:
    """Service id -> p95 response time (ms) of its checks over the last hour, from the hourly
    rollups' histograms (the current and the previous hour: the last hour, at hour
    resolution), in one query."""
    now = now or timezone.now()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    merged: dict[int, list[int]] = {}
    rows = CheckRollup.objects.filter(granularity=CheckRollup.HOUR, start__gte=since)
    if service_ids is not None:
        rows = rows.filter(health_check__service_id__in=service_ids)
    rows = rows.values_list("health_check__service_id", "histogram")
    for service_id, histogram in rows:
        total = merged.setdefault(service_id, [0] * (len(BUCKETS) + 1))
        for i, n in enumerate(histogram):
            total[i] += n
    return {service_id: percentile(h, 0.95) for service_id, h in merged.items()}


# --- Reports ---------------------------------------------------------------------------------


def recent_window(seconds: int = 60):
    now = timezone.now()
    return CheckResult.objects.filter(at__gte=now - timedelta(seconds=seconds), at__lte=now)


def _percentiles(values: list[int], scale: float) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    values.sort()

    def pick(fraction):
        return round(
            values[
                min(len(values) - 1, bisect.bisect_left(range(len(values)), fraction * len(values)))
            ]
            * scale,
            3,
        )

    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99)}


def metrics_summary() -> dict:
    window = 60
    recent = recent_window(window)
    if connection.vendor == "postgresql":
        lag, latency, count = _pg_percentiles(window, timezone.now())
    else:
        rows = list(recent.values_list("lag_ms", "response_us", "error_code"))
        probed = [r for r in rows if r[2] not in NOT_OBSERVATIONS]
        count = len(probed)
        lag = _percentiles([r[0] for r in rows], 1)
        latency = _percentiles([r[1] for r in probed], 0.001)
    return {
        "services": status_counts(),
        "checks": check_status_counts(),
        "checks_enabled": HealthCheck.objects.filter(enabled=True).count(),
        "throughput_per_s": round(count / window, 2),
        "lag_ms": lag,
        "latency_ms": latency,
        "window_s": window,
        "generated_at": iso(timezone.now()),
    }


def _pg_percentiles(window: int, now: datetime):
    # Lag counts every slot, missed ones included; latency and throughput only observations.
    sql = """
        SELECT count(*) FILTER (WHERE error_code <> ALL(%s)),
               percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lag_ms),
               percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY response_us)
                   FILTER (WHERE error_code <> ALL(%s))
        FROM healthchecks_checkresult
        WHERE at >= %s AND at <= %s
    """
    skipped = sorted(int(code) for code in NOT_OBSERVATIONS)
    with connection.cursor() as cursor:
        cursor.execute(sql, [skipped, skipped, now - timedelta(seconds=window), now])
        count, lags, latencies = cursor.fetchone()
    names = ("p50", "p95", "p99")
    lag = dict(zip(names, lags or [None] * 3, strict=True))
    latency = {
        k: None if v is None else round(v / 1000, 3)
        for k, v in zip(names, latencies or [None] * 3, strict=True)
    }
    return lag, latency, count


def parse_range(params) -> tuple[datetime, datetime]:
    now = timezone.now()
    fields = {}
    parsed = {}
    for key, default in (("from", now - timedelta(hours=24)), ("to", now)):
        raw = params.get(key)
        if not raw:
            parsed[key] = default
            continue
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            fields[key] = "not an ISO 8601 time"
            continue
        parsed[key] = value if value.tzinfo else value.replace(tzinfo=UTC)
    if fields:
        raise BadRange("bad time range", fields)
    if parsed["from"] >= parsed["to"]:
        raise BadRange("bad time range", {"from": "must be before 'to'"})
    return parsed["from"], parsed["to"]


def service_history(name: str, params) -> dict:
    """Results of a service's checks over a time range: raw up to 6 hours, hourly rollups
    up to 14 days, daily beyond."""
    start, end = parse_range(params)
    checks = dict(HealthCheck.objects.filter(service__name=name).values_list("id", "name"))
    if not checks and not Service.objects.filter(name=name).exists():
        raise Http404(name)
    wanted = params.get("check")
    if wanted:
        checks = {i: n for i, n in checks.items() if n == wanted}
        if not checks:
            raise NoSuchCheck(f"{name} has no check named {wanted!r}")
    span = end - start
    series: dict[str, list] = defaultdict(list)
    if span <= timedelta(hours=6):
        resolution = "raw"
        rows = (
            CheckResult.objects.filter(health_check_id__in=checks, at__gte=start, at__lt=end)
            .order_by("at")
            .values_list("health_check_id", "at", "status", "response_us", "error_code")[:20_000]
        )
        # Results that were not plainly healthy carry their errors, warnings and details.
        details = {
            (check_id, at): outcome
            for check_id, at, outcome in ResultDetail.objects.filter(
                health_check_id__in=checks, at__gte=start, at__lt=end
            ).values_list("health_check_id", "at", "outcome")
        }
        for check_id, at, status, us, error in rows:
            entry = {
                "at": iso(at),
                "status": Status(status).label,
                "response_ms": us / 1000,
                "error_code": error,
            }
            entry.update(details.get((check_id, at), {}))
            series[checks[check_id]].append(entry)
    else:
        hourly = span <= timedelta(days=14)
        resolution = "hour" if hourly else "day"
        rows = CheckRollup.objects.filter(
            health_check_id__in=checks,
            start__gte=start,
            start__lt=end,
            granularity=CheckRollup.HOUR if hourly else CheckRollup.DAY,
        ).order_by("start")
        for r in rows:
            series[checks[r.health_check_id]].append(
                {
                    "start": iso(r.start),
                    "count": r.count,
                    "failures": r.failures,
                    "degraded": r.degraded,
                    "uptime": round(1 - r.failures / r.count, 6) if r.count else None,
                    "latency_avg_ms": round(r.latency_sum_us / r.count / 1000, 3)
                    if r.count
                    else None,
                    "latency_max_ms": r.latency_max_us / 1000,
                    "latency_p95_ms": percentile(r.histogram, 0.95),
                }
            )
    return {
        "service": name,
        "from": iso(start),
        "to": iso(end),
        "resolution": resolution,
        "checks": dict(series),
        "uptime": uptime(list(checks)),
    }
