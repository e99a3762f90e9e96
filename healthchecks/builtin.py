"""Built-in callables for "python" checks (the default HEALTH_CALLABLE_PREFIXES).

A check callable takes no arguments and returns a bool, a Status, a status word ("healthy",
"degraded", "unhealthy") or a dict {"status", "details", "errors", "warnings", "metrics"};
it may be async. The portal's own checks (service ``backend``) live here.
"""

from healthchecks.selfcheck import database, redis, scheduler, workers

__all__ = ["always_healthy", "database", "redis", "scheduler", "workers"]


def always_healthy() -> bool:
    """A check that always passes: proves the python-check path works end to end."""
    return True
