"""Prometheus metrics.

Counters and histograms are written by workers into one Redis hash
(healthchecks.engine.counters) and read here by whichever web process serves ``/metrics``:
processes come and go, the numbers stay. Gauges (statuses, heartbeat ages) are read from the
database at scrape time. Without Redis (embedded mode, or Redis down) the counters are simply
absent; nothing fails.
"""

import math

import redis
import structlog
from django.db.models import Sum
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from healthchecks.engine import capacity
from healthchecks.engine.counters import KEY, LAG_BOUNDS, LATENCY_BOUNDS, redis_client
from healthchecks.status import Status
from portal import heartbeats, ratelimit
from portal.models import SecurityEvent
from services.models import Service

log = structlog.get_logger(__name__)


class PortalCollector:
    def collect(self):
        yield from self._statuses()
        yield from self._heartbeats()
        yield from self._rate_limits()
        yield from self._security_events()
        yield from self._from_redis()

    def _security_events(self):
        events = CounterMetricFamily(
            "portal_security_events",
            "Security events recorded, by kind (failed logins, token failures, refusals, "
            "rate-limit hits, secret reads, tokens made and revoked); a refusal counted on "
            "another's row counts too",
            labels=["kind"],
        )
        counts = dict(
            SecurityEvent.objects.values("kind").annotate(n=Sum("count")).values_list("kind", "n")
        )
        for kind in SecurityEvent.Kind.values:
            events.add_metric([kind], counts.get(kind, 0))
        yield events

    def _rate_limits(self):
        factor = GaugeMetricFamily(
            "portal_rate_limit_factor",
            "Share of their configured rate the lowest route classes (pages, API reads) get "
            "now: 1 normally, down to RATE_LIMIT_FLOOR while the portal is under stress",
        )
        factor.add_metric([], ratelimit.LIMITER.factor())
        yield factor

    def _statuses(self):
        status = GaugeMetricFamily(
            "portal_service_status",
            "Service status: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy, 4 maintenance",
            labels=["service"],
        )
        up = GaugeMetricFamily(
            "portal_service_up",
            "1 if the service is usable (healthy or degraded)",
            labels=["service"],
        )
        for name, value in Service.objects.values_list("name", "health__status"):
            value = Status.UNKNOWN if value is None else value
            status.add_metric([name], value)
            up.add_metric([name], 1 if value in (Status.HEALTHY, Status.DEGRADED) else 0)
        yield status
        yield up

    def _heartbeats(self):
        age = GaugeMetricFamily(
            "portal_heartbeat_age_seconds",
            "Seconds since a background component was last seen",
            labels=["component"],
        )
        for name in ("dispatcher", "worker", "beat"):
            seen = heartbeats.age(name)
            age.add_metric([name], seen.total_seconds() if seen else math.inf)
        yield age

    def _from_redis(self):
        client = redis_client()
        if client is None:
            return
        try:
            raw = {k.decode(): float(v) for k, v in client.hgetall(KEY).items()}
        except redis.RedisError:
            return
        checks = CounterMetricFamily(
            "portal_checks", "Check results recorded, by status", labels=["status"]
        )
        for key, value in raw.items():
            if key.startswith("counter:checks:"):
                checks.add_metric([key.rsplit(":", 1)[1]], value)
        yield checks
        dispatched = CounterMetricFamily(
            "portal_dispatched_checks", "Checks claimed and sent to workers by the dispatcher"
        )
        dispatched.add_metric([], raw.get("counter:dispatched", 0))
        yield dispatched
        yield _histogram(
            "portal_check_latency_seconds", "Probe response time", raw, "latency", LATENCY_BOUNDS
        )
        yield _histogram(
            "portal_scheduler_lag_seconds", "Probe start minus due time", raw, "lag", LAG_BOUNDS
        )
        yield from _capacity()


def _capacity():
    """The engine's own load over the last seconds (healthchecks.engine.capacity)."""
    seen = capacity.pressure()
    if seen is None:
        return
    gauges = [
        ("portal_probe_due_per_second", "Check slots coming due", seen.due_per_s),
        ("portal_probe_sent_per_second", "Slots sent to the probe workers", seen.sent_per_s),
        ("portal_probe_skipped_per_second", "Slots kept back (overload)", seen.skipped_per_s),
        ("portal_probe_started_on_time_per_second", "Probes started on time", seen.on_time_per_s),
        (
            "portal_probe_loop_lag_seconds",
            "Worst event-loop lag of a batch",
            seen.loop_lag_ms / 1000,
        ),
    ]
    if seen.on_time_ratio is not None:
        gauges.append(
            ("portal_probe_on_time_ratio", "Share of probes started on time", seen.on_time_ratio)
        )
    if seen.checks_per_cpu_s is not None:
        gauges.append(
            (
                "portal_probe_capacity_per_process",
                "Estimated checks per second one probe process runs with a core to itself",
                seen.checks_per_cpu_s,
            )
        )
    for name, doc, value in gauges:
        family = GaugeMetricFamily(name, f"{doc} (last {seen.seconds:g} s)")
        family.add_metric([], value)
        yield family


def _histogram(name: str, doc: str, raw: dict, prefix: str, bounds: list[float]):
    cumulative, buckets = 0.0, []
    for bound in [*map(str, bounds), "+Inf"]:
        cumulative += raw.get(f"hist:{prefix}:{bound}", 0)
        buckets.append((bound, cumulative))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets, sum_value=raw.get(f"hist:{prefix}:sum", 0))
    return family


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return generate_latest(registry)
