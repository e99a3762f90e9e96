"""Security events (portal.models.SecurityEvent): one function to record them, and the
login throttle.

Recording never fails the request it describes: a database that cannot take the event is
logged instead. Refusals are recorded by the error handlers, once the view's transactions
have unwound, so a rolled-back write does not take its refusal's event with it. Rate-limit hits
are recorded at most once per client, route class and minute: a flood must not become a
flood of rows.

Login throttle: failed logins are counted per user name and per address for
LOGIN_FAILURE_WINDOW seconds; past LOGIN_MAX_FAILURES_USER (or _ADDRESS) the next attempts
are refused for LOGIN_LOCK_SECONDS, even with the right password (each refusal an event).
The rate limiter's login class already slows attempts to a few a minute.
"""

import time

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import DatabaseError
from redis.exceptions import RedisError

from portal.models import SecurityEvent
from portal.requestcontext import current_client_ip, current_request_id

log = structlog.get_logger(__name__)
# Where the throttle counts while Redis cannot be asked: this process alone, as the rate
# limiter does (portal.ratelimit) -- never no throttle, never a 500 at the login form.
_LOCAL = LocMemCache("portal-security", {})
_redis_down_logged = False


def _shared(operation):
    """``operation(cache)`` on the shared cache, or on this process's if Redis is down."""
    global _redis_down_logged
    try:
        return operation(cache)
    except (RedisError, OSError) as exc:
        if not _redis_down_logged:
            _redis_down_logged = True
            log.warning(
                "login throttle counts per process: the cache is unreachable", error=str(exc)
            )
        return operation(_LOCAL)


Kind = SecurityEvent.Kind


def operation_of(request) -> str:
    return f"{request.method} {request.path}"[:300] if request is not None else ""


def record(kind: str, who, operation: str, outcome: str, **detail) -> None:
    """Append one event (who: a principal, or the user name a login tried)."""
    row = SecurityEvent(
        kind=kind,
        who=str(who or "anonymous")[:200],
        client_ip=current_client_ip() or None,
        operation=operation[:300],
        outcome=outcome,
        detail=detail,
        request_id=current_request_id(),
    )
    try:
        row.save()
    except DatabaseError as exc:
        log.warning("security event not stored", kind=row.kind, who=row.who, error=str(exc))


def record_once_a_minute(key: str, kind: str, who, operation: str, outcome: str, **detail):
    """``record``, at most once a minute for ``key`` (shared through the cache); ``who`` may
    be a function, called only then."""
    minute = int(time.time() // 60)
    if _shared(lambda store: store.add(f"security-event:{key}:{minute}", 1, timeout=120)):
        record(kind, who() if callable(who) else who, operation, outcome, **detail)


# --- login throttle ------------------------------------------------------------------------


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    return [
        (f"login-failures:user:{username.lower()[:150]}", settings.LOGIN_MAX_FAILURES_USER),
        (f"login-failures:addr:{address}", settings.LOGIN_MAX_FAILURES_ADDRESS),
    ]


def login_locked(username: str, address: str) -> bool:
    keys = [f"{key}:locked" for key, _ in _keys(username, address)]
    return _shared(lambda store: any(store.get(key) for key in keys))


def login_failed(username: str, address: str) -> None:
    _shared(lambda store: _count_failure(store, username, address))


def _count_failure(store, username: str, address: str) -> None:
    for key, limit in _keys(username, address):
        store.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            count = store.incr(key)
        except ValueError:  # expired between add and incr
            store.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)
            count = 1
        if count >= limit:
            store.set(f"{key}:locked", 1, timeout=settings.LOGIN_LOCK_SECONDS)
