"""Built-in callables for "python" checks (the default HEALTH_CALLABLE_PREFIXES).

A placeholder for now: the real built-ins come later. A check callable takes no arguments
and returns a bool, a Status, a status word ("healthy", "degraded", "unhealthy") or a dict
{"status", "details", "errors", "warnings", "metrics"}; it may be async.
"""


def always_healthy() -> bool:
    """Proves the python-check path works end to end."""
    return True
