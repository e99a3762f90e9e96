"""Counting what the engine does: counters and histograms written by workers into one Redis
hash (a pipeline per flush), read by whichever web process serves ``/metrics``
(healthchecks.reads.metrics). Without Redis (embedded mode, or Redis down) nothing is
counted and nothing fails.
"""

from functools import cache

import redis
import structlog
from django.conf import settings

from healthchecks.status import ErrorCode, Status

log = structlog.get_logger(__name__)

KEY = "portal:metrics"
LATENCY_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
LAG_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


@cache
def redis_client() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
    )


def _bucket(value: float, bounds: list[float]) -> str:
    for bound in bounds:
        if value <= bound:
            return str(bound)
    return "+Inf"


def count(name: str, amount: int = 1) -> None:
    client = redis_client()
    if client is None or not amount:
        return
    try:
        client.hincrby(KEY, f"counter:{name}", amount)
    except redis.RedisError as exc:
        log.debug("metrics not counted", error=str(exc))


def result_label(status: int, error_code: int) -> str:
    """How a recorded result is counted: its status, or "missed" for a slot not probed, or
    "overloaded" for an outcome the checker's own overload made untrustworthy."""
    if error_code == ErrorCode.MISSED:
        return "missed"
    if error_code == ErrorCode.CHECKER_OVERLOADED:
        return "overloaded"
    if error_code == ErrorCode.SKIPPED:
        return "skipped"
    return Status(status).label


def observe_batch(labels: list[str], latencies_s: list[float], lags_s: list[float]) -> None:
    """Count one flush of results: by label (result_label), and into the latency and lag
    histograms."""
    client = redis_client()
    if client is None or not labels:
        return
    increments: dict[str, float] = {}
    for label in labels:
        key = f"counter:checks:{label}"
        increments[key] = increments.get(key, 0) + 1
    for prefix, values, bounds in (
        ("latency", latencies_s, LATENCY_BOUNDS),
        ("lag", lags_s, LAG_BOUNDS),
    ):
        for value in values:
            key = f"hist:{prefix}:{_bucket(value, bounds)}"
            increments[key] = increments.get(key, 0) + 1
        increments[f"hist:{prefix}:sum"] = sum(values)
    try:
        pipe = client.pipeline(transaction=False)
        for key, amount in increments.items():
            pipe.hincrbyfloat(KEY, key, amount)
        pipe.execute()
    except redis.RedisError as exc:
        log.debug("metrics not counted", error=str(exc))
