"""Security events (portal.models.SecurityEvent): one function to record them, and the
login throttle.

Recording never fails the request it describes: a database that cannot take the event is
logged instead. Refusals are recorded by the error handlers, once the view's transactions
have unwound, so a rolled-back write does not take its refusal's event with it.

Refusals are counted, not stored one row per request: the same kind from the same address
and caller within a minute (a fixed window) adds one to that row's ``count`` and moves its
``last_at`` -- one UPDATE of one row, so a flood (400 requests with random bearer tokens,
a client past its rate limit) is a number on a row, not 400 rows. What is done rather than
refused (secret reads, tokens made and revoked) stays one row each.

Login throttle: failed logins are counted per user name and per address for
LOGIN_FAILURE_WINDOW seconds; past LOGIN_MAX_FAILURES_USER (or _ADDRESS) the next attempts
are refused for LOGIN_LOCK_SECONDS, even with the right password (each refusal an event).
The rate limiter's login class already slows attempts to a few a minute.
"""

import hashlib

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
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
# The refusals anyone can repeat at will: counted on one row per kind, address, caller and
# WINDOW_SECONDS.
COUNTED = frozenset(
    {
        Kind.LOGIN_FAILED,
        Kind.LOGIN_THROTTLED,
        Kind.TOKEN_INVALID,
        Kind.TOKEN_EXPIRED,
        Kind.PERMISSION_DENIED,
        Kind.RATE_LIMITED,
    }
)
WINDOW_SECONDS = 60


def operation_of(request) -> str:
    return f"{request.method} {request.path}"[:300] if request is not None else ""


def record(kind: str, who, operation: str, outcome: str, *, caller: str = "", **detail) -> None:
    """Record one event (who: a principal, or the user name a login tried; a function is
    called only when a row is made). A refusal adds to the row of its kind, address and
    ``caller`` (``who`` unless given) of this minute, if there is one."""
    try:
        if kind in COUNTED:
            _count(kind, who, operation, outcome, caller or str(who), detail)
        else:
            _row(kind, who, operation, outcome, detail).save()
    except DatabaseError as exc:
        log.warning("security event not stored", kind=kind, error=str(exc))


def _row(kind, who, operation, outcome, detail, **fields) -> SecurityEvent:
    return SecurityEvent(
        kind=kind,
        who=str((who() if callable(who) else who) or "anonymous")[:200],
        client_ip=current_client_ip() or None,
        operation=operation[:300],
        outcome=outcome,
        detail=detail,
        request_id=current_request_id(),
        **fields,
    )


def tally_of(kind: str, address: str, caller: str, at) -> str:
    """The name of the row a refusal counts on: its kind, address, caller and window."""
    window = int(at.timestamp() // WINDOW_SECONDS)
    return hashlib.sha256(f"{kind}\n{address}\n{caller}\n{window}".encode()).hexdigest()


def _count(kind, who, operation, outcome, caller: str, detail) -> None:
    """One more on this window's row; the first of the window makes it. Two processes
    making it at once: the unique tally lets one insert, the other counts on its row."""
    now = timezone.now()
    tally = tally_of(kind, current_client_ip(), caller, now)
    seen = SecurityEvent.objects.filter(tally=tally)
    if seen.update(count=F("count") + 1, last_at=now):
        return
    row = _row(kind, who, operation, outcome, detail, at=now, last_at=now, tally=tally)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        seen.update(count=F("count") + 1, last_at=now)


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
