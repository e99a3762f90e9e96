"""The overview's rows: every shown service with its health, 24-hour strip, uptimes, latency
and last check, read in a fixed number of queries and drawn in Python.

The overview is the page people leave open: it redraws its table every 15 seconds, hundreds
of rows of a dozen cells each. Drawn by the template engine a row costs about 0.2 ms (every
``{{ }}`` is a lookup through the context stack); drawn here as one string it costs a
seventh of that, with every value escaped as the template would (`make bench
ARGS=overview_rows`). Django's admin draws its change-list rows in Python too
(``items_for_result``).
"""

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Case, Max, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from redis.exceptions import RedisError

from automation.models import Alert
from healthchecks.models import StatusChange
from healthchecks.reads import availability, history
from healthchecks.status import Status
from pages import charts
from services import queries

HEALTH_WORDS = {s.label: s.value for s in Status}
# Worst first: what needs someone on top.
RANK = Case(
    When(health__status=Status.UNHEALTHY, then=Value(0)),
    When(health__status=Status.DEGRADED, then=Value(1)),
    When(health__status=Status.UNKNOWN, then=Value(2)),
    When(health__status=Status.MAINTENANCE, then=Value(3)),
    When(health__status=Status.HEALTHY, then=Value(4)),
    default=Value(2),  # no health row yet: unknown
)
_FIELDS = (
    "id",
    "name",
    "display_name",
    "team__name",
    "health__status",
    "health__reason",
    "health__since",
    "last_check",
    "lifecycle_status",
    "is_critical",
    "deployed_version",
)


def filter_health(queryset: QuerySet, word: str) -> QuerySet:
    """Services whose health is ``word`` (a status label; one with no health row yet is
    unknown). The caller has checked the word."""
    if HEALTH_WORDS[word] == Status.UNKNOWN:
        return queryset.filter(Q(health__isnull=True) | Q(health__status=Status.UNKNOWN))
    return queryset.filter(health__status=HEALTH_WORDS[word])


def ordered(queryset: QuerySet, sort: str) -> QuerySet:
    """Worst first (then by name), or by name; with the time of each one's last check."""
    queryset = queryset.annotate(rank=RANK, last_check=Max("checks__state__last_result_at"))
    return queryset.order_by("name") if sort == "name" else queryset.order_by("rank", "name")


def rows(queryset: QuerySet, now: datetime, *, detailed: bool = True) -> list[dict]:
    """The services of ``queryset`` (ordered and sliced) as plain rows; ``detailed`` adds the
    strip, uptimes, latency, dependencies, tags and the row's HTML (the wall needs none)."""
    found = [dict(zip(_FIELDS, values, strict=True)) for values in queryset.values_list(*_FIELDS)]
    acknowledged = _acknowledged([row["id"] for row in found])
    for row in found:
        status = row["health__status"]
        row["health"] = Status(status).label if status is not None else "unknown"
        row["acknowledged_by"] = acknowledged.get(row["id"], "")
    if not detailed or not found:
        return found
    ids = [row["id"] for row in found]
    strips, day, month, p95, deps, tags = _aggregates(ids, now)
    start = now - timedelta(hours=24)
    # One reverse() for the page: names are slugs (portal.fields), nothing to quote.
    link = reverse("pages:service", args=["-"]).removesuffix("-/")
    for row in found:
        row["html"] = row_html(
            row,
            href=f"{link}{row['name']}/",
            strip=charts.status_strip(row["name"], strips[row["id"]], start),
            uptimes=(day.get(row["name"]), month.get(row["name"])),
            p95_ms=p95.get(row["id"]),
            deps=deps.get(row["id"], []),
            tags=tags.get(row["id"], []),
        )
    return found


def _acknowledged(ids: list[int]) -> dict[int, str]:
    """Who acknowledged each shown service's open alert (someone is on it), read live."""
    if not ids:
        return {}
    return dict(
        Alert.objects.filter(
            service_id__in=ids, resolved_at=None, acknowledged_at__isnull=False
        ).values_list("service_id", "acknowledged_by")
    )


# How long a page's aggregates are reused: every viewer's refresh (each 15 s) within it reads
# them from the cache instead of PostgreSQL.
AGGREGATES_SECONDS = 20


