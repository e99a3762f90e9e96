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
from django.db import DatabaseError

from portal.models import SecurityEvent
from portal.requestcontext import current_client_ip, current_request_id

log = structlog.get_logger(__name__)
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
    """``record``, at most once a minute for ``key`` (shared through the cache)."""
    minute = int(time.time() // 60)
    if cache.add(f"security-event:{key}:{minute}", 1, timeout=120):
        record(kind, who, operation, outcome, **detail)


# --- login throttle ------------------------------------------------------------------------


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    return [
        (f"login-failures:user:{username.lower()[:150]}", settings.LOGIN_MAX_FAILURES_USER),
        (f"login-failures:addr:{address}", settings.LOGIN_MAX_FAILURES_ADDRESS),
    ]


def login_locked(username: str, address: str) -> bool:
    return any(cache.get(f"{key}:locked") for key, _ in _keys(username, address))


def login_failed(username: str, address: str) -> None:
    for key, limit in _keys(username, address):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)
            count = 1
        if count >= limit:
            cache.set(f"{key}:locked", 1, timeout=settings.LOGIN_LOCK_SECONDS)