def _aggregates(ids: list[int], now: datetime) -> tuple:
    """The slow-moving part of a page's rows -- status strips, uptimes, latency, dependencies,
    tags -- shared for AGGREGATES_SECONDS by every viewer of the same page. A status change
    anywhere makes new ones at once (the strips would show it); uptimes and latency (hourly
    and daily sums) may be that much older. Health, its reason and the last check are read
    live for every request. Without a cache (Redis down) they are read every time."""
    latest = StatusChange.objects.aggregate(latest=Max("id"))["latest"]
    digest = hashlib.sha256(f"{ids}|{now:%Y%m%d%H}|{latest}".encode()).hexdigest()[:32]
    key = f"overview-rows:{digest}"
    try:
        found = cache.get(key)
    except (RedisError, OSError):
        found, key = None, None
    if found is not None:
        return found
    uptimes = history.uptimes_of(ids, ["24h", "30d"], now)
    found = (
        availability.status_strips(ids, now),
        uptimes["24h"],
        uptimes["30d"],
        history.services_latency_p95(now, ids),
        dict(queries.dependencies_by_service(ids)),
        dict(queries.tags_by_service(ids)),
    )
    if key is not None:
        with contextlib.suppress(RedisError, OSError):
            cache.set(key, found, timeout=AGGREGATES_SECONDS)
    return found


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


def _at(value: datetime | None, pattern: str, precision: str) -> str:
    """A ``<time>`` in UTC that static/js/app.js shows in the viewer's zone (as the template
    filter ``moment`` writes it; here without its cost per row: digits only, nothing to
    escape)."""
    if not value:
        return ""
    value = value.astimezone(UTC)
    iso = value.isoformat().replace("+00:00", "Z")
    return f'<time datetime="{iso}" data-local="{precision}">{value.strftime(pattern)} UTC</time>'


def row_html(row: dict, *, href, strip, uptimes, p95_ms, deps, tags) -> SafeString:
    """One ``<tr>``: every value from the database goes through ``escape``."""
    name, reason, since = (
        escape(row["name"]),
        escape(row["health__reason"] or ""),
        row["health__since"],
    )
    health = escape(row["health"])
    health_cell = (
        f'<span class="badge health health-{health}"'
        + (f' title="{reason}">' if reason else ">")
        + f"{health}</span>"
        + (f'<br><small class="reason">{reason}</small>' if reason else "")
        + (
            f'<br><small class="since">since {_at(since, "%Y-%m-%d %H:%M", "minutes")}</small>'
            if since
            else ""
        )
        + (
            f'<br><small class="ack">acknowledged by {escape(row["acknowledged_by"])}</small>'
            if row.get("acknowledged_by")
            else ""
        )
    )
    display = escape(row["display_name"])
    lifecycle = escape(row["lifecycle_status"])
    latency = (
        f'<span title="the bound of its latency bucket">≤ {p95_ms:.0f} ms</span>'
        if p95_ms is not None
        else "—"
    )
    depends_on = " ".join(
        f'<span class="dep dep-{escape(d["kind"])}">{escape(d["service"])}</span>' for d in deps
    )
    # (column, content): the column names the cell's class, which the narrow screen's card
    # layout (static/css/app.css) shows or leaves out.
    cells = (
        (
            "service",
            f'<a href="{escape(href)}"><strong>{name}</strong></a>'
            + (f"<br><small>{display}</small>" if display else ""),
        ),
        ("team", escape(row["team__name"])),
        ("health", health_cell),
        ("strip", strip),
        ("uptime", f"{_percent(uptimes[0])} / {_percent(uptimes[1])}"),
        ("p95", latency),
        ("last", _at(row["last_check"], "%H:%M:%S", "time") or "never"),
        ("lifecycle", f'<span class="badge lifecycle lifecycle-{lifecycle}">{lifecycle}</span>'),
        ("critical", '<span class="critical">critical</span>' if row["is_critical"] else ""),
        ("version", escape(row["deployed_version"] or "—")),
        ("deps", depends_on or "—"),
        ("tags", " ".join(f'<span class="tag">{escape(tag)}</span>' for tag in tags)),
    )
    html = (
        f'<tr data-service="{name}">'
        + "".join(f'<td class="col-{column}">{content}</td>' for column, content in cells)
        + "</tr>"
    )
    return mark_safe(html)  # noqa: S308 - every value above is escaped
